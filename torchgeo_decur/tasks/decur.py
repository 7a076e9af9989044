"""DeCUR task for multimodal self-supervised learning."""

from collections.abc import Sequence
from typing import Any, Literal, cast

import lightning.pytorch.utilities.types
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torchgeo.tasks import BaseTask
from torchvision.models._api import WeightsEnum

from ..losses import DeCURLoss
from ..modalities import in_channels_for, modality_record
from ..models import create_modality_encoder, create_projector
from ..models.deformable import DeformableResNet
from ._skips import SkipReportMixin


class DeCURTask(SkipReportMixin, BaseTask):
    """DeCUR: Decoupling Common and Unique Representations.

    Two encoders (one per modality), each followed by its own projector, are
    trained with :class:`~torchgeo_decur.losses.DeCURLoss`: the first
    ``common_dim`` embedding dimensions are driven to be correlated across the
    modalities, the others to be decorrelated, and each modality's two views are
    trained with a full Barlow Twins term.

    Batches are dicts with ``image1`` of shape ``(B, 2, C1, H, W)`` and
    ``image2`` of shape ``(B, 2, C2, H, W)``: two augmented views (dim 1) of
    modality 1 and of modality 2. The datamodule draws the augmentations (see
    :mod:`torchgeo_decur.transforms`).

    Defaults are the paper's SAR-optical settings: ResNet-50 per modality, an
    8192-8192-8192 projector, 87.5% common dimensions, lambda 0.0051, and LARS
    with lr 0.2 for weights and 0.0048 for biases and normalisation parameters,
    weight decay 1e-6, momentum 0.9, cosine decay without warm-up (paper,
    Appendix B, and the authors' code). The loss is the paper's Eq. 6 unless
    ``weighting='official'`` (the authors' code, which trained the published
    checkpoints; see :class:`~torchgeo_decur.losses.DeCURLoss`).

    Checkpoints record, for each modality, its bands in channel order and its
    preprocessing (``checkpoint['torchgeo_decur']``), so that exports and
    loaders know what the encoders expect. What the dataset skipped (bad files)
    is logged per epoch as ``train_skipped_samples`` /
    ``train_skipped_seasons``, and the first bad files are named in a warning
    at the end of each epoch.

    If you use this task in your research, please cite the following paper:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    ignore = ('weights1', 'weights2')
    monitor = 'train_loss'

    def __init__(
        self,
        model1: str = 'resnet50',
        model2: str = 'resnet50',
        in_channels1: int | None = None,
        in_channels2: int | None = None,
        modalities: Sequence[str] = ('s1', 's2c'),
        weights1: WeightsEnum | str | bool | None = None,
        weights2: WeightsEnum | str | bool | None = None,
        model_kwargs1: dict[str, Any] | None = None,
        model_kwargs2: dict[str, Any] | None = None,
        projector_dims: Sequence[int] = (8192, 8192, 8192),
        common_dim: int | None = None,
        common_share: float = 0.875,
        lambd: float = 0.0051,
        intra: bool = True,
        decouple: bool = True,
        lr: float = 0.2,
        lr_biases: float = 0.0048,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 0,
        gather_distributed: bool = True,
        weighting: Literal['paper', 'official'] = 'paper',
        optimizer: Literal['lars', 'adamw'] = 'lars',
        deformable_attention: bool | None = None,
    ) -> None:
        """Initialize a new DeCURTask instance.

        Args:
            model1: Name of the `timm <https://huggingface.co/docs/timm>`__ model
                for modality 1 (any model with pooled features).
            model2: Name of the timm model for modality 2.
            in_channels1: Number of input channels of modality 1; None takes
                the registered modality's number of bands (2 for ``s1``). Must
                be given for a modality that is not registered, and is then
                recorded in the checkpoint.
            in_channels2: Number of input channels of modality 2, as
                *in_channels1* (13 for ``s2c``).
            modalities: Names of the two modalities (see
                :func:`~torchgeo_decur.modalities.register_modality`), recorded in the
                checkpoint so exported encoders say what they take.
            weights1: Initial weights of encoder 1: a weight enum, its name, a
                path to a state dict or checkpoint, True for timm's ImageNet
                weights, or None for random weights. From joint DeCUR weights
                (e.g. ``ResNet50_Weights.DECUR_S1S2``) the encoder of
                ``modalities[0]`` is taken.
            weights2: Initial weights of encoder 2, as *weights1*.
            model_kwargs1: Extra keyword arguments for ``timm.create_model`` of
                encoder 1 (e.g. ``{'img_size': 64}`` for a ViT).
            model_kwargs2: Extra keyword arguments for encoder 2.
            projector_dims: Output sizes of the projector layers; the last one is
                the embedding size K.
            common_dim: Number of common embedding dimensions Kc. Defaults to
                ``round(common_share * K)``.
            common_share: Share of common dimensions when *common_dim* is None
                (0.875 for SAR-optical, 0.75 for RGB-DEM and RGB-depth).
            lambd: Weight of the off-diagonal terms.
            intra: Whether to add the intra-modal Barlow Twins terms.
            decouple: Whether to split common and unique dimensions; False makes
                all dimensions common (cross-modal Barlow Twins).
            lr: Learning rate of the weights (LARS).
            lr_biases: Learning rate of biases and normalisation parameters, which
                get neither weight decay nor LARS adaptation.
            weight_decay: Weight decay of the weights.
            momentum: Momentum of LARS.
            warmup_epochs: Epochs of linear warm-up before the cosine decay; 0
                (the paper) for none.
            gather_distributed: Gather embeddings from all processes so that the
                loss is that of the global batch under DDP.
            weighting: How the loss combines its terms: ``'paper'`` (Eq. 6, the
                plain sum) or ``'official'`` (the authors' code).
            optimizer: ``'lars'`` (the paper's ResNet setting; *momentum*
                applies) or ``'adamw'`` (the authors' MiT, ViT and
                deformable-attention runs, with lr 1e-4). Both use the two
                parameter groups (*lr* / *lr_biases*; no weight decay on biases
                and normalisation parameters) and the same schedule.
            deformable_attention: Add deformable attention after stages 3 and
                4 of both (ResNet) encoders, each with its own blocks (DeCUR's
                ECCV version; see :mod:`torchgeo_decur.models.deformable`).
                None follows the initial weights (True for the ``*_RDA``
                entries), False without weights. The value used is recorded
                in the checkpoint.

        Raises:
            ValueError: If *modalities* does not name two known modalities,
                *common_dim* / *common_share* do not fit the projector output,
                or *weighting* or *optimizer* is unknown.
        """
        if optimizer not in ('lars', 'adamw'):
            msg = f"optimizer must be 'lars' or 'adamw', got {optimizer!r}"
            raise ValueError(msg)
        self.weights1 = weights1
        self.weights2 = weights2
        super().__init__()

    def configure_models(self) -> None:
        """Initialize the encoders and projectors.

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
        dims: list[int] = list(self.hparams['projector_dims'])
        deformable: bool | None = self.hparams['deformable_attention']
        backbones = [self._encoder(i, modalities, deformable) for i in (1, 2)]
        built = [isinstance(b, DeformableResNet) for b in backbones]
        if deformable is None and any(built) and not all(built):
            # one encoder's weights have blocks: both encoders get them
            deformable = True
            backbones = [self._encoder(i, modalities, True) for i in (1, 2)]
            built = [True, True]
        # recorded: None (follow the weights) resolved to what was built
        self.hparams['deformable_attention'] = all(built)
        self.backbone1, self.backbone2 = backbones
        features1 = cast(int, self.backbone1.num_features)
        features2 = cast(int, self.backbone2.num_features)
        self.projector1 = create_projector(features1, dims)
        self.projector2 = create_projector(features2, dims)

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

    def configure_losses(self) -> None:
        """Initialize the DeCUR loss.

        Raises:
            ValueError: If the common dimensions do not fit the projector output.
        """
        embed_dim: int = list(self.hparams['projector_dims'])[-1]
        common_dim: int | None = self.hparams['common_dim']
        if common_dim is None:
            share: float = self.hparams['common_share']
            if not 0 < share <= 1:
                msg = f'common_share must be in (0, 1], got {share}'
                raise ValueError(msg)
            common_dim = max(1, round(share * embed_dim))
        if not 1 <= common_dim <= embed_dim:
            msg = (
                f'common_dim={common_dim} must be between 1 and the projector '
                f'output size {embed_dim} (last of projector_dims)'
            )
            raise ValueError(msg)
        self.common_dim = common_dim
        self.criterion = DeCURLoss(
            common_dim=common_dim,
            lambd=self.hparams['lambd'],
            intra=self.hparams['intra'],
            decouple=self.hparams['decouple'],
            gather_distributed=self.hparams['gather_distributed'],
            weighting=self.hparams['weighting'],
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

    def _views(self, batch: dict[str, Tensor], key: str, index: int) -> Tensor:
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

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch.

        Args:
            batch: The batch.
            stage: ``train`` or ``val``.

        Returns:
            The total loss.
        """
        x1 = self._views(batch, 'image1', 1)
        x2 = self._views(batch, 'image2', 2)
        z1_a = self.projector1(self.backbone1(x1[:, 0]))
        z1_b = self.projector1(self.backbone1(x1[:, 1]))
        z2_a = self.projector2(self.backbone2(x2[:, 0]))
        z2_b = self.projector2(self.backbone2(x2[:, 1]))
        loss: Tensor = self.criterion(z1_a, z1_b, z2_a, z2_b)

        self._report_skips(batch, stage)
        batch_size = x1.shape[0]
        sync = stage != 'train'
        self.log(f'{stage}_loss', loss, batch_size=batch_size, sync_dist=sync)
        for name, value in self.criterion.terms.items():
            prefix = 'loss_' if name in ('common', 'unique', 'intra1', 'intra2') else ''
            self.log(
                f'{stage}_{prefix}{name}', value, batch_size=batch_size, sync_dist=sync
            )
        return loss

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
        return self._shared_step(batch, 'train')

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss.

        Args:
            batch: The output of your DataLoader, augmented.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        self._shared_step(batch, 'val')

    def test_step(self, *args: Any, **kwargs: Any) -> None:
        """No-op, DeCUR has no test metric: transfer the encoders instead."""

    def predict_step(self, *args: Any, **kwargs: Any) -> None:
        """No-op, use :meth:`forward` to embed images."""

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
