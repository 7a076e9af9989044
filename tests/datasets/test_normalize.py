import numpy as np
import pytest
import torch

from torchgeo_decur.datasets.modalities import S1_MEAN, S1_STD, get_modality
from torchgeo_decur.datasets.normalize import (
    image_quantiles,
    normalize_dem,
    normalize_s1,
    normalize_s2,
)


def manual_s1(x: np.ndarray, tail: float = 0.02) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    mean, std = (-12.59, -20.26), (5.26, 5.91)
    for idx in np.ndindex(x.shape[:-3]):
        for c in range(2):
            band = x[idx][c].astype(np.float64)
            lo, hi = np.quantile(band, [tail, 1 - tail])
            out[idx][c] = (np.clip(band, lo, hi) - mean[c]) / std[c]
    return out


def test_s1_constants_match_paper() -> None:
    assert S1_MEAN == (-12.59, -20.26)
    assert S1_STD == (5.26, 5.91)
    assert get_modality('s1').mean == S1_MEAN


def test_normalize_s1_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(-15, 6, size=(3, 2, 17, 19)).astype(np.float32)
    x[0, 0, 0, 0] = 60.0  # outliers beyond the 2 % tails
    x[1, 1, 3, 3] = -90.0
    out = normalize_s1(torch.from_numpy(x))
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), manual_s1(x), rtol=1e-5, atol=1e-5)
    # the outliers were clipped
    assert out[0, 0].max() < (60.0 - S1_MEAN[0]) / S1_STD[0] - 1
    assert out[1, 1].min() > (-90.0 - S1_MEAN[1]) / S1_STD[1] + 1


def test_normalize_s1_single_image_equals_batch_item() -> None:
    x = torch.randn(4, 2, 12, 12) * 5 - 15
    batch = normalize_s1(x)
    for i in range(4):
        torch.testing.assert_close(normalize_s1(x[i]), batch[i])


def test_normalize_s1_does_not_modify_input() -> None:
    x = torch.randn(2, 2, 8, 8) * 50
    before = x.clone()
    normalize_s1(x)
    assert torch.equal(x, before)


def test_normalize_s1_errors() -> None:
    with pytest.raises(ValueError, match='2 channels'):
        normalize_s1(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match='floating point'):
        normalize_s1(torch.zeros(1, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r'\[\.\.\., C, H, W\]'):
        normalize_s1(torch.zeros(2, 4))
    with pytest.raises(ValueError, match='quantile'):
        normalize_s1(torch.zeros(1, 2, 4, 4), tail=0.7)


def test_image_quantiles_matches_torch() -> None:
    x = torch.randn(3, 2, 9, 7, dtype=torch.float64)
    low, high = image_quantiles(x, 0.02)
    flat = x.flatten(-2)
    torch.testing.assert_close(low[..., 0, 0], flat.quantile(0.02, dim=-1))
    torch.testing.assert_close(high[..., 0, 0], flat.quantile(0.98, dim=-1))


def test_normalize_s2_values() -> None:
    x = torch.tensor([-5.0, 0.0, 5000.0, 10000.0, 20000.0]).reshape(1, 5, 1, 1)
    out = normalize_s2(x)
    expected = torch.tensor([0.0, 0.0, 127.5, 255.0, 255.0]).reshape(1, 5, 1, 1)
    torch.testing.assert_close(out, expected)


def test_normalize_s2_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 15000, size=(2, 13, 6, 6)).astype(np.float32)
    expected = np.clip(x / 10000.0 * 255.0, 0, 255)
    np.testing.assert_allclose(normalize_s2(torch.from_numpy(x)).numpy(), expected)
    with pytest.raises(ValueError, match='floating point'):
        normalize_s2(torch.zeros(1, 13, 2, 2, dtype=torch.int32))


def test_normalize_dem() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(30, 400, size=(3, 1, 10, 10)).astype(np.float32)
    out = normalize_dem(torch.from_numpy(x)).numpy()
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / std, rtol=1e-4, atol=1e-4)
    # unit and offset do not matter
    shifted = normalize_dem(torch.from_numpy(x * 3.28 + 100)).numpy()
    np.testing.assert_allclose(shifted, out, rtol=1e-3, atol=1e-3)
    # a flat image maps to zeros, not NaN
    flat = normalize_dem(torch.full((1, 1, 4, 4), 55.0))
    assert torch.equal(flat, torch.zeros_like(flat))
