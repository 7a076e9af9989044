"""Multimodal semantic segmentation (DeCUR's GeoNRW protocol)."""

from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch.utilities.types
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import BaseTask
from torchgeo.tasks.mixins import ClassificationMixin
from torchvision.models._api import WeightsEnum

from ..metrics import batch_averaged_iou
from ..models.cmx import CMXSegmentationModel
from ..models.heads import DECODERS, MultimodalSegmentationModel
from ..models.weights import DABlocks
from ._multimodal import MultimodalTaskMixin
from ._schedule import warmup_steps

#: Learning rate schedules of :class:`MultimodalSemanticSegmentationTask`.
SCHEDULES = ('constant', 'warmup_poly')


def warmup_poly_factor(
    step: int, warmup_steps: int, total_steps: int, power: float
) -> float:
    """CMX's learning rate factor at *step* (``WarmUpPolyLR``).

    A linear warm-up from 0 over *warmup_steps*, then the polynomial decay
    ``(1 - step / total_steps) ** power`` of the whole run's progress (not
    of the steps after the warm-up: torch's ``PolynomialLR`` behind a
    ``SequentialLR`` would restart its count, so CMX's own formula is used).

    Args:
        step: Optimisation step, from 0.
        warmup_steps: Steps of the warm-up.
        total_steps: Steps of the whole run.
        power: Power of the decay (CMX: 0.9).

    Returns:
        The factor of the base learning rate, in [0, 1].
    """
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, 1 - step / max(total_steps, 1)) ** power


