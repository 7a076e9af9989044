"""Machinery shared by the multimodal self-supervised tasks.

:class:`PairedSSLTask` is the base of :class:`~torchgeo_decur.tasks.DeCURTask`,
the baselines (:mod:`torchgeo_decur.tasks.baselines`) and CoMM: one encoder
per modality (any timm model, DeCUR or other weights, optional deformable
attention), batches of two views of each modality, the optimiser (LARS or
AdamW, two parameter groups) with a warm-up + cosine schedule stepped per
step, skip reporting, and the checkpoint record of the modalities. A
subclass adds its heads in :meth:`PairedSSLTask.configure_heads`, its loss
in ``configure_losses`` and its step in :meth:`PairedSSLTask.shared_step`;
:meth:`PairedSSLTask.representation` is what a linear probe sees.

.. versionadded:: 0.1
"""

from typing import Any, cast

import lightning.pytorch.utilities.types
import torch
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torchgeo.tasks import BaseTask

from ..modalities import in_channels_for, modality_record
from ..models import create_modality_encoder
from ..models.deformable import DeformableResNet
from ._skips import SkipReportMixin

__all__ = ('OPTIMIZERS', 'PairedSSLTask')

#: Optimisers of the self-supervised tasks.
OPTIMIZERS = ('lars', 'adamw')


