"""The explainability report: every analysis of a checkpoint on a dataset.

:func:`explain` (``torchgeo-decur explain``) loads a DeCUR or baseline
checkpoint and pairs from a data config, runs the analyses of
:mod:`torchgeo_decur.explain` and writes their figures and one
``summary.json`` with the numbers behind them. :func:`alignment_figure` and
:func:`gradcam_figure` make single figures from a loaded task and a batch.

.. versionadded:: 0.1
"""

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..checkpointing import staged_files, writable_folder
from ..modalities import get_modality
from ..models.weights.files import encoder_records
from .alignment import alignment_scores, plot_alignment
from .loading import (
    Pairs,
    branches,
    common_dim_of,
    dimension_groups,
    embed,
    load_pairs,
    load_task,
)
from .saliency import (
    band_importance,
    embedding_statistics,
    gradcam_layer,
    gradcam_maps,
    plot_band_importance,
    plot_gradcam,
    plot_spatial_overlap,
    spatial_overlap,
)
from .tsne import dimension_tsne, plot_tsne

__all__ = (
    'DEFAULT_SAMPLES',
    'FIGURES',
    'SUMMARY',
    'alignment_figure',
    'explain',
    'gradcam_figure',
)

#: The figures :func:`explain` writes, by analysis.
FIGURES = {
    'alignment': 'alignment.png',
    'tsne': 'tsne.png',
    'gradcam': 'gradcam.png',
    'spatial_saliency': 'spatial_saliency.png',
    'band_importance': 'band_importance.png',
}

#: The summary :func:`explain` writes.
SUMMARY = 'summary.json'

#: Pairs :func:`explain` explains by default, by device type: a report in
#: minutes on a laptop's CPU, a steadier alignment histogram on a GPU.
DEFAULT_SAMPLES = {'cuda': 256, 'cpu': 64}


def task_label(task: nn.Module) -> str:
    """A short name of a task's method for legends.

    Args:
        task: A DeCUR or baseline task.

    Returns:
        ``'DeCUR'``, or the baseline's method (``'cross-modal Barlow Twins'``
        for ``barlow_cross``).

    .. versionadded:: 0.1
    """
    hparams = cast(Mapping[str, Any], getattr(task, 'hparams', {}))
    method = hparams.get('method')
    if method is None:
        return 'DeCUR'
    names = {
        'barlow_cross': 'cross-modal Barlow Twins',
        'barlow_single': 'Barlow Twins per modality',
        'clip': 'CLIP',
        'simclr_cross': 'cross-modal SimCLR',
        'vicreg_cross': 'cross-modal VICReg',
        'cross_self': 'Cross+Self',
    }
    return names.get(str(method), str(method))


def _modalities(task: nn.Module) -> list[str]:
    return list(cast(Mapping[str, Any], task.hparams)['modalities'])


def _device_of(task: nn.Module) -> torch.device:
    return next(task.parameters()).device


