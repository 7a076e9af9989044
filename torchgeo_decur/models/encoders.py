"""Encoders (timm backbones), projection heads, and loading DeCUR weights into them."""

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import timm
from lightly.models.modules.heads import ProjectionHead
from torch import Tensor, nn
from torchgeo.models import get_weight
from torchgeo.tasks import utils
from torchvision.models._api import WeightsEnum

from .deformable import DA_PREFIXES, add_deformable_attention, has_deformable_attention
from .imagenet import IMAGENET, imagenet_backbone
from .weights import (
    DA_BLOCKS,
    DABlocks,
    DeCURWeightsEnum,
    NotDeCURCheckpointError,
    read_decur_checkpoint,
)


def state_dict_mismatches(
    expected: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]
) -> list[str]:
    """Describe how a state dict differs from the one a model expects.

    Args:
        expected: The model's own ``state_dict()`` (may live on the meta device).
        state_dict: The state dict to load.

    Returns:
        One line per kind of problem (missing, unexpected keys, shape
        mismatches) naming up to five keys; empty if it fits.

    .. versionadded:: 0.1
    """
    problems = {
        'missing keys': [k for k in expected if k not in state_dict],
        'unexpected keys': [k for k in state_dict if k not in expected],
        'shape mismatches': [
            f'{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}'
            for k, v in expected.items()
            if k in state_dict and state_dict[k].shape != v.shape
        ],
    }
    return [
        f'{what} {", ".join(keys[:5])}'
        + (f', ... ({len(keys) - 5} more)' if len(keys) > 5 else '')
        for what, keys in problems.items()
        if keys
    ]


def select_state_dict(
    state_dicts: Mapping[str, dict[str, Tensor]], modality: str | None, source: str
) -> dict[str, Tensor]:
    """Pick one modality's state dict (*modality* may be None if there is one).

    Args:
        state_dicts: ``{modality: state_dict}``.
        modality: Modality name, or None.
        source: Name of the source for error messages.

    Returns:
        The state dict.

    Raises:
        ValueError: If *modality* is unknown, or None with several modalities.

    .. versionadded:: 0.1
    """
    valid = ', '.join(state_dicts)
    if modality is None and len(state_dicts) == 1:
        return next(iter(state_dicts.values()))
    if modality is None:
        msg = f'{source} holds several encoders ({valid}): pass modality=<name>'
        raise ValueError(msg)
    if modality not in state_dicts:
        msg = f'{source} has no modality {modality!r}; valid: {valid}'
        raise ValueError(msg)
    return state_dicts[modality]


