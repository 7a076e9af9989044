r"""Cross-modal alignment of each embedding dimension (DeCUR, Eq. 7).

With the projector outputs of both modalities normalised along the batch
(zero mean, unit variance, as in :class:`~torchgeo_decur.losses.DeCURLoss`),
``C = Z_1^T Z_2 / N`` is the cross-modal correlation matrix and
:math:`(1 - C_{ii})^2` says how far dimension *i* is from being shared by the
modalities: near 0 for a common dimension that DeCUR aligned, near 1 for a
unique dimension it decorrelated. :func:`alignment_scores` computes it per
dimension (with ``C`` averaged over batches) and :func:`plot_alignment`
draws the histogram of the paper's figure, common and unique dimensions
apart, optionally over a second model's (e.g. the cross-modal Barlow Twins
baseline, one distribution).

.. versionadded:: 0.1
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ('alignment_scores', 'cross_modal_diagonal', 'plot_alignment')

#: Colours of the common and unique dimensions in every figure.
COLOURS = {'common': '#1f77b4', 'unique': '#ff7f0e', 'all': '#7f7f7f'}


def _chunks(n: int, batch_size: int | None) -> list[slice]:
    """Batches of at least 2 samples covering ``range(n)``."""
    if batch_size is None or batch_size >= n:
        return [slice(0, n)]
    starts = list(range(0, n, batch_size))
    if n - starts[-1] < 2:
        starts.pop()  # a last batch of one sample joins the one before
    ends = [*starts[1:], n]
    return [slice(a, b) for a, b in zip(starts, ends, strict=True)]


def cross_modal_diagonal(
    z1: Tensor, z2: Tensor, batch_size: int | None = None, eps: float = 1e-5
) -> Tensor:
    """Diagonal of the cross-modal correlation matrix of batch-normalised embeddings.

    Args:
        z1: Modality 1 embeddings ``(N, K)``.
        z2: Modality 2 embeddings ``(N, K)``.
        batch_size: Compute ``C`` per batch of this many samples and average
            it (weighted by batch size); None for one batch of all *N*.
        eps: Added to the variance, as in ``nn.BatchNorm1d``.

    Returns:
        ``C_ii`` for each dimension, ``(K,)`` float32.

    Raises:
        ValueError: If the shapes differ or are not 2D, or *N* < 2.

    .. versionadded:: 0.1
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        msg = (
            'z1 and z2 must be (N, K) embeddings of the same shape, got '
            f'{tuple(z1.shape)} and {tuple(z2.shape)}'
        )
        raise ValueError(msg)
    n = z1.shape[0]
    if n < 2:
        msg = f'need at least 2 samples to normalise along the batch, got {n}'
        raise ValueError(msg)
    total = z1.new_zeros(z1.shape[1], dtype=torch.float32)
    for chunk in _chunks(n, batch_size):
        a = F.batch_norm(z1[chunk].float(), None, None, training=True, eps=eps)
        b = F.batch_norm(z2[chunk].float(), None, None, training=True, eps=eps)
        total += (a * b).sum(dim=0)  # = C_ii of the batch times its size
    return total / n


def alignment_scores(
    z1: Tensor, z2: Tensor, batch_size: int | None = None, eps: float = 1e-5
) -> Tensor:
    """Per-dimension cross-modal misalignment ``(1 - C_ii)^2`` (Eq. 7).

    Args:
        z1: Modality 1 projector outputs ``(N, K)``.
        z2: Modality 2 projector outputs ``(N, K)``.
        batch_size: Average ``C`` over batches of this many samples (as the
            loss saw them); None for one batch of all *N*.
        eps: Added to the variance, as in ``nn.BatchNorm1d``.

    Returns:
        ``(K,)`` float32 scores: 0 for a perfectly aligned dimension, 1 for
        an uncorrelated one, up to 4 for an anti-correlated one.

    Raises:
        ValueError: If the shapes differ or are not 2D, or *N* < 2.

    .. versionadded:: 0.1
    """
    return (1 - cross_modal_diagonal(z1, z2, batch_size, eps)).pow(2)


def plot_alignment(
    scores: Tensor | np.ndarray,
    common_dim: int | None = None,
    compare: Tensor | np.ndarray | None = None,
    labels: Sequence[str] = ('DeCUR', 'cross-modal Barlow Twins'),
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """Histogram of the per-dimension alignment scores.

    Args:
        scores: ``(1 - C_ii)^2`` per dimension of the model (see
            :func:`alignment_scores`).
        common_dim: Number of common dimensions (the first ones), drawn in
            another colour than the unique ones; None for no split.
        compare: Scores of a second model, drawn as one outlined
            distribution over the first.
        labels: Names of the model and of the second model.
        bins: Number of bins, shared by all distributions.
        title: Title of the figure.

    Returns:
        The figure.

    .. versionadded:: 0.1
    """
    values = np.asarray(scores, dtype=np.float64)
    other = None if compare is None else np.asarray(compare, dtype=np.float64)
    top = max(1.0, float(values.max(initial=0.0)))
    if other is not None:
        top = max(top, float(other.max(initial=0.0)))
    edges = np.linspace(0.0, top * 1.02, bins + 1)

    fig = Figure(figsize=(3.5, 2.6), dpi=200, layout='constrained')
    ax = fig.add_subplot()
    name = labels[0]
    if common_dim is None:
        groups = {'all': values}
    else:
        groups = {'common': values[:common_dim], 'unique': values[common_dim:]}
    for group, part in groups.items():
        if part.size == 0:
            continue
        label = f'{name}' if group == 'all' else f'{name}, {group} ({part.size})'
        ax.hist(part, bins=list(edges), color=COLOURS[group], alpha=0.7, label=label)
    if other is not None:
        ax.hist(
            other,
            bins=list(edges),
            histtype='step',
            color='black',
            linewidth=1.2,
            label=f'{labels[1]} ({other.size})',
        )
    ax.set_xlabel(r'$(1 - C_{ii})^2$ per embedding dimension')
    ax.set_ylabel('number of dimensions')
    ax.set_xlim(0, edges[-1])
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title or 'Cross-modal alignment', fontsize=9)
    ax.tick_params(labelsize=7)
    ax.xaxis.label.set_fontsize(8)
    ax.yaxis.label.set_fontsize(8)
    return fig