class PairedSSLTask(SkipReportMixin, BaseTask):
    """Base of the self-supervised tasks with one encoder per modality.

    Expects the hyperparameters ``model1``, ``model2``, ``in_channels1``,
    ``in_channels2``, ``modalities``, ``model_kwargs1``, ``model_kwargs2``,
    ``deformable_attention``, ``lr``, ``lr_biases``, ``weight_decay``,
    ``momentum``, ``warmup_epochs`` and ``optimizer``, and the attributes
    ``weights1`` and ``weights2`` (set before ``super().__init__()``).

    .. versionadded:: 0.1
    """

    ignore = ('weights1', 'weights2')
    monitor = 'train_loss'

    weights1: Any
    weights2: Any

    @staticmethod
    def check_optimizer(optimizer: str) -> None:
        """Check the name of the optimiser.

        Args:
            optimizer: ``'lars'`` or ``'adamw'``.

        Raises:
            ValueError: If it is neither.
        """
        if optimizer not in OPTIMIZERS:
            msg = f"optimizer must be 'lars' or 'adamw', got {optimizer!r}"
            raise ValueError(msg)

    def configure_models(self) -> None:
        """Initialize the encoders, then the subclass's heads.

        Raises:
            ValueError: If *modalities* does not name two modalities, or the
                input channels of one are neither given nor registered, or
                differ from its registered bands.
        """
        modalities = list(self.hparams['modalities'])
        if len(modalities) != 2:
            msg = f'modalities must name two modalities, got {modalities}'
            raise ValueError(msg)
        for i, name in enumerate(modalities, start=1):
            # recorded in the checkpoint: exports need the channel count
            self.hparams[f'in_channels{i}'] = in_channels_for(
                name, self.hparams[f'in_channels{i}']
            )
        deformable: bool | None = self.hparams['deformable_attention']
        backbones = [self._encoder(i, modalities, deformable) for i in (1, 2)]
        built = [isinstance(b, DeformableResNet) for b in backbones]
        if deformable is None and any(built) and not all(built):
            # one encoder's weights have blocks: both encoders get them
            backbones = [self._encoder(i, modalities, True) for i in (1, 2)]
            built = [True, True]
        # recorded: None (follow the weights) resolved to what was built
        self.hparams['deformable_attention'] = all(built)
        self.backbone1, self.backbone2 = backbones
        self.configure_heads(
            cast(int, self.backbone1.num_features),
            cast(int, self.backbone2.num_features),
        )

    def configure_heads(self, features1: int, features2: int) -> None:
        """Initialize what follows the encoders (projectors, fusion, ...).

        Args:
            features1: Size of the pooled features of encoder 1.
            features2: Size of the pooled features of encoder 2.
        """

    def _encoder(
        self, index: int, modalities: list[str], deformable: bool | None
    ) -> nn.Module:
        """Create the encoder of modality *index* (1 or 2)."""
        return create_modality_encoder(
            self.hparams[f'model{index}'],
            self.hparams[f'in_channels{index}'],
            modalities[index - 1],
            getattr(self, f'weights{index}'),
            deformable,
            **(self.hparams[f'model_kwargs{index}'] or {}),
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record each modality's bands and preprocessing in the checkpoint.

        Args:
            checkpoint: The checkpoint dict being saved.
        """
        checkpoint['torchgeo_decur'] = {
            'modalities': [modality_record(name) for name in self.hparams['modalities']]
        }

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """Encode one batch of each modality.

        Args:
            x1: Modality 1 images of shape ``(B, C1, H, W)``.
            x2: Modality 2 images of shape ``(B, C2, H, W)``.

        Returns:
            Pooled backbone features of modality 1 and of modality 2.
        """
        return self.backbone1(x1), self.backbone2(x2)

    @torch.no_grad()
    def representation(self, x1: Tensor, x2: Tensor) -> Tensor:
        """What a linear probe of this method sees of a pair.

        The pooled features of both encoders, concatenated (the paper's
        late-fusion evaluation); methods with a fused representation (CoMM)
        return that instead.

        Args:
            x1: Modality 1 images of shape ``(B, C1, H, W)``.
            x2: Modality 2 images of shape ``(B, C2, H, W)``.

        Returns:
            Features of shape ``(B, D)``.
        """
        f1, f2 = self(x1, x2)
        return torch.cat([f1, f2], dim=1)

    def views(self, batch: dict[str, Tensor], key: str, index: int) -> Tensor:
        """Check and return the two views of one modality.

        Args:
            batch: The batch.
            key: ``image1`` or ``image2``.
            index: 1 or 2, the modality's number.

        Returns:
            Tensor of shape ``(B, 2, C, H, W)``.

        Raises:
            KeyError: If the batch lacks *key*.
            ValueError: If the views' shape or channel count is wrong.
        """
        if key not in batch:
            msg = f'batch has no {key!r}; keys: {sorted(batch)}'
            raise KeyError(msg)
        x = batch[key]
        if x.ndim != 5 or x.shape[1] != 2:
            msg = (
                f'batch[{key!r}] must have shape (B, 2, C, H, W) with two views, '
                f'got {tuple(x.shape)}'
            )
            raise ValueError(msg)
        expected: int = self.hparams[f'in_channels{index}']
        if x.shape[2] != expected:
            name = self.hparams['modalities'][index - 1]
            msg = (
                f'{key} ({name}) has {x.shape[2]} channels but '
                f'in_channels{index}={expected}'
            )
            raise ValueError(msg)
        return x

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch (implemented by subclasses).

        Args:
            batch: The batch, with two views of each modality.
            stage: ``train`` or ``val``.

        Returns:
            The loss.
        """
        raise NotImplementedError

    def log_losses(
        self, stage: str, loss: Tensor, terms: dict[str, Tensor], batch_size: int
    ) -> None:
        """Log the loss and its terms as ``<stage>_loss`` and ``<stage>_<term>``.

        The loss is shown in the progress bar too.

        Args:
            stage: ``train`` or ``val``.
            loss: The total loss.
            terms: Further values to log, by name.
            batch_size: Size of the batch.
        """
        sync = stage != 'train'
        # the total loss shows in the progress bar
        self.log(
            f'{stage}_loss', loss, batch_size=batch_size, sync_dist=sync, prog_bar=True
        )
        for name, value in terms.items():
            self.log(f'{stage}_{name}', value, batch_size=batch_size, sync_dist=sync)

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss.

        Args:
            batch: The output of your DataLoader, augmented.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            The loss tensor.
        """
        self._report_skips(batch, 'train')
        return self.shared_step(batch, 'train')

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss.

        Args:
            batch: The output of your DataLoader, augmented.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        self._report_skips(batch, 'val')
        self.shared_step(batch, 'val')

    def test_step(self, *args: Any, **kwargs: Any) -> None:
        """No-op: self-supervised tasks have no test metric; transfer instead."""

    def predict_step(self, *args: Any, **kwargs: Any) -> None:
        """No-op, use :meth:`forward` or :meth:`representation` to embed."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Split the parameters as the paper does.

        Returns:
            Two parameter groups: weights (lr, weight decay, LARS adaptation)
            and biases plus normalisation parameters (lr_biases, no weight decay,
            hence no LARS adaptation in lightly's LARS).
        """
        weights: list[nn.Parameter] = []
        biases: list[nn.Parameter] = []
        for param in self.parameters():
            if not param.requires_grad:
                continue
            (biases if param.ndim <= 1 else weights).append(param)
        return [
            {
                'params': weights,
                'lr': self.hparams['lr'],
                'weight_decay': self.hparams['weight_decay'],
            },
            {'params': biases, 'lr': self.hparams['lr_biases'], 'weight_decay': 0.0},
        ]

    def configure_optimizers(
        self,
    ) -> 'lightning.pytorch.utilities.types.OptimizerLRScheduler':
        """Initialize LARS (or AdamW) and the warm-up + cosine schedule.

        The schedule is stepped every optimisation step; the warm-up covers
        ``warmup_epochs / max_epochs`` of the run, so a run cut short with
        ``max_steps`` keeps the same shape.

        Returns:
            Optimizer and learning rate scheduler.
        """
        optimizer: Optimizer
        if self.hparams['optimizer'] == 'adamw':
            optimizer = AdamW(self.parameter_groups(), lr=self.hparams['lr'])
        else:
            optimizer = LARS(
                self.parameter_groups(),
                lr=self.hparams['lr'],
                momentum=self.hparams['momentum'],
                weight_decay=self.hparams['weight_decay'],
            )
        total_steps = 1
        warmup_steps = 0
        if self.trainer is not None:
            total_steps = max(1, int(self.trainer.estimated_stepping_batches))
            max_epochs = self.trainer.max_epochs
            if max_epochs is not None and max_epochs > 0:
                warmup = self.hparams['warmup_epochs'] / max_epochs
                warmup_steps = min(total_steps - 1, round(warmup * total_steps))
        scheduler = CosineWarmupScheduler(
            optimizer, warmup_epochs=warmup_steps, max_epochs=total_steps
        )
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }
