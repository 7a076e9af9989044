"""The file layouts DeCUR encoders come in: reading, converting, writing.

The authors' joint files (``module.backbone_<i>.*``, deformable attention
``module.da<i>_l3.*``) and backbone-only files; Lightning checkpoints of this
package's self-supervised tasks (``encoders.<modality>.*``; ``backbone<i>.*``
before 0.2); the export's files (:mod:`torchgeo_decur.export`). This module
knows nothing of the weight enums.

.. versionadded:: 0.1
"""

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from ...modalities import modalities as registered_modalities
from ...trust import load_file
from ..deformable import DA_PREFIXES, has_deformable_attention
from .table import Release, find_release

__all__ = (
    'DA_BLOCKS',
    'DEFAULT_ENCODER',
    'DEFAULT_MODALITY_NAMES',
    'EXPORT_FORMAT',
    'DABlocks',
    'NotDeCURCheckpointError',
    'authors_state_dict',
    'convert_input_layer',
    'encoder_records',
    'parse_decur_lightning_checkpoint',
    'read_decur_checkpoint',
    'read_release',
    'split_joint_state_dict',
)

#: Which deformable-attention blocks the authors' RDA files give modality 2
#: and later (:func:`read_release`).
DABlocks = Literal['trained', 'authors']

#: The values of *da_blocks*: ``'trained'`` (every modality gets the
#: ``da1_*`` blocks) and ``'authors'`` (modality *i* gets ``da<i>_*``).
DA_BLOCKS: tuple[DABlocks, ...] = get_args(DABlocks)

#: Names of the modalities of a file that does not name them.
DEFAULT_MODALITY_NAMES = ('modality1', 'modality2')

#: The encoder of a modality whose task names none (the paper's ResNet-50).
DEFAULT_ENCODER = 'resnet50'

#: ``format`` field of the metadata written by the export.
EXPORT_FORMAT = 'torchgeo-decur-export'

#: Classifier keys dropped from the authors' backbones.
CLASSIFIER_KEYS = frozenset({'fc.weight', 'fc.bias', 'head.weight', 'head.bias'})

#: First-layer weights of ResNets, ViTs and MiTs.
INPUT_CONV_KEYS = (
    'conv1.weight',
    'patch_embed.proj.weight',
    'patch_embed1.proj.weight',
)

#: Backbone keys of the authors' joint files, ``backbone_<i>.*``.
AUTHORS_BACKBONE_KEY = re.compile(r'^backbone_(?P<i>[1-9]\d*)\.(?P<rest>.+)$')

#: Deformable-attention keys of the authors' files, ``da<i>_l<stage>.*``.
AUTHORS_DA_KEY = re.compile(r'^(module\.)?da(?P<i>[1-9])_l(?P<s>[34])\.(?P<rest>.+)$')

StateDicts = dict[str, dict[str, Tensor]]


class NotDeCURCheckpointError(ValueError):
    """A file is not a DeCUR checkpoint (for example one of another method).

    .. versionadded:: 0.1
    """


def _listing(keys: Sequence[str], limit: int = 5) -> str:
    more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _prefixes(keys: Sequence[str]) -> str:
    """Summarise keys by their first component (``backbone.*, head.*``)."""
    seen = {k.split('.', 1)[0] + '.*' if '.' in k else k: 0 for k in map(str, keys)}
    return _listing(list(seen), 8)


def _joint_model(obj: object) -> Mapping[str, Tensor] | None:
    """The joint state dict of an authors'-layout object, else None."""
    if isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        obj = obj['model']
    if isinstance(obj, Mapping) and any(
        str(k).removeprefix('module.').startswith('backbone_1.') for k in obj
    ):
        return obj
    return None


def _is_state_dict(obj: object) -> bool:
    values = obj.values() if isinstance(obj, Mapping) else ()
    return bool(values) and all(isinstance(v, Tensor) for v in values)


