import numpy as np
import pytest
import torch
from torch import Tensor, nn

from torchgeo_decur.lab.probe import extract_features, linear_probe, probe_all


def blobs(n: int, seed: int, informative: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Three classes; feature 0 carries the class unless *informative* is False."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8))
    if informative:
        x[:, 0] += 4 * y
    return x, y


def test_separable_classes_are_found() -> None:
    x, y = blobs(600, 0)
    xt, yt = blobs(300, 1)
    result = linear_probe(x, y, xt, yt)
    assert result.balanced_accuracy > 0.95
    assert result.classes == 3
    assert set(result.validation) == {0.001, 0.01, 0.1, 1.0, 10.0}
    assert result.c in result.validation


def test_uninformative_features_give_chance() -> None:
    x, y = blobs(600, 0, informative=False)
    xt, yt = blobs(600, 1, informative=False)
    assert abs(linear_probe(x, y, xt, yt).balanced_accuracy - 1 / 3) < 0.08


def test_balanced_accuracy_on_imbalanced_labels() -> None:
    """Always predicting the majority class scores 0.5, not 0.9."""
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.1).astype(int)
    x = rng.normal(size=(1000, 4))  # no information
    result = linear_probe(x[:500], y[:500], x[500:], y[500:])
    assert abs(result.balanced_accuracy - 0.5) < 0.1


def test_probe_errors() -> None:
    x, y = blobs(50, 0)
    with pytest.raises(ValueError, match='differ in length'):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match='1 class'):
        linear_probe(x, np.zeros(50, dtype=int), x, y)
    with pytest.raises(ValueError, match='cs'):
        linear_probe(x, y, x, y, cs=())
    with pytest.raises(ValueError, match='val_fraction'):
        linear_probe(x, y, x, y, val_fraction=1.0)


class Summing(nn.Module):
    """A stand-in task: the representation is the per-channel means."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def representation(self, x1: Tensor, x2: Tensor) -> Tensor:
        assert not self.training
        self.seen.append(x1)
        return torch.cat([x1.mean(dim=(2, 3)), x2.mean(dim=(2, 3))], dim=1)


def test_extract_features_preprocesses_and_collects_labels() -> None:
    samples = [
        {
            'image1': torch.full((3, 4, 4), 51 * i, dtype=torch.uint8),
            'image2': torch.full((3, 4, 4), 255, dtype=torch.uint8),
            'label': torch.tensor(i),
        }
        for i in range(5)
    ]
    model = Summing().train()
    feats, labels = extract_features(
        model, samples, ('rgb', 'rgb'), label_keys=('label',), batch_size=2
    )
    assert model.training  # restored
    assert feats.shape == (5, 6)
    np.testing.assert_allclose(feats[:, 0], np.arange(5) * 51 / 255, rtol=1e-6)
    np.testing.assert_allclose(feats[:, 3:], 1.0)
    np.testing.assert_array_equal(labels['label'], np.arange(5))
    assert [len(x) for x in model.seen] == [2, 2, 1]
    with pytest.raises(ValueError, match='one modality per key'):
        extract_features(model, samples, ('rgb',))
    both = probe_all(
        (np.r_[feats, feats], {'label': np.r_[labels['label'], labels['label']] % 2}),
        (feats, {'label': labels['label'] % 2}),
        ['label'],
        val_fraction=0.5,
    )
    assert set(both) == {'label'}


def test_balanced_class_weights_and_auroc_show_a_weak_rare_signal() -> None:
    """10% positives with a weak signal: unweighted, no sample crosses p = 0.5
    and the balanced accuracy reads 50; weighted, it does not; AUROC sees it."""
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(int)
    x = rng.normal(size=(4000, 8)) + 0.6 * y[:, None] * np.eye(8)[0]
    train, test = slice(0, 3000), slice(3000, None)
    plain = linear_probe(x[train], y[train], x[test], y[test], cs=[1.0])
    weighted = linear_probe(
        x[train], y[train], x[test], y[test], cs=[1.0], class_weight='balanced'
    )
    assert plain.balanced_accuracy == pytest.approx(0.5, abs=0.01)
    assert weighted.balanced_accuracy > 0.58
    assert plain.auroc is not None and plain.auroc > 0.6  # the ranking is there
    assert weighted.auroc == pytest.approx(plain.auroc, abs=0.02)
    multi = linear_probe(
        x[train],
        y[train] + rng.integers(0, 2, 3000),
        x[test],
        y[test] + rng.integers(0, 2, 1000),
        cs=[1.0],
    )
    assert multi.classes == 3 and multi.auroc is None
