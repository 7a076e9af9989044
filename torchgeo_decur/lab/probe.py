"""Linear probes of frozen self-supervised representations.

:func:`extract_features` runs a pretrained task's
:meth:`~torchgeo_decur.tasks.SSLTask.representation` (the pooled
features of both encoders, concatenated; CoMM's fused embedding) over a
dataset of raw samples, preprocessed as the task's modalities say;
:func:`linear_probe` fits scikit-learn's
:class:`~sklearn.linear_model.LogisticRegression` on them, with the inverse
regularisation strength ``C`` chosen on a validation split of the training
features, and reports balanced accuracy on the test features. The same
protocol scores every method of the Trifeature benchmark, the demo and the
common-share sweep.

Uses scikit-learn, a dependency of the package.

.. versionadded:: 0.1
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..datamodules import ModalityPreprocessing

__all__ = ('ProbeResult', 'extract_features', 'linear_probe', 'probe_all')

#: Inverse regularisation strengths tried by :func:`linear_probe`.
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _sklearn() -> Any:
    """Import scikit-learn's pieces, or say how to install them."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score, roc_auc_score
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:  # pragma: no cover - depends on the install
        msg = (
            'linear probes need scikit-learn, a dependency of torchgeo-decur '
            'that is missing here: pip install scikit-learn'
        )
        raise ImportError(msg) from err
    return LogisticRegression, balanced_accuracy_score, StandardScaler, roc_auc_score


@dataclass
class ProbeResult:
    """The outcome of one linear probe.

    Attributes:
        balanced_accuracy: Balanced accuracy on the test features, in [0, 1]
            (the mean of the per-class recalls; chance is ``1 / classes``).
        c: The chosen inverse regularisation strength.
        validation: Balanced accuracy on the validation split, per ``C``.
        classes: Number of classes in the training labels.
        auroc: Area under the ROC curve on the test features, for two classes
            (None otherwise): unlike the accuracy it does not depend on where
            the decision threshold falls, so it shows a weak signal that a
            rare class never crosses.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *auroc* added.
    """

    balanced_accuracy: float
    c: float
    validation: dict[float, float] = field(default_factory=dict)
    classes: int = 0
    auroc: float | None = None