def _input_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """Return the name and module of the first convolution of *model*."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def _load_strict(
    backbone: nn.Module, state_dict: dict[str, Tensor], source: str, in_channels: int
) -> None:
    """Load *state_dict* into *backbone*, turning mismatches into ValueErrors.

    Raises:
        ValueError: If the first layer's input channels differ, or keys are
            missing, unexpected or of another shape.
    """
    conv = _input_conv(backbone)
    if conv is not None:
        weight = state_dict.get(f'{conv[0]}.weight')
        if weight is not None and weight.ndim == 4 and weight.shape[1] != in_channels:
            msg = (
                f'weights {source} were trained with in_chans={weight.shape[1]}, '
                f'but in_channels={in_channels}'
            )
            raise ValueError(msg)
    expected = backbone.state_dict()
    blocks_from_init = not has_deformable_attention(state_dict)
    if blocks_from_init:
        # plain ResNet weights in a deformable encoder: the blocks stay as
        # initialised (no-op for other encoders)
        expected = {k: v for k, v in expected.items() if not k.startswith(DA_PREFIXES)}
    problems = state_dict_mismatches(expected, state_dict)
    if problems:
        msg = (
            f'weights {source} do not fit the {type(backbone).__name__} '
            f'backbone: {"; ".join(problems)}'
        )
        raise ValueError(msg)
    # mismatches are checked above; non-strict only to leave the blocks
    backbone.load_state_dict(state_dict, strict=not blocks_from_init)


def _build(
    model: str,
    in_channels: int,
    pretrained: bool,
    deformable_attention: bool,
    model_kwargs: dict[str, Any],
    imagenet: bool = False,
) -> nn.Module:
    """Create the timm backbone, with deformable attention if asked.

    *imagenet* starts it as the authors did (:mod:`.imagenet`); *pretrained*
    from timm's weights of the name. ``model_kwargs['num_classes']`` keeps a
    linear head on the pooled features (0, no head, by default).
    """
    kwargs = {'num_classes': 0, **model_kwargs}
    try:
        if imagenet:
            backbone = imagenet_backbone(model, in_channels, **kwargs)
        else:
            backbone = timm.create_model(
                model, in_chans=in_channels, pretrained=pretrained, **kwargs
            )
    except RuntimeError as err:
        if 'Unknown model' not in str(err):
            raise
        msg = (
            f"unknown timm model {model!r} (the lab's convnet_small is registered "
            'by import torchgeo_decur.lab)'
        )
        raise ValueError(msg) from err
    if deformable_attention:
        try:
            backbone = add_deformable_attention(backbone)
        except TypeError as err:
            msg = f'deformable_attention=True needs a ResNet model, got {model!r}'
            raise ValueError(msg) from err
    return backbone


def _resolve_deformable(
    requested: bool | None, state_dict: Mapping[str, Tensor], source: str
) -> bool:
    """Whether to build deformable attention, given the request and the weights.

    Raises:
        ValueError: If the weights hold deformable-attention blocks and
            *requested* is False.
    """
    found = has_deformable_attention(state_dict)
    if requested is None:
        return found
    if found and not requested:
        msg = (
            f'weights {source} hold deformable-attention blocks (da_l3, da_l4): '
            'pass deformable_attention=True (or None, which follows the weights)'
        )
        raise ValueError(msg)
    return requested


def create_encoder(
    model: str,
    in_channels: int,
    weights: WeightsEnum | str | os.PathLike[str] | bool | None = None,
    modality: str | None = None,
    deformable_attention: bool | None = None,
    da_blocks: DABlocks = 'trained',
    **model_kwargs: Any,
) -> nn.Module:
    """Create a timm backbone that returns pooled features.

    DeCUR weights (see :mod:`torchgeo_decur.models.weights`) hold one encoder
    per modality; *modality* picks one:

    * a joint entry, e.g. ``ResNet50_Weights.DECUR_S1S2`` (or its name) with
      ``modality='s1'``;
    * a per-modality entry, e.g. ``ResNet50_Weights.DECUR_S1S2_S1`` (or its
      name); *modality* may be omitted;
    * the path of a DeCUR file (see
      :func:`~torchgeo_decur.models.read_decur_checkpoint`): an
      encoder file written by the export (*modality* may be omitted), a joint
      file of the export or of the DeCUR authors, or a DeCUR Lightning
      checkpoint (with *modality*).

    DeCUR weights are loaded with ``strict=True``, their first layer converted
    to the channel order of the registered modality when the source records
    another one (the authors' GeoNRW files store B, G, R and a DEM repeated
    on three channels; see
    :func:`~torchgeo_decur.models.convert_input_layer`). TorchGeo's own
    weights and TorchGeo Lightning checkpoints (e.g. MoCo, SimCLR) keep
    TorchGeo's lenient loading, and take no *modality*.

    With *deformable_attention* a ResNet gets DeCUR's deformable attention
    after stages 3 and 4 (:class:`~torchgeo_decur.models.deformable.DeformableResNet`).
    None follows the weights: weights with blocks (the ``*_RDA`` entries, or
    files with ``da_l3.*`` keys) build them, others do not. True with plain
    ResNet weights loads the ResNet and leaves the blocks at their
    initialisation.

    Args:
        model: Name of the `timm <https://huggingface.co/docs/timm>`__ model
            (``mit_b0`` ... ``mit_b5`` are registered by this package).
        in_channels: Number of input channels (bands).
        weights: Initial weights: a weight enum, the name of one registered with
            TorchGeo, the path to a weight file or checkpoint, ``'imagenet'``
            for the authors' ImageNet start (:mod:`.imagenet`), True for
            timm's default weights of *model*, or False/None for random ones.
        modality: Modality of a DeCUR weight source to load, e.g. ``'s1'``.
        deformable_attention: Whether to add deformable attention (ResNets
            only); None follows the weights.
        da_blocks: Which blocks the authors' RDA weights give a second
            modality: ``'trained'`` (``da1_*``, the blocks their pretraining
            ran every modality through) or ``'authors'`` (``da2_*``, as their
            transfer code loaded; see
            :func:`~torchgeo_decur.models.weights.files.read_release`).
        **model_kwargs: Further keyword arguments for :func:`timm.create_model`
            (e.g. ``img_size`` for ViTs).

    Returns:
        The backbone; ``backbone(x)`` has shape ``(N, output_size(backbone))``.

    Raises:
        FileNotFoundError: If *weights* is a string that is neither a file nor
            a registered weight name.
        ValueError: If *in_channels* is not positive, the weights were
            trained with another number of input channels, *modality* is
            unknown (or given for non-DeCUR weights), the file is not a
            checkpoint TorchGeo or DeCUR knows, keys do not match, or
            deformable attention is asked of a model that is not a ResNet or
            refused (False) for weights that have it.

    .. versionadded:: 0.1
    """
    if in_channels < 1:
        msg = f'in_channels must be >= 1, got {in_channels}'
        raise ValueError(msg)
    imagenet = weights == IMAGENET
    if not weights or weights is True or imagenet:
        if modality is not None:
            msg = f'modality={modality!r} needs DeCUR weights, got weights={weights!r}'
            raise ValueError(msg)
        args = (weights is True, bool(deformable_attention), model_kwargs, imagenet)
        return _build(model, in_channels, *args)
    if da_blocks not in DA_BLOCKS:
        msg = f"da_blocks must be 'trained' or 'authors', got {da_blocks!r}"
        raise ValueError(msg)
    source = resolve_weights(weights)
    decur = _decur_state_dict(source, modality, in_channels, da_blocks)
    if decur is None:  # TorchGeo's weights, or a checkpoint of another method
        state_dict = _torchgeo_state_dict(source, modality, in_channels)
        deformable = bool(deformable_attention)
        backbone = _build(model, in_channels, False, deformable, model_kwargs)
        utils.load_state_dict(backbone, state_dict)
        return backbone
    state_dict, name = decur
    deformable = _resolve_deformable(deformable_attention, state_dict, name)
    backbone = _build(model, in_channels, False, deformable, model_kwargs)
    _load_strict(backbone, state_dict, name, in_channels)
    return backbone


def output_size(backbone: nn.Module) -> int:
    """Size of what a backbone of :func:`create_encoder` returns.

    Its pooled features (``num_features``), or the outputs of the linear head
    it keeps when created with ``num_classes > 0``: the authors' MiT
    pretraining puts a 512 -> 2048 head between the pooled features and the
    projector (``mit_b2(num_classes=2048)``, ``src/pretrain/models/decur.py``
    lines 28-39 at zhu-xlab/DeCUR f190e9a; ``model_kwargs: {num_classes:
    2048}`` here).

    Args:
        backbone: A timm model.

    Returns:
        The size of ``backbone(x)``'s last dimension.

    .. versionadded:: 0.2
    """
    classes = int(getattr(backbone, 'num_classes', 0) or 0)
    return classes or int(backbone.num_features)


def resolve_weights(
    weights: WeightsEnum | str | os.PathLike[str],
) -> WeightsEnum | str:
    """Turn a registered weight name into its enum member; keep paths and enums.

    Args:
        weights: A weight enum member, the name of one registered with
            :func:`torchgeo.models.get_weight`, or the path of a file.

    Returns:
        The enum member, or the path as a string.

    Raises:
        FileNotFoundError: If *weights* is a string that is neither a file nor
            a registered weight name.

    .. versionadded:: 0.2
    """
    if isinstance(weights, WeightsEnum):
        return weights
    path = os.fspath(weights)
    if os.path.exists(path):
        return path
    try:
        return get_weight(path)
    except ValueError:
        msg = (
            f'weights {path!r} is neither an existing file nor a weight name '
            'registered with torchgeo.models.get_weight'
        )
        raise FileNotFoundError(msg) from None


def _check_in_chans(weights: WeightsEnum, in_channels: int) -> None:
    """Check an entry's ``meta['in_chans']``, before any download."""
    expected = weights.meta.get('in_chans')
    if expected is not None and expected != in_channels:
        msg = (
            f'weights {weights} were trained with in_chans={expected}, '
            f'but in_channels={in_channels}'
        )
        raise ValueError(msg)


