"""Per-modality Kornia augmentation pipelines of DeCUR.

Each factory takes the patch size and the number of bands, ``factory(size,
in_channels)``, as a :class:`~torchgeo_decur.modalities.Modality` calls it,
and returns an :class:`~torch.nn.Module` that maps a batch ``[B, C, H, W]`` to
``[B, C, size, size]``, drawing the random parameters independently for every
image of the batch. :class:`MultiViewAugmentation`
applies one pipeline per modality to batches of paired multi-view samples
(``[B, V, C, H, W]``), as the datamodules do after transfer to the device.

The pipelines follow the DeCUR paper (Wang et al., 2024,
https://arxiv.org/abs/2309.05300) and the authors' code, which adapt BYOL's
augmentations (https://arxiv.org/abs/2006.07733) to each modality: colour
operations only where they make sense (optical, RGB), band-weighted grayscale
for multispectral data, and geometric operations everywhere. Every pipeline
expects inputs in ``[0, 1]``, as the preprocessing of
:mod:`torchgeo_decur.transforms.normalize` gives.
"""

from collections.abc import Mapping
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn
from torchgeo.transforms import RandomGrayscale

from .intensity import RandomBrightnessContrast

__all__ = (
    'KeepBackground',
    'MultiViewAugmentation',
    'dem_augmentation',
    'hha_augmentation',
    'indoor_rgb_augmentation',
    'optical_augmentation',
    'rgb_augmentation',
    'sar_augmentation',
    'simclr_augmentation',
    'trifeature_augmentation',
)


def _kernel_size(size: int) -> int:
    """Gaussian blur kernel size: about 10% of the patch size, odd, at least 3.

    Args:
        size: Patch size in pixels.

    Returns:
        The kernel size.
    """
    return max(3, size // 10 // 2 * 2 + 1)


def _check(size: int, in_channels: int) -> None:
    """Validate the common arguments of the factories.

    Args:
        size: Patch size in pixels.
        in_channels: Number of channels.

    Raises:
        ValueError: If *size* or *in_channels* is not positive.
    """
    if size < 1:
        msg = f'size must be >= 1, got {size}'
        raise ValueError(msg)
    if in_channels < 1:
        msg = f'in_channels must be >= 1, got {in_channels}'
        raise ValueError(msg)


def _equal_weights(in_channels: int) -> Tensor:
    """Equal grayscale weights for every channel.

    Args:
        in_channels: Number of channels.

    Returns:
        A vector of ones of length *in_channels*.
    """
    return torch.ones(in_channels)


def _colour_pipeline(
    size: int,
    weights: Tensor,
    scale: tuple[float, float],
    solarize: bool,
    vertical_flip: bool,
    grayscale: float = 0.2,
) -> nn.Module:
    """BYOL-style pipeline of DeCUR for images in [0, 1] (optical, RGB).

    Args:
        size: Output patch size in pixels.
        weights: Grayscale weight of each channel.
        scale: Range of the crop area relative to the input area.
        solarize: Whether to solarise with p=0.2.
        vertical_flip: Whether to flip vertically too.
        grayscale: Probability of the grayscale conversion (0: none).

    Returns:
        The augmentation.
    """
    ks = _kernel_size(size)
    ops: list[nn.Module] = [
        K.RandomResizedCrop(size=(size, size), scale=scale),
        RandomBrightnessContrast(brightness=0.4, contrast=0.4, p=0.8),
    ]
    if grayscale > 0:
        ops.append(RandomGrayscale(weights=weights, p=grayscale))
    ops.append(K.RandomGaussianBlur(kernel_size=(ks, ks), sigma=(0.1, 2.0), p=0.5))
    if solarize:
        # threshold 0.5 fixed (thresholds=0 is a half-width around 0.5)
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=0.2))
    ops.append(K.RandomHorizontalFlip())
    if vertical_flip:
        ops.append(K.RandomVerticalFlip())
    return K.AugmentationSequential(*ops, data_keys=['input'])


