import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from PIL import Image
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_decur.datasets import SUNRGBD, NYUDepthV2, RGBDFolderDataset
from torchgeo_decur.modalities import get_modality

matplotlib.use('Agg')

#: Dataset class, fixture, first training image name, HHA extension.
DATASETS = [
    (SUNRGBD, 'sunrgbd_root', 'img-005051', '.png'),
    (NYUDepthV2, 'nyuv2_root', '0003', '.jpg'),
]


@pytest.fixture(params=DATASETS, ids=['sunrgbd', 'nyuv2'])
def case(
    request: pytest.FixtureRequest,
) -> tuple[type[RGBDFolderDataset], Path, str, str]:
    cls, fixture, name, ext = request.param
    return cls, request.getfixturevalue(fixture), name, ext


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def test_classes() -> None:
    assert SUNRGBD.num_classes == len(SUNRGBD.classes) == 37
    assert NYUDepthV2.num_classes == len(NYUDepthV2.classes) == 40
    assert NYUDepthV2.classes[:3] == ('wall', 'floor', 'cabinet')
    assert NYUDepthV2.classes[-1] == 'otherprop' and SUNRGBD.classes[-1] == 'bag'
    for cls in (SUNRGBD, NYUDepthV2):
        assert cls.ignore_index == 255
        assert cls.input_bands == {
            'image1': get_modality('rgb_indoor').bands,
            'image2': get_modality('hha').bands,
        }


def test_raw_sample(case: tuple) -> None:
    cls, root, name, ext = case
    ds = cls(root, split='train')
    assert len(ds) == 4 and len(cls(root, split='test')) == 2
    sample = ds[0]
    assert set(sample) == {'image1', 'image2', 'mask'}
    assert sample['image1'].dtype == sample['image2'].dtype == torch.uint8
    assert sample['mask'].dtype == torch.int64
    height, width = sample['mask'].shape
    assert sample['image1'].shape == sample['image2'].shape == (3, height, width)

    # RGB in R, G, B order; HHA channels as stored in the image's R, G, B
    rgb = read(root / 'RGB' / f'{name}.jpg')
    np.testing.assert_array_equal(sample['image1'].permute(1, 2, 0).numpy(), rgb)
    hha = read(root / 'HHA' / f'{name}{ext}')
    np.testing.assert_array_equal(sample['image2'].permute(1, 2, 0).numpy(), hha)

    # labels 1..K become 0..K-1, unlabeled (0) becomes 255
    label = read(root / 'Label' / f'{name}.png')
    assert (label == 0).any()
    mask = sample['mask'].numpy()
    np.testing.assert_array_equal(mask[label == 0], 255)
    np.testing.assert_array_equal(mask[label > 0], label[label > 0].astype(int) - 1)
    assert set(np.unique(mask)) <= {*range(cls.num_classes), 255}


def test_no_mask_needs_no_labels(case: tuple) -> None:
    cls, root, _, _ = case
    for path in (root / 'Label').iterdir():
        path.unlink()
    (root / 'Label').rmdir()
    with pytest.raises(FileNotFoundError, match=r'label folder .*Label is missing'):
        cls(root)
    sample = cls(root, mask=False)[1]
    assert set(sample) == {'image1', 'image2'}


def test_sunrgbd_sizes_differ_and_resize(sunrgbd_root: Path) -> None:
    ds = SUNRGBD(sunrgbd_root)
    assert ds[0]['image1'].shape == (3, 40, 48)
    assert ds[1]['image1'].shape == (3, 42, 54)  # another sensor
    resized = SUNRGBD(sunrgbd_root, size=(40, 48))
    sample = resized[1]
    assert sample['image1'].shape == sample['image2'].shape == (3, 40, 48)
    assert sample['mask'].shape == (40, 48) and sample['mask'].dtype == torch.int64
    # nearest neighbour: no new label values
    assert set(sample['mask'].unique().tolist()) <= set(ds[1]['mask'].unique().tolist())
    assert SUNRGBD(sunrgbd_root, size=32)[0]['image2'].shape == (3, 32, 32)
    with pytest.raises(ValueError, match='size must be a positive int'):
        SUNRGBD(sunrgbd_root, size=(0, 4))


def test_list_file_formats(nyuv2_root: Path) -> None:
    lines = 'RGB/0001.jpg Label/0001.png\n\n0002.jpg\n  0003  \nRGB/0004\n'
    (nyuv2_root / 'train.txt').write_text(lines)
    ds = NYUDepthV2(nyuv2_root)
    assert [p['rgb'].name for p in ds.files] == [
        '0001.jpg',
        '0002.jpg',
        '0003.jpg',
        '0004.jpg',
    ]
    assert ds.files[0]['hha'].name == '0001.jpg'


