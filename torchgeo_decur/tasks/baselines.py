"""Baseline multimodal self-supervised tasks (DeCUR's comparisons and CoMM's).

One task, :class:`MultimodalSSLTask`, trains the baselines with DeCUR's
datamodules, encoders, augmentation and optimiser; *method* picks the loss.
DeCUR's own ablations (without intra-modal terms, without decoupling, without
both) are switches of :class:`~torchgeo_decur.tasks.DeCURTask` (``intra``,
``decouple``).

.. versionadded:: 0.1
"""

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightly.loss import NTXentLoss, VICRegLoss
from torch import Tensor, nn

from ..losses import CLIPLoss, CrossModalBarlowTwinsLoss, CrossSelfLoss
from .ssl import SSLTask

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

#: Which view pairs a cross-modal term uses.
CROSS_VIEWS = ('both', 'first')


class MultimodalSSLTask(SSLTask):
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
      positive pair (:class:`lightly.loss.NTXentLoss`);
    * ``'vicreg_cross'``: VICReg between the modalities
      (:class:`lightly.loss.VICRegLoss`);
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
    (:meth:`~torchgeo_decur.tasks.SSLTask.representation`). Encoders,
    projectors, optimiser and checkpoints are those of
    :class:`~torchgeo_decur.tasks.SSLTask`.

    If you use this task in your research, please cite the paper of the method
    (see each loss) and DeCUR:

    * https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    max_modalities = 2

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
        projector_dims: Sequence[int] | None = None,
        cross_views: Literal['both', 'first'] = 'both',
        temperature: float | None = None,
        max_logit_scale: float = 100.0,
        lambd: float = 0.0051,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        ssl_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new MultimodalSSLTask instance.

        Args:
            method: The baseline: ``'barlow_cross'``, ``'barlow_single'``,
                ``'clip'``, ``'simclr_cross'``, ``'vicreg_cross'`` or
                ``'cross_self'`` (see above).
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
            max_logit_scale: Largest inverse temperature of ``'clip'``.
            lambd: Weight of the off-diagonal terms of the Barlow Twins methods.
            sim_coeff: Weight of the invariance term of ``'vicreg_cross'``.
            std_coeff: Weight of the variance term of ``'vicreg_cross'``.
            cov_coeff: Weight of the covariance term of ``'vicreg_cross'``.
            ssl_scale: Weight of the mean of the intra-modal terms of
                ``'cross_self'``.
            **kwargs: The encoders, projectors and optimiser
                (:class:`~torchgeo_decur.tasks.SSLTask`); *lr_biases* is also
                CLIP's temperature's learning rate.

        Raises:
            ValueError: If *method* or *cross_views* is unknown, a loss
                parameter is out of range (the error names it), or as
                :class:`~torchgeo_decur.tasks.SSLTask`.
        """
        if method not in METHODS:
            msg = f'method must be one of {", ".join(METHODS)}; got {method!r}'
            raise ValueError(msg)
        if cross_views not in CROSS_VIEWS:
            msg = f"cross_views must be 'both' or 'first', got {cross_views!r}"
            raise ValueError(msg)
        super().__init__(projector_dims=projector_dims, **kwargs)

    def configure_heads(self, features: dict[str, int]) -> None:
        """Initialize the projectors, of the method's default size if none is given.

        Args:
            features: Size of the pooled features of each modality's encoder.
        """
        dims = self.hparams['projector_dims'] or PROJECTOR_DIMS[self.hparams['method']]
        self.hparams['projector_dims'] = [int(d) for d in dims]  # recorded: resolved
        super().configure_heads(features)

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
                _check_positive('temperature', hp['temperature'])
                self.criterion = NTXentLoss(
                    hp['temperature'], gather_distributed=gather
                )
            case 'vicreg_cross':
                for name in ('sim_coeff', 'std_coeff', 'cov_coeff'):
                    _check_non_negative(name, hp[name])
                self.criterion = VICRegLoss(
                    hp['sim_coeff'], hp['std_coeff'], hp['cov_coeff'], gather
                )
            case _:
                self.criterion = CrossSelfLoss(
                    hp['temperature'], hp['ssl_scale'], hp['cross_views'], gather
                )

    def _loss(self, *embeddings: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The criterion in float32, autocast off, and its terms if it has any."""
        with torch.autocast(device_type=embeddings[0].device.type, enabled=False):
            loss = self.criterion(*(z.float() for z in embeddings))
        return loss, dict(getattr(self.criterion, 'terms', {}))

    def compute_loss(
        self, views: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The method's loss of the views of both modalities.

        Logged terms: for the cross-modal methods those of the criterion
        (averaged over the view pairs); for ``'barlow_single'``
        ``loss_intra1`` / ``loss_intra2`` and each term with the modality's
        number appended; for ``'cross_self'`` ``loss_cross``, ``loss_self1``,
        ``loss_self2``.

        Args:
            views: ``{modality: views of shape (B, 2, C, H, W)}``.

        Returns:
            The loss and its terms.
        """
        method: str = self.hparams['method']
        both = self.hparams['cross_views'] == 'both' or method in (
            'barlow_single',
            'cross_self',
        )
        z = [
            [self.project(m, x[:, k]) for k in ((0, 1) if both else (0,))]
            for m, x in views.items()
        ]
        if method == 'barlow_single':
            losses, terms = [], {}
            for i, (a, b) in enumerate(z, start=1):
                loss, parts = self._loss(a, b)
                losses.append(loss)
                terms[f'loss_intra{i}'] = loss.detach()
                terms.update({f'{k}{i}': v for k, v in parts.items()})
            return losses[0] + losses[1], terms
        if method == 'cross_self':
            loss, parts = self._loss(z[0][0], z[0][1], z[1][0], z[1][1])
            return loss, {f'loss_{k}': v for k, v in parts.items()}
        # view k of modality 1 with view k of modality 2
        pairs = [self._loss(a, b) for a, b in zip(z[0], z[1], strict=True)]
        loss = torch.stack([p[0] for p in pairs]).mean()
        terms = {k: torch.stack([p[1][k] for p in pairs]).mean() for k in pairs[0][1]}
        return loss, terms


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        msg = f'{name} must be > 0, got {value}'
        raise ValueError(msg)


def _check_non_negative(name: str, value: float) -> None:
    if not value >= 0:
        msg = f'{name} must be >= 0, got {value}'
        raise ValueError(msg)
