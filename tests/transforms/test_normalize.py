import numpy as np
import pytest
import torch
import torchvision

from torchgeo_decur.modalities import get_modality
from torchgeo_decur.transforms.normalize import (
    S1_MEAN,
    S1_STD,
    PercentileStretch,
    Scale,
    SigmaStretch,
    Standardize,
    image_quantiles,
    normalize_dem,
    normalize_rgb,
    normalize_s1,
    normalize_s2,
)


def authors_s1(x: np.ndarray, tail: float = 0.01) -> np.ndarray:
    """The DeCUR authors' S1 preprocessing, per image and band, in float."""
    out = np.empty_like(x, dtype=np.float64)
    mean = (-12.54847273, -20.19237134)
    std = (5.25697717, 5.91150917)
    for idx in np.ndindex(x.shape[:-3]):
        for c in range(2):
            band = x[idx][c].astype(np.float64)
            lo, hi = np.quantile(band, [tail, 1 - tail])
            band = np.clip(band, lo, hi)
            low, high = mean[c] - 2 * std[c], mean[c] + 2 * std[c]
            out[idx][c] = np.clip((band - low) / (high - low), 0, 1)
    return out


def test_s1_constants_match_authors_code() -> None:
    # SSL4EO-S12 statistics of the DeCUR pretraining code (VV, VH)
    assert S1_MEAN == (-12.54847273, -20.19237134)
    assert S1_STD == (5.25697717, 5.91150917)
    stretch = get_modality('s1').normalizer()
    assert (stretch.mean, stretch.std) == (S1_MEAN, S1_STD)


def test_normalize_s1_known_image() -> None:
    # VV: 101 values from -30 to 10 dB in steps of 0.4; its 1st / 99th
    # percentiles are -29.6 and 9.6. VH: constant at its mean.
    vv = torch.linspace(-30, 10, 101, dtype=torch.float64).reshape(1, 101)
    vh = torch.full((1, 101), -20.19237134, dtype=torch.float64)
    x = torch.stack([vv, vh])  # [2, 1, 101]
    out = normalize_s1(x)
    assert out.min() >= 0 and out.max() <= 1
    # hand-computed (x - (mean - 2 std)) / (4 std) for VV
    # (pixel i holds -30 + 0.4 i dB)
    vv_out = out[0, 0]
    assert vv_out[44].item() == pytest.approx(0.507060746, abs=1e-8)  # -12.4 dB
    assert vv_out[25].item() == pytest.approx(0.145636312, abs=1e-8)  # -20 dB
    assert vv_out[70].item() == 1.0  # -2 dB, above mean + 2 std: clipped
    assert vv_out[0].item() == 0.0
    # the mean maps to 0.5
    torch.testing.assert_close(out[1], torch.full_like(out[1], 0.5))


def test_normalize_s1_matches_authors_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(-15, 6, size=(3, 2, 17, 19)).astype(np.float32)
    x[0, 0, 0, 0] = 60.0  # outliers beyond the 1 % tails
    x[1, 1, 3, 3] = -90.0
    out = normalize_s1(torch.from_numpy(x))
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), authors_s1(x), rtol=1e-5, atol=1e-6)
    # z-scoring (the old preprocessing) would give negative values and > 1
    assert out.min() >= 0 and out.max() <= 1


def test_normalize_s1_percentile_clip_matters() -> None:
    # one bright scatterer must not stretch the image: values inside mean +-
    # 2 std that lie above the 99th percentile are clipped to it
    x = torch.full((2, 10, 10), -14.0)
    x[0, :, :5] = -10.0
    x[0, 0, 0] = -4.0  # 1 pixel of 100 above the 99th percentile
    out = normalize_s1(x)
    p99 = -10.0 + 0.01 * 6.0  # linear interpolation at rank 98.01 of 0..99
    expected_top = (p99 - (S1_MEAN[0] - 2 * S1_STD[0])) / (4 * S1_STD[0])
    assert out[0, 0, 0].item() == pytest.approx(expected_top, abs=1e-5)


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


def test_normalize_s2_is_reflectance() -> None:
    x = torch.tensor([-5.0, 0.0, 3000.0, 10000.0, 20000.0]).reshape(1, 5, 1, 1)
    out = normalize_s2(x)
    expected = torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]).reshape(1, 5, 1, 1)
    torch.testing.assert_close(out, expected)