def test_missing_image_names_list_line_and_path(case: tuple) -> None:
    cls, root, name, ext = case
    (root / 'HHA' / f'{name}{ext}').unlink()
    list_file = root / 'train.txt'
    pattern = (
        re.escape(f'{list_file}, line 1 (')
        + f'.*{name}.*'
        + re.escape(f'): missing hha image {root / "HHA" / name}.jpg ')
        + re.escape('(also tried .jpeg, .png)')
    )
    with pytest.raises(FileNotFoundError, match=pattern):
        cls(root)
    # a name that exists nowhere, on a later line
    (root / 'test.txt').write_text((root / 'test.txt').read_text() + 'img-999999\n')
    with pytest.raises(FileNotFoundError, match=r'test\.txt, line 3 .*missing rgb'):
        cls(root, split='test')


def test_depth_only_says_how_to_convert(nyuv2_root: Path) -> None:
    (nyuv2_root / 'HHA').rename(nyuv2_root / 'hha_elsewhere')
    with pytest.raises(FileNotFoundError, match='convert_depth_folder') as info:
        NYUDepthV2(nyuv2_root)
    assert str(nyuv2_root / 'Depth') in str(info.value)
    assert 'NYU_DEPTH_V2_INTRINSICS' in str(info.value)
    assert len(NYUDepthV2(nyuv2_root, hha_folder='hha_elsewhere')) == 4


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match='Dataset not found'):
        SUNRGBD(tmp_path)
    (tmp_path / 'RGB').mkdir()
    with pytest.raises(FileNotFoundError, match=r'list file .*train\.txt is missing'):
        SUNRGBD(tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of .*got 'val'"):
        SUNRGBD(tmp_path, split='val')  # type: ignore[arg-type]


def test_bad_labels(nyuv2_root: Path) -> None:
    label = nyuv2_root / 'Label' / '0003.png'
    Image.fromarray(np.full((40, 48), 41, np.uint8)).save(label)
    ds = NYUDepthV2(nyuv2_root)
    with pytest.raises(ValueError, match=r'0003\.png: label values \[41\] exceed'):
        ds[0]
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(label)
    with pytest.raises(ValueError, match=r'0003\.png: labels must be single-channel'):
        ds[0]
    Image.fromarray(np.zeros((30, 48), np.uint8)).save(label)
    with pytest.raises(ValueError, match=r'differ in size: .*0003\.png \(30, 48\)'):
        ds[0]


def test_palette_label(nyuv2_root: Path) -> None:
    label = nyuv2_root / 'Label' / '0003.png'
    values = read(label)
    image = Image.fromarray(values, mode='L').convert('P')
    image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(label)
    assert Image.open(label).mode == 'P'
    mask = NYUDepthV2(nyuv2_root)[0]['mask'].numpy()
    np.testing.assert_array_equal(mask[values == 0], 255)
    np.testing.assert_array_equal(mask[values > 0], values[values > 0] - 1)


def test_transforms(nyuv2_root: Path) -> None:
    def flip(sample: dict) -> dict:
        return {k: v.flip(-1) for k, v in sample.items()}

    plain, flipped = NYUDepthV2(nyuv2_root), NYUDepthV2(nyuv2_root, transforms=flip)
    torch.testing.assert_close(flipped[2]['mask'], plain[2]['mask'].flip(-1))


def test_plot(case: tuple) -> None:
    cls, root, _, _ = case
    ds = cls(root)
    sample = ds[0]
    fig = ds.plot(sample, suptitle='test')
    assert len(fig.axes) == 3
    plt.close(fig)
    sample['prediction'] = sample['mask'].clone()
    fig = ds.plot(sample, show_titles=False)
    assert len(fig.axes) == 4
    plt.close(fig)
    fig = cls(root, mask=False).plot(cls(root, mask=False)[0])
    assert len(fig.axes) == 2
    plt.close(fig)


def test_bad_samples_skipped_when_asked(nyuv2_root: Path) -> None:
    (nyuv2_root / 'HHA' / '0003.jpg').unlink()  # a missing file: left out
    with pytest.warns(UserWarning, match=r'(?s)left out 1 sample.*missing hha image'):
        ds = NYUDepthV2(nyuv2_root, on_bad_sample='skip')
    rgb = ds.files[0]['rgb']
    rgb.write_bytes(b'not an image')  # an undecodable file: replaced, named
    sample = ds[0]
    assert sample['skipped_samples'] == 1 and str(rgb) in sample['bad_files']
    with pytest.raises(FileNotFoundError, match='missing hha image'):
        NYUDepthV2(nyuv2_root)  # the default raises
