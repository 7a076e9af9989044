"""Metrics as the DeCUR authors computed them: averaged over batches.

The authors' transfer scripts score each batch with a torchmetrics functional
and report the mean over batches
(``src/transfer_classification_BE/linear_BE_resnet.py``: micro and macro
``multilabel_average_precision`` of each validation batch, summed and
divided by the number of batches; the GeoNRW scripts likewise with
``jaccard_index``). That is not the metric of the whole split: average
precision and IoU are not additive over batches, so the mean over batches
depends on the batch size and on which samples share a batch. The tasks'
``protocol='authors'`` logs these beside the global metrics
(:class:`~torchgeo_decur.tasks.MultimodalClassificationTask`), so a number
can be compared with the paper's tables and the difference is visible.

.. versionadded:: 0.2
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multiclass_jaccard_index,
    multilabel_average_precision,
)

__all__ = ('BatchAveraged', 'batch_averaged_iou', 'batch_averaged_map')


class BatchAveraged(Metric):
    """The mean over batches of a metric computed on each batch alone.

    Under DDP the sums and counts of all processes are added, so the result
    is the mean over every process's batches.

    .. versionadded:: 0.2
    """

    full_state_update = False
    higher_is_better = True
    total: Tensor
    batches: Tensor

    def __init__(self, function: Callable[[Tensor, Tensor], Tensor]) -> None:
        """Initialize a new BatchAveraged instance.

        Args:
            function: The metric of one batch, ``function(preds, target)``,
                e.g. a torchmetrics functional with its arguments bound.
        """
        super().__init__()
        self.function = function
        self.add_state('total', torch.tensor(0.0, dtype=torch.float64), 'sum')
        self.add_state('batches', torch.tensor(0, dtype=torch.long), 'sum')

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Score one batch and add its value.

        Args:
            preds: Predictions of the batch.
            target: Targets of the batch.
        """
        self.total += self.function(preds, target).double()
        self.batches += 1

    def compute(self) -> Tensor:
        """Return the mean of the batches' values (NaN before any batch)."""
        return (self.total / self.batches).float()


def batch_averaged_map(num_labels: int, average: str) -> BatchAveraged:
    """Multi-label mean average precision of each batch, averaged over batches.

    The authors' BigEarthNet-MM metric: ``multilabel_average_precision`` of
    the batch's sigmoid scores, ``average='micro'`` (overall) or ``'macro'``.

    Args:
        num_labels: Number of labels.
        average: ``'micro'`` or ``'macro'``.

    Returns:
        The metric; ``update`` takes logits or scores and 0/1 targets.

    Raises:
        ValueError: If *average* is neither ``'micro'`` nor ``'macro'``.
    """
    if average not in ('micro', 'macro'):
        msg = f"average must be 'micro' or 'macro', got {average!r}"
        raise ValueError(msg)

    function = partial(
        multilabel_average_precision, num_labels=num_labels, average=average
    )
    return BatchAveraged(lambda preds, target: function(preds.sigmoid(), target))


def batch_averaged_iou(num_classes: int, ignore_index: int | None) -> BatchAveraged:
    """Mean IoU of each batch, averaged over batches (the authors' GeoNRW metric).

    Args:
        num_classes: Number of classes, the ignored one included.
        ignore_index: Class left out of the IoU (GeoNRW's 0), or None.

    Returns:
        The metric; ``update`` takes logits ``(N, C, H, W)`` or labels, and
        labels ``(N, H, W)``.
    """
    function = partial(
        multiclass_jaccard_index, num_classes=num_classes, ignore_index=ignore_index
    )

    def batch(preds: Tensor, target: Tensor) -> Tensor:
        labels = preds.argmax(1) if preds.ndim == target.ndim + 1 else preds
        return function(labels, target)

    return BatchAveraged(batch)
