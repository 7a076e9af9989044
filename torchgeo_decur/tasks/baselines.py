"""Baseline multimodal self-supervised tasks (DeCUR's comparisons and CoMM's).

One task, :class:`MultimodalSSLTask`, trains the baselines with DeCUR's
datamodules, encoders, augmentation and optimiser; *method* picks the loss.
DeCUR's own ablations (without intra-modal terms, without decoupling, without
both) are switches of :class:`~torchgeo_decur.tasks.DeCURTask` (``intra``,
``decouple``).

.. versionadded:: 0.1
"""

from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torchvision.models._api import WeightsEnum

from ..losses import (
    CLIPLoss,
    CrossModalBarlowTwinsLoss,
    CrossModalNTXentLoss,
    CrossModalVICRegLoss,
    CrossSelfLoss,
)
from ..losses.baselines import CROSS_VIEWS
from ..models import create_projector
from ._ssl import PairedSSLTask

__all__ = ('METHODS', 'MultimodalSSLTask')

#: The baselines of :class:`MultimodalSSLTask`.
METHODS = (
    'barlow_cross',
    'barlow_single',
    'clip',
    'simclr_cross',
    'vicreg_cross',
    'cross_self',
)

#: Projector output sizes of each method when ``projector_dims`` is None: the
#: DeCUR authors' baselines (8192-8192-8192 for the Barlow Twins and VICReg
#: baselines, 512-128 for CLIP and SimCLR); Cross+Self as SimCLR.
PROJECTOR_DIMS: dict[str, tuple[int, ...]] = {
    'barlow_cross': (8192, 8192, 8192),
    'barlow_single': (8192, 8192, 8192),
    'clip': (512, 128),
    'simclr_cross': (512, 128),
    'vicreg_cross': (8192, 8192, 8192),
    'cross_self': (512, 128),
}

#: Temperature of each contrastive method when ``temperature`` is None: CLIP's
#: initial 0.07, and SimCLR's / CoMM's 0.1.
TEMPERATURES = {'clip': 0.07, 'simclr_cross': 0.1, 'cross_self': 0.1}


