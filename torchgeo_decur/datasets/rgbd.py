"""RGB-D indoor scenes (SUN RGB-D, NYU-Depth v2) as RGB and HHA, raw values.

Both read the layout that most RGB-D segmentation code uses (CMX,
https://github.com/huaaaliu/RGBX_Semantic_Segmentation, which the DeCUR
authors point to for their SUN RGB-D and NYU-Depth v2 transfer; DFormer and
others share it)::

    root/
        RGB/<name>.jpg     # colour image, 8-bit
        HHA/<name>.jpg     # HHA image, 8-bit: R disparity, G height, B angle
        Depth/<name>.png   # depth (optional; only for making HHA/)
        Label/<name>.png   # 8-bit class indices: 0 unlabeled, 1..K classes
        train.txt          # one sample a line
        test.txt

A line of a list file names a sample by the file name of its RGB image,
with or without the extension and the ``RGB/`` folder (``0001``,
``0001.jpg`` or ``RGB/0001.jpg``); anything after the first blank (such as
``Label/0001.png``) is ignored, as are empty lines. Images may be JPEG or
PNG (``.jpg``, ``.jpeg``, ``.png``, tried in that order).

Labels follow CMX: 0 is unlabeled and classes are 1..K in the files; they are
shifted to 0..K-1 and unlabeled pixels become :attr:`~RGBDFolderDataset.ignore_index`
(255), the ``C.background`` of CMX's configs (CMX subtracts 1 from the uint8
labels, so that 0 wraps to 255).

.. versionadded:: 0.1
"""

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError
from torchgeo.datasets.utils import Sample

from .skipping import SkippingDataset

__all__ = ('SUNRGBD', 'NYUDepthV2', 'RGBDFolderDataset')

#: Extensions of RGB and HHA images, tried in order.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def _size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``(height, width)`` of a resize argument, checked."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        msg = f'size must be a positive int or (height, width), got {size!r}'
        raise ValueError(msg)
    return pair[0], pair[1]


