"""The base of the self-supervised tasks: one encoder per modality.

:class:`SSLTask` owns what every multimodal self-supervised method shares:
one encoder per modality (any timm model, DeCUR or other weights, optional
deformable attention) in ``encoders``, a projector per modality in
``projectors``, both keyed by modality name; batches of two
views of each modality; the optimiser (LARS or AdamW, two parameter groups)
with a warm-up + cosine schedule stepped per step; skip reporting and the
checkpoint record of the modalities. A method (DeCUR, the baselines, CoMM, or
yours) adds only its arguments, its loss (from :mod:`torchgeo_decur.losses`,
in ``configure_losses``) and its forward of the views
(:meth:`~SSLTask.compute_loss`)::

    class MyMethod(SSLTask):
        def __init__(self, tau: float = 0.1, **kwargs: Any) -> None:
            super().__init__(**kwargs)

        def configure_losses(self) -> None:
            self.criterion = NTXentLoss(self.hparams['tau'])

        def compute_loss(self, views):
            z1, z2 = (self.project(m, v[:, 0]) for m, v in views.items())
            return self.criterion(z1, z2), {}

.. versionadded:: 0.2
"""

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

import lightning.pytorch.utilities.types
import torch
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torchgeo.tasks import BaseTask
from torchvision.models._api import WeightsEnum

from ..guards import FiniteSteps, NonFiniteError, nonfinite_tensors
from ..modalities import in_channels_for, modality_record
from ..models import create_modality_encoder, create_projector, output_size
from ..models.deformable import DeformableResNet
from ..models.weights.files import encoder_records
from ..monitors import CollapseMonitor
from ._schedule import warmup_steps
from ._skips import SkipReportMixin

__all__ = ('ALIASES', 'OPTIMIZERS', 'EncoderSettings', 'SSLTask')

#: Optimisers of the self-supervised tasks.
OPTIMIZERS = ('lars', 'adamw')

#: The deprecated per-modality arguments of :class:`SSLTask` (modalities 1, 2).
ALIASES = tuple(
    f'{k}{i}'
    for i in (1, 2)
    for k in ('model', 'in_channels', 'weights', 'model_kwargs')
)


class EncoderSettings(TypedDict, total=False):
    """The encoder of one modality in :class:`SSLTask`'s ``encoders`` mapping.

    A missing key takes the deprecated argument of that modality (``model1``,
    ``in_channels1``, ``weights1``, ``model_kwargs1`` for the first two),
    else the default: ``resnet50``, the registered modality's channels, random
    weights, no keyword arguments.

    .. versionadded:: 0.2
    """

    #: Name of the `timm <https://huggingface.co/docs/timm>`__ model (any
    #: model with pooled features); ``resnet50`` when missing.
    model: str
    #: Number of input channels; None takes the registered modality's number
    #: of bands (2 for ``s1``, 13 for ``s2c``); needed for an unregistered one.
    in_channels: int | None
    #: Initial weights (not recorded in checkpoints): a weight enum, its name,
    #: a path to a state dict or checkpoint, True for timm's ImageNet weights,
    #: or None for random weights. From joint DeCUR weights (e.g.
    #: ``ResNet50_Weights.DECUR_S1S2``) the encoder of this modality is taken.
    weights: WeightsEnum | str | bool | None
    #: Further keyword arguments of :func:`timm.create_model` (e.g.
    #: ``{'img_size': 64}`` for a ViT).
    model_kwargs: dict[str, Any]