def _decur_state_dict(
    source: WeightsEnum | str,
    modality: str | None,
    in_channels: int,
    da_blocks: DABlocks = 'trained',
) -> tuple[dict[str, Tensor], str] | None:
    """One encoder of DeCUR weights and the name of its source; None if not DeCUR.

    Raises:
        ValueError: If *modality* is needed, unknown, or the entry was trained
            with another number of channels.
        NotDeCURCheckpointError: If *modality* is given for a file that is
            not a DeCUR file.
    """
    if isinstance(source, DeCURWeightsEnum):
        entry = source.modality(modality) if modality is not None else source
        if entry.is_joint:
            valid = ', '.join(entry.modalities)
            msg = f'{entry} holds several encoders ({valid}): pass modality=<name>'
            raise ValueError(msg)
        _check_in_chans(entry, in_channels)
        state_dict = entry.get_state_dict(
            progress=True, weights_only=True, da_blocks=da_blocks
        )
        return state_dict, str(entry)
    if isinstance(source, WeightsEnum):
        return None
    try:
        state_dicts, _ = read_decur_checkpoint(source, da_blocks=da_blocks)
    except NotDeCURCheckpointError:
        if modality is not None:
            raise
        return None
    return select_state_dict(state_dicts, modality, source), source


def _torchgeo_state_dict(
    source: WeightsEnum | str, modality: str | None, in_channels: int
) -> dict[str, Tensor]:
    """The state dict of TorchGeo's weights or of a TorchGeo checkpoint.

    Raises:
        ValueError: If *modality* is given, or the entry was trained with
            another number of channels.
    """
    if isinstance(source, WeightsEnum):
        if modality is not None:
            msg = f'modality={modality!r} is only valid for DeCUR weights, not {source}'
            raise ValueError(msg)
        _check_in_chans(source, in_channels)
        return cast(
            dict[str, Tensor], source.get_state_dict(progress=True, weights_only=True)
        )
    _, state_dict = utils.extract_backbone(source)
    return state_dict