class RGBDFolderDataset(SkippingDataset):
    """RGB + HHA (+ segmentation mask) samples of an RGB-D scene dataset.

    Base of :class:`SUNRGBD` and :class:`NYUDepthV2`; reads the CMX layout
    described in :mod:`torchgeo_decur.datasets.rgbd`. A subclass sets
    :attr:`classes`. Samples hold raw values, one key per modality::

        {'image1': uint8 [3, H, W],  # R, G, B
         'image2': uint8 [3, H, W],  # HHA: disparity, height, angle
         'mask': int64 [H, W]}       # 0..K-1, 255 unlabeled (if mask=True)

    The HHA channels are the red, green and blue channels of the HHA image
    (:func:`~torchgeo_decur.transforms.depth_to_hha` writes them so). The
    preprocessing is the modalities' (``rgb_indoor``, ``hha``), on the
    batch. Every file named by the list file is checked when the dataset is
    created.

    .. versionadded:: 0.1
    """

    #: Class names, in the order of the mask's indices.
    classes: ClassVar[tuple[str, ...]] = ()

    #: Number of classes (unlabeled pixels excluded).
    num_classes: ClassVar[int] = 0

    #: Mask value of unlabeled pixels (stored as 0).
    ignore_index: ClassVar[int] = 255

    #: Bands of ``image1`` and ``image2``, in channel order.
    input_bands: ClassVar[dict[str, tuple[str, ...]]] = {
        'image1': ('R', 'G', 'B'),
        'image2': ('disparity', 'height', 'angle'),
    }

    #: Splits and their list files.
    splits: ClassVar[dict[str, str]] = {'train': 'train.txt', 'test': 'test.txt'}

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        split: Literal['train', 'test'] = 'train',
        transforms: Callable[[Sample], Sample] | None = None,
        mask: bool = True,
        size: int | tuple[int, int] | None = None,
        rgb_folder: str = 'RGB',
        hha_folder: str = 'HHA',
        label_folder: str = 'Label',
        on_bad_sample: Literal['raise', 'skip'] = 'raise',
        max_sample_attempts: int = 10,
    ) -> None:
        """Initialize a new dataset instance.

        Args:
            root: Root directory of the dataset (with the list files).
            split: ``'train'`` or ``'test'`` (``train.txt``, ``test.txt``).
            transforms: A function of a sample that returns a transformed
                version.
            mask: Whether to return the segmentation mask; False (pretraining)
                neither reads nor needs the labels.
            size: Resize every sample to ``(height, width)`` (an int: square),
                images bilinearly and masks with nearest neighbour, so that
                images of different sizes (SUN RGB-D's sensors) form batches;
                None keeps each image's size.
            rgb_folder: Folder of the RGB images, in *root*.
            hha_folder: Folder of the HHA images, in *root*.
            label_folder: Folder of the labels, in *root*.
            on_bad_sample: What a bad sample does: ``'raise'`` its error (the
                default: a replaced test sample would change the metric
                silently; the pretraining datamodules pass ``'skip'``) or
                ``'skip'`` it (a missing file is left out of the list with a
                warning; an unreadable or constant image is replaced by
                another sample, counted and named:
                :mod:`~torchgeo_decur.datasets.skipping`).
            max_sample_attempts: Samples tried for one index before giving up.

        Raises:
            DatasetNotFoundError: If *root* holds neither the list file nor the
                RGB folder.
            FileNotFoundError: If the HHA folder is missing (with how to make
                it from ``Depth/``), or a file named by the list is missing
                (naming the list file, the line and the path) and
                *on_bad_sample* is ``'raise'``, or every file is missing.
            ValueError: If *split*, *size* or *on_bad_sample* is invalid.
        """
        if split not in self.splits:
            msg = f'split must be one of {sorted(self.splits)}, got {split!r}'
            raise ValueError(msg)
        self.set_bad_sample_policy(on_bad_sample, max_sample_attempts)
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.mask = mask
        self.size = _size(size)
        self.folders = {'rgb': rgb_folder, 'hha': hha_folder}
        if mask:
            self.folders['label'] = label_folder
        self.list_file = self.root / self.splits[split]
        self._verify()
        self.files = self._read_list()

    def _verify(self) -> None:
        """Check the list file and the folders.

        Raises:
            DatasetNotFoundError: If neither the list file nor the RGB folder
                exists.
            FileNotFoundError: If the list file or a folder is missing.
        """
        rgb_dir = self.root / self.folders['rgb']
        if not self.list_file.is_file() and not rgb_dir.is_dir():
            raise DatasetNotFoundError(self)
        if not self.list_file.is_file():
            msg = f'{type(self).__name__}: list file {self.list_file} is missing'
            raise FileNotFoundError(msg)
        hha_dir = self.root / self.folders['hha']
        depth_dir = self.root / 'Depth'
        if not hha_dir.is_dir() and depth_dir.is_dir():
            msg = (
                f'{type(self).__name__}: {hha_dir} is missing, but {depth_dir} '
                'exists: make the HHA images from the depth maps with '
                'torchgeo_decur.transforms.convert_depth_folder('
                f"'{depth_dir}', '{hha_dir}', intrinsics) (NYU-Depth v2: "
                "intrinsics=NYU_DEPTH_V2_INTRINSICS; SUN RGB-D's original depth "
                "PNGs: encoding='sunrgbd' and each image's intrinsics), or pass "
                'hha_folder if they are elsewhere'
            )
            raise FileNotFoundError(msg)
        for key, folder in self.folders.items():
            path = self.root / folder
            if not path.is_dir():
                present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
                msg = (
                    f'{type(self).__name__}: {key} folder {path} is missing '
                    f'(folders in {self.root}: {present}); pass {key}_folder if '
                    'it has another name'
                )
                raise FileNotFoundError(msg)

    def _name(self, line: str) -> str:
        """Sample name of a list file line: the RGB file name, stem only."""
        token = line.split()[0].replace('\\', '/')
        prefix = self.folders['rgb'].rstrip('/') + '/'
        if token.startswith(prefix):
            token = token[len(prefix) :]
        for ext in (*IMAGE_EXTENSIONS, '.JPG', '.PNG'):
            if token.endswith(ext):
                return token[: -len(ext)]
        return token

    def _find(self, folder: str, name: str, extensions: tuple[str, ...]) -> Path:
        """Path of an image, the first extension found; the first if none."""
        base = self.root / folder / name
        for ext in extensions:
            path = base.with_name(base.name + ext)
            if path.is_file():
                return path
        return base.with_name(base.name + extensions[0])

    def _read_list(self) -> list[dict[str, Path]]:
        """Read the list file and check that every file it names exists.

        Returns:
            The paths of each sample (``rgb``, ``hha`` and ``label``).

        Raises:
            FileNotFoundError: If an image is missing, naming the list file, the
                line and the path (with ``on_bad_sample='raise'``; else the
                sample is left out with one warning), or all are missing.
        """
        files, missing = [], []
        lines = self.list_file.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                files.append(self._line_paths(number, line.strip()))
            except FileNotFoundError as err:
                if self.on_bad_sample == 'raise':
                    raise
                missing.append(str(err))
        if missing and not files:
            raise FileNotFoundError(missing[0])
        if missing:
            msg = (
                f'{type(self).__name__} left out {len(missing)} sample(s) with '
                'missing files; first:\n  ' + '\n  '.join(missing[:5])
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
        return files

    def _line_paths(self, number: int, line: str) -> dict[str, Path]:
        """The paths of the sample on one line of the list file.

        Raises:
            FileNotFoundError: If one is missing (naming the line and path).
        """
        name, paths = self._name(line), {}
        for key, folder in self.folders.items():
            extensions = ('.png',) if key == 'label' else IMAGE_EXTENSIONS
            path = self._find(folder, name, extensions)
            if not path.is_file():
                tried = ', '.join(extensions[1:])
                msg = (
                    f'{self.list_file}, line {number} ({line!r}): missing {key} '
                    f'image {path}' + (f' (also tried {tried})' if tried else '')
                )
                raise FileNotFoundError(msg)
            paths[key] = path
        return paths

    def __len__(self) -> int:
        """Return the number of samples in the split.

        Returns:
            Length of the dataset.
        """
        return len(self.files)

    def _image(self, path: Path, label: bool = False) -> np.ndarray:
        """Read an image (resized if asked) as an array.

        Args:
            path: Path of the image.
            label: Whether it is a label image: read as stored (class indices,
                also of a palette image) and resized with nearest neighbour;
                else converted to RGB and resized bilinearly.

        Returns:
            ``[H, W, 3]`` uint8, or the label's ``[H, W]``.
        """
        with Image.open(path) as file:
            image: Image.Image = file
            if not label:
                image = image.convert('RGB')
            if self.size is not None and image.size != self.size[::-1]:
                resample = (
                    Image.Resampling.NEAREST if label else Image.Resampling.BILINEAR
                )
                image = image.resize(self.size[::-1], resample)
            return np.array(image)

    def _mask(self, path: Path) -> Tensor:
        """Read a label image: classes 1..K to 0..K-1, 0 to the ignore index.

        Raises:
            ValueError: If the label is not single-channel or holds values
                above the number of classes.
        """
        label = self._image(path, label=True)
        if label.ndim != 2:
            msg = (
                f'{path}: labels must be single-channel class indices, got shape '
                f'{label.shape} (a colour-coded label image?)'
            )
            raise ValueError(msg)
        k = len(self.classes)
        if label.size and int(label.max()) > k:
            values = sorted(int(v) for v in np.unique(label[label > k]))
            msg = (
                f'{path}: label values {values[:10]} exceed the {k} classes of '
                f'{type(self).__name__} (stored 0 unlabeled, 1..{k})'
            )
            raise ValueError(msg)
        mask = label.astype(np.int64) - 1
        mask[label == 0] = self.ignore_index
        return torch.from_numpy(mask)

    def describe(self, index: int) -> str:
        """Name the files of a sample, for messages.

        Args:
            index: Index of the sample.

        Returns:
            Its RGB and HHA paths.
        """
        paths = self.files[index]
        return f'{paths["rgb"]}, {paths["hha"]}'

    def load_sample(self, index: int) -> Sample:
        """Return the RGB image, the HHA image and (if asked) the mask.

        Args:
            index: Index of the sample.

        Returns:
            ``{'image1', 'image2'}`` and ``'mask'`` if *mask*, raw values.

        Raises:
            ValueError: If the images of the sample differ in size (without
                *size*) or a label is invalid.
        """
        paths = self.files[index]
        rgb = self._image(paths['rgb'])
        hha = self._image(paths['hha'])
        sample: Sample = {
            'image1': torch.from_numpy(rgb.transpose(2, 0, 1).copy()),
            'image2': torch.from_numpy(hha.transpose(2, 0, 1).copy()),
        }
        if self.mask:
            sample['mask'] = self._mask(paths['label'])
        shapes = {k: tuple(v.shape[-2:]) for k, v in sample.items()}
        if len(set(shapes.values())) > 1:
            named = ', '.join(
                f'{paths[key]} {shapes[k]}'
                for k, key in (('image1', 'rgb'), ('image2', 'hha'), ('mask', 'label'))
                if k in shapes
            )
            msg = f'images of one sample differ in size: {named}'
            raise ValueError(msg)
        return sample

    def plot(
        self,
        sample: Sample,
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: RGB, HHA, and the mask and prediction if present.

        Args:
            sample: A sample returned by :meth:`__getitem__` (raw values), with
                an optional ``prediction`` [H, W].
            show_titles: Whether to show titles above each panel.
            suptitle: Optional suptitle.

        Returns:
            A matplotlib Figure with the rendered sample.

        .. versionadded:: 0.1
        """
        panels: list[tuple[str, np.ndarray, bool]] = [
            ('RGB', self._display(sample['image1']), False),
            ('HHA (disparity, height, angle)', self._display(sample['image2']), False),
        ]
        for key, title in (('mask', 'Mask'), ('prediction', 'Prediction')):
            if key in sample:
                labels = np.asarray(sample[key], dtype=np.int64)
                panels.append((title, labels, True))
        fig, axes = plt.subplots(
            1, len(panels), figsize=(4 * len(panels), 4), squeeze=False
        )
        k = max(len(self.classes), 1)
        for ax, (title, image, is_label) in zip(axes[0], panels, strict=True):
            if is_label:
                shown = np.ma.masked_where(
                    (image == self.ignore_index) | (image < 0), image
                )
                ax.imshow(shown, cmap='tab20', vmin=0, vmax=k - 1, interpolation='none')
                ax.set_facecolor('black')  # unlabeled
            else:
                ax.imshow(image)
            ax.axis('off')
            if show_titles:
                ax.set_title(title)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig

    @staticmethod
    def _display(image: Tensor) -> np.ndarray:
        """An 8-bit image ``[3, H, W]`` as a float array ``[H, W, 3]`` in [0, 1]."""
        array = np.asarray(image, dtype=np.float64).transpose(1, 2, 0)
        return np.clip(array / 255, 0, 1)


class SUNRGBD(RGBDFolderDataset):
    """SUN RGB-D semantic segmentation (37 classes), RGB and HHA.

    The 10,335 RGB-D images of S. Song, S. Lichtenberg, J. Xiao, "SUN RGB-D: A
    RGB-D Scene Understanding Benchmark Suite" (CVPR 2015): 5,285 for
    training and 5,050 for testing, from four sensors, so images differ in
    size (e.g. 640 x 480 and 730 x 530 px); pass *size* to form batches. Read
    from the CMX layout (see :mod:`torchgeo_decur.datasets.rgbd` and
    :class:`RGBDFolderDataset`); labels 1..37 are shifted to 0..36 and
    unlabeled pixels (0) become 255.

    If you have SUN RGB-D's depth maps but no HHA images, make them with
    :func:`~torchgeo_decur.transforms.convert_depth_folder` (``encoding=
    'sunrgbd'``, with each image's intrinsics).

    .. versionadded:: 0.1
    """

    #: The 37 classes of SUN RGB-D, in the order of the mask's indices.
    classes: ClassVar[tuple[str, ...]] = (
        'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
        'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk',
        'shelves', 'curtain', 'dresser', 'pillow', 'mirror', 'floor mat',
        'clothes', 'ceiling', 'books', 'fridge', 'tv', 'paper', 'towel',
        'shower curtain', 'box', 'whiteboard', 'person', 'night stand',
        'toilet', 'sink', 'lamp', 'bathtub', 'bag',
    )  # fmt: skip

    #: Number of classes (unlabeled pixels excluded).
    num_classes: ClassVar[int] = len(classes)


class NYUDepthV2(RGBDFolderDataset):
    """NYU-Depth v2 semantic segmentation (40 classes), RGB and HHA.

    The 1,449 densely labelled 640 x 480 images of N. Silberman, D. Hoiem, P.
    Kohli, R. Fergus, "Indoor Segmentation and Support Inference from RGBD
    Images" (ECCV 2012), in the standard split of 795 training and 654 test
    images and the 40 classes of S. Gupta, P. Arbeláez, J. Malik (CVPR
    2013). Read from the CMX layout (see :mod:`torchgeo_decur.datasets.rgbd`
    and :class:`RGBDFolderDataset`); labels 1..40 are shifted to 0..39 and
    unlabeled pixels (0) become 255.

    If you have depth maps but no HHA images, make them with
    :func:`~torchgeo_decur.transforms.convert_depth_folder` and
    :data:`~torchgeo_decur.transforms.NYU_DEPTH_V2_INTRINSICS`.

    .. versionadded:: 0.1
    """

    #: The 40 classes of NYU-Depth v2, in the order of the mask's indices.
    classes: ClassVar[tuple[str, ...]] = (
        'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
        'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk',
        'shelves', 'curtain', 'dresser', 'pillow', 'mirror', 'floor mat',
        'clothes', 'ceiling', 'books', 'refrigerator', 'television', 'paper',
        'towel', 'shower curtain', 'box', 'whiteboard', 'person',
        'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag',
        'otherstructure', 'otherfurniture', 'otherprop',
    )  # fmt: skip

    #: Number of classes (unlabeled pixels excluded).
    num_classes: ClassVar[int] = len(classes)