def test_normalize_s2_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 15000, size=(2, 13, 6, 6)).astype(np.float32)
    expected = np.clip(x / 10000.0, 0, 1)
    np.testing.assert_allclose(normalize_s2(torch.from_numpy(x)).numpy(), expected)
    with pytest.raises(ValueError, match='floating point'):
        normalize_s2(torch.zeros(1, 13, 2, 2, dtype=torch.int32))


def test_normalize_dem_stretch() -> None:
    # the authors' GeoNRW reader: clip to p1, p99, then (x - p1) / (p99 - p1 + 1e-5)
    rng = np.random.default_rng(2)
    x = rng.uniform(30, 400, size=(3, 1, 10, 10)).astype(np.float64)
    x[0, 0, 0, 0] = 5000.0  # a spike above the 99th percentile
    out = normalize_dem(torch.from_numpy(x)).numpy()
    for i in range(3):
        p1, p99 = np.percentile(x[i], (1, 99))
        expected = (np.clip(x[i], p1, p99) - p1) / (p99 - p1 + 1e-5)
        np.testing.assert_allclose(out[i], expected, rtol=1e-10, atol=1e-10)
    assert out.min() == 0 and out.max() < 1
    # the unit and offset of the elevation do not matter
    shifted = normalize_dem(torch.from_numpy(x * 3.28 + 100)).numpy()
    np.testing.assert_allclose(shifted, out, rtol=1e-5, atol=1e-5)
    # a flat image maps to zeros, not NaN
    flat = normalize_dem(torch.full((1, 1, 4, 4), 55.0))
    assert torch.equal(flat, torch.zeros_like(flat))


def test_normalize_rgb() -> None:
    x = torch.tensor([0.0, 51.0, 255.0]).reshape(3, 1, 1)
    torch.testing.assert_close(
        normalize_rgb(x), torch.tensor([0.0, 0.2, 1.0]).reshape(3, 1, 1)
    )


def test_tail_zero_is_the_plain_stretch() -> None:
    x = torch.randn(3, 2, 9, 9) * 8 - 14
    x[0, 0, 0, 0] = -1.0  # inside mean +- 2 std, above the 99th percentile
    plain = normalize_s1(x, tail=0.0)
    mean = torch.tensor(S1_MEAN)[:, None, None]
    std = torch.tensor(S1_STD)[:, None, None]
    torch.testing.assert_close(plain, ((x - (mean - 2 * std)) / (4 * std)).clamp(0, 1))
    assert not torch.allclose(plain, normalize_s1(x))
    low, high = image_quantiles(x, 0.0)
    torch.testing.assert_close(low[..., 0, 0], x.flatten(-2).amin(-1))
    torch.testing.assert_close(high[..., 0, 0], x.flatten(-2).amax(-1))


def test_modules() -> None:
    x = torch.randn(2, 3, 8, 8) * 4 + 10
    stretch = SigmaStretch((10.0, 10.0, 10.0), (4.0, 4.0, 4.0), tail=0.0)
    torch.testing.assert_close(stretch(x), ((x - 2) / 16).clamp(0, 1))
    assert 'tail=0.0' in repr(stretch)
    with pytest.raises(ValueError, match='same length and std > 0'):
        SigmaStretch((1.0,), (1.0, 2.0))
    with pytest.raises(ValueError, match='3 channels'):
        stretch(torch.zeros(1, 2, 4, 4))
    torch.testing.assert_close(PercentileStretch()(x), normalize_dem(x))
    torch.testing.assert_close(
        Scale(10000, clip=True)(x * 3000), normalize_s2(x * 3000)
    )
    torch.testing.assert_close(Scale(255)(x), x / 255)
    with pytest.raises(ValueError, match='divisor'):
        Scale(0)


def test_standardize() -> None:
    x = torch.rand(2, 2, 3, 8, 8)
    module = Standardize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    expected = torchvision.transforms.functional.normalize(
        x.flatten(0, 1), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ).unflatten(0, (2, 2))
    torch.testing.assert_close(module(x), expected)
    assert 'mean=(0.485, 0.456, 0.406)' in repr(module)
    assert module.state_dict() == {}  # constants, not checkpoint state
    with pytest.raises(ValueError, match='3 channels'):
        module(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match='one value per channel'):
        Standardize((0.5,), (0.2, 0.3))
    with pytest.raises(ValueError, match='positive'):
        Standardize((0.5,), (0.0,))