def split_joint_state_dict(
    checkpoint: Mapping[str, Any],
    names: Sequence[str],
    source: str = 'checkpoint',
    shared_da: bool = False,
) -> StateDicts:
    """Split a joint checkpoint in the authors' layout into timm state dicts.

    Backbone ``i`` (``module.backbone_<i>.*``) and its deformable attention
    (``module.da<i>_l3.*`` to ``da_l3.*``) go to ``names[i - 1]``; projectors,
    the loss's ``bn.*`` and ``fc`` / ``head`` classifiers are dropped.

    Args:
        checkpoint: ``{'model': joint, ...}`` or the joint state dict.
        names: Modality names of backbone 1, backbone 2, ...
        source: Name of the checkpoint for error messages.
        shared_da: Give every modality the ``da1_*`` blocks (those the
            authors' pretraining ran every modality through) instead of its
            own ``da<i>_*``.

    Returns:
        ``{name: state_dict}`` in backbone order.

    Raises:
        NotDeCURCheckpointError: If there are no ``backbone_1`` keys.
        ValueError: If one backbone has no keys.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *shared_da* added.
    """
    joint = _joint_model(checkpoint)
    if joint is None:
        msg = (
            f'{source} is not a DeCUR checkpoint: expected keys '
            f"'module.backbone_1.*' and 'module.backbone_2.*' (optionally under "
            f"'model'), found {_prefixes(list(checkpoint))}"
        )
        raise NotDeCURCheckpointError(msg)
    state_dicts: StateDicts = {name: {} for name in names}
    for key, value in joint.items():
        key = key.removeprefix('module.')
        da, backbone = AUTHORS_DA_KEY.match(key), AUTHORS_BACKBONE_KEY.match(key)
        if da and shared_da:
            if da['i'] == '1':
                for name in names:
                    state_dicts[name][f'da_l{da["s"]}.{da["rest"]}'] = value
        elif da and int(da['i']) <= len(names):
            name = names[int(da['i']) - 1]
            state_dicts[name][f'da_l{da["s"]}.{da["rest"]}'] = value
        elif backbone and int(backbone['i']) <= len(names):
            if backbone['rest'] not in CLASSIFIER_KEYS:
                state_dicts[names[int(backbone['i']) - 1]][backbone['rest']] = value
    for i, (name, state_dict) in enumerate(state_dicts.items(), start=1):
        if not any(not k.startswith(DA_PREFIXES) for k in state_dict):
            msg = (
                f"{source}: missing backbone keys 'module.backbone_{i}.*' of "
                f'modality {name!r}; found {_prefixes(list(joint))}'
            )
            raise ValueError(msg)
    return state_dicts


def authors_state_dict(
    state_dicts: Mapping[str, Mapping[str, Tensor]],
) -> dict[str, Tensor]:
    """Join encoder state dicts into the authors' layout (inverse of the split).

    Args:
        state_dicts: ``{modality: state_dict}`` in backbone order.

    Returns:
        ``module.backbone_<i>.<key>`` and ``module.da<i>_l3.*`` (shared tensors).

    .. versionadded:: 0.2
    """
    joint = {}
    for i, state_dict in enumerate(state_dicts.values(), start=1):
        for key, value in state_dict.items():
            if key.startswith(DA_PREFIXES):
                joint[f'module.da{i}_{key.removeprefix("da_")}'] = value
            else:
                joint[f'module.backbone_{i}.{key}'] = value
    return joint


def _backbone_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A backbone-only file in this package's keys, without the classifier."""
    out: dict[str, Tensor] = {}
    deformable = any(AUTHORS_DA_KEY.match(k) for k in state_dict)
    for key, value in state_dict.items():
        match = AUTHORS_DA_KEY.match(key)
        if match:
            key = f'da_l{match["s"]}.{match["rest"]}'
        elif deformable:  # the authors' RDA files keep the ResNet under backbone.
            key = key.removeprefix('backbone.')
        if key not in CLASSIFIER_KEYS:
            out[key] = value
    return out


