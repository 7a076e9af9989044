"""Export the encoders of a DeCUR pretraining checkpoint.

:func:`export_checkpoint` turns a Lightning checkpoint of
:class:`~torchgeo_decur.tasks.DeCURTask` into files that need neither
Lightning nor this package to be used:

``<out>/<stem>_<modality>.pth``
    One plain state dict per modality, loadable with ``strict=True`` by
    ``timm.create_model(model, in_chans=in_chans, num_classes=0,
    **model_kwargs)`` (keys as timm names them; for ResNets equal to
    torchvision's), wrapped in
    :func:`~torchgeo_decur.models.deformable.add_deformable_attention` for
    encoders with deformable attention (keys ``da_l3.*``, ``da_l4.*``).
``<out>/<stem>_joint.pth``
    Both encoders in the layout of the DeCUR authors' published files,
    ``{'epoch': int, 'model': {'module.backbone_1.<key>': tensor,
    'module.backbone_2.<key>': tensor}, 'meta': metadata}`` (and
    ``module.da<i>_l3.*`` / ``module.da<i>_l4.*`` for deformable attention),
    so that the authors' code and
    :class:`~torchgeo_decur.models.DeCURWeightsEnum` loaders read it like
    theirs (``meta`` is an extra entry they ignore).
``<out>/<stem>.json``
    The metadata: for each modality, in backbone order, its name, timm model,
    ``in_chans``, ``model_kwargs``, ``deformable_attention``, band names and
    normalisation.
``<out>/<stem>_<modality>.ckpt`` (optional, ``torchgeo_checkpoints=True``)
    One encoder in the layout TorchGeo's tasks read from a path,
    ``{'hyper_parameters': {'model': ..., 'in_channels': ..., 'modality': ...,
    'bands': ..., 'ssl_method': 'decur'}, 'state_dict': {'model.<timm key>':
    tensor}}``.

All three are read by :func:`torchgeo_decur.models.load_decur_state_dicts` and
:func:`torchgeo_decur.models.create_encoder`.
"""

import json
import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor

from . import __version__
from .models.checkpoints import (
    _DA_PREFIXES,
    parse_decur_lightning_checkpoint,
    state_dict_mismatches,
)
from .models.deformable import add_deformable_attention

__all__ = ('export_checkpoint', 'export_paths')


def export_paths(
    out: str | os.PathLike[str],
    stem: str,
    modalities: list[str],
    torchgeo_checkpoints: bool = False,
) -> dict[str, Path]:
    """Paths of the files :func:`export_checkpoint` writes.

    Args:
        out: Output folder.
        stem: Common file name stem.
        modalities: Modality names in backbone order.
        torchgeo_checkpoints: Whether to include the TorchGeo-style
            checkpoints ``<stem>_<modality>.ckpt``.

    Returns:
        ``{modality: path, ..., 'joint': path, 'metadata': path}``, plus
        ``'<modality>_ckpt': path`` for each modality with
        *torchgeo_checkpoints*.

    .. versionadded:: 0.1
    """
    folder = Path(out)
    paths = {name: folder / f'{stem}_{name}.pth' for name in modalities}
    paths['joint'] = folder / f'{stem}_joint.pth'
    paths['metadata'] = folder / f'{stem}.json'
    if torchgeo_checkpoints:
        for name in modalities:
            paths[f'{name}_ckpt'] = folder / f'{stem}_{name}.ckpt'
    return paths


def _check_fits_timm(
    state_dict: dict[str, Tensor], spec: dict[str, Any], source: str
) -> None:
    """Check that *state_dict* fits the timm model *spec* describes.

    The model is built on the meta device, so this costs no memory.

    Raises:
        ValueError: If keys are missing or unexpected, or shapes differ.
    """
    with torch.device('meta'):
        model = timm.create_model(
            spec['model'],
            in_chans=spec['in_chans'],
            num_classes=0,
            **spec['model_kwargs'],
        )
        if spec.get('deformable_attention'):
            model = add_deformable_attention(model)
    problems = state_dict_mismatches(model.state_dict(), state_dict)
    if problems:
        wrapped = (
            'add_deformable_attention(' if spec.get('deformable_attention') else ''
        )
        msg = (
            f'{source}: the backbone of modality {spec["name"]!r} does not fit '
            f'{wrapped}timm.create_model({spec["model"]!r}, '
            f'in_chans={spec["in_chans"]}, num_classes=0, **{spec["model_kwargs"]})'
            f'{")" if wrapped else ""}; {"; ".join(problems)}'
        )
        raise ValueError(msg)