def is_decur_source(weights: WeightsEnum | str | bool | None) -> bool:
    """Whether weights may hold one encoder per modality (DeCUR weights).

    Args:
        weights: Weights as given to :func:`create_modality_encoder`.

    Returns:
        False for no weights, ImageNet weights (True or ``'imagenet'``) and
        weight enums other than DeCUR's (e.g. TorchGeo's single-modality
        weights), True otherwise
        (DeCUR enums and files; unknown names are left to
        :func:`~torchgeo_decur.models.create_encoder` to report).
    """
    if not weights or weights is True or weights == IMAGENET:
        return False
    if isinstance(weights, str) and not os.path.exists(weights):
        try:
            weights = get_weight(weights)
        except ValueError:
            return True
    return not isinstance(weights, WeightsEnum) or isinstance(weights, DeCURWeightsEnum)


def create_modality_encoder(
    model: str,
    in_channels: int,
    modality: str,
    weights: WeightsEnum | str | bool | None = None,
    deformable_attention: bool | None = None,
    da_blocks: DABlocks = 'trained',
    **model_kwargs: Any,
) -> nn.Module:
    """Create the encoder of one modality, from DeCUR or any other weights.

    With (joint) DeCUR weights the encoder of *modality* is picked out of
    them; other weights (TorchGeo's single-modality entries, ImageNet, a
    TorchGeo checkpoint) are loaded as :func:`create_encoder` does.

    Args:
        model: Name of the timm model.
        in_channels: Number of input channels.
        modality: Modality name, e.g. ``'s1'``.
        weights: Initial weights, see :func:`create_encoder`.
        deformable_attention: Whether to add deformable attention (ResNets);
            None follows the weights (see :func:`create_encoder`).
        da_blocks: The deformable-attention blocks of the authors' RDA
            weights for a second modality (see :func:`create_encoder`).
        **model_kwargs: Further keyword arguments for :func:`timm.create_model`.

    Returns:
        The backbone with pooled features.

    .. versionadded:: 0.1
    """
    modality_arg = modality if is_decur_source(weights) else None
    return create_encoder(
        model,
        in_channels,
        weights,
        modality=modality_arg,
        deformable_attention=deformable_attention,
        da_blocks=da_blocks,
        **model_kwargs,
    )


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
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
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