def convert_input_layer(
    state_dict: Mapping[str, Tensor],
    from_bands: Sequence[str],
    to_bands: Sequence[str],
    source: str = 'weights',
) -> dict[str, Tensor]:
    """Convert the first layer of an encoder from one channel order to another.

    Channel ``j`` of the new first layer (``conv1``, ``patch_embed.proj``)
    gets the sum of the kernels of every channel ``i`` with ``from_bands[i] ==
    to_bands[j]``. This is exact: a permutation (B, G, R to R, G, B) permutes
    the kernels, a band repeated on several channels (the authors' DEM on
    three) folds into one, since the repeated input gives the same sum.

    Args:
        state_dict: The encoder state dict.
        from_bands: Band of each input channel in *state_dict*.
        to_bands: Band of each input channel wanted.
        source: Name of the weights for error messages.

    Returns:
        A new state dict (other tensors shared); unchanged if the bands are
        equal or the layer has ``len(to_bands)`` channels already.

    Raises:
        ValueError: If a band of one side is missing on the other, or the layer
            has neither ``len(from_bands)`` nor ``len(to_bands)`` channels.

    .. versionadded:: 0.1
    """
    out = dict(state_dict)
    key = next((k for k in INPUT_CONV_KEYS if getattr(out.get(k), 'ndim', 0) == 4), '')
    found = out[key].shape[1] if key else 0
    if not key or (
        found == len(to_bands)
        and (found != len(from_bands) or list(from_bands) == list(to_bands))
    ):
        return out
    if found != len(from_bands):
        msg = (
            f'{source}: {key} has {found} input channels, but the weights '
            f'declare bands {list(from_bands)} and {list(to_bands)} are wanted'
        )
        raise ValueError(msg)
    missing = sorted(set(to_bands) - set(from_bands))
    extra = sorted(set(from_bands) - set(to_bands))
    if missing or extra:
        msg = (
            f'{source}: cannot convert the input channels {list(from_bands)} to '
            f'{list(to_bands)} (missing {missing or "none"}, unused {extra or "none"})'
        )
        raise ValueError(msg)
    kernels = [
        out[key][:, [i for i, b in enumerate(from_bands) if b == band]].sum(dim=1)
        for band in to_bands
    ]
    out[key] = torch.stack(kernels, dim=1)
    return out


def _to_modality_bands(
    state_dicts: StateDicts, recorded: Mapping[str, Sequence[str]], source: str
) -> StateDicts:
    """Convert first layers from the *recorded* bands to the registered ones."""
    known = registered_modalities()
    for name, state_dict in state_dicts.items():
        if recorded.get(name) and name in known:
            state_dicts[name] = convert_input_layer(
                state_dict, recorded[name], known[name].bands, f'{source} ({name})'
            )
    return state_dicts


def _recorded_bands(meta: Mapping[str, Any] | None) -> dict[str, Sequence[str]]:
    return {m['name']: m.get('bands') for m in (meta or {}).get('modalities', [])}


def _names(meta: Mapping[str, Any] | None) -> list[str]:
    return list(_recorded_bands(meta))