def _authors_keys(state_dict: dict[str, Tensor], index: int) -> dict[str, Tensor]:
    """One encoder's keys in the authors' joint layout.

    Backbone keys become ``module.backbone_<index>.<key>``, deformable
    attention ``da_l3.*`` / ``da_l4.*`` becomes ``module.da<index>_l3.*`` /
    ``module.da<index>_l4.*``, as in the authors' ``rn50_rda_*`` files.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith(_DA_PREFIXES):
            out[f'module.da{index}_{key.removeprefix("da_")}'] = value
        else:
            out[f'module.backbone_{index}.{key}'] = value
    return out


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    overwrite: bool = False,
    stem: str | None = None,
    torchgeo_checkpoints: bool = False,
) -> dict[str, Path]:
    """Export the encoders of a DeCUR Lightning checkpoint.

    Writes ``<out>/<stem>_<modality>.pth`` for each modality,
    ``<out>/<stem>_joint.pth`` and ``<out>/<stem>.json`` (see
    :mod:`torchgeo_decur.export` for the formats). Nothing is written unless
    all checks pass.

    Args:
        checkpoint: Lightning checkpoint (``.ckpt``) of
            :class:`~torchgeo_decur.tasks.DeCURTask`. It is read with
            ``torch.load(weights_only=False)``: only export files you trust.
        out: Output folder, created if needed.
        overwrite: Whether to replace existing files.
        stem: Common stem of the file names; the checkpoint's file stem by
            default.
        torchgeo_checkpoints: Also write ``<stem>_<modality>.ckpt``, one
            encoder each in the layout that TorchGeo's tasks read from a path
            (``utils.extract_backbone``: ``hyper_parameters['model']`` and
            ``state_dict`` keys ``model.<timm key>``), so that e.g.
            ``Classification(weights='<stem>_s1.ckpt')`` loads the encoder.

    Returns:
        ``{modality: path, ..., 'joint': path, 'metadata': path}``, plus
        ``'<modality>_ckpt': path`` with *torchgeo_checkpoints*.

    Raises:
        FileNotFoundError: If *checkpoint* does not exist.
        FileExistsError: If an output file exists and *overwrite* is False
            (raised before anything is written; names the files).
        ValueError: If the checkpoint is not a DeCUR checkpoint (e.g. one of
            TorchGeo's MoCo or SimCLR tasks), or backbone keys are missing or
            do not fit the timm models its hyperparameters name.

    .. versionadded:: 0.1
    """
    path = Path(checkpoint)
    if not path.is_file():
        msg = f'checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    loaded = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(loaded, dict) or 'state_dict' not in loaded:
        found = sorted(loaded)[:8] if isinstance(loaded, dict) else type(loaded)
        msg = (
            f'{path} is not a DeCUR Lightning checkpoint (no state_dict); found {found}'
        )
        raise ValueError(msg)
    state_dicts, meta = parse_decur_lightning_checkpoint(loaded, str(path))
    for spec in meta['modalities']:
        mangled = [k for k in state_dicts[spec['name']] if 'model.' in k]
        if torchgeo_checkpoints and mangled:
            msg = (
                f"{path}: TorchGeo's extract_backbone would mangle the keys "
                f'{", ".join(mangled[:5])}; export without torchgeo_checkpoints'
            )
            raise ValueError(msg)
        if torchgeo_checkpoints and spec['deformable_attention']:
            msg = (
                f"{path}: TorchGeo's tasks build plain timm models and would "
                'silently drop the deformable-attention blocks of modality '
                f'{spec["name"]!r}; export without torchgeo_checkpoints'
            )
            raise ValueError(msg)
        if spec['in_chans'] is None:
            msg = f'{path}: hyper_parameters lack in_channels{spec["index"]}'
            raise ValueError(msg)
        _check_fits_timm(state_dicts[spec['name']], spec, str(path))

    stem = stem or path.stem
    paths = export_paths(out, stem, list(state_dicts), torchgeo_checkpoints)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        msg = (
            f'refusing to overwrite {", ".join(existing)}; '
            'pass overwrite=True (--overwrite) to replace them'
        )
        raise FileExistsError(msg)

    meta['source'] = path.name
    meta['torchgeo_decur_version'] = __version__
    for spec in meta['modalities']:
        spec['file'] = paths[spec['name']].name
        if torchgeo_checkpoints:
            spec['torchgeo_checkpoint'] = paths[f'{spec["name"]}_ckpt'].name
    meta['joint'] = {
        'file': paths['joint'].name,
        'layout': "{'epoch': int, 'model': {'module.backbone_<index>.<timm key>': "
        "tensor, 'module.da<index>_l<3|4>.<key>': tensor}, 'meta': <this metadata>}",
    }
    # JSON round trip: the metadata in the joint file equals the JSON file and
    # holds only types that torch.load(weights_only=True) accepts
    meta = json.loads(json.dumps(meta, default=str))

    paths['metadata'].parent.mkdir(parents=True, exist_ok=True)
    joint: dict[str, Tensor] = {}
    for spec in meta['modalities']:
        state_dict = {
            k: v.detach().clone() for k, v in state_dicts[spec['name']].items()
        }
        torch.save(state_dict, paths[spec['name']])
        if torchgeo_checkpoints:
            hparams = {
                'model': spec['model'],
                'in_channels': spec['in_chans'],
                'model_kwargs': spec['model_kwargs'],
                'modality': spec['name'],
                'bands': spec['bands'],
                'ssl_method': 'decur',
            }
            torch.save(
                {
                    'epoch': meta['epoch'],
                    'hyper_parameters': hparams,
                    'state_dict': {f'model.{k}': v for k, v in state_dict.items()},
                },
                paths[f'{spec["name"]}_ckpt'],
            )
        joint.update(_authors_keys(state_dict, spec['index']))
    torch.save({'epoch': meta['epoch'], 'model': joint, 'meta': meta}, paths['joint'])
    paths['metadata'].write_text(json.dumps(meta, indent=2) + '\n')
    return paths
