import pytest
import timm
import torch

from torchgeo_decur.lab import SmallConvNet  # registers convnet_small with timm
from torchgeo_decur.models import create_encoder
from torchgeo_decur.models.heads import encoder_feature_maps


def test_registered_and_shapes() -> None:
    model = timm.create_model('convnet_small', in_chans=4, num_classes=0)
    assert isinstance(model, SmallConvNet) and model.num_features == 256
    x = torch.randn(2, 4, 64, 64)
    assert model(x).shape == (2, 256)
    maps = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (32, 32, 32),
        (64, 16, 16),
        (128, 8, 8),
        (256, 4, 4),
    ]
    assert [f['reduction'] for f in model.feature_info] == [2, 4, 8, 16]
    final, inter = model.forward_intermediates(x, indices=[1])
    assert torch.equal(final, model.forward_features(x)) and len(inter) == 1
    last3 = encoder_feature_maps(model, x, 3)
    assert [m.shape[1] for m in last3] == [64, 128, 256]
    torch.testing.assert_close(model(x), final.mean(dim=(-2, -1)))


def test_classifier_gradients_and_errors() -> None:
    model = create_encoder('convnet_small', 3)
    out = model(torch.rand(4, 3, 32, 32))
    (out * torch.randn_like(out)).sum().backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()
    )
    assert timm.create_model('convnet_small', num_classes=7)(
        torch.rand(2, 3, 32, 32)
    ).shape == (2, 7)
    with pytest.raises(ValueError, match='in_chans'):
        SmallConvNet(in_chans=0)
    with pytest.raises(ValueError, match='num_classes'):
        SmallConvNet(num_classes=-1)
    with pytest.raises(ValueError, match='widths'):
        SmallConvNet(widths=(8, 16))
    with pytest.raises(ValueError, match='no pretrained weights'):
        timm.create_model('convnet_small', pretrained=True)
    with pytest.raises(ValueError, match='NCHW'):
        model.forward_intermediates(torch.rand(1, 3, 32, 32), output_fmt='NHWC')