def _check_arguments(
    names: list[str],
    encoders: dict[str, Any] | None,
    optimizer: str,
    lr_schedule: str,
    task: type['SSLTask'],
) -> None:
    """Check the arguments of :class:`SSLTask` that name choices.

    Raises:
        ValueError: As :class:`SSLTask` documents.
    """
    if len(names) < 2:
        msg = f'modalities must name at least two modalities, got {names}'
        raise ValueError(msg)
    most = task.max_modalities
    if most is not None and len(names) > most:
        msg = (
            f'{task.__name__} is defined for {most} modalities, got {len(names)} '
            f'({names}); DeCURTask takes any number'
        )
        raise ValueError(msg)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        msg = f'modalities must be distinct; {repeated} repeated in {names}'
        raise ValueError(msg)
    unknown = sorted(set(encoders or {}) - set(names))
    if unknown:
        msg = f'encoders names {unknown}, which are not in modalities {names}'
        raise ValueError(msg)
    if optimizer not in OPTIMIZERS:
        msg = f"optimizer must be 'lars' or 'adamw', got {optimizer!r}"
        raise ValueError(msg)
    if lr_schedule not in ('cosine', 'constant'):
        msg = f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}"
        raise ValueError(msg)


def _warn_deprecated_aliases(names: list[str], aliases: Mapping[str, Any]) -> None:
    """Warn once per task of the ``model1`` ... ``model_kwargs2`` arguments given."""
    given = [k for k, v in aliases.items() if v is not None]
    if not given:
        return
    example = {names[int(k[-1]) - 1]: {k[:-1]: aliases[k]} for k in given[:1]}
    msg = (
        f'{", ".join(given)}: deprecated aliases of the encoders mapping, '
        f'e.g. encoders={example}; they keep working for the first two '
        'modalities'
    )
    warnings.warn(msg, DeprecationWarning, stacklevel=3)


