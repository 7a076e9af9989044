"""CMX: rectification, cross-attention, fusion and the whole model.

``benchmarks/verify_cmx.py`` compares the model with CMX's own code weight for
weight (it needs a CMX checkout); these tests check the formulas on their own.
"""

import pytest
import timm
import torch
from torch import Tensor, nn

from torchgeo_decur.models.cmx import (
    CMXSegmentationModel,
    CrossAttention,
    FeatureFusion,
    FeatureRectification,
)


def mit(name: str = 'mit_b0', in_chans: int = 3) -> nn.Module:
    return timm.create_model(name, in_chans=in_chans, num_classes=0)


def test_rectification_formula() -> None:
    """With the last layers at zero both sigmoids give 0.5: each stream gets
    half of the other added (0.5 * 0.5 channel + 0.5 * 0.5 spatial)."""
    frm = FeatureRectification(8)
    for layer in (frm.channel_mlp[2], frm.spatial_mlp[2]):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    x1, x2 = torch.randn(2, 2, 8, 5, 7).unbind(0)
    out1, out2 = frm(x1, x2)
    torch.testing.assert_close(out1, x1 + 0.5 * x2)
    torch.testing.assert_close(out2, x2 + 0.5 * x1)


def test_rectification_weights_per_channel_and_pixel() -> None:
    torch.manual_seed(0)
    frm = FeatureRectification(8, lambda_c=1.0, lambda_s=0.0)
    x1, x2 = torch.randn(2, 2, 8, 5, 7).unbind(0)
    w1, w2 = frm.weights(x1, x2)
    both = torch.cat((x1, x2), dim=1)
    pooled = torch.cat((both.mean(dim=(2, 3)), both.amax(dim=(2, 3))), dim=1)
    expected = frm.channel_mlp(pooled).view(2, 2, 8, 1, 1).expand(-1, -1, -1, 5, 7)
    torch.testing.assert_close(w1, expected[:, 1])  # CMX's order
    torch.testing.assert_close(w2, expected[:, 0])
    frm = FeatureRectification(8, lambda_c=0.0, lambda_s=1.0)
    w1, w2 = frm.weights(x1, x2)
    expected = frm.spatial_mlp(both).unsqueeze(2).expand(-1, -1, 8, -1, -1)
    torch.testing.assert_close(w1, expected[:, 1])  # one weight per pixel
    torch.testing.assert_close(w2, expected[:, 0])


def reference_cross_attention(
    attention: CrossAttention, x1: Tensor, x2: Tensor
) -> tuple[Tensor, Tensor]:
    """CMX's efficient attention written head by head, with einsum."""
    h = attention.num_heads
    n, length, width = x1.shape
    d = width // h

    def context(kv: nn.Linear, x: Tensor) -> Tensor:
        k, v = kv(x).view(n, length, 2, h, d).unbind(2)
        scores = torch.einsum('nlhi,nlhj->nhij', k, v) * d**-0.5
        return scores.softmax(dim=2)  # over the key dimension

    c1, c2 = context(attention.kv1, x1), context(attention.kv2, x2)
    q1, q2 = x1.view(n, length, h, d), x2.view(n, length, h, d)
    out1 = torch.einsum('nlhi,nhij->nlhj', q1, c2).reshape(n, length, width)
    out2 = torch.einsum('nlhi,nhij->nlhj', q2, c1).reshape(n, length, width)
    return out1, out2


def test_cross_attention_reads_the_other_stream() -> None:
    torch.manual_seed(0)
    attention = CrossAttention(16, num_heads=4)
    x1, x2 = torch.randn(2, 3, 10, 16).unbind(0)
    out1, out2 = attention(x1, x2)
    ref1, ref2 = reference_cross_attention(attention, x1, x2)
    torch.testing.assert_close(out1, ref1)
    torch.testing.assert_close(out2, ref2)
    # stream 1's output follows stream 2's context, not its own
    other1, _ = attention(x1, torch.randn_like(x2))
    assert not torch.allclose(other1, out1)
    _, same2 = attention(torch.randn_like(x1), x2)
    assert not torch.allclose(same2, out2)
    with pytest.raises(ValueError, match='num_heads must be positive and divide'):
        CrossAttention(16, num_heads=3)


def test_fusion_shape_gradients_and_init() -> None:
    torch.manual_seed(0)
    ffm = FeatureFusion(16, num_heads=2)
    x1 = torch.randn(2, 16, 6, 9, requires_grad=True)
    x2 = torch.randn(2, 16, 6, 9, requires_grad=True)
    out = ffm(x1, x2)
    assert out.shape == (2, 16, 6, 9)
    out.square().mean().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    assert x2.grad is not None and x2.grad.abs().sum() > 0
    # CMX's initialisation: linear layers std 0.02, zero biases
    assert ffm.split1.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.count_nonzero(ffm.merge1.bias) == 0
    with pytest.raises(ValueError, match='reduction must divide dim'):
        FeatureFusion(16, num_heads=2, reduction=3)


def test_model_segments_at_input_size() -> None:
    torch.manual_seed(0)
    model = CMXSegmentationModel([mit(), mit()], num_classes=5).eval()
    rgb, hha = torch.randn(2, 2, 3, 60, 92).unbind(0)
    with torch.no_grad():
        out = model(rgb, hha)
        other = model(rgb, torch.randn_like(hha))
    assert out.shape == (2, 5, 60, 92)
    assert not torch.allclose(out, other)  # the HHA stream is fused in
    maps = model.fused_maps(rgb, hha)
    assert [m.shape[1] for m in maps] == [32, 64, 160, 256]
    assert [m.shape[-1] for m in maps] == [23, 12, 6, 3]  # strides 4 ... 32
    bn = model.decoder.fuse_stage[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3  # CMX's decoder


def test_model_has_cmx_parameter_count() -> None:
    """MiT-B2: CMX's code has 66,581,424 parameters, 512 of them the bias of a
    convolution before batch norm that smp's decoder leaves out (counted by
    benchmarks/verify_cmx.py on CMX's code)."""
    model = CMXSegmentationModel([mit('mit_b2'), mit('mit_b2')], num_classes=40)
    assert sum(p.numel() for p in model.parameters()) == 66_581_424 - 512


def test_model_errors() -> None:
    resnet = timm.create_model('resnet18', num_classes=0)
    with pytest.raises(ValueError, match="decoder='cmx' needs two MiT encoders"):
        CMXSegmentationModel([resnet, mit()], num_classes=3)
    with pytest.raises(ValueError, match="decoder='cmx' needs two MiT encoders"):
        CMXSegmentationModel([mit()], num_classes=3)
    with pytest.raises(ValueError, match='the same stage widths'):
        CMXSegmentationModel([mit('mit_b0'), mit('mit_b1')], num_classes=3)
    with pytest.raises(ValueError, match='num_classes must be >= 1'):
        CMXSegmentationModel([mit(), mit()], num_classes=0)
    model = CMXSegmentationModel([mit(), mit()], num_classes=3)
    with pytest.raises(ValueError, match='expected 2 inputs'):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='same height and width'):
        model(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 48))
