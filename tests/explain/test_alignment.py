"""Alignment histogram and t-SNE of embedding dimensions."""

import numpy as np
import pytest
import torch

from torchgeo_decur.explain import (
    alignment_scores,
    cross_modal_diagonal,
    dimension_groups,
    dimension_tsne,
    plot_alignment,
    plot_tsne,
    standardize_dimensions,
)


def reference_scores(z1: np.ndarray, z2: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """(1 - C_ii)^2 with explicit loops, C of batch-normalised embeddings."""
    n, k = z1.shape
    out = np.zeros(k)
    for i in range(k):
        a, b = z1[:, i], z2[:, i]
        mean_a, mean_b = sum(a) / n, sum(b) / n
        var_a = sum((v - mean_a) ** 2 for v in a) / n
        var_b = sum((v - mean_b) ** 2 for v in b) / n
        c = 0.0
        for j in range(n):
            c += (a[j] - mean_a) / np.sqrt(var_a + eps) * (b[j] - mean_b)
        c = c / np.sqrt(var_b + eps) / n
        out[i] = (1 - c) ** 2
    return out


def embeddings(n: int = 24, k: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(n, k, generator=g)
    z1 = shared + 0.1 * torch.randn(n, k, generator=g)
    z2 = torch.cat(
        [shared[:, :6] * 2 + 1, torch.randn(n, k - 6, generator=g)], dim=1
    )  # first 6 dims aligned, last 2 independent
    return z1, z2


def test_scores_match_reference() -> None:
    z1, z2 = embeddings()
    scores = alignment_scores(z1, z2)
    expected = reference_scores(z1.double().numpy(), z2.double().numpy())
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert scores[:6].max() < 0.05 < scores[6:].min()


def test_scores_averaged_over_batches() -> None:
    z1, z2 = embeddings(n=21)
    # batches 0-9, 10-20: a last batch of one sample joins the one before
    diag = cross_modal_diagonal(z1, z2, batch_size=10)
    parts = [(slice(0, 10), 10), (slice(10, 21), 11)]
    expected = (
        sum(
            (1 - np.sqrt(reference_scores(z1[s].numpy(), z2[s].numpy()))) * w
            for s, w in parts
        )
        / 21
    )
    np.testing.assert_allclose(diag.numpy(), expected, rtol=1e-4, atol=1e-5)
    scores = alignment_scores(z1, z2, batch_size=10)
    np.testing.assert_allclose(scores.numpy(), (1 - expected) ** 2, atol=1e-5)


def test_scores_errors() -> None:
    with pytest.raises(ValueError, match='same shape'):
        alignment_scores(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match='at least 2 samples'):
        alignment_scores(torch.zeros(1, 3), torch.zeros(1, 3))


def test_plot_alignment() -> None:
    z1, z2 = embeddings()
    scores = alignment_scores(z1, z2)
    fig = plot_alignment(scores, common_dim=6, compare=scores.flip(0))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        'DeCUR, common (6)',
        'DeCUR, unique (2)',
        'cross-modal Barlow Twins (8)',
    ]
    assert 'C_{ii}' in ax.get_xlabel() and ax.get_ylabel()
    # one distribution without a split
    fig = plot_alignment(scores, labels=('baseline', ''))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ['baseline']


def test_dimension_groups() -> None:
    assert dimension_groups(8, 6) == {'common': slice(0, 6), 'unique': slice(6, 8)}
    assert dimension_groups(8, 8) == {'common': slice(0, 8)}
    assert dimension_groups(8, None) == {'all': slice(0, 8)}
    with pytest.raises(ValueError, match='common_dim'):
        dimension_groups(8, 9)


def test_standardize_dimensions() -> None:
    z = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    points = standardize_dimensions(z)
    np.testing.assert_allclose(points, [[-1, 1], [0, 0]])  # constant: zeros


def test_tsne() -> None:
    z1, z2 = embeddings(n=30, k=8)
    result = dimension_tsne(z1, z2, perplexity=30, seed=0)
    assert result.coords1.shape == (8, 2) and result.coords2.shape == (8, 2)
    assert result.perplexity == pytest.approx(5.0)  # (16 - 1) / 3
    again = dimension_tsne(z1, z2, perplexity=30, seed=0)
    np.testing.assert_allclose(result.coords1, again.coords1)
    fig = plot_tsne(result, common_dim=6, names=('s1', 's2c'))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ['s1, common', 's1, unique', 's2c, common', 's2c, unique']
    with pytest.raises(ValueError, match='same samples'):
        dimension_tsne(z1, z2[:10])
    with pytest.raises(ValueError, match='at least 4'):
        dimension_tsne(z1[:, :1], z2[:, :1])
