"""Encoders (timm backbones) and projection heads."""

import os
from collections.abc import Sequence
from typing import Any

import timm
from lightly.models.modules.heads import ProjectionHead
from torch import nn
from torchgeo.models import get_weight
from torchgeo.tasks import utils
from torchvision.models._api import WeightsEnum


def create_encoder(
    model: str,
    in_channels: int,
    weights: WeightsEnum | str | bool | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Create a timm backbone that returns pooled features.

    Args:
        model: Name of the `timm <https://huggingface.co/docs/timm>`__ model.
        in_channels: Number of input channels (bands).
        weights: Initial weights: a weight enum, the name of one registered with
            TorchGeo, the path to a state dict or TorchGeo checkpoint, True for
            timm's ImageNet weights, or False/None for random weights.
        **model_kwargs: Further keyword arguments for :func:`timm.create_model`
            (e.g. ``img_size`` for ViTs).

    Returns:
        The backbone; ``backbone(x)`` has shape ``(N, backbone.num_features)``.

    Raises:
        ValueError: If *in_channels* is not positive or the weights were
            trained with another number of input channels.

    .. versionadded:: 0.1
    """
    if in_channels < 1:
        msg = f'in_channels must be >= 1, got {in_channels}'
        raise ValueError(msg)
    backbone = timm.create_model(
        model,
        in_chans=in_channels,
        num_classes=0,
        pretrained=weights is True,
        **model_kwargs,
    )
    if weights and weights is not True:
        if isinstance(weights, str) and os.path.exists(weights):
            _, state_dict = utils.extract_backbone(weights)
        else:
            if isinstance(weights, str):
                weights = get_weight(weights)
            expected = weights.meta.get('in_chans')
            if expected is not None and expected != in_channels:
                msg = (
                    f'weights {weights} were trained with in_chans={expected}, '
                    f'but in_channels={in_channels}'
                )
                raise ValueError(msg)
            state_dict = weights.get_state_dict(progress=True, weights_only=True)
        utils.load_state_dict(backbone, state_dict)
    return backbone


def create_projector(input_dim: int, dims: Sequence[int]) -> nn.Module:
    """Create a DeCUR / Barlow Twins projector.

    ``Linear-BN-ReLU`` for every hidden layer and a plain ``Linear`` last,
    built with lightly's :class:`~lightly.models.modules.heads.ProjectionHead`.

    Args:
        input_dim: Size of the backbone features.
        dims: Output sizes of the layers, e.g. ``(8192, 8192, 8192)``.

    Returns:
        The projector.

    Raises:
        ValueError: If *dims* is empty or holds a non-positive size.

    .. versionadded:: 0.1
    """
    if not dims or any(d < 1 for d in dims):
        msg = f'projector dims must be a non-empty list of positive sizes, got {dims}'
        raise ValueError(msg)
    blocks: list[tuple[int, int, nn.Module | None, nn.Module | None]] = []
    sizes = [input_dim, *dims]
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(dims) - 1
        blocks.append(
            (
                d_in,
                d_out,
                None if last else nn.BatchNorm1d(d_out),
                None if last else nn.ReLU(inplace=True),
            )
        )
    return ProjectionHead(blocks)