def read_release(
    checkpoint: Mapping[str, Any],
    release: Release,
    modality: str | None,
    source: str,
    da_blocks: DABlocks = 'trained',
) -> StateDicts:
    """Read a published file into state dicts in the modalities' bands.

    Deformable attention (the ``_RDA`` releases): the authors' pretraining ran
    both modalities through the ``da1_*`` blocks (``forward`` of
    ``src/pretrain/models/decur.py``, lines 169-172 at commit f190e9a), so the
    ``da2_*`` blocks of their files are untrained initialisations, which
    their transfer code nevertheless loads for modality 2. *da_blocks*
    ``'trained'`` gives every modality the ``da1_*`` blocks; ``'authors'``
    gives modality *i* the ``da<i>_*`` blocks, as their transfer code did.

    Args:
        checkpoint: The loaded file.
        release: Its release.
        modality: The modality of a backbone-only file; None for a joint file.
        source: Name of the file for error messages.
        da_blocks: ``'trained'`` or ``'authors'`` (see above).

    Returns:
        ``{modality: state_dict}`` of the encoders in the file.

    Raises:
        NotDeCURCheckpointError: If the content does not fit the release.
        ValueError: If *da_blocks* is unknown, or ``'trained'`` for the
            backbone-only file of a modality other than the first of an RDA
            release (it holds only the untrained ``da2_*`` blocks; read the
            joint file).

    .. versionadded:: 0.2
    """
    if da_blocks not in DA_BLOCKS:
        msg = f"da_blocks must be 'trained' or 'authors', got {da_blocks!r}"
        raise ValueError(msg)
    shared = da_blocks == 'trained' and release.deformable_attention
    if shared and modality not in (None, release.modalities[0]):
        msg = (
            f'{source} holds the untrained da2_* deformable-attention blocks of '
            f"modality {modality!r} (the authors' pretraining ran every modality "
            f'through da1_*): read the joint file {release.joint_file} for the '
            "trained blocks, or pass da_blocks='authors' to load these as the "
            "authors' transfer code did"
        )
        raise ValueError(msg)
    if _joint_model(checkpoint) is not None:
        state_dicts = split_joint_state_dict(
            checkpoint, release.modalities, source, shared_da=shared
        )
    elif modality is not None and _is_state_dict(checkpoint):
        state_dicts = {modality: _backbone_state_dict(checkpoint)}
    else:
        msg = (
            f'{source} holds neither a joint DeCUR checkpoint nor an encoder '
            f'state dict: found {_prefixes(list(checkpoint))}'
        )
        raise NotDeCURCheckpointError(msg)
    return _to_modality_bands(state_dicts, release.file_bands, source)