class MultimodalSemanticSegmentationTask(
    MultimodalTaskMixin, ClassificationMixin, BaseTask
):
    """Semantic segmentation with one encoder per modality.

    By default the DeCUR paper's FCN head: the last three feature maps of every
    encoder are concatenated level by level, each level is mapped to class
    scores by a 1x1 convolution and upsampled to the input size, and the levels
    are summed (see :class:`~torchgeo_decur.models.heads.FCNHead`). Optionally,
    segmentation-models-pytorch's U-Net or DeepLabV3+ decoder over the fused
    feature pyramids; or, for two MiT encoders, CMX (``decoder='cmx'``), in
    which the authors fine-tuned their SUN RGB-D encoders
    (:class:`~torchgeo_decur.models.cmx.CMXSegmentationModel`). Trained with
    AdamW, at a constant learning rate or with CMX's warm-up and polynomial
    decay. Losses (``ce`` by default,
    ``jaccard``, ``focal``, ``dice``), metrics (pixel accuracy, precision,
    recall, F1 and Jaccard index (IoU), overall, averaged and per class) and
    their logging are TorchGeo's
    (:class:`~torchgeo.tasks.mixins.ClassificationMixin`, as its
    ``SemanticSegmentation`` task): ``val_AverageJaccardIndex`` is the mIoU.

    With ``mode='linear'`` the encoders are frozen, parameters and batch norm
    statistics alike, and only the head (and decoder) trains; with
    ``mode='finetune'`` everything trains. One modality (e.g.
    ``in_channels=[3], modalities=['rgb'], input_keys=['image1']``)
    evaluates a missing modality with the same joint weights. In linear mode
    Lightning warns that modules are in eval mode at the start of training:
    that is intended.

    Batches hold one image per modality under *input_keys* (all of the same
    height and width) and a ``'mask'`` of class indices of shape ``(N, H, W)``.

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       ``decoder='cmx'``, *lr_schedule*, *warmup_epochs*, *poly_power* and
       *weight_decay_norms_and_biases* added.
    """

    def __init__(
        self,
        model: str = 'resnet50',
        weights: WeightsEnum | str | bool | None = None,
        in_channels: Sequence[int] | None = None,
        modalities: Sequence[str] = ('rgb', 'dem'),
        input_keys: Sequence[str] = ('image1', 'image2'),
        num_classes: int = 11,
        labels: list[str] | None = None,
        loss: Literal['ce', 'jaccard', 'focal', 'dice'] = 'ce',
        class_weights: Tensor | Sequence[float] | None = None,
        ignore_index: int | None = None,
        mode: Literal['linear', 'finetune'] = 'linear',
        decoder: Literal['fcn', 'unet', 'deeplabv3plus', 'cmx'] = 'fcn',
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        weight_decay_norms_and_biases: bool = True,
        lr_schedule: Literal['constant', 'warmup_poly'] = 'constant',
        warmup_epochs: float = 0.0,
        poly_power: float = 0.9,
        model_kwargs: dict[str, Any] | None = None,
        deformable_attention: bool | None = None,
        da_blocks: DABlocks = 'trained',
        protocol: Literal['ours', 'authors'] = 'ours',
    ) -> None:
        """Initialize a new MultimodalSemanticSegmentationTask instance.

        Args:
            model: Name of the `timm
                <https://huggingface.co/docs/timm/reference/models>`__ model used
                for every encoder (it must support ``forward_intermediates``).
            weights: Initial weights of the encoders: a joint DeCUR weight enum
                (each encoder takes its modality's part), its name, the path to a
                checkpoint, True for ImageNet weights, or False/None for random
                weights.
            in_channels: Number of input channels of each modality; None takes
                the registered modalities' numbers of bands.
            modalities: Modality name of each encoder (1 or 2), e.g.
                ``('rgb', 'dem')``; used to pick encoders out of joint weights.
            input_keys: Batch key of each modality's image.
            num_classes: Number of classes (GeoNRW in TorchGeo: 11, class 0
                being background).
            labels: Class names, for the per-class metrics.
            loss: One of 'ce', 'jaccard', 'focal' or 'dice'.
            class_weights: Weight of each class (``ce`` loss).
            ignore_index: Optional class index to ignore in the loss and
                metrics (e.g. 0 to leave out GeoNRW's background).
            mode: 'linear' (frozen encoders) or 'finetune'.
            decoder: 'fcn' (DeCUR paper, GeoNRW), 'unet', 'deeplabv3plus', or
                'cmx': CMX's stage-by-stage rectification and fusion of two
                MiT encoders with SegFormer's MLP decoder, as the authors
                scored their SUN RGB-D encoders
                (:class:`~torchgeo_decur.models.cmx.CMXSegmentationModel`;
                needs ``model: mit_b*`` and two modalities).
            lr: Learning rate of AdamW.
            weight_decay: Weight decay of AdamW.
            weight_decay_norms_and_biases: Whether biases and normalisation
                parameters (every parameter of one dimension) get the weight
                decay too; CMX leaves them out (False).
            lr_schedule: 'constant', or 'warmup_poly': CMX's linear warm-up
                over *warmup_epochs*, then ``(1 - step / total) ** poly_power``,
                stepped every optimisation step
                (``torchgeo_decur.tasks.segmentation.warmup_poly_factor``).
            warmup_epochs: Epochs of warm-up of 'warmup_poly' (CMX: 10).
            poly_power: Power of the 'warmup_poly' decay (CMX: 0.9).
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
                statistics and updates its running means), and the task also
                logs ``BatchJaccardIndex``, the mIoU of each batch averaged over
                batches (*ignore_index* left out), as the authors' GeoNRW
                scripts computed their numbers (:mod:`torchgeo_decur.metrics`),
                beside the mIoU of the whole split (``AverageJaccardIndex``).

        Raises:
            ValueError: If *mode*, *decoder* or *lr_schedule* is unknown,
                *warmup_epochs* is negative, or *in_channels*, *modalities* and
                *input_keys* do not describe 1 or 2 known modalities.
        """
        if lr_schedule not in SCHEDULES:
            msg = f'lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}'
            raise ValueError(msg)
        if warmup_epochs < 0:
            msg = f'warmup_epochs must be >= 0, got {warmup_epochs}'
            raise ValueError(msg)
        self.weights = weights
        super().__init__()

    def configure_models(self) -> None:
        """Initialize the model.

        Also completes the hyperparameters that TorchGeo's
        :class:`~torchgeo.tasks.mixins.ClassificationMixin` reads for
        multi-class segmentation.
        """
        self.hparams.update({'task': 'multiclass', 'num_labels': None})
        self.hparams.setdefault('pos_weight', None)
        decoder = self.hparams['decoder']
        if decoder not in (*DECODERS, 'cmx'):
            msg = f'decoder must be one of {(*DECODERS, "cmx")}, got {decoder!r}'
            raise ValueError(msg)
        encoders = self._build_encoders()
        self.model: nn.Module
        if decoder == 'cmx':
            self.model = CMXSegmentationModel(encoders, self.hparams['num_classes'])
        else:
            self.model = MultimodalSegmentationModel(
                encoders,
                self.hparams['in_channels'],
                self.hparams['num_classes'],
                decoder=decoder,
            )
        self._freeze_encoders()

    def configure_metrics(self) -> None:
        """Initialize TorchGeo's metrics, plus the authors' per-batch mIoU.

        See :meth:`torchgeo.tasks.mixins.ClassificationMixin.configure_metrics`;
        with ``protocol='authors'`` also ``BatchJaccardIndex``
        (:func:`~torchgeo_decur.metrics.batch_averaged_iou`).
        """
        super().configure_metrics()
        if self.hparams.get('protocol', 'ours') != 'authors':
            return
        classes, ignore = self.hparams['num_classes'], self.hparams['ignore_index']
        for metrics in (self.train_metrics, self.val_metrics, self.test_metrics):
            metrics.add_metrics(
                {'BatchJaccardIndex': batch_averaged_iou(classes, ignore)}
            )

    def configure_optimizers(
        self,
    ) -> 'lightning.pytorch.utilities.types.OptimizerLRScheduler':
        """Initialize the optimizer and the learning rate schedule.

        Returns:
            AdamW over the trainable parameters (biases and normalisation
            parameters without weight decay unless
            *weight_decay_norms_and_biases*), and with
            ``lr_schedule='warmup_poly'`` CMX's schedule, stepped every step.
        """
        hp = self.hparams
        params = self._trainable_parameters()
        groups: list[dict[str, Any]] = [{'params': params}]
        if not hp.get('weight_decay_norms_and_biases', True):
            groups = [
                {'params': [p for p in params if p.ndim > 1]},
                {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0},
            ]
        optimizer = AdamW(groups, lr=hp['lr'], weight_decay=hp['weight_decay'])
        if hp.get('lr_schedule', 'constant') == 'constant':
            return optimizer
        total, warmup = self._schedule_steps()
        scheduler = LambdaLR(
            optimizer,
            lambda step: warmup_poly_factor(step, warmup, total, hp['poly_power']),
        )
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }

    def _schedule_steps(self) -> tuple[int, int]:
        """The run's optimisation steps and those of the warm-up.

        Returns:
            Total steps and warm-up steps: ``warmup_epochs / max_epochs``
            of the steps, at most all but the last.

        Raises:
            ValueError: If *warmup_epochs* is set but the trainer's number of
                epochs is unlimited.
        """
        epochs = self.hparams['warmup_epochs']
        total, warmup = warmup_steps(self._trainer, epochs)
        if warmup is None and epochs:
            msg = (
                f'warmup_epochs={epochs} needs a trainer with max_epochs set '
                '(the warm-up is a share of the epochs)'
            )
            raise ValueError(msg)
        return total, warmup or 0

    def _shared_step(self, batch: Sample, stage: str) -> Tensor:
        """Compute the loss and update the metrics of one stage.

        Args:
            batch: The output of your DataLoader.
            stage: 'train', 'val' or 'test'.

        Returns:
            The loss.
        """
        inputs = self._get_inputs(batch)
        y = self._get_target(batch, 'mask').long()
        if y.ndim == 4 and y.shape[1] == 1:
            y = y.squeeze(1)
        y_hat = self(*inputs)
        loss: Tensor = self.criterion(y_hat, y)
        metrics = getattr(self, f'{stage}_metrics')
        metrics(y_hat.detach().argmax(dim=1), y)
        self.log(f'{stage}_loss', loss, batch_size=y.shape[0])
        return loss

    def predict_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the predicted class probabilities.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            Class probabilities of shape ``(N, num_classes, H, W)``.
        """
        y_hat: Tensor = self(*self._get_inputs(batch)).softmax(dim=1)
        return y_hat