def optical_augmentation(
    size: int = 224,
    in_channels: int = 13,
    grayscale_weights: Tensor | None = None,
    scale: tuple[float, float] = (0.2, 1.0),
    grayscale: float = 0.2,
) -> nn.Module:
    """Augmentation for multispectral optical imagery in [0, 1] (e.g. Sentinel-2).

    BYOL's pipeline adapted to multispectral data as in DeCUR: random resized
    crop, brightness and contrast jitter applied together with p=0.8
    (factors 0.6--1.4; brightness multiplies, contrast blends each band with
    its own mean, see
    :class:`~torchgeo_decur.transforms.RandomBrightnessContrast`),
    band-weighted grayscale (p=0.2), Gaussian blur (sigma 0.1--2, p=0.5),
    solarisation at 0.5 (p=0.2) and horizontal and vertical flips.

    Inputs are expected in ``[0, 1]`` (Sentinel-2 as ``clip(x / 10000, 0, 1)``,
    see :func:`~torchgeo_decur.transforms.normalize.normalize_s2`) and outputs
    stay there.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of spectral bands.
        grayscale_weights: Weight of each band in the grayscale image (rescaled
            to sum to 1); equal weights (the band mean, as the DeCUR code) if
            None.
        scale: Range of the crop area relative to the input area.
        grayscale: Probability of the grayscale conversion; 0 turns it off
            (invariance to it teaches an encoder to ignore differences
            between bands, e.g. a mineral's spectral signature).

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If an argument is out of range or *grayscale_weights* does
            not have *in_channels* elements.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    if grayscale_weights is None:
        weights = _equal_weights(in_channels)
    else:
        weights = torch.as_tensor(grayscale_weights, dtype=torch.float32).clone()
        if weights.shape != (in_channels,):
            msg = (
                f'grayscale_weights must have in_channels={in_channels} elements, '
                f'got shape {tuple(weights.shape)}'
            )
            raise ValueError(msg)
    if not 0 <= grayscale <= 1:
        msg = f'grayscale must be a probability in [0, 1], got {grayscale}'
        raise ValueError(msg)
    return _colour_pipeline(
        size, weights, scale, solarize=True, vertical_flip=True, grayscale=grayscale
    )


def sar_augmentation(
    size: int = 224,
    in_channels: int = 2,
    scale: tuple[float, float] = (0.2, 1.0),
    grayscale: float = 0.2,
) -> nn.Module:
    """Augmentation for SAR imagery in [0, 1] (e.g. stretched Sentinel-1).

    Random resized crop, grayscale with equal band weights (p=0.2), Gaussian
    blur (sigma 0.1--2, p=0.5) and horizontal and vertical flips, as the
    DeCUR code. No colour operations: backscatter is not a colour.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of polarisations (bands).
        scale: Range of the crop area relative to the input area.
        grayscale: Probability of the grayscale conversion (the mean of the
            polarisations); 0 turns it off.

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* or *in_channels* is not positive, or
            *grayscale* is not a probability.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    if not 0 <= grayscale <= 1:
        msg = f'grayscale must be a probability in [0, 1], got {grayscale}'
        raise ValueError(msg)
    ks = _kernel_size(size)
    ops: list[nn.Module] = [K.RandomResizedCrop(size=(size, size), scale=scale)]
    if grayscale > 0:
        ops.append(RandomGrayscale(weights=_equal_weights(in_channels), p=grayscale))
    ops += [
        K.RandomGaussianBlur(kernel_size=(ks, ks), sigma=(0.1, 2.0), p=0.5),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
    ]
    return K.AugmentationSequential(*ops, data_keys=['input'])


def dem_augmentation(
    size: int = 224, in_channels: int = 1, scale: tuple[float, float] = (0.2, 1.0)
) -> nn.Module:
    """Augmentation for digital elevation models: geometric operations only.

    Random resized crop and horizontal and vertical flips (a DEM seen from
    above has no preferred orientation), as the DeCUR code. Works on any
    number of channels.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels (any).
        scale: Range of the crop area relative to the input area.

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* or *in_channels* is not positive.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    return K.AugmentationSequential(
        K.RandomResizedCrop(size=(size, size), scale=scale),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        data_keys=['input'],
    )


def hha_augmentation(
    size: int = 224, in_channels: int = 3, scale: tuple[float, float] = (0.5, 1.0)
) -> nn.Module:
    """Augmentation for HHA-encoded depth: geometric operations only.

    Random resized crop (scale 0.5--1, as the DeCUR code for SUN RGB-D) and
    horizontal flip (no vertical flip: indoor scenes have an up direction,
    and the HHA height and angle channels depend on it).

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels (any).
        scale: Range of the crop area relative to the input area.

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* or *in_channels* is not positive.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    return K.AugmentationSequential(
        K.RandomResizedCrop(size=(size, size), scale=scale),
        K.RandomHorizontalFlip(),
        data_keys=['input'],
    )


