import math

import pytest
import torch

from torchgeo_decur.models import (
    FusionTransformer,
    LatentConverter,
    sincos_position_embedding_2d,
)


def test_position_embedding_shape_and_dtype() -> None:
    pos = sincos_position_embedding_2d(3, 5, 16)
    assert pos.shape == (15, 16)
    assert pos.dtype == torch.float32
    assert sincos_position_embedding_2d(2, 2, 8, dtype=torch.float64).dtype == (
        torch.float64
    )


def test_position_embedding_is_fixed() -> None:
    torch.testing.assert_close(
        sincos_position_embedding_2d(4, 6, 32), sincos_position_embedding_2d(4, 6, 32)
    )
    converter = LatentConverter(8, 16)
    # nothing of the position embedding is learned or stored
    assert {name for name, _ in converter.named_parameters()} == {
        'proj.weight',
        'proj.bias',
    }
    assert not list(converter.buffers())


def test_position_embedding_distinct_positions() -> None:
    pos = sincos_position_embedding_2d(7, 9, 32)
    dist = torch.cdist(pos, pos)
    off_diagonal = dist[~torch.eye(63, dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3
    # rows and columns are told apart: (r, c) differs from (c, r)
    square = sincos_position_embedding_2d(4, 4, 16)
    assert not torch.allclose(square[1 * 4 + 2], square[2 * 4 + 1])


def test_position_embedding_values() -> None:
    height, width, dim = 3, 4, 12
    pos = sincos_position_embedding_2d(height, width, dim)
    q = dim // 4
    for r in range(height):
        for c in range(width):
            expected = []
            for fn, p in ((math.sin, r), (math.cos, r), (math.sin, c), (math.cos, c)):
                expected += [fn(p * 10000 ** (-k / q)) for k in range(q)]
            torch.testing.assert_close(
                pos[r * width + c], torch.tensor(expected, dtype=torch.float32)
            )


@pytest.mark.parametrize(
    ('args', 'match'),
    [((2, 2, 6), 'dim must be a multiple of 4'), ((0, 2, 8), 'height')],
)
def test_position_embedding_bad_arguments(
    args: tuple[int, int, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        sincos_position_embedding_2d(*args)


def test_latent_converter_tokens() -> None:
    converter = LatentConverter(8, 16)
    x = torch.randn(2, 8, 3, 5)
    tokens = converter(x)
    assert tokens.shape == (2, 15, 16)
    expected = converter.proj(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(
        tokens, expected + sincos_position_embedding_2d(3, 5, 16)
    )
    # any map size works
    assert converter(torch.randn(1, 8, 7, 7)).shape == (1, 49, 16)
    with pytest.raises(ValueError, match=r'\(B, 8, h, w\)'):
        converter(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match='dim must be a multiple of 4'):
        LatentConverter(8, 10)


@pytest.fixture
def fusion() -> FusionTransformer:
    torch.manual_seed(0)
    return FusionTransformer(16, num_layers=2, num_heads=4).eval()


def test_fusion_is_pre_norm_with_cls(fusion: FusionTransformer) -> None:
    assert fusion.cls_token.shape == (1, 1, 16)
    assert len(fusion.layers) == 2
    assert all(layer.norm_first for layer in fusion.layers)
    out = fusion([torch.randn(3, 4, 16), torch.randn(3, 5, 16)])
    assert out.shape == (3, 16)


def test_missing_modality_has_no_leakage(fusion: FusionTransformer) -> None:
    a, b = torch.randn(3, 4, 16), torch.randn(3, 5, 16)
    alone = fusion([a])
    # by hand: CLS + a's tokens only, through the layers and the final norm
    x = torch.cat([fusion.cls_token.expand(3, -1, -1), a], dim=1)
    for layer in fusion.layers:
        x = layer(x)
    torch.testing.assert_close(alone, fusion.norm(x[:, 0]))
    # the other modality (its tokens removed) has no influence at all
    a.requires_grad_(True)
    b.requires_grad_(True)
    fusion([a]).sum().backward()
    assert b.grad is None
    assert a.grad is not None and a.grad.abs().sum() > 0
    # and each sample's embedding depends on its own tokens only
    torch.testing.assert_close(fusion([a[:1]]), alone[:1])


def test_fusion_depends_on_every_modality_present(fusion: FusionTransformer) -> None:
    a, b = torch.randn(3, 4, 16), torch.randn(3, 5, 16)
    both = fusion([a, b])
    assert not torch.allclose(both, fusion([a]), atol=1e-4)
    assert not torch.allclose(both, fusion([torch.randn_like(a), b]), atol=1e-4)
    assert not torch.allclose(both, fusion([a, torch.randn_like(b)]), atol=1e-4)
    # the CLS output is a set function of the tokens
    torch.testing.assert_close(fusion([b, a]), both, atol=1e-5, rtol=1e-5)


def test_fusion_bad_arguments(fusion: FusionTransformer) -> None:
    with pytest.raises(ValueError, match='at least one modality'):
        fusion([])
    with pytest.raises(ValueError, match=r'tokens\[1\]'):
        fusion([torch.randn(3, 4, 16), torch.randn(2, 4, 16)])
    with pytest.raises(ValueError, match='num_heads=3 must divide dim=16'):
        FusionTransformer(16, num_heads=3)
    with pytest.raises(ValueError, match='num_layers'):
        FusionTransformer(16, num_layers=0)