def encoder_records(hparams: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a task's hyperparameters say of each encoder, in modality order.

    Args:
        hparams: A self-supervised task's hyperparameters: ``encoders``, else
            (before 0.2) ``model1``, ``in_channels1``, ``model_kwargs1``, ...

    Returns:
        ``{'name', 'index', 'model', 'in_chans', 'model_kwargs'}`` each.

    .. versionadded:: 0.2
    """
    names = list(hparams.get('modalities') or DEFAULT_MODALITY_NAMES)
    encoders = hparams.get('encoders') or {}
    records = []
    for i, name in enumerate(names, start=1):
        spec = encoders.get(name) or {}
        model = spec.get('model', hparams.get(f'model{i}')) or DEFAULT_ENCODER
        in_chans = spec.get('in_channels', hparams.get(f'in_channels{i}'))
        kwargs = dict(spec.get('model_kwargs', hparams.get(f'model_kwargs{i}')) or {})
        records.append({'name': name, 'index': i, 'model': model})
        records[-1] |= {'in_chans': in_chans, 'model_kwargs': kwargs}
    return records


def _task_state_dicts(
    state_dict: Mapping[str, Tensor], records: Sequence[Mapping[str, Any]], source: str
) -> StateDicts:
    """The encoders of a task: ``encoders.<name>.*`` (``backbone<i>.*`` before 0.2)."""
    legacy = not any(k.startswith('encoders.') for k in state_dict)
    out: StateDicts = {}
    for spec in records:
        prefix = f'backbone{spec["index"]}.' if legacy else f'encoders.{spec["name"]}.'
        out[spec['name']] = {
            k.removeprefix(prefix): v
            for k, v in state_dict.items()
            if k.startswith(prefix)
        }
        if not out[spec['name']]:
            msg = (
                f"{source}: missing backbone keys '{prefix}*' of modality "
                f'{spec["name"]!r}; found {_prefixes(list(state_dict))}'
            )
            raise ValueError(msg)
    return out


def parse_decur_lightning_checkpoint(
    checkpoint: Mapping[str, Any], source: str
) -> tuple[StateDicts, dict[str, Any]]:
    """Extract the encoders and their description from a task's checkpoint.

    Args:
        checkpoint: A loaded Lightning checkpoint of a self-supervised task
            of this package (e.g. :class:`~torchgeo_decur.tasks.DeCURTask`).
        source: Name of the checkpoint for error messages.

    Returns:
        ``({modality: state_dict}, metadata)``; *metadata* as the export writes
        it (per modality an :func:`encoder_records` item with
        ``deformable_attention``, ``bands`` and ``normalisation``).

    Raises:
        NotDeCURCheckpointError: If the checkpoint is from another task.
        ValueError: If an encoder's keys are missing.

    .. versionadded:: 0.1
    """
    hparams = checkpoint.get('hyper_parameters') or {}
    state_dict = checkpoint.get('state_dict') or {}
    records = encoder_records(hparams)
    if len(records) < 2 or not ({'encoders', 'model1'} & set(hparams)):
        model = hparams.get('model', hparams.get('backbone'))
        what = f'a single-model checkpoint (model={model!r}); ' if model else ''
        msg = (
            f'{source} is not a DeCUR checkpoint: expected hyper_parameters naming '
            f'an encoder per modality (encoders, or model1/model2); found {what}'
            f'hyper_parameters {_listing(sorted(map(str, hparams)), 8) or "none"} '
            f'and state_dict keys {_prefixes(list(state_dict)) or "none"}'
        )
        raise NotDeCURCheckpointError(msg)
    state_dicts = _task_state_dicts(state_dict, records, source)
    saved = (checkpoint.get('torchgeo_decur') or {}).get('modalities') or []
    recorded = {m['name']: m for m in saved}
    for spec in records:
        known = registered_modalities().get(spec['name'])
        mine = recorded.get(spec['name']) or (known.record() if known else {})
        spec['bands'] = mine.get('bands')
        spec['normalisation'] = mine.get('normalisation')
        spec['deformable_attention'] = has_deformable_attention(
            state_dicts[spec['name']]
        )
    meta = {'format': EXPORT_FORMAT, 'format_version': 1, 'ssl_method': 'decur'}
    meta |= {k: checkpoint.get(k) for k in ('epoch', 'global_step')}
    return state_dicts, meta | {'source': source, 'modalities': records}


def _find_sidecar(path: Path) -> tuple[dict[str, Any], str] | None:
    """The export metadata of *path* (``<stem>.json``) and the rest of its name."""
    stem = path.stem
    for i in (i for i in range(len(stem) - 1, 0, -1) if stem[i] == '_'):
        try:
            meta = json.loads(path.with_name(stem[:i] + '.json').read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get('format') == EXPORT_FORMAT:
            return meta, stem[i + 1 :]
    return None


def _read_content(
    checkpoint: Mapping[str, Any], path: Path
) -> tuple[StateDicts, dict[str, Any] | None]:
    """Read a loaded file by its content (see :func:`read_decur_checkpoint`)."""
    if 'state_dict' in checkpoint and 'hyper_parameters' in checkpoint:
        hparams = checkpoint['hyper_parameters'] or {}
        if hparams.get('ssl_method') == 'decur' and 'modality' in hparams:
            name, bands = hparams['modality'], hparams.get('bands')
            items = checkpoint['state_dict'].items()
            state_dict = {k[6:]: v for k, v in items if k.startswith('model.')}
            described = {'modalities': [{'name': name, 'bands': bands}]}
            return {name: state_dict}, described if bands else None
        return parse_decur_lightning_checkpoint(checkpoint, str(path))
    found = _find_sidecar(path)
    if _joint_model(checkpoint) is not None:
        meta = checkpoint.get('meta')
        if not (isinstance(meta, dict) and meta.get('format') == EXPORT_FORMAT):
            meta = found[0] if found and found[1] == 'joint' else None
        names = _names(meta)
        if not names:
            warnings.warn(
                f"{path} is a joint file in the DeCUR authors' layout but neither "
                'named like a published file nor described by an export: its '
                'modalities and channel order are unknown, so its encoders are '
                f'named {DEFAULT_MODALITY_NAMES} and no band order is converted '
                "(the authors' GeoNRW and SUN RGB-D files store B, G, R). Keep "
                'the published file name, or load it through its weight enum.',
                UserWarning,
                stacklevel=3,
            )
            names = list(DEFAULT_MODALITY_NAMES)
        return split_joint_state_dict(checkpoint, names, str(path)), meta
    if _is_state_dict(checkpoint):
        if found and found[1] in _names(found[0]):
            return {found[1]: _backbone_state_dict(checkpoint)}, found[0]
        return {DEFAULT_MODALITY_NAMES[0]: _backbone_state_dict(checkpoint)}, None
    msg = (
        f'{path} is not a DeCUR checkpoint (Lightning checkpoint of a '
        'self-supervised task, joint file with module.backbone_1/2 keys, or '
        f'encoder state dict); found keys {_prefixes(list(checkpoint))}'
    )
    raise NotDeCURCheckpointError(msg)


def read_decur_checkpoint(
    path: str | os.PathLike[str],
    trust_checkpoint: bool = False,
    da_blocks: DABlocks = 'trained',
) -> tuple[StateDicts, dict[str, Any] | None]:
    """Read any DeCUR weight file into per-modality timm state dicts.

    Formats, detected from the content: a Lightning checkpoint of a
    self-supervised task of this package; a joint file in the authors' layout
    (theirs, or the export's ``<stem>_joint.pth``); one encoder's state dict
    (theirs, or the export's ``<stem>_<modality>.pth``); the export's encoder
    checkpoint in TorchGeo's layout (``<stem>_<modality>.ckpt``). Modalities
    are named by the file (the export's ``meta`` entry or ``<stem>.json``
    beside it), by the release of a file named like a published one (also
    TorchGeo's hash-suffixed copies), else ``'modality1'``, ``'modality2'``.
    First layers are converted to the registered modality's bands where the
    file records another order (:func:`convert_input_layer`). Files are read
    without running code (:func:`torchgeo_decur.trust.load_file`).

    Args:
        path: Path of the file.
        trust_checkpoint: Unpickle a file that needs more than plain types,
            which runs any code it carries (only for files you trust).
        da_blocks: The deformable-attention blocks of a published RDA file's
            second modality: ``'trained'`` (``da1_*``) or ``'authors'``
            (``da2_*``); see :func:`read_release`. Other files give each
            modality its own blocks.

    Returns:
        ``({modality: state_dict}, metadata)`` in backbone order, *metadata*
        as the export wrote it (or None).

    Raises:
        FileNotFoundError: If *path* does not exist.
        NotDeCURCheckpointError: If the file is in none of these formats (e.g.
            a MoCo or SimCLR checkpoint of TorchGeo).
        ValueError: If a backbone's keys are missing.
        UntrustedFileError: If reading the file would run code.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Read safely; *trust_checkpoint* and *da_blocks* added.
    """
    path = Path(path)
    if not path.is_file():
        msg = f'DeCUR checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    checkpoint = load_file(path, trust=trust_checkpoint)
    if not isinstance(checkpoint, Mapping):
        msg = (
            f'{path} is not a DeCUR checkpoint: it holds a '
            f'{type(checkpoint).__name__}, not a dict'
        )
        raise NotDeCURCheckpointError(msg)
    published = find_release(path.name)
    if published is not None:
        return read_release(checkpoint, *published, str(path), da_blocks), None
    state_dicts, meta = _read_content(checkpoint, path)
    return _to_modality_bands(state_dicts, _recorded_bands(meta), str(path)), meta