def rgb_augmentation(
    size: int = 224, in_channels: int = 3, scale: tuple[float, float] = (0.2, 1.0)
) -> nn.Module:
    """Augmentation for RGB images in [0, 1], as DeCUR's GeoNRW pretraining.

    The optical pipeline on three channels: random resized crop, brightness
    and contrast jitter together with p=0.8 (multiplicative brightness,
    per-channel mean-preserving contrast), grayscale as the channel mean
    (p=0.2), Gaussian blur (sigma 0.1--2, p=0.5), solarisation at 0.5
    (p=0.2) and horizontal and vertical flips.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels (3 for RGB).
        scale: Range of the crop area relative to the input area.

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* or *in_channels* is not positive.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    return _colour_pipeline(
        size, _equal_weights(in_channels), scale, solarize=True, vertical_flip=True
    )


def indoor_rgb_augmentation(
    size: int = 224, in_channels: int = 3, scale: tuple[float, float] = (0.5, 1.0)
) -> nn.Module:
    """Augmentation for camera RGB in [0, 1], as DeCUR's SUN RGB-D pretraining.

    Random resized crop (scale 0.5--1), brightness and contrast jitter
    together with p=0.8 (multiplicative brightness, per-channel
    mean-preserving contrast), grayscale as the channel mean (p=0.2),
    Gaussian blur (sigma 0.1--2, p=0.5) and a horizontal flip: the authors'
    RGB-depth pipeline, which has no solarisation and no vertical flip (indoor
    scenes have an up direction).

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels (3 for RGB).
        scale: Range of the crop area relative to the input area.

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* or *in_channels* is not positive.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    return _colour_pipeline(
        size, _equal_weights(in_channels), scale, solarize=False, vertical_flip=False
    )


def simclr_augmentation(
    size: int = 224, in_channels: int = 3, scale: tuple[float, float] = (0.2, 1.0)
) -> nn.Module:
    """SimCLR's augmentation for ordinary RGB images in [0, 1] (e.g. Trifeature).

    The pipeline of SimCLR (Chen et al., 2020, https://arxiv.org/abs/2002.05709)
    as CoMM applies it to Trifeature images, on the batch:

    * random resized crop, area *scale* (aspect ratio 3/4--4/3). SimCLR and
      CoMM's code take 0.08--1; the default 0.2--1 (MoCo v2's, as the other
      pipelines here) keeps most of a shape in view on 32 px images;
    * colour jitter with p=0.8: brightness, contrast and saturation factors
      in 0.6--1.4 and a hue shift of up to 0.1 turn, as
      ``torchvision.transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)``. Kornia's
      :class:`~kornia.augmentation.ColorJitter` (0.9) computes exactly
      torchvision's formulas: brightness *multiplies*, contrast blends with
      the mean of the grayscale image, saturation with the grayscale image,
      hue rotates in HSV (Kornia's :class:`~kornia.augmentation.ColorJiggle`
      and :func:`~kornia.enhance.adjust_brightness` *add* a brightness shift
      instead). One difference: Kornia draws the order of the four
      operations once per batch, torchvision once per image;
    * grayscale with p=0.2 (luma weights 0.299, 0.587, 0.114);
    * Gaussian blur with p=0.5, sigma 0.1--2, kernel about 10% of *size*;
    * horizontal flip with p=0.5.

    No solarisation (SimCLR has none) and no vertical flip.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels: 3 (hue and saturation need RGB).
        scale: Range of the crop area relative to the input area.

    Returns:
        The augmentation, mapping ``[B, 3, H, W]`` to ``[B, 3, size, size]``.

    Raises:
        ValueError: If *size* is not positive or *in_channels* is not 3.

    .. versionadded:: 0.1
    """
    _check(size, in_channels)
    if in_channels != 3:
        msg = f'simclr_augmentation needs RGB input (in_channels=3), got {in_channels}'
        raise ValueError(msg)
    ks = _kernel_size(size)
    return K.AugmentationSequential(
        K.RandomResizedCrop(size=(size, size), scale=scale),
        K.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur(kernel_size=(ks, ks), sigma=(0.1, 2.0), p=0.5),
        K.RandomHorizontalFlip(),
        data_keys=['input'],
    )


