"""The authors' per-batch metrics against plain torchmetrics references."""

import pytest
import torch
from torchmetrics.classification import (
    MulticlassJaccardIndex,
    MultilabelAveragePrecision,
)
from torchmetrics.functional.classification import (
    multiclass_jaccard_index,
    multilabel_average_precision,
)

from torchgeo_decur.metrics import (
    BatchAveraged,
    batch_averaged_iou,
    batch_averaged_map,
)


def multilabel_batches(n: int = 6, size: int = 16, labels: int = 5) -> list:
    """Fixed logits with some signal and 0/1 targets, batch by batch."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        target = (torch.rand(size, labels, generator=g) < 0.3).long()
        target[0] = 1  # every label present in every batch
        logits = 2 * target + torch.randn(size, labels, generator=g) * 1.5
        out.append((logits, target))
    return out


@pytest.mark.parametrize('average', ['micro', 'macro'])
def test_batch_averaged_map_is_the_authors_loop(average: str) -> None:
    batches = multilabel_batches()
    metric = batch_averaged_map(5, average)
    reference = []
    for logits, target in batches:
        metric.update(logits, target)
        score = torch.sigmoid(logits)
        reference.append(
            multilabel_average_precision(score, target, num_labels=5, average=average)
        )
    expected = sum(reference) / len(reference)  # as the script: sum / count
    torch.testing.assert_close(metric.compute(), expected.float())
    # not the mAP of the whole split
    overall = MultilabelAveragePrecision(5, average=average)
    for logits, target in batches:
        overall.update(logits, target)
    assert abs(float(overall.compute()) - float(metric.compute())) > 1e-3


def test_batch_averaged_iou_ignores_class_0() -> None:
    g = torch.Generator().manual_seed(1)
    metric = batch_averaged_iou(4, ignore_index=0)
    overall = MulticlassJaccardIndex(4, ignore_index=0)
    values = []
    for _ in range(3):
        target = torch.randint(0, 4, (2, 8, 8), generator=g)
        logits = torch.randn(2, 4, 8, 8, generator=g)
        logits.scatter_add_(1, target[:, None], torch.full((2, 1, 8, 8), 1.0))
        metric.update(logits, target)
        overall.update(logits.argmax(1), target)
        values.append(
            multiclass_jaccard_index(
                logits.argmax(1), target, num_classes=4, ignore_index=0
            )
        )
    torch.testing.assert_close(metric.compute(), torch.stack(values).mean())
    assert not torch.isclose(metric.compute(), overall.compute())


def test_batch_averaged_reset_and_errors() -> None:
    metric = BatchAveraged(lambda p, t: (p == t).float().mean())
    metric.update(torch.tensor([1, 2]), torch.tensor([1, 0]))
    metric.update(torch.tensor([1]), torch.tensor([1]))
    assert float(metric.compute()) == pytest.approx(0.75)  # (0.5 + 1) / 2
    metric.reset()
    metric.update(torch.tensor([0]), torch.tensor([1]))
    assert float(metric.compute()) == 0.0
    with pytest.raises(ValueError, match="average must be 'micro' or 'macro'"):
        batch_averaged_map(3, 'weighted')