def alignment_figure(
    task: nn.Module,
    x1: Tensor,
    x2: Tensor,
    compare: nn.Module | None = None,
    batch_size: int | None = None,
    title: str | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """The alignment histogram of a task on preprocessed pairs.

    Args:
        task: A DeCUR or baseline task.
        x1: Modality 1 images ``(N, C1, H, W)``, preprocessed
            (:func:`~torchgeo_decur.explain.prepare_pairs`).
        x2: Modality 2 images ``(N, C2, H, W)``.
        compare: A second task (e.g. the cross-modal Barlow Twins baseline),
            drawn as one distribution over the first.
        batch_size: Average ``C`` over batches of this many pairs; None for
            one batch of all *N*.
        title: Title of the figure.

    Returns:
        ``(figure, numbers)`` with ``numbers`` = ``{'values': [per dim],
        'common_dim', 'mean' per group, 'compare': {...} or None}``.

    .. versionadded:: 0.1
    """
    z1, z2 = embed(task, x1, x2)
    return _alignment(task, z1, z2, compare, x1, x2, batch_size, title)


def _alignment(
    task: nn.Module,
    z1: Tensor,
    z2: Tensor,
    compare: nn.Module | None,
    x1: Tensor,
    x2: Tensor,
    batch_size: int | None,
    title: str | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """:func:`alignment_figure` from embeddings already computed."""
    scores = alignment_scores(z1, z2, batch_size)
    common_dim = common_dim_of(task)
    groups = dimension_groups(len(scores), common_dim)
    numbers: dict[str, Any] = {
        'values': scores.tolist(),
        'common_dim': common_dim,
        'embed_dim': len(scores),
        'batch_size': batch_size,
        'mean': {g: float(scores[s].mean()) for g, s in groups.items()},
        'compare': None,
    }
    other = None
    if compare is not None:
        c1, c2 = embed(compare, x1, x2)
        other = alignment_scores(c1, c2, batch_size)
        numbers['compare'] = {
            'label': task_label(compare),
            'values': other.tolist(),
            'mean': float(other.mean()),
        }
    fig = plot_alignment(
        scores,
        common_dim if common_dim is not None and common_dim < len(scores) else None,
        other,
        labels=(task_label(task), task_label(compare) if compare is not None else ''),
        title=title,
    )
    return fig, numbers


def _layers(task: nn.Module) -> list[str]:
    """The GradCAM layer of each encoder; raises for transformers."""
    return [gradcam_layer(backbone)[0] for backbone, _ in branches(task)]


def gradcam_figure(
    task: nn.Module,
    x1: Tensor,
    x2: Tensor,
    max_samples: int = 4,
    stats_from: tuple[Tensor, Tensor] | None = None,
    sample_names: Sequence[str] | None = None,
    title: str | None = None,
    signed: bool = True,
) -> tuple[Figure, dict[str, Any]]:
    """GradCAM of both encoders for the first pairs of a batch.

    The targets are the mean of the common and of the unique dimensions
    (all dimensions for a baseline) of the projector output, normalised with
    the statistics of *stats_from* (default: the whole batch *x1*, *x2*).

    Args:
        task: A DeCUR or baseline task with convolutional encoders.
        x1: Modality 1 images ``(N, C1, H, W)``, preprocessed, N >= 2.
        x2: Modality 2 images ``(N, C2, H, W)``.
        max_samples: Pairs shown (the first ones).
        stats_from: ``(x1, x2)`` whose embedding statistics normalise the
            targets; None for *x1*, *x2*.
        sample_names: Row labels.
        title: Title of the figure.
        signed: Signed maps in a diverging colour map (the sign of an
            embedding dimension is arbitrary, see
            :mod:`~torchgeo_decur.explain.saliency`); False for GradCAM's
            ReLU.

    Returns:
        ``(figure, numbers)``, ``numbers`` with the ``layers`` used and the
        ``overlap`` (:func:`~torchgeo_decur.explain.spatial_overlap`) of each
        group for the pairs shown.

    Raises:
        ValueError: If an encoder is not convolutional (ViT, MiT).

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       Signed maps by default (*signed*).
    """
    layers = _layers(task)
    source = stats_from if stats_from is not None else (x1, x2)
    device = _device_of(task)
    groups = dimension_groups(_embed_dim(task), common_dim_of(task))
    shown = [x[:max_samples].to(device) for x in (x1, x2)]
    maps = []
    for (backbone, projector), x, s in zip(branches(task), shown, source, strict=True):
        stats = embedding_statistics(backbone, projector, s.to(device))
        maps.append(
            gradcam_maps(backbone, projector, x, groups, stats, relu=not signed)
        )
    fig = plot_gradcam(
        shown[0].cpu(),
        shown[1].cpu(),
        {g: m.cpu() for g, m in maps[0].items()},
        {g: m.cpu() for g, m in maps[1].items()},
        _modalities(task),
        max_samples,
        sample_names,
        title=title,
        signed=signed,
    )
    numbers = {
        'layers': dict(zip(_modalities(task), layers, strict=True)),
        'overlap': {
            g: spatial_overlap(maps[0][g], maps[1][g]).tolist() for g in groups
        },
    }
    return fig, numbers


def _embed_dim(task: nn.Module) -> int:
    dims = cast(Mapping[str, Any], task.hparams)['projector_dims']
    return int(list(dims)[-1])


def _stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    return {
        'values': [None if not np.isfinite(v) else float(v) for v in values],
        'mean': float(finite.mean()) if finite.size else None,
        'std': float(finite.std()) if finite.size else None,
        'empty_maps': int((~np.isfinite(values)).sum()),
    }


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace an earlier report unless asked to."""
    if out.exists() and not out.is_dir():
        msg = f'--out {out} exists and is not a folder'
        raise FileExistsError(msg)
    writable_folder(out)
    existing = [
        str(out / name)
        for name in [*FIGURES.values(), SUMMARY]
        if (out / name).exists()
    ]
    if existing and not overwrite:
        msg = (
            f'refusing to overwrite the results in {out} ({", ".join(existing[:3])}'
            f'{", ..." if len(existing) > 3 else ""}); pass overwrite=True '
            '(--overwrite) to replace them'
        )
        raise FileExistsError(msg)


def _check_arguments(
    out: Path, config: Path, overwrite: bool, batch_size: int, ig_steps: int
) -> None:
    """Check the output folder, the data config and the numbers of a report.

    Raises:
        FileExistsError: If *out* holds a report and *overwrite* is False.
        PermissionError: If *out* cannot be written to.
        FileNotFoundError: If *config* does not exist.
        ValueError: If *batch_size* is below 2 or *ig_steps* below 1.
    """
    if batch_size < 2:
        msg = f'batch_size must be >= 2, got {batch_size}'
        raise ValueError(msg)
    if ig_steps < 1:
        msg = f'ig_steps (steps of Integrated Gradients) must be >= 1, got {ig_steps}'
        raise ValueError(msg)
    if not config.is_file():
        msg = f'data config not found: {config}'
        raise FileNotFoundError(msg)
    _check_out(out, overwrite)


def _write(out: Path, figures: dict[str, Figure], summary: dict[str, Any]) -> None:
    """Write the figures and the summary of a report into *out*."""
    targets = [out / FIGURES[key] for key in figures]
    with staged_files([*targets, out / SUMMARY]) as temporary:
        for target, fig in zip(targets, figures.values(), strict=True):
            fig.savefig(temporary[target], format=target.suffix[1:])
        temporary[out / SUMMARY].write_text(json.dumps(summary, indent=2) + '\n')


def _inputs(
    checkpoint: str | os.PathLike[str],
    compare: str | os.PathLike[str] | None,
    config: Path,
    task: nn.Module,
    names: list[str],
) -> dict[str, Any]:
    """The summary's entries on what was explained."""
    return {
        'checkpoint': str(checkpoint),
        'method': task_label(task),
        'compare': None if compare is None else str(compare),
        'config': str(config),
        'data': _data_section(config),
        'modalities': names,
        'bands': {name: list(get_modality(name).bands) for name in names},
    }


def _data_section(config: Path) -> Any:
    content = yaml.safe_load(config.read_text())
    return content.get('data') if isinstance(content, Mapping) else None


def _load_tasks(
    checkpoint: str | os.PathLike[str],
    compare: str | os.PathLike[str] | None,
    device: str | torch.device,
    trust: bool,
) -> tuple[nn.Module, nn.Module | None]:
    """The task to explain and the one to compare with, of the same inputs.

    Raises:
        ValueError: If the two take different inputs.
    """
    task = load_task(checkpoint, trust_checkpoint=trust).to(device)
    if compare is None:
        return task, None
    other = load_task(compare, trust_checkpoint=trust).to(device)
    mine, theirs = encoder_records(task.hparams), encoder_records(other.hparams)
    for a, b in zip(mine, theirs, strict=False):
        if a['in_chans'] != b['in_chans']:
            msg = (
                f'{compare} takes in_channels{a["index"]}={b["in_chans"]}, '
                f'{checkpoint} takes {a["in_chans"]}: compare checkpoints of the '
                'same modalities'
            )
            raise ValueError(msg)
    return task, other


@contextmanager
def _counting(modules: Sequence[nn.Module], bar: tqdm) -> Iterator[None]:
    """Move *bar* by the batch size of every forward pass through *modules*.

    The projectors see every image GradCAM and Integrated Gradients run
    (each of IG's internal batches of scaled inputs), so the bar moves with
    the work, not once per batch of pairs.
    """

    def count(module: nn.Module, args: Any, output: Tensor) -> None:
        bar.update(len(output))

    handles = [module.register_forward_hook(count) for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _attribute(
    task: nn.Module,
    pairs: Pairs,
    embeddings: tuple[Tensor, Tensor],
    groups: dict[str, slice],
    batch_size: int,
    ig_steps: int,
    progress: bool,
) -> tuple[
    list[dict[str, Tensor]], dict[str, np.ndarray], dict[str, dict[str, Tensor]]
]:
    """GradCAM maps and Integrated Gradients of every pair, batch by batch.

    The attribution targets are normalised with the statistics of the
    *embeddings* (projector outputs) over all pairs.

    Returns:
        The maps of the first batch per modality and group, the cross-modal
        overlap of the maps of every pair per group, and the share of each
        band in the importance per modality and group.
    """
    device = next(task.parameters()).device
    z = embeddings
    stats = [
        (v.mean(0).to(device), (v.var(0, False) + 1e-5).sqrt().to(device)) for v in z
    ]
    inputs, names = (pairs.x1, pairs.x2), _modalities(task)
    first: list[dict[str, Tensor]] = [{}, {}]
    overlap: dict[str, list[Tensor]] = {g: [] for g in groups}
    totals = [
        {g: torch.zeros(x.shape[1], dtype=torch.float64) for g in groups}
        for x in inputs
    ]
    n = len(pairs.x1)
    bar = tqdm(
        total=2 * len(groups) * n * (1 + ig_steps),
        desc='GradCAM and Integrated Gradients',
        unit='img',
        disable=not progress,
    )
    projectors = [projector for _, projector in branches(task)]
    with bar, _counting(projectors, bar):
        for start in range(0, n, batch_size):
            maps = []
            for m, ((encoder, projector), x) in enumerate(
                zip(branches(task), inputs, strict=True)
            ):
                chunk = x[start : start + batch_size].to(device)
                maps.append(
                    gradcam_maps(
                        encoder, projector, chunk, groups, stats[m], relu=False
                    )
                )
                bands = band_importance(
                    encoder,
                    projector,
                    chunk,
                    groups,
                    stats[m],
                    ig_steps,
                    normalize=False,
                )
                for g in groups:
                    totals[m][g] += bands[g].double() * len(chunk)
                first[m] = first[m] or {g: v.cpu() for g, v in maps[m].items()}
            for g in groups:
                overlap[g].append(spatial_overlap(maps[0][g], maps[1][g]).cpu())
    shares = {
        name: {
            g: (t / t.sum() if t.sum() > 0 else t).float() for g, t in per_group.items()
        }
        for name, per_group in zip(names, totals, strict=True)
    }
    return first, {g: torch.cat(v).numpy() for g, v in overlap.items()}, shares


def _numbers(
    names: list[str],
    tsne: Any,
    layers: list[str],
    shown: list[int],
    overlaps: dict[str, np.ndarray],
    shares: dict[str, dict[str, Tensor]],
    ig_steps: int,
) -> dict[str, Any]:
    """The numbers behind the t-SNE, GradCAM, overlap and band figures."""
    return {
        'tsne': {
            'perplexity': tsne.perplexity,
            'coords': {
                names[0]: tsne.coords1.tolist(),
                names[1]: tsne.coords2.tolist(),
            },
        },
        'gradcam': {'layers': dict(zip(names, layers, strict=True)), 'shown': shown},
        'spatial_saliency': {
            'measure': 'cosine similarity of the magnitudes of the two '
            "modalities' signed GradCAM maps",
            **{g: _stats(v) for g, v in overlaps.items()},
        },
        'band_importance': {
            'method': f'Integrated Gradients, zero baseline, {ig_steps} steps; '
            'mean |attribution| over pixels and pairs, normalised to sum 1',
            **{m: {g: v.tolist() for g, v in per.items()} for m, per in shares.items()},
        },
    }


def _attribution_figures(
    x1: Tensor,
    x2: Tensor,
    maps: list[dict[str, Tensor]],
    overlaps: dict[str, np.ndarray],
    shares: dict[str, dict[str, Tensor]],
    indices: list[int],
) -> dict[str, Figure]:
    """The GradCAM, overlap and band-importance figures of a report.

    Args:
        x1: The pairs shown, modality 1.
        x2: The pairs shown, modality 2.
        maps: GradCAM maps of (at least) the pairs shown, per modality and group.
        overlaps: Cross-modal overlap of every pair's maps, per group.
        shares: Band importance, per modality and group.
        indices: Dataset index of each pair shown.

    Returns:
        The figures, by analysis.
    """
    k, names = len(x1), list(shares)
    shown = [{g: v[:k] for g, v in per_group.items()} for per_group in maps]
    labels = [f'#{i}' for i in indices]
    bands = {name: list(get_modality(name).bands) for name in names}
    return {
        'gradcam': plot_gradcam(x1, x2, *shown, names, k, labels),
        'spatial_saliency': plot_spatial_overlap(overlaps, names),
        'band_importance': plot_band_importance(shares, bands),
    }


def explain(
    checkpoint: str | os.PathLike[str],
    data_config: str | os.PathLike[str],
    out: str | os.PathLike[str],
    samples: int | None = None,
    compare: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
    ig_steps: int = 32,
    gradcam_samples: int = 4,
    perplexity: float = 30.0,
    progress: bool = True,
    trust_checkpoint: bool = False,
) -> dict[str, Any]:
    """Explain a DeCUR (or baseline) checkpoint on a dataset.

    Writes to *out* the figures of ``FIGURES`` (alignment histogram,
    t-SNE of the embedding dimensions, GradCAM, its cross-modal overlap, band
    importance) and ``SUMMARY`` with the numbers behind them.

    Args:
        checkpoint: Lightning checkpoint of
            :class:`~torchgeo_decur.tasks.DeCURTask` or
            :class:`~torchgeo_decur.tasks.MultimodalSSLTask`.
        data_config: LightningCLI YAML whose ``data:`` section gives the pairs.
        out: Output folder, created if needed.
        samples: Number of pairs (all, with a warning, if the data hold
            fewer); None for the device's ``DEFAULT_SAMPLES``: 256 on a GPU,
            64 on the CPU.
        compare: A second checkpoint for the alignment histogram (e.g. the
            cross-modal Barlow Twins baseline), of the same modalities.
        overwrite: Whether to replace an earlier report in *out*.
        batch_size: Pairs per batch, also the batch over which the
            cross-correlation of the alignment histogram is computed.
        seed: Seed of the choice of pairs and of the t-SNE.
        device: Where to compute; the GPU if there is one by default.
        ig_steps: Steps of Integrated Gradients.
        gradcam_samples: Pairs shown in the GradCAM figure.
        perplexity: Perplexity of the t-SNE.
        progress: Whether to show a progress bar.
        trust_checkpoint: Unpickle checkpoints that need more than plain
            types, which runs any code they carry (only for files you trust).

    Returns:
        The summary, as written to ``SUMMARY``.

    Raises:
        FileNotFoundError: If a checkpoint or the data config does not exist.
        FileExistsError: If *out* holds a report and *overwrite* is False.
        PermissionError: If *out* cannot be written to (before any work).
        ValueError: If a checkpoint is not DeCUR's or a baseline's, the inputs
            of the checkpoints or data differ, or an encoder is not a CNN.

    .. versionadded:: 0.1
    """
    folder, config = Path(out), Path(data_config)
    _check_arguments(folder, config, overwrite, batch_size, ig_steps)
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    samples = DEFAULT_SAMPLES.get(device.type, 64) if samples is None else samples
    task, other = _load_tasks(checkpoint, compare, device, trust_checkpoint)
    layers = _layers(task)
    pairs = load_pairs(config, task, samples, batch_size, seed, device)
    n, names = len(pairs.x1), _modalities(task)
    common_dim, embed_dim = common_dim_of(task), _embed_dim(task)
    groups = dimension_groups(embed_dim, common_dim)
    x1, x2 = pairs.x1, pairs.x2
    z1, z2 = embed(task, x1, x2, batch_size)
    fig_align, align = _alignment(task, z1, z2, other, x1, x2, min(batch_size, n))
    if other is not None:
        align['compare']['checkpoint'] = str(compare)
    tsne = dimension_tsne(z1, z2, perplexity, seed)
    split = common_dim if common_dim is not None and common_dim < embed_dim else None
    first, overlaps, shares = _attribute(
        task, pairs, (z1, z2), groups, batch_size, ig_steps, progress
    )
    k = min(gradcam_samples, n)
    figures = {
        'alignment': fig_align,
        'tsne': plot_tsne(tsne, split, names),
        **_attribution_figures(
            x1[:k], x2[:k], first, overlaps, shares, pairs.indices[:k]
        ),
    }
    summary: dict[str, Any] = {
        **_inputs(checkpoint, compare, config, task, names),
        'samples': n,
        'samples_requested': pairs.requested,
        'indices': pairs.indices,
        'seed': seed,
        'batch_size': batch_size,
        'embed_dim': embed_dim,
        'common_dim': common_dim,
        'alignment': align,
        **_numbers(names, tsne, layers, pairs.indices[:k], overlaps, shares, ig_steps),
        'figures': dict(FIGURES),
    }
    _write(folder, figures, summary)
    return summary