class KeepBackground(nn.Module):
    """Apply an augmentation to the foreground only; the background stays.

    Pixels whose every channel is within *tolerance* of *background* keep
    their value; the others take the augmented one. For generated images on a
    flat background (:class:`~torchgeo_decur.lab.BimodalTrifeature`), where
    colour jitter would move the background and with it the only outline of
    the shape.

    Args:
        augmentation: A pixel-wise augmentation of ``[B, C, H, W]``.
        background: The background colour, one value per channel.
        tolerance: Largest difference still counted as background (one step
            of 8-bit values by default).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        augmentation: nn.Module,
        background: tuple[float, ...],
        tolerance: float = 1 / 255,
    ) -> None:
        super().__init__()
        self.augmentation = augmentation
        self.register_buffer('background', torch.tensor(background).view(1, -1, 1, 1))
        self.tolerance = tolerance

    def forward(self, x: Tensor) -> Tensor:
        """Augment the foreground of a batch.

        Args:
            x: Images ``[B, C, H, W]``.

        Returns:
            The images, augmented where they are not background.
        """
        background = self.background.to(x)
        mask = ((x - background).abs() <= self.tolerance).all(dim=1, keepdim=True)
        return torch.where(mask, x, self.augmentation(x))


def trifeature_augmentation(
    size: int = 64,
    in_channels: int = 3,
    scale: tuple[float, float] = (0.2, 1.0),
    background: tuple[float, ...] = (128 / 255,) * 3,
) -> nn.Module:
    """CoMM's augmentation of Trifeature images, with the background kept.

    What :class:`~torchgeo_decur.lab.BimodalTrifeature` pairs are
    pretrained with in ``benchmarks/trifeature.py``, on the batch, as CoMM's
    code (SimCLR's steps):

    * random resized crop, area *scale* (aspect ratio 3/4--4/3): 0.2--1
      rather than SimCLR's 0.08--1, since at 64 px a crop of 8% of the area
      (18 px) may hold no shape at all;
    * colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with
      p=0.8 and grayscale with p=0.2, on the foreground only
      (:class:`KeepBackground`): the shape is visible only as the pixels that
      differ from the grey background, and jitter moved that background per
      view, so that no cross-modal method aligned the shape (0.1 measured
      it). With colour jitter, colour alone no longer tells two images of a
      batch apart, so the invariance terms must learn shape and texture;
    * horizontal flip with p=0.5.

    No Gaussian blur: SimCLR's sigma of up to 2 px erases textures of a 6 px
    period (0.1 of a 64 px image), which the U probes ask about.

    Args:
        size: Output patch size in pixels.
        in_channels: Number of channels (3: colour jitter needs RGB).
        scale: Range of the crop area relative to the input area.
        background: Background colour of the images, in ``[0, 1]`` (the 8-bit
            grey 128 of :data:`~torchgeo_decur.lab.trifeature.BACKGROUND`).

    Returns:
        The augmentation, mapping ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Raises:
        ValueError: If *size* is not positive or *in_channels* is not 3.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       CoMM's colour steps on the foreground; no blur; crop 0.2--1; 64 px.
    """
    _check(size, in_channels)
    if in_channels != 3:
        msg = f'trifeature_augmentation needs 3 channels (RGB), got {in_channels}'
        raise ValueError(msg)
    colour = K.AugmentationSequential(
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        data_keys=['input'],
    )
    return nn.Sequential(
        K.RandomResizedCrop(size=(size, size), scale=scale),
        KeepBackground(colour, background),
        K.RandomHorizontalFlip(),
    )


class MultiViewAugmentation(nn.Module):
    """Apply one augmentation pipeline per key to batches of multi-view samples.

    For each key of *augmentations*, the batch entry of shape
    ``[B, V, C, H, W]`` (V views of each sample) is augmented view by view and
    image by image with independent random draws, giving
    ``[B, V, C, P, P]``; a ``[B, C, H, W]`` entry is augmented as a single
    view. Other keys of the batch are passed through unchanged.

    Example, for DeCUR's SAR-optical pairs (4 independently augmented views)::

        aug = MultiViewAugmentation(
            {'image1': sar_augmentation(224), 'image2': optical_augmentation(224)}
        )
        batch = aug({'image1': s1, 'image2': s2})

    .. versionadded:: 0.1
    """

    def __init__(self, augmentations: Mapping[str, nn.Module]) -> None:
        """Initialize a new MultiViewAugmentation instance.

        Args:
            augmentations: Pipeline of each batch key; each maps
                ``[N, C, H, W]`` to ``[N, C, P, P]`` with per-image random
                parameters (as Kornia augmentations do by default).
        """
        super().__init__()
        self.augmentations = nn.ModuleDict(dict(augmentations))

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment a batch.

        Args:
            batch: A batch with a ``[B, V, C, H, W]`` or ``[B, C, H, W]`` tensor
                for each key of the augmentations.

        Returns:
            A new dict with the augmented tensors and the other entries of
            *batch* unchanged.

        Raises:
            KeyError: If a key of the augmentations is not in *batch*.
            ValueError: If an entry has neither 4 nor 5 dimensions.
        """
        out = dict(batch)
        for key, aug in self.augmentations.items():
            if key not in batch:
                msg = f'batch has no key {key!r} to augment; keys: {sorted(batch)}'
                raise KeyError(msg)
            x = batch[key]
            if x.ndim == 4:
                out[key] = aug(x)
            elif x.ndim == 5:
                # Kornia draws parameters per image, so augmenting the B * V
                # images at once gives every view of every sample its own draw.
                b, v = x.shape[:2]
                y = aug(x.flatten(0, 1))
                out[key] = y.unflatten(0, (b, v))
            else:
                msg = (
                    f'batch[{key!r}] must have shape [B, V, C, H, W] or '
                    f'[B, C, H, W], got {tuple(x.shape)}'
                )
                raise ValueError(msg)
        return out
