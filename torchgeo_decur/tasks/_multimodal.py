"""Code shared by the multimodal downstream (transfer) tasks."""

from collections.abc import Mapping
from typing import Any, Self, cast

from torch import Tensor, nn
from torchgeo.datasets.utils import Sample

from ..modalities import in_channels_for
from ..models.deformable import DeformableResNet
from ..models.heads import create_encoders
from ..models.weights import DA_BLOCKS
from ._skips import SkipReportMixin

#: Transfer protocols: frozen encoders (linear probing) or full fine-tuning.
MODES = ('linear', 'finetune')

#: Evaluation protocols of the transfer tasks: ours, or the authors' as their
#: transfer scripts ran it (batch norm, metrics; see the tasks).
PROTOCOLS = ('ours', 'authors')


class MultimodalTaskMixin(SkipReportMixin):
    """Mix-in for tasks with one encoder per input modality.

    Expects the hyperparameters ``model``, ``in_channels``, ``modalities``,
    ``input_keys``, ``mode``, ``model_kwargs``, ``deformable_attention`` and
    ``da_blocks``,
    the attribute ``weights``,
    and a ``model`` with an ``encoders`` module list. Provides encoder
    building (input channels from the registered modalities when not
    given), freezing (``mode='linear'``: encoder parameters *and* batch norm
    statistics frozen), input selection with clear errors, and the training,
    validation and test steps around a ``_shared_step``. Losses, metrics and
    their epoch-end logging come from TorchGeo's
    :class:`~torchgeo.tasks.mixins.ClassificationMixin`.

    .. versionadded:: 0.1
    """

    model: nn.Module
    weights: Any

    def _build_encoders(self) -> nn.ModuleList:
        """Validate the modality arguments and create one encoder per modality.

        Returns:
            The encoders.

        Raises:
            ValueError: If *mode* is unknown, or *in_channels*, *modalities* and
                *input_keys* differ in length or are invalid.
        """
        protocol = self.hparams.get('protocol', 'ours')
        if protocol not in PROTOCOLS:
            msg = f"protocol must be 'ours' or 'authors', got {protocol!r}"
            raise ValueError(msg)
        da_blocks = self.hparams.get('da_blocks', 'trained')
        if da_blocks not in DA_BLOCKS:
            msg = f"da_blocks must be 'trained' or 'authors', got {da_blocks!r}"
            raise ValueError(msg)
        mode = self.hparams['mode']
        if mode not in MODES:
            msg = f'mode must be one of {MODES}, got {mode!r}'
            raise ValueError(msg)
        modalities = list(self.hparams['modalities'])
        input_keys = list(self.hparams['input_keys'])
        given = self.hparams['in_channels']
        in_channels = list(given) if given is not None else [None] * len(modalities)
        if not len(in_channels) == len(modalities) == len(input_keys):
            msg = (
                'in_channels, modalities and input_keys must have the same length, '
                f'got in_channels={given}, modalities={modalities}, '
                f'input_keys={input_keys}'
            )
            raise ValueError(msg)
        if len(set(input_keys)) != len(input_keys):
            msg = f'input_keys must be distinct, got input_keys={input_keys}'
            raise ValueError(msg)
        # recorded: the channel counts are needed to rebuild the model
        self.hparams['in_channels'] = [
            in_channels_for(name, c)
            for name, c in zip(modalities, in_channels, strict=True)
        ]
        encoders = create_encoders(
            self.hparams['model'],
            self.hparams['in_channels'],
            modalities,
            weights=self.weights,
            model_kwargs=self.hparams['model_kwargs'],
            deformable_attention=self.hparams.get('deformable_attention'),
            da_blocks=self.hparams.get('da_blocks', 'trained'),
        )
        # recorded: None (follow the weights) resolved to what was built
        deformable = any(isinstance(e, DeformableResNet) for e in encoders)
        self.hparams['deformable_attention'] = deformable
        if self.hparams.get('da_blocks', 'trained') == 'authors' and not deformable:
            msg = (
                "da_blocks='authors' chooses deformable-attention blocks, but the "
                f'encoders ({self.hparams["model"]}, weights {self.weights!r}) '
                'have none'
            )
            raise ValueError(msg)
        return encoders

    @property
    def encoders(self) -> nn.Module:
        """The encoders of the model, one per modality."""
        return cast(nn.Module, self.model.encoders)

    @property
    def _frozen_statistics(self) -> bool:
        """Whether the encoders stay in evaluation mode while training.

        In linear mode, under our protocol, yes. Under ``protocol='authors'``
        no: the authors' linear probes freeze the parameters but leave the
        network in train mode (``net.train()`` every epoch in
        ``linear_BE_resnet.py``), so batch norm normalises with batch
        statistics and updates its running means.
        """
        linear = self.hparams.get('mode') == 'linear'
        return linear and self.hparams.get('protocol', 'ours') != 'authors'

    def _freeze_encoders(self) -> None:
        """In linear mode, freeze the encoder parameters (and normalisation stats)."""
        if self.hparams['mode'] != 'linear':
            return
        for param in self.encoders.parameters():
            param.requires_grad = False
        if self._frozen_statistics:
            self.encoders.eval()

    def train(self, mode: bool = True) -> Self:
        """Set the training mode, keeping frozen encoders in evaluation mode.

        In linear mode the encoders stay in evaluation mode, so that their batch
        norm running statistics (and dropout) do not change during training;
        not under ``protocol='authors'``, whose linear probes keep batch norm
        in train mode.

        Args:
            mode: Whether to set training mode (True) or evaluation mode (False).

        Returns:
            This module.
        """
        super().train(mode)
        if mode and hasattr(self, 'model') and self._frozen_statistics:
            self.encoders.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Keep frozen encoders in evaluation mode (e.g. after validation)."""
        if self._frozen_statistics:
            self.encoders.eval()

    def _trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that the optimiser updates.

        Returns:
            The parameters that require gradients.
        """
        return [p for p in self.parameters() if p.requires_grad]

    def _get_inputs(self, batch: Mapping[str, Any]) -> list[Tensor]:
        """Select one input per modality from a batch and check its shape.

        Args:
            batch: A batch with the keys in *input_keys*.

        Returns:
            The inputs, in the order of *modalities*.

        Raises:
            KeyError: If the batch lacks one of *input_keys*.
            ValueError: If an input is not ``(N, C, H, W)`` with *C* the
                modality's number of input channels.
        """
        inputs = []
        for key, modality, channels in zip(
            self.hparams['input_keys'],
            self.hparams['modalities'],
            self.hparams['in_channels'],
            strict=True,
        ):
            if key not in batch:
                msg = (
                    f'batch has no input {key!r} (modality {modality!r}); '
                    f'available keys: {sorted(batch)}'
                )
                raise KeyError(msg)
            x = batch[key]
            if not isinstance(x, Tensor) or x.ndim != 4:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                msg = (
                    f'input {key!r} (modality {modality!r}) must have shape '
                    f'(N, C, H, W), got {shape}'
                )
                raise ValueError(msg)
            if x.shape[1] != channels:
                msg = (
                    f'modality {modality!r} (input {key!r}) expects {channels} '
                    f'channels, got {x.shape[1]}'
                )
                raise ValueError(msg)
            inputs.append(x)
        return inputs

    def _get_target(self, batch: Sample | Mapping[str, Any], key: str) -> Tensor:
        """Return the target of a batch.

        Args:
            batch: A batch.
            key: The key of the target.

        Returns:
            The target.

        Raises:
            KeyError: If the batch lacks *key*.
        """
        if key not in batch:
            msg = f'batch has no target {key!r}; available keys: {sorted(batch)}'
            raise KeyError(msg)
        target: Tensor = batch[key]  # type: ignore[literal-required]
        return target

    def _shared_step(self, batch: Sample, stage: str) -> Tensor:
        """Compute the loss and update the metrics of one stage.

        Args:
            batch: The output of your DataLoader.
            stage: 'train', 'val' or 'test'.

        Returns:
            The loss.
        """
        raise NotImplementedError

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss and additional metrics.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            The loss tensor.
        """
        self._report_skips(batch, 'train')
        return self._shared_step(batch, 'train')

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss and additional metrics.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        self._report_skips(batch, 'val')
        self._shared_step(batch, 'val')

    def test_step(self, batch: Sample, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Compute the test loss and additional metrics.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        self._report_skips(batch, 'test')
        self._shared_step(batch, 'test')
