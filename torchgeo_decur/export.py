"""Export the encoders of a DeCUR pretraining checkpoint.

:func:`export_checkpoint` writes files that need neither Lightning nor this
package: a timm state dict per modality (``<stem>_<modality>.pth``), all
encoders in the authors' joint layout (``<stem>_joint.pth``), their
description (``<stem>.json``: model, ``in_chans``, ``model_kwargs``,
deformable attention, bands, normalisation) and optionally one checkpoint per
encoder in TorchGeo's layout (``<stem>_<modality>.ckpt``).
:func:`torchgeo_decur.models.read_decur_checkpoint` reads all of them.

.. versionadded:: 0.1
"""

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import __version__
from .checkpointing import staged_files, writable_folder
from .guards import nonfinite_tensors
from .models.encoders import create_encoder, state_dict_mismatches
from .models.weights.files import authors_state_dict, parse_decur_lightning_checkpoint
from .trust import load_file

__all__ = ('export_checkpoint',)

StateDicts = dict[str, dict[str, Tensor]]


def _paths(
    out: str | os.PathLike[str], stem: str, names: list[str], torchgeo: bool
) -> dict[str, Path]:
    """The files :func:`export_checkpoint` writes, by modality and kind."""
    folder = Path(out)
    paths = {name: folder / f'{stem}_{name}.pth' for name in names}
    paths['joint'] = folder / f'{stem}_joint.pth'
    paths['metadata'] = folder / f'{stem}.json'
    for name in names if torchgeo else ():
        paths[f'{name}_ckpt'] = folder / f'{stem}_{name}.ckpt'
    return paths


def _fit_problem(state_dict: dict[str, Tensor], spec: dict[str, Any]) -> str:
    """What keeps an encoder from loading into its model (built on the meta device).

    Models whose construction reads tensor values (smp's MiT takes its drop
    path rates from ``torch.linspace(...).item()``) are built on the CPU.
    """
    args = (spec['model'], spec['in_chans'])
    kwargs = {
        'deformable_attention': spec['deformable_attention'],
        **spec['model_kwargs'],
    }
    try:
        with torch.device('meta'):
            model = create_encoder(*args, **kwargs)
    except (RuntimeError, NotImplementedError):
        model = create_encoder(*args, **kwargs)
    problems = '; '.join(state_dict_mismatches(model.state_dict(), state_dict))
    what = f'{spec["model"]!r} (in_chans={spec["in_chans"]}, {spec["model_kwargs"]})'
    return f'does not fit the timm model {what}: {problems}' if problems else ''


def _check(state_dicts: StateDicts, meta: dict[str, Any], torchgeo: bool) -> None:
    """Check every encoder before anything is written.

    Raises:
        ValueError: Naming the source and the modality that cannot be exported.
    """
    for spec in meta['modalities']:
        state_dict, problem = state_dicts[spec['name']], ''
        mangled = [k for k in state_dict if 'model.' in k]
        nonfinite = nonfinite_tensors(state_dict)
        if nonfinite:
            problem = (
                f'holds NaN or inf in {len(nonfinite)} tensors '
                f'({", ".join(nonfinite[:3])}): the run diverged; export an '
                'earlier checkpoint'
            )
        elif torchgeo and mangled:
            problem = (
                f"has keys TorchGeo's extract_backbone would mangle "
                f'({", ".join(mangled[:5])}); export without torchgeo_checkpoints'
            )
        elif torchgeo and spec['deformable_attention']:
            problem = (
                "has deformable attention: TorchGeo's tasks build plain timm models "
                'and would silently drop the deformable-attention blocks; export '
                'without torchgeo_checkpoints'
            )
        elif spec['in_chans'] is None:
            problem = (
                f'has no input channels in the hyper_parameters (encoders'
                f"['{spec['name']}'].in_channels, in_channels{spec['index']} "
                'before 0.2)'
            )
        else:
            problem = _fit_problem(state_dict, spec)
        if problem:
            msg = (
                f'{meta["source"]}: the backbone of modality {spec["name"]!r} {problem}'
            )
            raise ValueError(msg)


def _torchgeo_checkpoint(
    spec: dict[str, Any], state_dict: dict[str, Tensor]
) -> dict[str, Any]:
    """One encoder in the layout TorchGeo's tasks read from a path."""
    keys = ('model', 'model_kwargs', 'bands')
    hparams = {k: spec[k] for k in keys} | {'in_channels': spec['in_chans']}
    hparams |= {'modality': spec['name'], 'ssl_method': 'decur'}
    state_dict = {f'model.{k}': v for k, v in state_dict.items()}
    return {'hyper_parameters': hparams, 'state_dict': state_dict}


