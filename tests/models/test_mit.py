import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from torch import Tensor, nn

import torchgeo_decur  # noqa: F401  (registers mit_b0 ... mit_b5 with timm)
from torchgeo_decur.models import MixTransformer, create_encoder
from torchgeo_decur.models.heads import encoder_feature_maps
from torchgeo_decur.models.mit import MIT_VARIANTS


def mean_of_last_stage_tokens(model: nn.Module, x: Tensor) -> Tensor:
    """The authors' pooling, computed step by step on the stages.

    Their MiT returns the normalised tokens of stage 4, ``(N, HW, C)``, and
    the pretraining model averages them over the tokens.
    """
    for i in range(1, 5):
        x = getattr(model, f'patch_embed{i}')(x)
        x = getattr(model, f'block{i}')(x)
        x = getattr(model, f'norm{i}')(x)
    tokens = x.flatten(2).transpose(1, 2)
    return tokens.mean(dim=1)


def test_registered_with_timm() -> None:
    for name in MIT_VARIANTS:
        assert timm.is_model(name)
    model = timm.create_model('mit_b2', in_chans=3, num_classes=0)
    assert isinstance(model, MixTransformer)
    assert model.num_features == 512
    assert sum(len(getattr(model, f'block{i}')) for i in range(1, 5)) == 16


def test_pooled_features_and_feature_maps() -> None:
    torch.manual_seed(0)
    model = timm.create_model('mit_b0', in_chans=4, num_classes=0).eval()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        pooled = model(x)
        maps = model.forward_intermediates(x, intermediates_only=True)
        final, inter = model.forward_intermediates(x, indices=2)
        last3 = encoder_feature_maps(model, x, 3)
        torch.testing.assert_close(pooled, mean_of_last_stage_tokens(model, x))
    assert pooled.shape == (2, 256)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (32, 16, 16),
        (64, 8, 8),
        (160, 4, 4),
        (256, 2, 2),
    ]
    assert [f['reduction'] for f in model.feature_info] == [4, 8, 16, 32]
    assert [f['num_chs'] for f in model.feature_info] == [32, 64, 160, 256]
    torch.testing.assert_close(final, maps[-1])
    assert len(inter) == 2 and torch.equal(inter[0], maps[2])
    assert all(torch.equal(a, b) for a, b in zip(last3, maps[1:], strict=True))


def test_same_network_as_smp() -> None:
    """The stage maps equal those of smp's MiT encoder with the same weights."""
    torch.manual_seed(0)
    ours = timm.create_model('mit_b2', in_chans=3, num_classes=0).eval()
    theirs = smp.encoders.get_encoder('mit_b2', in_channels=3, weights=None).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)[2:]
        got = ours.forward_intermediates(x, intermediates_only=True)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_classifier_and_errors() -> None:
    model = timm.create_model('mit_b0', in_chans=3, num_classes=5)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 256)
    with pytest.raises(ValueError, match='in_chans must be >= 1'):
        timm.create_model('mit_b0', in_chans=0)
    with pytest.raises(ValueError, match='num_classes must be >= 0'):
        timm.create_model('mit_b0', num_classes=-1)
    with pytest.raises(ValueError, match='NCHW'):
        model.forward_intermediates(torch.randn(1, 3, 32, 32), output_fmt='NHWC')


def test_create_encoder_and_gradients() -> None:
    torch.manual_seed(0)
    model = create_encoder('mit_b0', 3)
    out = model(torch.randn(2, 3, 32, 32))
    # not out.sum(): a LayerNorm's outputs sum to a constant
    (out * torch.randn_like(out)).sum().backward()
    assert model.patch_embed1.proj.weight.grad is not None
    grad = model.block4[-1].mlp.fc2.weight.grad
    assert grad is not None and grad.abs().sum() > 0