class SSLTask(SkipReportMixin, BaseTask):
    """Base of the self-supervised tasks with one encoder per modality.

    Batches are dicts with ``image1`` of shape ``(B, 2, C1, H, W)``,
    ``image2`` of shape ``(B, 2, C2, H, W)``, ... (one key per modality, in
    the order of *modalities*): two augmented views (dim 1) of each modality.
    The base takes any number of modalities (two or more); methods defined
    for two (the baselines, CoMM) say so.

    Each modality's encoder is described in *encoders*, by name::

        DeCURTask(
            modalities=['s1', 's2a', 'dem'],
            encoders={
                's1': {'model': 'resnet50'},
                's2a': {'model': 'resnet50', 'weights': 'ResNet50_Weights.DECUR_S1S2'},
                'dem': {'model': 'resnet18', 'in_channels': 1},
            },
        )

    ``model1``, ``in_channels1``, ``weights1``, ``model_kwargs1`` and their
    ``2`` versions are deprecated aliases of the first two modalities'
    entries (they keep working, with a :class:`DeprecationWarning`).

    Checkpoints record, for each modality, its bands in channel order and its
    preprocessing (``checkpoint['torchgeo_decur']``), and the resolved
    ``encoders`` (model, channels, keyword arguments); checkpoints of 0.1
    (``backbone1.*``, ``projector1.*``) load into it. What the dataset skipped
    (bad files) is logged per epoch as ``train_skipped_samples`` /
    ``train_skipped_seasons``, and the first bad files are named in a warning
    at the end of each epoch.

    Attributes:
        encoders: The encoder of each modality, by name.
        projectors: The projector of each modality, by name (methods with
            other heads, such as CoMM, have none).

    .. versionadded:: 0.2
    """

    encoders: nn.ModuleDict
    projectors: nn.ModuleDict
    ignore = ('weights1', 'weights2')
    monitor = 'train_loss'
    #: Most modalities the method is defined for (None: any number).
    max_modalities: int | None = None

    def __init__(
        self,
        modalities: Sequence[str] = ('s1', 's2c'),
        model1: str | None = None,
        model2: str | None = None,
        in_channels1: int | None = None,
        in_channels2: int | None = None,
        weights1: WeightsEnum | str | bool | None = None,
        weights2: WeightsEnum | str | bool | None = None,
        model_kwargs1: dict[str, Any] | None = None,
        model_kwargs2: dict[str, Any] | None = None,
        encoders: dict[str, EncoderSettings] | None = None,
        deformable_attention: bool | None = None,
        projector_dims: Sequence[int] | None = (8192, 8192, 8192),
        optimizer: Literal['lars', 'adamw'] = 'lars',
        lr: float = 0.2,
        lr_biases: float = 0.0048,
        weight_decay: float = 1e-6,
        weight_decay_biases: float = 0.0,
        momentum: float = 0.9,
        warmup_epochs: float = 0,
        lr_schedule: Literal['cosine', 'constant'] = 'cosine',
        gather_distributed: bool = True,
        nonfinite_skips: int = 0,
        monitor_every: int = 50,
    ) -> None:
        """Initialize a new SSLTask instance.

        Args:
            modalities: Names of the modalities, two or more (see
                :func:`~torchgeo_decur.modalities.register_modality`), recorded
                in the checkpoint so exported encoders say what they take.
            model1: Deprecated alias of ``encoders[modalities[0]]['model']``.
            model2: Deprecated alias of ``encoders[modalities[1]]['model']``.
            in_channels1: Deprecated alias of the ``in_channels`` entry.
            in_channels2: Deprecated alias of the ``in_channels`` entry.
            weights1: Deprecated alias of the ``weights`` entry.
            weights2: Deprecated alias of the ``weights`` entry.
            model_kwargs1: Deprecated alias of the ``model_kwargs`` entry.
            model_kwargs2: Deprecated alias of the ``model_kwargs`` entry.
            encoders: The encoder of each modality by name
                (:class:`EncoderSettings`); its keys override the deprecated
                arguments above. Recorded, resolved, in the checkpoint.
            deformable_attention: Add deformable attention after stages 3 and
                4 of every (ResNet) encoder, each with its own blocks (DeCUR's
                ECCV version; see :mod:`torchgeo_decur.models.deformable`).
                None follows the initial weights (True for the ``*_RDA``
                entries), False without weights. Recorded as resolved.
            projector_dims: Output sizes of each modality's projector
                (Linear-BN-ReLU, a plain Linear last); the last is the
                embedding size.
            optimizer: ``'lars'`` (the paper's ResNet setting; *momentum*
                applies) or ``'adamw'`` (the authors' MiT, ViT and
                deformable-attention runs, with lr 1e-4). Both use two
                parameter groups (*lr* / *lr_biases*; by default no weight
                decay on biases and normalisation parameters) and the same
                schedule.
            lr: Learning rate of the weights.
            lr_biases: Learning rate of biases and normalisation parameters
                (LARS adapts them only with *weight_decay_biases*).
            weight_decay: Weight decay of the weights.
            weight_decay_biases: Weight decay of biases and normalisation
                parameters: 0 as the paper; the authors' latest code decays
                every parameter alike, as the configs of those runs do.
            momentum: Momentum of LARS.
            warmup_epochs: Epochs of linear warm-up before the cosine decay; 0
                (the paper) for none.
            lr_schedule: After the warm-up, ``'cosine'`` decay (the paper) or
                a ``'constant'`` rate (CoMM's code: AdamW at 3e-4 throughout).
            gather_distributed: Gather embeddings from all processes so that the
                loss is that of the global batch under DDP.
            nonfinite_skips: Steps with a NaN or infinite loss or gradient norm
                to skip (no update) before the run stops with
                :class:`~torchgeo_decur.guards.NonFiniteError`; 0 stops at the
                first (:mod:`torchgeo_decur.guards`).
            monitor_every: Steps between the effective ranks of the collapse
                monitors (:mod:`torchgeo_decur.monitors`, logged in training
                with each modality's embedding std); 0 leaves the ranks out.

        Raises:
            ValueError: If *modalities* does not name two or more distinct
                modalities,
                *encoders* names another one, an encoder's channels are neither
                given nor registered, or *optimizer* or *lr_schedule* is
                unknown.
        """
        names = list(modalities)
        _check_arguments(names, encoders, optimizer, lr_schedule, type(self))
        self.finite = FiniteSteps(nonfinite_skips)
        self.monitor = CollapseMonitor(every=monitor_every)
        self._captured: dict[str, Tensor] | None = None
        aliases = {k: v for k, v in locals().items() if k in ALIASES}
        _warn_deprecated_aliases(names, aliases)
        given = encoders or {}
        defaults = [weights1, weights2] + [None] * (len(names) - 2)
        self.weights = {
            name: given.get(name, {}).get('weights', default)
            for name, default in zip(names, defaults, strict=True)
        }
        super().__init__()

    @property
    def modality_names(self) -> list[str]:
        """The modalities, in the order of the batch keys ``image1``, ``image2``, ..."""
        return list(self.hparams['modalities'])

    def configure_models(self) -> None:
        """Initialize the encoders, then the method's heads."""
        settings = {r['name']: r for r in encoder_records(self.hparams)}
        for name, spec in settings.items():
            spec['in_chans'] = in_channels_for(name, spec['in_chans'])
        deformable: bool | None = self.hparams['deformable_attention']
        encoders = self._create_encoders(settings, deformable)
        built = [isinstance(e, DeformableResNet) for e in encoders.values()]
        if deformable is None and any(built) and not all(built):
            # one encoder's weights have blocks: all encoders get them
            encoders, built = self._create_encoders(settings, True), [True]
        self.hparams['deformable_attention'] = all(built)
        self.hparams['encoders'] = {
            name: {
                'model': spec['model'],
                'in_channels': spec['in_chans'],
                'model_kwargs': spec['model_kwargs'],
            }
            for name, spec in settings.items()
        }
        self.encoders = nn.ModuleDict(encoders)
        self.configure_heads({n: output_size(e) for n, e in encoders.items()})

    def _create_encoders(
        self, settings: Mapping[str, Mapping[str, Any]], deformable: bool | None
    ) -> dict[str, nn.Module]:
        """Create the encoder of every modality."""
        return {
            name: create_modality_encoder(
                spec['model'],
                spec['in_chans'],
                name,
                self.weights[name],
                deformable,
                **spec['model_kwargs'],
            )
            for name, spec in settings.items()
        }

    def configure_heads(self, features: Mapping[str, int]) -> None:
        """Initialize what follows the encoders: by default a projector each.

        Args:
            features: Size of the pooled features of each modality's encoder.
        """
        dims = [int(d) for d in self.hparams['projector_dims']]
        self.projectors = nn.ModuleDict(
            {name: create_projector(size, dims) for name, size in features.items()}
        )

    def project(self, modality: str, x: Tensor) -> Tensor:
        """Embed images of one modality: its encoder, then its projector.

        Args:
            modality: Modality name.
            x: Its images of shape ``(B, C, H, W)``.

        Returns:
            Embeddings of shape ``(B, K)``.
        """
        out: Tensor = self.projectors[modality](self.encoders[modality](x))
        captured = getattr(self, '_captured', None)
        if captured is not None:  # the collapse monitors' view of the step
            captured.setdefault(modality, out)
        return out

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Encode one batch of each modality.

        Args:
            *inputs: Images ``(B, C_i, H, W)`` of each modality, in order.

        Returns:
            The pooled features of each modality's encoder.
        """
        encoders = self.encoders.values()
        return tuple(e(x) for e, x in zip(encoders, inputs, strict=True))

    @torch.no_grad()
    def representation(self, *inputs: Tensor) -> Tensor:
        """What a linear probe of this method sees of the modalities.

        The pooled features of the encoders, concatenated (the paper's
        late-fusion evaluation); methods with a fused representation (CoMM)
        return that instead.

        Args:
            *inputs: Images ``(B, C_i, H, W)`` of each modality, in order.

        Returns:
            Features of shape ``(B, D)``.
        """
        return torch.cat(self(*inputs), dim=1)

    def views(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Check and return the two views of each modality.

        Args:
            batch: The batch, with ``image1``, ``image2``, ... (one per modality).

        Returns:
            ``{modality: views of shape (B, 2, C, H, W)}``.

        Raises:
            KeyError: If the batch lacks a modality's key.
            ValueError: If the views' shape or channel count is wrong.
        """
        out = {}
        for i, name in enumerate(self.modality_names, start=1):
            key = f'image{i}'
            expected = self.hparams['encoders'][name]['in_channels']
            if key not in batch:
                msg = f'batch has no {key!r}; keys: {sorted(batch)}'
                raise KeyError(msg)
            x = batch[key]
            if x.ndim != 5 or x.shape[1] != 2:
                msg = (
                    f'batch[{key!r}] must have shape (B, 2, C, H, W) with two '
                    f'views, got {tuple(x.shape)}'
                )
                raise ValueError(msg)
            if x.shape[2] != expected:
                msg = (
                    f'{key} ({name}) has {x.shape[2]} channels but its encoder '
                    f'takes {expected} (encoders[{name!r}].in_channels)'
                )
                raise ValueError(msg)
            out[name] = x
        return out

    def compute_loss(
        self, views: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The method's loss of one batch (implemented by each method).

        Args:
            views: ``{modality: views of shape (B, 2, C, H, W)}``.

        Returns:
            The loss, and further values to log by name.
        """
        raise NotImplementedError

    def shared_step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch.

        Logs ``<stage>_loss`` (also in the progress bar) and
        ``<stage>_<term>`` for each of the method's terms.

        Args:
            batch: The batch, with two views of each modality.
            stage: ``train`` or ``val``.

        Returns:
            The loss.
        """
        return self.logged_loss(batch, stage)[0]

    def logged_loss(
        self, batch: Mapping[str, Tensor], stage: str
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`shared_step`, also returning the logged terms.

        Args:
            batch: The batch, with two views of each modality.
            stage: ``train`` or ``val``.

        Returns:
            The loss and its terms.

        .. versionadded:: 0.2
        """
        views = self.views(batch)
        monitor = getattr(self, 'monitor', None) if stage == 'train' else None
        self._captured = {} if monitor is not None else None
        try:
            loss, terms = self.compute_loss(views)
            if monitor is not None and self._captured:
                terms = {**terms, **monitor(self._captured, self.global_step)}
        finally:
            self._captured = None
        size = next(iter(views.values())).shape[0]
        sync = stage != 'train'
        self.log(f'{stage}_loss', loss, batch_size=size, sync_dist=sync, prog_bar=True)
        for name, value in terms.items():
            bar = name == 'common_diag'
            self.log(
                f'{stage}_{name}', value, batch_size=size, sync_dist=sync, prog_bar=bar
            )
        return loss, terms

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | None:
        """Compute the training loss.

        Args:
            batch: The output of your DataLoader, augmented.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            The loss tensor; None (the step is skipped) for a non-finite loss
            while ``nonfinite_skips`` last.

        Raises:
            NonFiniteError: For a non-finite loss once no skips are left.
        """
        self._report_skips(batch, 'train')
        buffers = self.finite.snapshot(self)
        loss, terms = self.logged_loss(batch, 'train')
        if not self.finite.loss_ok(loss, terms, self.global_step, self._last_saved()):
            self.finite.restore(self, buffers)
            self.log('train_nonfinite_skipped', float(self.finite.skipped))
            return None
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (or stop on) a step whose gradient norm is not finite.

        Runs with mixed precision's gradient scaler leave inf gradients to it.

        Args:
            optimizer: The optimiser about to step.
        """
        if getattr(self.trainer.precision_plugin, 'scaler', None) is not None:
            return
        params = (p for group in optimizer.param_groups for p in group['params'])
        if not self.finite.gradients_ok(params, self.global_step, self._last_saved()):
            self.log('train_nonfinite_skipped', float(self.finite.skipped))

    def _last_saved(self) -> str:
        """The last checkpoint the run wrote, for errors."""
        for callback in getattr(self._trainer, 'checkpoint_callbacks', None) or []:
            last = getattr(callback, 'last_model_path', '')
            path = last or getattr(callback, 'best_model_path', '')
            if path:
                return str(path)
        return 'none written yet'

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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse non-finite weights; record each modality's bands and preprocessing.

        Args:
            checkpoint: The checkpoint dict being saved.

        Raises:
            NonFiniteError: If a weight is NaN or inf (nothing is written, and
                no earlier checkpoint is removed).
        """
        bad = nonfinite_tensors(checkpoint.get('state_dict', {}))
        if bad:
            msg = (
                f'step {self.global_step}: non-finite weights in {len(bad)} '
                f'tensors (e.g. {", ".join(bad[:3])}), not saved; earlier '
                f'checkpoints are kept (last: {self._last_saved()})'
            )
            raise NonFiniteError(msg)
        records = [modality_record(name) for name in self.modality_names]
        checkpoint['torchgeo_decur'] = {'modalities': records}

    def legacy_prefixes(self) -> dict[str, str]:
        """State dict prefixes of 0.1 and their names now.

        Returns:
            ``{'backbone1.': 'encoders.<modality 1>.', 'projector1.': ...}``.
        """
        prefixes = {}
        for i, name in enumerate(self.modality_names, start=1):
            prefixes[f'backbone{i}.'] = f'encoders.{name}.'
            prefixes[f'projector{i}.'] = f'projectors.{name}.'
        return prefixes

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load a state dict, also one of 0.1 (``backbone1.*``, ``projector1.*``).

        Args:
            state_dict: The state dict.
            strict: Whether keys must match exactly.
            assign: Whether to assign the tensors instead of copying them.

        Returns:
            The missing and unexpected keys, as :meth:`torch.nn.Module.load_state_dict`.
        """
        renamed = {}
        for key, value in state_dict.items():
            for old, new in self.legacy_prefixes().items():
                if key.startswith(old):
                    key = new + key.removeprefix(old)
                    break
            renamed[key] = value
        return super().load_state_dict(renamed, strict=strict, assign=assign)

    @property
    def backbone1(self) -> nn.Module:
        """The encoder of modality 1 (its name in 0.1)."""
        return self.encoders[self.modality_names[0]]

    @property
    def backbone2(self) -> nn.Module:
        """The encoder of modality 2 (its name in 0.1)."""
        return self.encoders[self.modality_names[1]]

    @property
    def projector1(self) -> nn.Module:
        """The projector of modality 1 (its name in 0.1)."""
        return self.projectors[self.modality_names[0]]

    @property
    def projector2(self) -> nn.Module:
        """The projector of modality 2 (its name in 0.1)."""
        return self.projectors[self.modality_names[1]]

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Split the parameters as the paper does.

        Returns:
            Two parameter groups: weights (lr, weight decay, LARS adaptation)
            and biases plus normalisation parameters (lr_biases,
            weight_decay_biases: by default none, hence no LARS adaptation
            in lightly's LARS).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {
                'params': [p for p in params if p.ndim > 1],
                'lr': self.hparams['lr'],
                'weight_decay': self.hparams['weight_decay'],
            },
            {
                'params': [p for p in params if p.ndim <= 1],
                'lr': self.hparams['lr_biases'],
                'weight_decay': self.hparams.get('weight_decay_biases', 0.0),
            },
        ]

    def configure_optimizers(
        self,
    ) -> 'lightning.pytorch.utilities.types.OptimizerLRScheduler':
        """Initialize LARS (or AdamW) and the warm-up + cosine (or constant) schedule.

        The schedule is stepped every optimisation step; the warm-up covers
        ``warmup_epochs / max_epochs`` of the run, so a run cut short with
        ``max_steps`` keeps the same shape.

        Returns:
            Optimizer and learning rate scheduler.
        """
        hp = self.hparams
        optimizer: Optimizer
        if hp['optimizer'] == 'adamw':
            optimizer = AdamW(self.parameter_groups(), lr=hp['lr'])
        else:
            optimizer = LARS(
                self.parameter_groups(),
                lr=hp['lr'],
                momentum=hp['momentum'],
                weight_decay=hp['weight_decay'],
            )
        total_steps, warmup = warmup_steps(self._trainer, hp['warmup_epochs'])
        end = 1.0 if hp.get('lr_schedule', 'cosine') == 'constant' else 0.001
        scheduler = CosineWarmupScheduler(
            optimizer,
            warmup_epochs=warmup or 0,
            max_epochs=total_steps,
            end_value=end,
        )
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }
