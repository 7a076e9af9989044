"""Reading and converting every format a DeCUR encoder can come in.

DeCUR trains one encoder per modality, so its files hold two backbones, in
several layouts: the authors' joint files (``module.backbone_1.*``,
``module.backbone_2.*``) and backbone-only files, this plugin's Lightning
checkpoints and exports. :func:`read_decur_checkpoint` reads any of them into
one timm state dict per modality, with the channel order of each encoder's
first layer where the file says it; :func:`convert_input_layer` converts that
layer from one channel order to another.

.. versionadded:: 0.1
"""

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from ..modalities import modalities as registered_modalities

if TYPE_CHECKING:
    from .weights import DeCURWeightsEnum

__all__ = (
    'DEFAULT_MODALITY_NAMES',
    'EXPORT_FORMAT',
    'NotDeCURCheckpointError',
    'convert_input_layer',
    'parse_decur_lightning_checkpoint',
    'read_decur_checkpoint',
    'select_state_dict',
    'source_bands',
    'split_joint_state_dict',
    'state_dict_mismatches',
)

#: Classifier keys dropped from the authors' backbones (``fc`` / ``head``);
#: timm models created with ``num_classes=0`` have none.
_CLASSIFIER_KEYS = frozenset({'fc.weight', 'fc.bias', 'head.weight', 'head.bias'})

#: First-layer weights of the backbones the weight entries describe.
_INPUT_CONV_KEYS = (
    'conv1.weight',
    'patch_embed.proj.weight',
    'patch_embed1.proj.weight',
)

#: Deformable-attention keys of the authors' files: ``da<modality>_l<stage>.*``.
_AUTHORS_DA_KEY = re.compile(
    r'^(?:module\.)?da(?P<index>\d)_l(?P<stage>[34])\.(?P<rest>.+)$'
)

#: Prefixes of the deformable-attention blocks of this package's encoders.
_DA_PREFIXES = ('da_l3.', 'da_l4.')

#: Default modality names of joint files that do not name their modalities.
DEFAULT_MODALITY_NAMES = ('modality1', 'modality2')

#: ``format`` field of the metadata written by the export.
EXPORT_FORMAT = 'torchgeo-decur-export'


class NotDeCURCheckpointError(ValueError):
    """A file is not a DeCUR checkpoint (for example one of another method).

    .. versionadded:: 0.1
    """


def _is_tensor_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _prefixes(keys: Sequence[str] | Mapping[str, Any], limit: int = 8) -> str:
    """Summarise keys by their first component (``backbone.*, head.*``)."""
    seen: dict[str, None] = {}
    for key in keys:
        seen[key.split('.', 1)[0] + '.*' if '.' in key else key] = None
    names = list(seen)
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def _list(keys: Sequence[str], limit: int = 5) -> str:
    more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def state_dict_mismatches(
    expected: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]
) -> list[str]:
    """Describe how a state dict differs from the one a model expects.

    Args:
        expected: The model's own ``state_dict()`` (may live on the meta device).
        state_dict: The state dict to load.

    Returns:
        One line per kind of problem (missing keys, unexpected keys, shape
        mismatches), each naming up to five keys; empty if it fits.

    .. versionadded:: 0.1
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f'{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    return [
        f'{what} {_list(keys)}'
        for what, keys in (
            ('missing keys', missing),
            ('unexpected keys', unexpected),
            ('shape mismatches', shapes),
        )
        if keys
    ]


def _joint_model(obj: object) -> Mapping[str, Tensor] | None:
    """Return the joint state dict of an authors'-layout object, else None."""
    if isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        obj = obj['model']
    if not isinstance(obj, Mapping):
        return None
    for key in obj:
        if isinstance(key, str) and key.removeprefix('module.').startswith(
            'backbone_1.'
        ):
            return cast(Mapping[str, Tensor], obj)
    return None


def split_joint_state_dict(
    checkpoint: Mapping[str, Any], names: Sequence[str], source: str = 'checkpoint'
) -> dict[str, dict[str, Tensor]]:
    """Split a joint checkpoint in the authors' layout into timm state dicts.

    Accepts ``{'model': joint, ...}`` (the authors' files, with or without
    ``epoch`` / ``optimizer``) or the joint state dict itself, whose keys are
    ``module.backbone_<i>.<key>`` (``module.`` optional). The
    deformable-attention blocks of backbone ``i`` (``module.da<i>_l3.*``,
    ``module.da<i>_l4.*``) become ``da_l3.*`` and ``da_l4.*`` of its state
    dict (see :mod:`torchgeo_decur.models.deformable`). Projector
    (``projector1.*``, ``projector_1.*``) and ``bn.*`` keys and the
    backbones' ``fc`` / ``head`` classifier weights are dropped.

    Args:
        checkpoint: The loaded file.
        names: Modality names of backbone 1 and backbone 2.
        source: Name of the checkpoint for error messages.

    Returns:
        ``{name: state_dict}`` in backbone order.

    Raises:
        NotDeCURCheckpointError: If there are no ``backbone_1`` keys.
        ValueError: If one backbone has no keys.

    .. versionadded:: 0.1
    """
    joint = _joint_model(checkpoint)
    if joint is None:
        msg = (
            f'{source} is not a DeCUR checkpoint: expected keys '
            f"'module.backbone_1.*' and 'module.backbone_2.*' (optionally under "
            f"'model'), found {_prefixes(list(checkpoint))}"
        )
        raise NotDeCURCheckpointError(msg)
    state_dicts: dict[str, dict[str, Tensor]] = {}
    for i, name in enumerate(names, start=1):
        prefix = f'backbone_{i}.'
        state_dict: dict[str, Tensor] = {}
        for key, value in joint.items():
            key = key.removeprefix('module.')
            if key.startswith(prefix):
                key = key[len(prefix) :]
                if key not in _CLASSIFIER_KEYS:
                    state_dict[key] = value
            else:
                match = _AUTHORS_DA_KEY.match(key)
                if match and int(match['index']) == i:
                    state_dict[f'da_l{match["stage"]}.{match["rest"]}'] = value
        if not any(not k.startswith(_DA_PREFIXES) for k in state_dict):
            msg = (
                f"{source}: missing backbone keys 'module.backbone_{i}.*' of "
                f'modality {name!r}; found {_prefixes(list(joint))}'
            )
            raise ValueError(msg)
        state_dicts[name] = state_dict
    return state_dicts


def _backbone_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An encoder state dict in the keys of this package's encoders.

    Drops the classifier keys (``fc.*`` / ``head.*``). The authors'
    backbone-only files with deformable attention store the ResNet under
    ``backbone.`` and the blocks as ``da<i>_l3.*`` / ``da<i>_l4.*``; these
    become the timm keys and ``da_l3.*`` / ``da_l4.*``.

    Args:
        state_dict: A plain state dict of one backbone.

    Returns:
        The state dict, loadable into the encoder.
    """
    out: dict[str, Tensor] = {}
    deformable = any(_AUTHORS_DA_KEY.match(k) for k in state_dict)
    for key, value in state_dict.items():
        match = _AUTHORS_DA_KEY.match(key)
        if match:
            key = f'da_l{match["stage"]}.{match["rest"]}'
        elif deformable:
            key = key.removeprefix('backbone.')
        if key not in _CLASSIFIER_KEYS:
            out[key] = value
    return out


def convert_input_layer(
    state_dict: Mapping[str, Tensor],
    from_bands: Sequence[str],
    to_bands: Sequence[str],
    source: str = 'weights',
) -> dict[str, Tensor]:
    """Convert the first layer of an encoder from one channel order to another.

    Output channel ``j`` of the new first layer (``conv1`` of a ResNet,
    ``patch_embed.proj`` of a ViT) gets the sum of the kernels of every input
    channel ``i`` with ``from_bands[i] == to_bands[j]``. This is exact: a
    permutation of the bands (e.g. the authors' B, G, R to R, G, B) permutes
    the kernels, and a band repeated on several channels (the authors' DEM on
    three) folds into one kernel, since the repeated input gives the same sum.

    Args:
        state_dict: The encoder state dict.
        from_bands: Band of each input channel in *state_dict*.
        to_bands: Band of each input channel wanted.
        source: Name of the weights for error messages.

    Returns:
        A new state dict (tensors shared except the converted one). Unchanged if
        the bands are equal, or if the first layer already has
        ``len(to_bands)`` channels while *from_bands* describes another count
        (the file is in the wanted layout already).

    Raises:
        ValueError: If a band of one side is missing on the other, or the first
            layer has neither ``len(from_bands)`` nor ``len(to_bands)`` channels.

    .. versionadded:: 0.1
    """
    out = dict(state_dict)
    for key in _INPUT_CONV_KEYS:
        weight = state_dict.get(key)
        if weight is not None and weight.ndim == 4:
            break
    else:
        return out
    found = weight.shape[1]
    if list(from_bands) == list(to_bands) and found == len(to_bands):
        return out
    if found != len(from_bands):
        if found == len(to_bands):
            return out
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
    out[key] = torch.stack(
        [
            weight[:, [i for i, b in enumerate(from_bands) if b == band]].sum(dim=1)
            for band in to_bands
        ],
        dim=1,
    )
    return out


def _find_sidecar(path: Path) -> tuple[dict[str, Any], str | None] | None:
    """Find the export metadata of *path* and the part after ``<stem>_``."""
    stem = path.stem
    for i in range(len(stem) - 1, 0, -1):
        if stem[i] != '_':
            continue
        sidecar = path.with_name(stem[:i] + '.json')
        if not sidecar.is_file():
            continue
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get('format') == EXPORT_FORMAT:
            return meta, stem[i + 1 :]
    return None


def _meta_names(meta: Mapping[str, Any]) -> list[str]:
    return [m['name'] for m in meta['modalities']]


def parse_decur_lightning_checkpoint(
    checkpoint: Mapping[str, Any], source: str
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Extract both backbones and their description from a DeCURTask checkpoint.

    Args:
        checkpoint: The loaded Lightning checkpoint.
        source: Name of the checkpoint for error messages.

    Returns:
        ``({modality: state_dict}, metadata)``: the timm state dicts of
        ``backbone1`` and ``backbone2`` and the export metadata (``format``,
        ``epoch``, ``global_step`` and per modality ``name``, ``index``,
        ``model``, ``in_chans``, ``model_kwargs``, ``deformable_attention``,
        ``bands``, ``normalisation``). Bands and normalisation are those the checkpoint
        recorded (:meth:`~torchgeo_decur.tasks.DeCURTask.on_save_checkpoint`),
        else those of the registered modality.

    Raises:
        NotDeCURCheckpointError: If the checkpoint is from another task.
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    hparams = checkpoint.get('hyper_parameters') or {}
    state_dict = checkpoint.get('state_dict') or {}
    if not (
        'model1' in hparams
        and 'model2' in hparams
        and any(k.startswith(('backbone1.', 'backbone2.')) for k in state_dict)
    ):
        what = f'hyper_parameters {_list(sorted(hparams), 8) or "none"}'
        if 'model' in hparams or 'backbone' in hparams:
            model = hparams.get('model', hparams.get('backbone'))
            what = f'a single-model checkpoint (model={model!r}); {what}'
        msg = (
            f'{source} is not a DeCUR checkpoint: expected hyper_parameters '
            "model1/model2 and state_dict keys 'backbone1.*'/'backbone2.*'; found "
            f'{what} and state_dict keys {_prefixes(list(state_dict)) or "none"}'
        )
        raise NotDeCURCheckpointError(msg)
    names = list(hparams.get('modalities') or DEFAULT_MODALITY_NAMES)
    if len(names) != 2 or names[0] == names[1]:
        msg = f'{source}: expected two distinct modalities, got {names}'
        raise ValueError(msg)
    # bands and preprocessing as the task recorded them when it saved (older
    # checkpoints: as the modality registry says now)
    record = checkpoint.get('torchgeo_decur') or {}
    recorded = {m['name']: m for m in record.get('modalities') or []}
    state_dicts: dict[str, dict[str, Tensor]] = {}
    modalities: list[dict[str, Any]] = []
    for i, name in enumerate(names, start=1):
        prefix = f'backbone{i}.'
        sub = {
            k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not sub:
            msg = (
                f"{source}: missing backbone keys '{prefix}*' of modality {name!r}; "
                f'found state_dict keys {_prefixes(list(state_dict))}'
            )
            raise ValueError(msg)
        state_dicts[name] = sub
        record = recorded.get(name) or {}
        known = registered_modalities().get(name)
        bands = record.get('bands') or (list(known.bands) if known else None)
        normalisation = record.get('normalisation') or (
            known.description if known else None
        )
        modalities.append(
            {
                'name': name,
                'index': i,
                'model': hparams[f'model{i}'],
                'in_chans': hparams.get(f'in_channels{i}'),
                'model_kwargs': dict(hparams.get(f'model_kwargs{i}') or {}),
                'deformable_attention': any(k.startswith(_DA_PREFIXES) for k in sub),
                'bands': bands,
                'normalisation': normalisation,
            }
        )
    meta = {
        'format': EXPORT_FORMAT,
        'format_version': 1,
        'ssl_method': 'decur',
        'source': source,
        'epoch': checkpoint.get('epoch'),
        'global_step': checkpoint.get('global_step'),
        'modalities': modalities,
    }
    return state_dicts, meta


def _read_published(
    checkpoint: Mapping[str, Any], entry: 'DeCURWeightsEnum', source: str
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Read a published file with its entry's names and channel order.

    Args:
        checkpoint: The loaded file.
        entry: Its entry (see
            :func:`~torchgeo_decur.models.weights.published_entry`).
        source: Name of the file for error messages.

    Returns:
        ``({modality: state_dict}, description)`` as
        :func:`read_decur_checkpoint`; state dicts as stored in the file.

    Raises:
        NotDeCURCheckpointError: If the content does not fit the entry.
    """
    names = list(entry.modalities if entry.is_joint else (entry.meta['modality'],))
    if entry.is_joint:
        state_dicts = split_joint_state_dict(checkpoint, names, source)
    elif _is_tensor_dict(checkpoint):
        state_dicts = {names[0]: _backbone_state_dict(checkpoint)}
    else:
        msg = (
            f'{source} has the name of the published backbone-only file of '
            f'{entry} but holds {_prefixes(list(checkpoint))}, not a state dict'
        )
        raise NotDeCURCheckpointError(msg)
    described = {
        'source': str(entry),
        'modalities': [
            {
                'name': name,
                'bands': entry.meta['modalities'][name].get(
                    'file_bands', entry.meta['modalities'][name]['bands']
                ),
            }
            for name in names
        ],
    }
    return state_dicts, described


def source_bands(meta: Mapping[str, Any] | None, name: str) -> list[str] | None:
    """Channel order of one encoder, from what :func:`read_decur_checkpoint` says.

    Args:
        meta: The metadata returned with the state dicts (or None).
        name: Modality name.

    Returns:
        The band of each input channel stored in the file, or None if unknown.

    .. versionadded:: 0.1
    """
    for spec in (meta or {}).get('modalities') or []:
        if spec.get('name') == name and spec.get('bands'):
            return list(spec['bands'])
    return None


def read_decur_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any] | None]:
    """Read any DeCUR weight file into per-modality timm state dicts.

    Recognised formats (detected from the content, not the file name):

    1. A DeCUR Lightning checkpoint (``hyper_parameters`` with ``model1`` /
       ``model2``, ``state_dict`` keys ``backbone1.*`` / ``backbone2.*``);
       modality names from ``hyper_parameters['modalities']``.
    2. A joint file in the authors' layout (``{'epoch': ..., 'model':
       {'module.backbone_1.<key>': ...}}`` or the bare joint state dict), the
       authors' published files as well as ``<stem>_joint.pth`` written by
       :func:`~torchgeo_decur.export.export_checkpoint`. Modality names come
       from the file's ``meta`` entry (written by the export), else from the
       export's ``<stem>.json`` beside a ``<stem>_joint.pth``, else they are
       ``'modality1'`` / ``'modality2'``.
    3. A plain state dict of one encoder (e.g. ``<stem>_<modality>.pth`` from
       the export); named by ``<stem>.json`` beside it if there is one, else
       ``'modality1'``.
    4. An encoder checkpoint in TorchGeo's layout written by the export
       (``<stem>_<modality>.ckpt``, ``hyper_parameters`` with ``modality``
       and ``ssl_method='decur'``, keys ``model.<key>``).

    A file that carries the name of one of the authors' published files (see
    :func:`~torchgeo_decur.models.weights.published_entry`; also TorchGeo's
    hash-suffixed copies such as ``rn50_ssl4eo-s12_sar_decur_ep100-f0e69ba2.pth``)
    gets that entry's modality names and channel order.

    Files are read with ``torch.load(weights_only=False)``: only read files
    you trust.

    Args:
        path: Path of the file.

    Returns:
        ``({modality: state_dict}, metadata)`` in backbone order; *metadata*
        is the export metadata (the dict the export writes as JSON), a
        description ``{'modalities': [{'name', 'bands'}, ...]}`` of a
        published file or an exported encoder checkpoint (``bands``: the
        channel order stored in the file), or None. See :func:`source_bands`.

    Raises:
        FileNotFoundError: If *path* does not exist.
        NotDeCURCheckpointError: If the file is not in one of these formats
            (e.g. a MoCo or SimCLR checkpoint of TorchGeo).
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    path = Path(path)
    if not path.is_file():
        msg = f'DeCUR checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    source = str(path)
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, Mapping):
        msg = (
            f'{source} is not a DeCUR checkpoint: it holds a '
            f'{type(checkpoint).__name__}, not a dict'
        )
        raise NotDeCURCheckpointError(msg)
    if 'state_dict' in checkpoint and 'hyper_parameters' in checkpoint:
        hparams = checkpoint['hyper_parameters'] or {}
        if hparams.get('ssl_method') == 'decur' and 'modality' in hparams:
            # <stem>_<modality>.ckpt of the export: one encoder, TorchGeo layout
            state_dict = {
                k.removeprefix('model.'): v
                for k, v in checkpoint['state_dict'].items()
                if k.startswith('model.')
            }
            name = hparams['modality']
            bands = hparams.get('bands')
            described = {'modalities': [{'name': name, 'bands': bands}]}
            return {name: state_dict}, described if bands else None
        return parse_decur_lightning_checkpoint(checkpoint, source)
    meta: dict[str, Any] | None = None
    from .weights.registry import published_entry  # the enums read with this module

    published = published_entry(path.name)
    if published is not None:
        return _read_published(checkpoint, published, source)
    if _joint_model(checkpoint) is not None:
        embedded = checkpoint.get('meta')
        if isinstance(embedded, Mapping) and embedded.get('format') == EXPORT_FORMAT:
            meta = dict(embedded)
        else:
            found = _find_sidecar(path)
            meta = found[0] if found and found[1] == 'joint' else None
        names = _meta_names(meta) if meta else list(DEFAULT_MODALITY_NAMES)
        return split_joint_state_dict(checkpoint, names, source), meta
    if _is_tensor_dict(checkpoint):
        state_dict = _backbone_state_dict(checkpoint)
        found = _find_sidecar(path)
        if found and found[1] in _meta_names(found[0]):
            return {cast(str, found[1]): state_dict}, found[0]
        return {DEFAULT_MODALITY_NAMES[0]: state_dict}, None
    hparams = checkpoint.get('hyper_parameters')
    found_what = (
        f'hyper_parameters {_list(sorted(hparams), 8)}'
        if isinstance(hparams, Mapping)
        else f'keys {_prefixes(list(checkpoint))}'
    )
    msg = (
        f'{source} is not a DeCUR checkpoint (Lightning checkpoint of DeCURTask, '
        f'joint file with module.backbone_1/2 keys, or encoder state dict); '
        f'found {found_what}'
    )
    raise NotDeCURCheckpointError(msg)


def select_state_dict(
    state_dicts: Mapping[str, dict[str, Tensor]],
    modality: str | None,
    source: str,
) -> dict[str, Tensor]:
    """Pick one modality's state dict.

    Args:
        state_dicts: ``{modality: state_dict}``.
        modality: Modality name; may be None if there is only one.
        source: Name of the source for error messages.

    Returns:
        The state dict of *modality*.

    Raises:
        ValueError: If *modality* is unknown, or None with several modalities.

    .. versionadded:: 0.1
    """
    valid = ', '.join(state_dicts)
    if modality is None:
        if len(state_dicts) == 1:
            return next(iter(state_dicts.values()))
        msg = f'{source} holds several encoders ({valid}): pass modality=<name>'
        raise ValueError(msg)
    if modality not in state_dicts:
        msg = f'{source} has no modality {modality!r}; valid: {valid}'
        raise ValueError(msg)
    return state_dicts[modality]