@torch.no_grad()
def extract_features(
    model: nn.Module,
    dataset: Dataset[dict[str, Any]],
    modalities: Sequence[str],
    keys: Sequence[str] = ('image1', 'image2'),
    label_keys: Sequence[str] = (),
    batch_size: int = 256,
    device: str | torch.device = 'cpu',
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Representations of every sample of a dataset, and their labels.

    Each batch is prepared as everywhere else
    (:class:`~torchgeo_decur.datamodules.ModalityPreprocessing`: the
    dataset's finishing step, its bands matched by name, the modalities'
    normalisation with standardization, as in evaluation), then the pair goes
    through ``model.representation(x1, x2)`` in evaluation mode.

    Args:
        model: A pretrained self-supervised task (anything with a
            ``representation(x1, x2)`` method).
        dataset: Samples with raw images under *keys* and labels under
            *label_keys*.
        modalities: Modality of each image key.
        keys: Batch keys of modality 1 and modality 2.
        label_keys: Labels to collect.
        batch_size: Samples per forward pass.
        device: Where to run the model.

    Returns:
        ``(features [N, D], {label: [N]})`` as NumPy arrays.

    Raises:
        ValueError: If *modalities* and *keys* differ in length.
        KeyError: If a sample lacks an image or label key.
    """
    if len(modalities) != len(keys):
        msg = f'one modality per key: got modalities={modalities}, keys={keys}'
        raise ValueError(msg)
    preparation = ModalityPreprocessing(
        dict(zip(keys, modalities, strict=True)), dataset
    )
    was_training = model.training
    model.eval().to(device)
    features: list[Tensor] = []
    labels: dict[str, list[Tensor]] = {k: [] for k in label_keys}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    try:
        for batch in loader:
            moved = {
                k: v.to(device) if isinstance(v, Tensor) else v
                for k, v in batch.items()
            }
            prepared = preparation(moved)
            inputs = [prepared[key] for key in keys]
            features.append(model.representation(*inputs).float().cpu())
            for key in label_keys:
                labels[key].append(torch.as_tensor(batch[key]))
    finally:
        model.train(was_training)
    return (
        torch.cat(features).numpy(),
        {k: torch.cat(v).numpy() for k, v in labels.items()},
    )


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    cs: Sequence[float] = DEFAULT_CS,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 2000,
    class_weight: str | None = None,
) -> ProbeResult:
    """Fit a logistic regression on frozen features and score it.

    The features are standardised with the training set's mean and standard
    deviation. ``C`` is chosen by balanced accuracy on a stratified
    *val_fraction* of the training features (drawn with *seed*); the probe
    is then refitted on all training features with that ``C``.

    Args:
        train_features: ``[N, D]`` training features.
        train_labels: ``[N]`` integer labels.
        test_features: ``[M, D]`` test features.
        test_labels: ``[M]`` integer labels.
        cs: Inverse regularisation strengths to try.
        val_fraction: Share of the training features held out to choose C.
        seed: Seed of the validation split and the solver.
        max_iter: Iterations of the solver.
        class_weight: ``'balanced'`` weighs each class inversely to its
            frequency (for rare classes, whose logits otherwise never cross
            the threshold), None weighs every sample alike.

    Returns:
        The test balanced accuracy (and AUROC for two classes), the chosen C
        and the validation scores.

    Raises:
        ValueError: If the shapes disagree, the training labels hold fewer
            than two classes, *cs* is empty or *val_fraction* is not in (0, 1).
    """
    logistic_regression, balanced_accuracy_score, standard_scaler, auroc = _sklearn()
    if len(train_features) != len(train_labels) or len(test_features) != len(
        test_labels
    ):
        msg = (
            'features and labels differ in length: '
            f'train {len(train_features)} / {len(train_labels)}, '
            f'test {len(test_features)} / {len(test_labels)}'
        )
        raise ValueError(msg)
    classes = np.unique(train_labels)
    if len(classes) < 2:
        msg = f'the training labels hold {len(classes)} class(es); a probe needs 2+'
        raise ValueError(msg)
    if not cs:
        raise ValueError('cs must hold at least one value')
    if not 0 < val_fraction < 1:
        msg = f'val_fraction must be in (0, 1), got {val_fraction}'
        raise ValueError(msg)

    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(train_labels), dtype=bool)
    for c in classes:  # stratified, at least one of each class on each side
        idx = np.flatnonzero(train_labels == c)
        rng.shuffle(idx)
        n_val = min(len(idx) - 1, max(1, math.floor(val_fraction * len(idx))))
        val_mask[idx[:n_val]] = True

    def fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[Any, Any]:
        scaler = standard_scaler().fit(x)
        clf = logistic_regression(
            C=c, max_iter=max_iter, random_state=seed, class_weight=class_weight
        )
        clf.fit(scaler.transform(x), y)
        return scaler, clf

    validation: dict[float, float] = {}
    for c in cs:
        scaler, clf = fit(train_features[~val_mask], train_labels[~val_mask], c)
        pred = clf.predict(scaler.transform(train_features[val_mask]))
        validation[float(c)] = float(
            balanced_accuracy_score(train_labels[val_mask], pred)
        )
    best = max(validation, key=lambda c: (validation[c], -c))
    scaler, clf = fit(train_features, train_labels, best)
    test = scaler.transform(test_features)
    pred = clf.predict(test)
    binary = len(classes) == 2 and len(np.unique(test_labels)) == 2
    area = float(auroc(test_labels, clf.decision_function(test))) if binary else None
    return ProbeResult(
        balanced_accuracy=float(balanced_accuracy_score(test_labels, pred)),
        c=best,
        validation=validation,
        classes=len(classes),
        auroc=area,
    )


def probe_all(
    train: tuple[np.ndarray, Mapping[str, np.ndarray]],
    test: tuple[np.ndarray, Mapping[str, np.ndarray]],
    label_keys: Sequence[str],
    **kwargs: Any,
) -> dict[str, ProbeResult]:
    """Probe several labels of the same features.

    Args:
        train: ``(features, labels)`` of the training set.
        test: ``(features, labels)`` of the test set.
        label_keys: Labels to probe.
        **kwargs: Further arguments of :func:`linear_probe`.

    Returns:
        ``{label: ProbeResult}``.

    .. versionadded:: 0.1
    """
    return {
        key: linear_probe(train[0], train[1][key], test[0], test[1][key], **kwargs)
        for key in label_keys
    }
