"""t-SNE of the embedding dimensions of both modalities.

Each embedding dimension of each modality is one point: its values over the
same *N* samples, standardised (zero mean, unit variance over the samples).
Dimensions that vary together over the data lie close; DeCUR's common
dimensions of the two modalities should mix, its unique dimensions keep to
their modality, with scikit-learn's t-SNE.

.. versionadded:: 0.1
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from .alignment import COLOURS

__all__ = ('DimensionTSNE', 'dimension_tsne', 'plot_tsne', 'standardize_dimensions')


#: Numbers of points up to which the t-SNE computes exact gradients.
EXACT_BELOW = 1000


def _tsne_class() -> Any:
    """Import scikit-learn's TSNE, or say how to install it."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:  # pragma: no cover - depends on the install
        msg = (
            'the t-SNE needs scikit-learn, a dependency of torchgeo-decur that '
            'is missing here: pip install scikit-learn'
        )
        raise ImportError(msg) from err
    return TSNE


def standardize_dimensions(z: Tensor | np.ndarray) -> np.ndarray:
    """Each dimension's values over the samples, standardised.

    Args:
        z: Embeddings ``(N, K)``.

    Returns:
        ``(K, N)`` float64: row *i* is dimension *i* over the samples, with
        zero mean and unit (biased) variance; zeros for a constant dimension.

    .. versionadded:: 0.1
    """
    points = np.asarray(z, dtype=np.float64).T
    centred = points - points.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)


@dataclass
class DimensionTSNE:
    """2D t-SNE coordinates of the embedding dimensions of both modalities.

    Attributes:
        coords1: ``(K1, 2)``, one row per dimension of modality 1.
        coords2: ``(K2, 2)``, one row per dimension of modality 2.
        perplexity: The perplexity used (clipped to the number of points).

    .. versionadded:: 0.1
    """

    coords1: np.ndarray
    coords2: np.ndarray
    perplexity: float


def dimension_tsne(
    z1: Tensor | np.ndarray,
    z2: Tensor | np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
) -> DimensionTSNE:
    """Embed the dimensions of both modalities in one 2D t-SNE.

    Args:
        z1: Modality 1 embeddings ``(N, K1)``.
        z2: Modality 2 embeddings ``(N, K2)`` of the same samples.
        perplexity: Perplexity of the t-SNE; clipped to ``(K1 + K2 - 1) / 3``
            so that every point has enough neighbours. Up to
            ``EXACT_BELOW`` (1000) points the gradients are exact, above
            Barnes-Hut's approximation.
        seed: Seed of the t-SNE.

    Returns:
        The coordinates of each modality's dimensions and the perplexity used.

    Raises:
        ValueError: If the sample counts differ, or there are fewer than 4
            dimensions in all.

    .. versionadded:: 0.1
    """
    a, b = standardize_dimensions(z1), standardize_dimensions(z2)
    if a.shape[1] != b.shape[1]:
        msg = f'z1 and z2 must hold the same samples, got {a.shape[1]} and {b.shape[1]}'
        raise ValueError(msg)
    points = np.concatenate([a, b])
    n = len(points)
    if n < 4:
        msg = f'the t-SNE needs at least 4 dimensions in all, got {n}'
        raise ValueError(msg)
    used = float(min(perplexity, (n - 1) / 3))
    tsne = _tsne_class()(
        n_components=2,
        perplexity=used,
        init='pca',
        learning_rate='auto',
        random_state=seed,
        # exact gradients are faster than Barnes-Hut's for few points
        method='exact' if n <= EXACT_BELOW else 'barnes_hut',
    )
    coords = tsne.fit_transform(points)
    return DimensionTSNE(coords[: len(a)], coords[len(a) :], used)


def plot_tsne(
    result: DimensionTSNE,
    common_dim: int | None = None,
    names: Sequence[str] = ('modality 1', 'modality 2'),
    title: str | None = None,
) -> Figure:
    """Scatter plot of a :func:`dimension_tsne`.

    Marker by modality (circle: modality 1, triangle: modality 2), colour by
    group (common / unique dimensions; one colour without a split).

    Args:
        result: The t-SNE.
        common_dim: Number of common dimensions (the first ones of each
            modality), or None for no split.
        names: Names of the two modalities.
        title: Title of the figure.

    Returns:
        The figure.

    .. versionadded:: 0.1
    """
    fig = Figure(figsize=(3.5, 3.2), dpi=200, layout='constrained')
    ax = fig.add_subplot()
    for coords, name, marker in zip(
        (result.coords1, result.coords2), names, ('o', '^'), strict=True
    ):
        if common_dim is None:
            groups = {'all': coords}
        else:
            groups = {'common': coords[:common_dim], 'unique': coords[common_dim:]}
        for group, part in groups.items():
            if len(part) == 0:
                continue
            label = name if group == 'all' else f'{name}, {group}'
            ax.scatter(
                part[:, 0],
                part[:, 1],
                s=9,
                marker=marker,
                color=COLOURS[group],
                alpha=0.75,
                linewidths=0,
                label=label,
            )
    ax.set_xlabel('t-SNE 1', fontsize=8)
    ax.set_ylabel('t-SNE 2', fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, frameon=False, markerscale=1.5)
    ax.set_title(
        title or f'Embedding dimensions (perplexity {result.perplexity:.3g})',
        fontsize=9,
    )
    return fig