class MultimodalSSLTask(PairedSSLTask):
    """Multimodal self-supervised baselines with one encoder per modality.

    Two encoders (one per modality), each followed by its own projector, are
    trained with the loss of *method*:

    * ``'barlow_cross'``: Barlow Twins between modality 1 and modality 2
      (:class:`~torchgeo_decur.losses.CrossModalBarlowTwinsLoss`), DeCUR's
      cross-modal Barlow Twins baseline;
    * ``'barlow_single'``: Barlow Twins between the two views of each
      modality, one independent Barlow Twins per encoder (the loss is the sum
      of the two; no cross-modal term);
    * ``'clip'``: CLIP's symmetric InfoNCE between the modalities, with a
      learnable temperature (:class:`~torchgeo_decur.losses.CLIPLoss`);
    * ``'simclr_cross'``: NT-Xent with the two modalities of a sample as the
      positive pair (:class:`~torchgeo_decur.losses.CrossModalNTXentLoss`);
    * ``'vicreg_cross'``: VICReg between the modalities
      (:class:`~torchgeo_decur.losses.CrossModalVICRegLoss`);
    * ``'cross_self'``: CoMM's Cross+Self, cross-modal NT-Xent plus each
      modality's SimCLR term between its two views
      (:class:`~torchgeo_decur.losses.CrossSelfLoss`).

    Batches are those of :class:`~torchgeo_decur.tasks.DeCURTask`: ``image1``
    of shape ``(B, 2, C1, H, W)`` and ``image2`` of shape ``(B, 2, C2, H, W)``,
    two augmented views of each modality. Cross-modal terms pair view k of
    modality 1 with view k of modality 2; with ``cross_views='both'`` (the
    default) the loss is the mean over k = 1, 2, with ``'first'`` only the
    first views are encoded, as the DeCUR authors trained their baselines.
    ``'barlow_single'`` and ``'cross_self'`` always encode both views.

    Defaults: projectors as the DeCUR authors' baselines (8192-8192-8192 for
    the Barlow Twins and VICReg methods, 512-128 for CLIP, SimCLR and
    Cross+Self; see ``PROJECTOR_DIMS``), lambda 0.0051, VICReg's 25 / 25
    / 1, temperatures 0.07 (CLIP, initial; learnable, inverse at most 100) and
    0.1 (SimCLR, Cross+Self; see ``TEMPERATURES``), and DeCUR's optimiser
    (LARS, lr 0.2 for weights and 0.0048 for biases and normalisation
    parameters, weight decay 1e-6, cosine decay without warm-up), which the
    authors' baseline scripts set too. The resolved projector sizes and
    temperature are recorded in the hyperparameters.

    Linear probes see the pooled features of both encoders, concatenated
    (:meth:`~torchgeo_decur.tasks._ssl.PairedSSLTask.representation`).
    Checkpoints record each modality's bands and preprocessing as DeCURTask's.

    If you use this task in your research, please cite the paper of the method
    (see each loss) and DeCUR:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        method: Literal[
            'barlow_cross',
            'barlow_single',
            'clip',
            'simclr_cross',
            'vicreg_cross',
            'cross_self',
        ] = 'barlow_cross',
        model1: str = 'resnet50',
        model2: str = 'resnet50',
        in_channels1: int | None = None,
        in_channels2: int | None = None,
        modalities: Sequence[str] = ('s1', 's2c'),
        weights1: WeightsEnum | str | bool | None = None,
        weights2: WeightsEnum | str | bool | None = None,
        model_kwargs1: dict[str, Any] | None = None,
        model_kwargs2: dict[str, Any] | None = None,
        projector_dims: Sequence[int] | None = None,
        cross_views: Literal['both', 'first'] = 'both',
        temperature: float | None = None,
        max_logit_scale: float = 100.0,
        lambd: float = 0.0051,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        ssl_scale: float = 1.0,
        lr: float = 0.2,
        lr_biases: float = 0.0048,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 0,
        gather_distributed: bool = True,
        optimizer: Literal['lars', 'adamw'] = 'lars',
        deformable_attention: bool | None = None,
    ) -> None:
        """Initialize a new MultimodalSSLTask instance.

        Args:
            method: The baseline: ``'barlow_cross'``, ``'barlow_single'``,
                ``'clip'``, ``'simclr_cross'``, ``'vicreg_cross'`` or
                ``'cross_self'`` (see above).
            model1: Name of the `timm <https://huggingface.co/docs/timm>`__ model
                for modality 1 (any model with pooled features).
            model2: Name of the timm model for modality 2.
            in_channels1: Number of input channels of modality 1; None takes
                the registered modality's number of bands (2 for ``s1``).
            in_channels2: Number of input channels of modality 2, as
                *in_channels1* (13 for ``s2c``).
            modalities: Names of the two modalities (see
                :func:`~torchgeo_decur.modalities.register_modality`), recorded in
                the checkpoint.
            weights1: Initial weights of encoder 1: a weight enum, its name, a
                path to a state dict or checkpoint, True for timm's ImageNet
                weights, or None for random weights.
            weights2: Initial weights of encoder 2, as *weights1*.
            model_kwargs1: Extra keyword arguments for ``timm.create_model`` of
                encoder 1.
            model_kwargs2: Extra keyword arguments for encoder 2.
            projector_dims: Output sizes of the projector layers (the last is
                the embedding size); None takes the method's default (see
                ``PROJECTOR_DIMS``).
            cross_views: Pairs of views of the cross-modal terms: ``'both'``
                (mean over view 1 of both modalities and view 2 of both) or
                ``'first'`` (the first views only, as the DeCUR authors'
                baselines; the second views are not encoded, except where
                the method needs them).
            temperature: Temperature of ``'clip'`` (initial value of the
                learnable one), ``'simclr_cross'`` and ``'cross_self'``; None
                takes the method's default (see ``TEMPERATURES``).
                Ignored by the other methods.
            max_logit_scale: Largest inverse temperature of ``'clip'``.
            lambd: Weight of the off-diagonal terms of ``'barlow_cross'`` and
                ``'barlow_single'``.
            sim_coeff: Weight of the invariance term of ``'vicreg_cross'``.
            std_coeff: Weight of the variance term of ``'vicreg_cross'``.
            cov_coeff: Weight of the covariance term of ``'vicreg_cross'``.
            ssl_scale: Weight of the mean of the intra-modal terms of
                ``'cross_self'``.
            lr: Learning rate of the weights.
            lr_biases: Learning rate of biases and normalisation parameters
                (and of CLIP's temperature), which get neither weight decay nor
                LARS adaptation.
            weight_decay: Weight decay of the weights.
            momentum: Momentum of LARS.
            warmup_epochs: Epochs of linear warm-up before the cosine decay.
            gather_distributed: Gather embeddings from all processes so that the
                loss is that of the global batch under DDP.
            optimizer: ``'lars'`` or ``'adamw'`` (see
                :class:`~torchgeo_decur.tasks.DeCURTask`).
            deformable_attention: Add deformable attention to both (ResNet)
                encoders; None follows the initial weights.

        Raises:
            ValueError: If *method*, *cross_views* or *optimizer* is unknown,
                *modalities* does not name two known modalities, or a loss
                parameter is out of range (the error names it).
        """
        if method not in METHODS:
            msg = f'method must be one of {", ".join(METHODS)}; got {method!r}'
            raise ValueError(msg)
        if cross_views not in CROSS_VIEWS:
            msg = f"cross_views must be 'both' or 'first', got {cross_views!r}"
            raise ValueError(msg)
        self.check_optimizer(optimizer)
        self.weights1 = weights1
        self.weights2 = weights2
        super().__init__()

    def configure_heads(self, features1: int, features2: int) -> None:
        """Initialize the projectors.

        Args:
            features1: Size of the pooled features of encoder 1.
            features2: Size of the pooled features of encoder 2.
        """
        dims = self.hparams['projector_dims']
        if dims is None:
            dims = PROJECTOR_DIMS[self.hparams['method']]
        dims = [int(d) for d in dims]
        self.hparams['projector_dims'] = dims  # recorded: None resolved
        self.projector1 = create_projector(features1, dims)
        self.projector2 = create_projector(features2, dims)

    def configure_losses(self) -> None:
        """Initialize the method's loss.

        Raises:
            ValueError: If a loss parameter is out of range.
        """
        hp = self.hparams
        method: str = hp['method']
        gather: bool = hp['gather_distributed']
        if method in TEMPERATURES and hp['temperature'] is None:
            hp['temperature'] = TEMPERATURES[method]
        self.criterion: nn.Module
        match method:
            case 'barlow_cross' | 'barlow_single':
                self.criterion = CrossModalBarlowTwinsLoss(hp['lambd'], gather)
            case 'clip':
                self.criterion = CLIPLoss(
                    hp['temperature'], hp['max_logit_scale'], gather
                )
            case 'simclr_cross':
                self.criterion = CrossModalNTXentLoss(hp['temperature'], gather)
            case 'vicreg_cross':
                self.criterion = CrossModalVICRegLoss(
                    hp['sim_coeff'],
                    hp['std_coeff'],
                    hp['cov_coeff'],
                    gather_distributed=gather,
                )
            case _:
                self.criterion = CrossSelfLoss(
                    hp['temperature'], hp['ssl_scale'], hp['cross_views'], gather
                )

    def _embed(self, x: Tensor, index: int) -> Tensor:
        """Project the encoder features of one view of one modality.

        Args:
            x: Images of shape ``(B, C, H, W)``.
            index: 1 or 2, the modality's number.

        Returns:
            Embeddings of shape ``(B, K)``.
        """
        backbone = self.backbone1 if index == 1 else self.backbone2
        projector = self.projector1 if index == 1 else self.projector2
        out: Tensor = projector(backbone(x))
        return out

    def _terms(self) -> dict[str, Tensor]:
        """The detached terms of the loss's last call.

        Returns:
            A copy of the loss's ``terms``.
        """
        return dict(cast(dict[str, Tensor], self.criterion.terms))

    def shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Compute and log the loss of one batch.

        Logs ``<stage>_loss`` and the loss's terms: for the cross-modal
        methods the terms of ``criterion`` (averaged over the view pairs),
        for ``'barlow_single'`` ``loss_intra1`` / ``loss_intra2`` and each
        term with the modality's number appended.

        Args:
            batch: The batch, with two views of each modality.
            stage: ``train`` or ``val``.

        Returns:
            The total loss.
        """
        x1 = self.views(batch, 'image1', 1)
        x2 = self.views(batch, 'image2', 2)
        method: str = self.hparams['method']
        both = self.hparams['cross_views'] == 'both' or method in (
            'barlow_single',
            'cross_self',
        )
        views = (0, 1) if both else (0,)
        z1 = [self._embed(x1[:, k], 1) for k in views]
        z2 = [self._embed(x2[:, k], 2) for k in views]
        terms: dict[str, Tensor] = {}
        losses: list[Tensor] = []
        if method == 'barlow_single':
            for i, (a, b) in enumerate((z1, z2), start=1):
                losses.append(self.criterion(a, b))
                terms[f'loss_intra{i}'] = losses[-1].detach()
                terms.update({f'{k}{i}': v for k, v in self._terms().items()})
            loss = losses[0] + losses[1]
        elif method == 'cross_self':
            loss = self.criterion(z1[0], z1[1], z2[0], z2[1])
            terms = {f'loss_{k}': v for k, v in self._terms().items()}
        else:
            # view k of modality 1 with view k of modality 2
            collected: list[dict[str, Tensor]] = []
            for a, b in zip(z1, z2, strict=True):
                losses.append(self.criterion(a, b))
                collected.append(self._terms())
            loss = torch.stack(losses).mean()
            terms = {
                k: torch.stack([t[k] for t in collected]).mean() for k in collected[0]
            }
        self.log_losses(stage, loss, terms, x1.shape[0])
        return loss