def _describe(meta: dict[str, Any], source: Path, paths: dict[str, Path]) -> Any:
    """The metadata with the file names, as plain JSON types."""
    meta |= {'source': source.name, 'torchgeo_decur_version': __version__}
    for spec in meta['modalities']:
        spec['file'] = paths[spec['name']].name
        if f'{spec["name"]}_ckpt' in paths:
            spec['torchgeo_checkpoint'] = paths[f'{spec["name"]}_ckpt'].name
    meta['joint'] = {
        'file': paths['joint'].name,
        'layout': "{'epoch': int, 'model': {'module.backbone_<index>.<timm key>': "
        "tensor, 'module.da<index>_l<3|4>.<key>': tensor}, 'meta': <this metadata>}",
    }
    # the metadata in the joint file equals the JSON file and holds only
    # types that torch.load(weights_only=True) accepts
    return json.loads(json.dumps(meta, default=str))


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    overwrite: bool = False,
    stem: str | None = None,
    torchgeo_checkpoints: bool = False,
    trust_checkpoint: bool = False,
) -> dict[str, Path]:
    """Export the encoders of a DeCUR Lightning checkpoint.

    Writes the files of :mod:`torchgeo_decur.export`, nothing unless all
    checks pass.

    Args:
        checkpoint: Lightning checkpoint (``.ckpt``) of
            :class:`~torchgeo_decur.tasks.DeCURTask` (or another
            self-supervised task of this package), read without running code
            (:func:`torchgeo_decur.trust.load_file`).
        out: Output folder, created if needed.
        overwrite: Whether to replace existing files.
        stem: Common stem of the file names; the checkpoint's by default.
        torchgeo_checkpoints: Also write ``<stem>_<modality>.ckpt``, one
            encoder each in the layout TorchGeo's tasks read from a path
            (``hyper_parameters['model']``, keys ``model.<timm key>``), so
            that e.g. ``Classification(weights='<stem>_s1.ckpt')`` loads it.
        trust_checkpoint: Unpickle a checkpoint that needs more than plain
            types, which runs any code it carries (only for files you trust);
            the exported files hold plain types only.

    Returns:
        ``{modality: path, ..., 'joint': path, 'metadata': path}``, and
        ``'<modality>_ckpt': path`` with *torchgeo_checkpoints*.

    Raises:
        FileNotFoundError: If *checkpoint* does not exist.
        FileExistsError: If an output file exists and *overwrite* is False
            (before anything is written; names the files).
        ValueError: If the checkpoint is not one of a DeCUR task (e.g. of
            TorchGeo's MoCo), or an encoder does not fit its timm model.

    .. versionadded:: 0.1
    """
    path = Path(checkpoint)
    if not path.is_file():
        msg = f'checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    writable_folder(out)
    loaded = load_file(path, trust=trust_checkpoint)
    if not isinstance(loaded, dict) or 'state_dict' not in loaded:
        found = sorted(loaded)[:8] if isinstance(loaded, dict) else type(loaded)
        msg = (
            f'{path} is not a DeCUR Lightning checkpoint (no state_dict); found {found}'
        )
        raise ValueError(msg)
    state_dicts, meta = parse_decur_lightning_checkpoint(loaded, str(path))
    _check(state_dicts, meta, torchgeo_checkpoints)
    paths = _paths(out, stem or path.stem, list(state_dicts), torchgeo_checkpoints)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        msg = (
            f'refusing to overwrite {", ".join(existing)}; '
            'pass overwrite=True (--overwrite) to replace them'
        )
        raise FileExistsError(msg)
    meta = _describe(meta, path, paths)
    copies = {
        name: {k: v.detach().clone() for k, v in state_dict.items()}
        for name, state_dict in state_dicts.items()
    }
    with staged_files(paths.values()) as temporary:
        for spec in meta['modalities']:
            torch.save(copies[spec['name']], temporary[paths[spec['name']]])
            if torchgeo_checkpoints:
                ckpt = _torchgeo_checkpoint(spec, copies[spec['name']])
                ckpt['epoch'] = meta['epoch']
                torch.save(ckpt, temporary[paths[f'{spec["name"]}_ckpt']])
        joint = {'epoch': meta['epoch'], 'model': authors_state_dict(copies)}
        torch.save(joint | {'meta': meta}, temporary[paths['joint']])
        temporary[paths['metadata']].write_text(json.dumps(meta, indent=2) + '\n')
    return paths