def load_decur_state_dicts(
    source: 'DeCURWeightsEnum | str | os.PathLike[str]', progress: bool = True
) -> dict[str, dict[str, Tensor]]:
    """Load the encoders of a DeCUR weight source, one timm state dict each.

    Args:
        source: A DeCUR weight entry, its registered name (e.g.
            ``'ResNet50_Weights.DECUR_S1S2'``), or the path of a file in a
            format of :func:`read_decur_checkpoint`.
        progress: Whether to show download progress for weight entries.

    Returns:
        ``{modality: state_dict}`` in backbone order (one item for a
        per-modality entry or encoder file).

    Raises:
        FileNotFoundError: If *source* is neither a file nor a registered name.
        NotDeCURCheckpointError: If *source* is not a DeCUR weight entry or file.
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    resolved = resolve_weights(source)
    if isinstance(resolved, DeCURWeightsEnum):
        state_dicts = resolved.get_state_dict(progress=progress, weights_only=True)
        if resolved.is_joint:
            return state_dicts
        return {resolved.meta['modality']: state_dicts}
    if isinstance(resolved, WeightsEnum):
        msg = f'{resolved} is not a DeCUR weight entry'
        raise NotDeCURCheckpointError(msg)
    return read_decur_checkpoint(resolved)[0]


def load_decur_state_dict(
    source: 'DeCURWeightsEnum | str | os.PathLike[str]',
    modality: str | None = None,
    progress: bool = True,
) -> dict[str, Tensor]:
    """Load one encoder of a DeCUR weight source as a timm state dict.

    Args:
        source: As for :func:`load_decur_state_dicts`.
        modality: Modality of the encoder; may be None if *source* holds one.
        progress: Whether to show download progress for weight entries.

    Returns:
        The state dict, loadable with ``strict=True`` into the timm model.

    Raises:
        ValueError: If *modality* is unknown or needed (see
            :func:`select_state_dict`), or as :func:`load_decur_state_dicts`.

    .. versionadded:: 0.1
    """
    resolved = resolve_weights(source)
    if isinstance(resolved, DeCURWeightsEnum) and modality is not None:
        resolved = resolved.modality(modality)
    state_dicts = load_decur_state_dicts(resolved, progress=progress)
    return select_state_dict(state_dicts, modality, str(source))
