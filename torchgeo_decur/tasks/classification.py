"""Multimodal classification (DeCUR's BigEarthNet-MM protocol)."""

import math
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch.utilities.types
from torch import Tensor
from torch.optim import SGD
from torch.optim.lr_scheduler import MultiStepLR
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import BaseTask
from torchgeo.tasks.mixins import ClassificationMixin
from torchmetrics.classification import MultilabelAveragePrecision
from torchvision.models._api import WeightsEnum

from ..metrics import batch_averaged_map
from ..models.heads import LateFusionClassifier
from ..models.weights import DABlocks
from ._multimodal import MultimodalTaskMixin

#: Default learning rates of the DeCUR paper, by mode.
DEFAULT_LR = {'linear': 0.5, 'finetune': 0.05}


class MultimodalClassificationTask(MultimodalTaskMixin, ClassificationMixin, BaseTask):
    """Classification with one encoder per modality (late fusion).

    The pooled features of the encoders are concatenated and classified by one
    linear layer, trained with SGD (momentum 0.9) with the learning rate
    divided by 10 at 60% and 80% of the epochs, as in the DeCUR paper's
    BigEarthNet-MM evaluation. By default the task is multi-label
    (BigEarthNet's 19 labels) with ``loss='bce'``: binary cross-entropy on
    logits, which equals the paper's ``MultiLabelSoftMarginLoss``.

    Losses (``ce``, ``bce``, ``jaccard``, ``focal``, ``dice``), metrics
    (accuracy, precision, recall, F1 and Jaccard, overall, averaged and per
    class) and their logging are TorchGeo's
    (:class:`~torchgeo.tasks.mixins.ClassificationMixin`, as its
    ``Classification`` task); multi-label tasks also log the paper's mean
    average precision, ``OverallAveragePrecision`` (micro) and
    ``AverageAveragePrecision`` (macro).

    With ``mode='linear'`` the encoders are frozen, parameters and batch norm
    statistics alike, and only the linear layer trains; with
    ``mode='finetune'`` everything trains. One modality (e.g.
    ``modalities=['s1'], input_keys=['image1']``) evaluates a missing modality
    with the same joint weights. In linear mode Lightning warns that modules
    are in eval mode at the start of training: that is intended.

    Batches hold one image per modality under *input_keys* and a ``'label'``
    (multi-hot ``(N, num_labels)`` for multi-label tasks).

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        model: str = 'resnet50',
        weights: WeightsEnum | str | bool | None = None,
        in_channels: Sequence[int] | None = None,
        modalities: Sequence[str] = ('s1', 's2c'),
        input_keys: Sequence[str] = ('image1', 'image2'),
        task: Literal['binary', 'multiclass', 'multilabel'] = 'multilabel',
        num_classes: int | None = None,
        num_labels: int | None = 19,
        labels: list[str] | None = None,
        pos_weight: Tensor | None = None,
        loss: Literal['ce', 'bce', 'jaccard', 'focal', 'dice'] = 'bce',
        class_weights: Tensor | Sequence[float] | None = None,
        ignore_index: int | None = None,
        mode: Literal['linear', 'finetune'] = 'linear',
        lr: float | None = None,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        model_kwargs: dict[str, Any] | None = None,
        deformable_attention: bool | None = None,
        da_blocks: DABlocks = 'trained',
        protocol: Literal['ours', 'authors'] = 'ours',
    ) -> None:
        """Initialize a new MultimodalClassificationTask instance.

        Args:
            model: Name of the `timm
                <https://huggingface.co/docs/timm/reference/models>`__ model used
                for every encoder.
            weights: Initial weights of the encoders: a joint DeCUR weight enum
                (each encoder takes its modality's part), its name, the path to a
                checkpoint, True for ImageNet weights, or False/None for random
                weights.
            in_channels: Number of input channels of each modality; None takes
                the registered modalities' numbers of bands.
            modalities: Modality name of each encoder (1 or 2), e.g.
                ``('s1', 's2c')``; used to pick encoders out of joint weights.
            input_keys: Batch key of each modality's image.
            task: One of 'binary', 'multiclass' or 'multilabel'.
            num_classes: Number of classes (only for ``task='multiclass'``).
            num_labels: Number of labels (only for ``task='multilabel'``).
            labels: Class names, for the per-class metrics.
            pos_weight: Weight of positive examples (``bce`` loss).
            loss: One of 'ce', 'bce', 'jaccard', 'focal' or 'dice'.
            class_weights: Weight of each class (``ce`` loss).
            ignore_index: Optional class index to ignore in loss and metrics.
            mode: 'linear' (frozen encoders, linear probing) or 'finetune'.
            lr: Learning rate; None for 0.5 (linear) or 0.05 (finetune).
            momentum: SGD momentum.
            weight_decay: SGD weight decay.
            model_kwargs: Further keyword arguments for :func:`timm.create_model`.
            deformable_attention: Whether the ResNet encoders have DeCUR's
                deformable attention after stages 3 and 4 (the heads then see
                the attended features); None follows *weights* (True for the
                ``*_RDA`` entries). The value used is recorded.
            da_blocks: Which deformable-attention blocks the authors' RDA
                weights give the second modality: ``'trained'`` (``da1_*``,
                the only blocks their pretraining trained) or ``'authors'``
                (``da2_*``, as their transfer code loaded; see
                :func:`~torchgeo_decur.models.weights.files.read_release`).
            protocol: ``'ours'`` or ``'authors'``: the authors' linear probe
                leaves the frozen encoders in train mode (batch norm uses batch
                statistics and updates its running means), and multi-label
                tasks also log ``BatchOverallAveragePrecision`` /
                ``BatchAverageAveragePrecision``, micro / macro mAP of each
                batch averaged over batches, as the authors' scripts computed
                the published BigEarthNet-MM numbers
                (:mod:`torchgeo_decur.metrics`), beside the global mAP.

        Raises:
            ValueError: If *mode* is unknown, or *in_channels*, *modalities* and
                *input_keys* do not describe 1 or 2 modalities.
        """
        self.weights = weights
        super().__init__()

    def configure_models(self) -> None:
        """Initialize the model."""
        encoders = self._build_encoders()
        outputs = self.hparams['num_classes'] or self.hparams['num_labels'] or 1
        self.model = LateFusionClassifier(encoders, outputs)
        self._freeze_encoders()

    def configure_metrics(self) -> None:
        """Initialize TorchGeo's classification metrics, plus mAP if multi-label.

        See :meth:`torchgeo.tasks.mixins.ClassificationMixin.configure_metrics`.
        Multi-label tasks add ``OverallAveragePrecision`` /
        ``AverageAveragePrecision``: micro / macro mean average precision, the
        DeCUR paper's BigEarthNet metric, over the whole split; with
        ``protocol='authors'`` also ``BatchOverallAveragePrecision`` /
        ``BatchAverageAveragePrecision``, the same per batch averaged over
        batches, as the authors computed it. Higher is better for all metrics.
        """
        super().configure_metrics()
        if self.hparams['task'] != 'multilabel':
            return
        labels = self.hparams['num_labels']
        authors = self.hparams.get('protocol', 'ours') == 'authors'
        for metrics in (self.train_metrics, self.val_metrics, self.test_metrics):
            metrics.add_metrics(
                {
                    'OverallAveragePrecision': MultilabelAveragePrecision(
                        labels, average='micro'
                    ),
                    'AverageAveragePrecision': MultilabelAveragePrecision(
                        labels, average='macro'
                    ),
                }
            )
            if authors:
                metrics.add_metrics(
                    {
                        'BatchOverallAveragePrecision': batch_averaged_map(
                            labels, 'micro'
                        ),
                        'BatchAverageAveragePrecision': batch_averaged_map(
                            labels, 'macro'
                        ),
                    }
                )

    def configure_optimizers(
        self,
    ) -> 'lightning.pytorch.utilities.types.OptimizerLRScheduler':
        """Initialize the optimizer and learning rate scheduler.

        SGD over the trainable parameters;
        :class:`~torch.optim.lr_scheduler.MultiStepLR` (gamma 0.1) at 60% and
        80% of ``trainer.max_epochs``, or of the estimated number of steps when
        the number of epochs is unlimited.

        Returns:
            Optimizer and learning rate scheduler.
        """
        lr = self.hparams['lr']
        if lr is None:
            lr = DEFAULT_LR[self.hparams['mode']]
        optimizer = SGD(
            self._trainable_parameters(),
            lr=lr,
            momentum=self.hparams['momentum'],
            weight_decay=self.hparams['weight_decay'],
        )
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if max_epochs is not None and max_epochs > 0:
            total, interval = max_epochs, 'epoch'
        else:
            total_steps = (
                self.trainer.estimated_stepping_batches
                if self._trainer is not None
                else math.inf
            )
            if not math.isfinite(total_steps):
                return optimizer
            total, interval = int(total_steps), 'step'
        milestones = [max(1, int(total * 0.6)), max(1, int(total * 0.8))]
        scheduler = MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': interval},
        }

    def _shared_step(self, batch: Sample, stage: str) -> Tensor:
        """Compute the loss and update the metrics of one stage.

        Args:
            batch: The output of your DataLoader.
            stage: 'train', 'val' or 'test'.

        Returns:
            The loss.
        """
        inputs = self._get_inputs(batch)
        y = self._get_target(batch, 'label')
        y_hat = self(*inputs)
        if self.hparams['task'] == 'binary':
            y_hat = y_hat.squeeze(1)
        getattr(self, f'{stage}_metrics')(y_hat.detach(), y.long())
        target = y.float() if self.hparams['loss'] == 'bce' else y
        loss: Tensor = self.criterion(y_hat, target)
        self.log(f'{stage}_loss', loss, batch_size=y.shape[0])
        return loss

    def predict_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the predicted probabilities.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            Label probabilities (sigmoid) for binary and multi-label tasks,
            class probabilities (softmax) for multi-class ones.
        """
        y_hat: Tensor = self(*self._get_inputs(batch))
        if self.hparams['task'] == 'multiclass':
            return y_hat.softmax(dim=1)
        return y_hat.sigmoid()


#: The multi-label task of the DeCUR paper (BigEarthNet-MM): the default
#: configuration of :class:`MultimodalClassificationTask`.
MultimodalMultiLabelClassificationTask = MultimodalClassificationTask
