"""Multimodal (dual-encoder) models and heads for downstream transfer.

The DeCUR paper evaluates pretrained encoders with simple heads on top of one
encoder per modality:

* multi-label classification (BigEarthNet-MM): late fusion, the pooled
  features of both encoders concatenated and fed to one linear layer
  (:class:`LateFusionClassifier`);
* semantic segmentation (GeoNRW): an FCN head on the last three feature maps
  of both encoders (:class:`FCNHead`), or optionally a U-Net / DeepLabV3+
  decoder from segmentation-models-pytorch over the fused feature pyramids
  (:class:`MultimodalSegmentationModel`).

A missing modality is one encoder instead of two (e.g. SAR only), built from
the same joint DeCUR weights.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.decoders.deeplabv3.decoder import (
    DeepLabV3PlusDecoder,
)
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import Tensor, nn
from torchvision.models._api import WeightsEnum

from ..modalities import in_channels_for
from .encoders import create_modality_encoder
from .weights import DABlocks

#: Decoders supported by :class:`MultimodalSegmentationModel`.
DECODERS = ('fcn', 'unet', 'deeplabv3plus')


def create_encoders(
    model: str,
    in_channels: Sequence[int],
    modalities: Sequence[str],
    weights: WeightsEnum | str | bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    deformable_attention: bool | None = None,
    da_blocks: DABlocks = 'trained',
) -> nn.ModuleList:
    """Create one timm encoder per modality.

    With joint DeCUR weights, the encoder of each modality is picked out of
    them by its modality name, so a subset of the pretraining modalities
    (a missing modality) uses the same weights.

    Args:
        model: Name of the `timm <https://huggingface.co/docs/timm>`__ model.
        in_channels: Number of input channels of each modality.
        modalities: Modality names (see
            :func:`torchgeo_decur.modalities.get_modality`), one per encoder.
        weights: Initial weights for all encoders: a (joint) DeCUR weight enum,
            its name or the path to a DeCUR file (each encoder is given its
            modality), another weight enum or checkpoint (e.g. TorchGeo's
            single-modality weights), ``'imagenet'`` for the authors'
            ImageNet start (:mod:`~torchgeo_decur.models.imagenet`), True for
            timm's ImageNet weights, or False/None for random weights.
        model_kwargs: Further keyword arguments for :func:`timm.create_model`.
        deformable_attention: Whether the (ResNet) encoders have DeCUR's
            deformable attention after stages 3 and 4, each its own blocks;
            None follows the weights (see
            :func:`~torchgeo_decur.models.create_encoder`).
        da_blocks: The deformable-attention blocks the authors' RDA weights
            give the second modality: ``'trained'`` or ``'authors'`` (see
            :func:`~torchgeo_decur.models.create_encoder`).

    Returns:
        The encoders, in the order of *modalities*; each returns pooled
        features of shape ``(N, encoder.num_features)``.

    Raises:
        ValueError: If *in_channels* and *modalities* differ in length, hold
            no or more than two entries, name a repeated modality, or a channel
            count that is not a registered modality's number of bands.

    .. versionadded:: 0.1
    """
    in_channels = list(in_channels)
    modalities = list(modalities)
    if len(in_channels) != len(modalities):
        msg = (
            'in_channels and modalities must have the same length, got '
            f'in_channels={in_channels} and modalities={modalities}'
        )
        raise ValueError(msg)
    if not 1 <= len(modalities) <= 2:
        msg = f'expected 1 or 2 modalities, got modalities={modalities}'
        raise ValueError(msg)
    if len(set(modalities)) != len(modalities):
        msg = f'modalities must be distinct, got modalities={modalities}'
        raise ValueError(msg)
    for name, channels in zip(modalities, in_channels, strict=True):
        in_channels_for(name, channels)  # checked against registered bands

    kwargs = dict(model_kwargs or {})
    encoders = nn.ModuleList()
    for name, channels in zip(modalities, in_channels, strict=True):
        encoders.append(
            create_modality_encoder(
                model,
                channels,
                name,
                weights,
                deformable_attention,
                da_blocks=da_blocks,
                **kwargs,
            )
        )
    return encoders


def feature_info(encoder: nn.Module) -> list[dict[str, Any]]:
    """Feature information (channels, reduction) of every level of a timm model.

    Args:
        encoder: A timm model.

    Returns:
        One dict per level with at least ``num_chs`` and ``reduction``.

    Raises:
        ValueError: If the model cannot return intermediate feature maps.

    .. versionadded:: 0.2
    """
    info = getattr(encoder, 'feature_info', None)
    if hasattr(info, 'get_dicts'):
        info = info.get_dicts()  # type: ignore[union-attr]
    if not info or not hasattr(encoder, 'forward_intermediates'):
        msg = (
            f'{type(encoder).__name__} does not return intermediate feature maps '
            '(timm forward_intermediates / feature_info); choose another model'
        )
        raise ValueError(msg)
    return list(info)


def encoder_feature_maps(
    encoder: nn.Module, x: Tensor, num_levels: int
) -> list[Tensor]:
    """Return the last *num_levels* feature maps of a timm encoder.

    Uses timm's ``forward_intermediates`` on the very encoder built by
    :func:`~torchgeo_decur.models.create_encoder`, so the weights (and the
    modality picked from joint weights) are the same as for pooled features.

    Args:
        encoder: A timm model.
        x: Input of shape ``(N, C, H, W)``.
        num_levels: Number of levels, counted from the deepest one.

    Returns:
        Feature maps ``(N, C_i, H_i, W_i)``, shallowest first.

    .. versionadded:: 0.1
    """
    feats: list[Tensor] = encoder.forward_intermediates(  # type: ignore[operator]
        x, indices=num_levels, intermediates_only=True
    )
    return feats


def _fuse(per_modality: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """Concatenate the feature maps of all modalities level by level.

    Args:
        per_modality: For each modality, its list of feature maps.

    Returns:
        One feature map per level with the channels of all modalities.
    """
    return [torch.cat(list(level), dim=1) for level in zip(*per_modality, strict=True)]


def _check_same_size(inputs: Sequence[Tensor]) -> None:
    """Check that all inputs have the same spatial size.

    Args:
        inputs: One input per modality.

    Raises:
        ValueError: If the spatial sizes differ.
    """
    sizes = {tuple(x.shape[-2:]) for x in inputs}
    if len(sizes) > 1:
        msg = f'all modalities must have the same height and width, got {sizes}'
        raise ValueError(msg)


class LateFusionClassifier(nn.Module):
    """Late-fusion classifier: concatenated pooled features and one linear layer.

    .. versionadded:: 0.1
    """

    def __init__(self, encoders: Iterable[nn.Module], num_classes: int) -> None:
        """Initialize a new LateFusionClassifier instance.

        Args:
            encoders: One encoder per modality, each returning pooled features
                ``(N, encoder.num_features)``.
            num_classes: Number of outputs.

        Raises:
            ValueError: If *encoders* is empty or *num_classes* is not positive.
        """
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        if not self.encoders:
            raise ValueError('at least one encoder is required')
        if num_classes < 1:
            msg = f'num_classes must be >= 1, got {num_classes}'
            raise ValueError(msg)
        num_features = sum(cast(int, e.num_features) for e in self.encoders)
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, *inputs: Tensor) -> Tensor:
        """Classify a batch.

        Args:
            inputs: One input ``(N, C_i, H, W)`` per encoder, in encoder order.

        Returns:
            Logits of shape ``(N, num_classes)``.

        Raises:
            ValueError: If the number of inputs differs from that of encoders.
        """
        if len(inputs) != len(self.encoders):
            msg = f'expected {len(self.encoders)} inputs, got {len(inputs)}'
            raise ValueError(msg)
        feats = [enc(x) for enc, x in zip(self.encoders, inputs, strict=True)]
        out: Tensor = self.head(torch.cat(feats, dim=1))
        return out


class FCNHead(nn.Module):
    """The DeCUR paper's FCN head over several feature levels.

    Each level is mapped to class scores by a 1x1 convolution, upsampled
    (bilinear) to the output size, and the levels are summed. A 1x1
    convolution commutes with bilinear upsampling, so convolving first gives
    the same result as upsampling the features first, at a fraction of the
    cost.

    .. versionadded:: 0.1
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        """Initialize a new FCNHead instance.

        Args:
            in_channels: Number of channels of each feature level.
            num_classes: Number of classes.
        """
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in in_channels)

    def forward(self, features: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        """Compute class scores.

        Args:
            features: One feature map per level, ``(N, C_i, H_i, W_i)``.
            size: Output height and width.

        Returns:
            Logits of shape ``(N, num_classes, *size)``.

        Raises:
            ValueError: If the number of levels differs from that of *in_channels*.
        """
        if len(features) != len(self.convs):
            msg = f'expected {len(self.convs)} feature levels, got {len(features)}'
            raise ValueError(msg)
        out: Tensor | None = None
        for conv, feat in zip(self.convs, features, strict=True):
            y = F.interpolate(
                conv(feat), size=tuple(size), mode='bilinear', align_corners=False
            )
            out = y if out is None else out + y
        assert out is not None
        return out


class _DeepLabV3PlusDecoder(DeepLabV3PlusDecoder):
    """smp's DeepLabV3+ decoder, upsampling ASPP output to the high-res size.

    smp assumes an output stride of 8 or 16 (dilated encoder); timm encoders
    here are not dilated, so the ASPP output is resized to the exact size of
    the high-resolution features instead of by a fixed factor.
    """

    def forward(self, features: list[Tensor]) -> Tensor:
        """Decode the feature pyramid.

        Args:
            features: Input first, then the encoder levels, shallowest first.

        Returns:
            Decoded features at the resolution of ``features[2]``.
        """
        high_res = self.block1(features[2])
        aspp = self.aspp(features[-1])
        aspp = F.interpolate(
            aspp, size=high_res.shape[-2:], mode='bilinear', align_corners=True
        )
        out: Tensor = self.block2(torch.cat([aspp, high_res], dim=1))
        return out


class MultimodalSegmentationModel(nn.Module):
    """Semantic segmentation over one encoder per modality.

    The feature maps of the encoders are concatenated level by level (the
    channels of a fused level are the sum over modalities) and decoded by:

    * ``'fcn'``: :class:`FCNHead` on the last three levels (DeCUR paper);
    * ``'unet'``: smp's ``UnetDecoder`` on the last (up to) five levels;
    * ``'deeplabv3plus'``: smp's ``DeepLabV3PlusDecoder`` on the last (up to)
      five levels.

    Feature maps come from timm's ``forward_intermediates`` on the encoders,
    so any timm model that supports it works (ResNets: the stage outputs; ViTs:
    the last blocks, all at stride 16).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        encoders: Iterable[nn.Module],
        in_channels: Sequence[int],
        num_classes: int,
        decoder: Literal['fcn', 'unet', 'deeplabv3plus'] = 'fcn',
    ) -> None:
        """Initialize a new MultimodalSegmentationModel instance.

        Args:
            encoders: One timm encoder per modality.
            in_channels: Number of input channels of each modality.
            num_classes: Number of classes.
            decoder: One of 'fcn', 'unet' or 'deeplabv3plus'.

        Raises:
            ValueError: If *decoder* is unknown, *num_classes* is not positive,
                the encoders cannot return feature maps or have fewer levels
                than the decoder needs.
        """
        super().__init__()
        if decoder not in DECODERS:
            msg = f'decoder must be one of {DECODERS}, got {decoder!r}'
            raise ValueError(msg)
        self.encoders = nn.ModuleList(encoders)
        if not self.encoders or len(self.encoders) != len(in_channels):
            msg = (
                'expected one entry of in_channels per encoder, got '
                f'{len(self.encoders)} encoders and in_channels={list(in_channels)}'
            )
            raise ValueError(msg)
        if num_classes < 1:
            msg = f'num_classes must be >= 1, got {num_classes}'
            raise ValueError(msg)
        self.decoder_name = decoder
        infos = [feature_info(e) for e in self.encoders]
        depth = min(len(info) for info in infos)
        if depth < 3:
            msg = f'the encoders have {depth} feature levels, the decoder needs 3'
            raise ValueError(msg)
        self.num_levels = 3 if decoder == 'fcn' else min(5, depth)
        channels = [
            sum(int(info[i]['num_chs']) for info in infos)
            for i in range(-self.num_levels, 0)
        ]

        self.decoder: nn.Module | None = None
        self.head: nn.Module
        match decoder:
            case 'fcn':
                self.head = FCNHead(channels, num_classes)
            case 'unet':
                decoder_channels = (256, 128, 64, 32, 16)[: self.num_levels]
                self.decoder = UnetDecoder(
                    encoder_channels=[sum(in_channels), *channels],
                    decoder_channels=decoder_channels,
                    n_blocks=self.num_levels,
                )
                self.head = SegmentationHead(
                    decoder_channels[-1], num_classes, kernel_size=3
                )
            case 'deeplabv3plus':
                self.decoder = _DeepLabV3PlusDecoder(
                    encoder_channels=[sum(in_channels), *channels],
                    encoder_depth=self.num_levels,  # type: ignore[arg-type]
                    out_channels=256,
                    atrous_rates=(12, 24, 36),
                    output_stride=16,
                    aspp_separable=True,
                    aspp_dropout=0.5,
                )
                self.head = SegmentationHead(256, num_classes, kernel_size=1)

    def forward(self, *inputs: Tensor) -> Tensor:
        """Segment a batch.

        Args:
            inputs: One input ``(N, C_i, H, W)`` per encoder, in encoder order.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``.

        Raises:
            ValueError: If the number of inputs differs from that of encoders,
                or the inputs differ in height and width.
        """
        if len(inputs) != len(self.encoders):
            msg = f'expected {len(self.encoders)} inputs, got {len(inputs)}'
            raise ValueError(msg)
        _check_same_size(inputs)
        size = inputs[0].shape[-2:]
        fused = _fuse(
            [
                encoder_feature_maps(enc, x, self.num_levels)
                for enc, x in zip(self.encoders, inputs, strict=True)
            ]
        )
        if self.decoder is None:
            out: Tensor = self.head(fused, size)
            return out
        decoded = self.decoder([torch.cat(inputs, dim=1), *fused])
        out = self.head(decoded)
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode='bilinear', align_corners=False)
        return out
