"""RandomScaleCropPad: CMX's random scale, crop and pad, on a batch."""

import pytest
import torch

from torchgeo_decur.transforms import CMX_SCALES, RandomScaleCropPad


def batch(n: int = 2, height: int = 40, width: int = 48) -> dict[str, torch.Tensor]:
    """Images whose pixels encode their position, and a mask copying image1."""
    rows = torch.arange(height).view(height, 1).expand(height, width)
    cols = torch.arange(width).view(1, width).expand(height, width)
    label = (rows * width + cols) % 37
    image1 = label.float().expand(n, 3, height, width).clone()
    return {
        'image1': image1,
        'image2': image1[:, :1].clone() * 2,
        'mask': label.expand(n, height, width).clone(),
        'name': ['a', 'b'][:n],
    }


def test_cmx_scales() -> None:
    assert CMX_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def test_scale_one_crops_same_window_everywhere() -> None:
    """At scale 1 the output is a crop of the input, the same window for both
    images and the mask of a sample."""
    torch.manual_seed(0)
    aug = RandomScaleCropPad((24, 32), scales=[1.0])
    x = batch()
    out = aug(x)
    assert out['image1'].shape == (2, 3, 24, 32)
    assert out['image2'].shape == (2, 1, 24, 32)
    assert out['mask'].shape == (2, 24, 32) and out['mask'].dtype == torch.long
    assert out['name'] == ['a', 'b']
    for i in range(2):
        torch.testing.assert_close(out['image1'][i, 0], out['mask'][i].float())
        torch.testing.assert_close(out['image2'][i, 0], 2 * out['mask'][i].float())
        # the window is a contiguous crop of the original
        found = False
        for t in range(40 - 24 + 1):
            for left in range(48 - 32 + 1):
                window = x['mask'][i, t : t + 24, left : left + 32]
                found |= torch.equal(window, out['mask'][i])
        assert found


def test_smaller_image_is_padded_around_the_centre() -> None:
    """Scale 0.5 of 40 x 48 is 20 x 24: padded to 24 x 32 with 2 / 2 rows and
    4 / 4 columns, 0 in the images and the ignore index in the mask."""
    aug = RandomScaleCropPad((24, 32), scales=[0.5], ignore_index=255)
    out = aug(batch(n=1))
    mask, image = out['mask'][0], out['image1'][0, 0]
    assert (mask[:2] == 255).all() and (mask[-2:] == 255).all()
    assert (mask[:, :4] == 255).all() and (mask[:, -4:] == 255).all()
    assert (mask[2:-2, 4:-4] != 255).all()
    assert (image[:2] == 0).all() and (image[:, -4:] == 0).all()
    # nearest neighbour keeps label values; every second row / column
    expected = batch(n=1)['mask'][0, ::2, ::2]
    torch.testing.assert_close(mask[2:-2, 4:-4], expected)


def test_odd_margin_goes_bottom_right() -> None:
    aug = RandomScaleCropPad((23, 27), scales=[0.5])
    out = aug(batch(n=1))  # 20 x 24 in 23 x 27: margins 1 / 2 and 1 / 2
    mask = out['mask'][0]
    assert (mask[0] == 255).all() and (mask[1, 1:-2] != 255).all()
    assert (mask[-2:] == 255).all() and (mask[-3, 1:-2] != 255).all()


def test_scales_are_drawn_from_the_set() -> None:
    """Scale 1.75 of 40 px is 70 px: crops of it repeat each label along a
    row less often than at scale 1 (nearest neighbour duplicates pixels)."""
    torch.manual_seed(0)
    aug = RandomScaleCropPad(16, scales=[1.0, 1.75])
    seen = set()
    for _ in range(20):
        mask = aug(batch(n=1))['mask'][0]
        repeats = int((mask[:, 1:] == mask[:, :-1]).sum())
        seen.add(repeats > 0)
    assert seen == {True, False}


def test_errors() -> None:
    with pytest.raises(ValueError, match='size must be one or two positive ints'):
        RandomScaleCropPad((0, 4))
    with pytest.raises(ValueError, match='scales must be positive'):
        RandomScaleCropPad(8, scales=[])
    with pytest.raises(ValueError, match='scales must be positive'):
        RandomScaleCropPad(8, scales=[1.0, -0.5])
    x = batch()
    x['mask'] = x['mask'][:, :20]
    with pytest.raises(ValueError, match="'mask' is \\(20, 48\\) px"):
        RandomScaleCropPad(8)(x)
