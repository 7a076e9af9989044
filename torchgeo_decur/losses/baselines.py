"""Losses of the multimodal self-supervised baselines.

Each loss takes projected embeddings of shape ``(N, K)`` and computes in
float32 with autocast disabled, whatever the input dtype. Where lightly's loss
computes exactly the paper's formula the tasks use it directly (NT-Xent,
VICReg: :class:`lightly.loss.NTXentLoss`, :class:`lightly.loss.VICRegLoss`);
here are the ones lightly lacks or computes otherwise: Barlow Twins in the
Gram form of :class:`~torchgeo_decur.losses.DeCURLoss` (faster than
lightly's K x K version when the batch is smaller than the embedding, and
normalised with the global batch under DDP), CLIP's symmetric InfoNCE with a
learnable temperature, and CoMM's Cross+Self. After each call, ``terms``
holds detached values to log.

With ``gather_distributed=True`` and torch.distributed initialised with more
than one process, every loss sees the global batch: normalisation statistics,
correlations and negatives are those of all processes, as in the papers'
multi-GPU code.

.. versionadded:: 0.1
"""

import math
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn

from .decur import barlow_twins_term, correlation_stats

__all__ = ('CLIPLoss', 'CrossModalBarlowTwinsLoss', 'CrossSelfLoss')

#: Which view pairs a cross-modal term uses (see :class:`CrossSelfLoss`).
CROSS_VIEWS = ('both', 'first')


def _check_gather(gather_distributed: bool) -> None:
    """Check that gathering is possible when asked for.

    Args:
        gather_distributed: Whether the loss gathers across processes.

    Raises:
        ValueError: If *gather_distributed* is True but torch.distributed is
            not available.
    """
    if gather_distributed and not dist.is_available():
        msg = 'gather_distributed is True but torch.distributed is not available'
        raise ValueError(msg)


def _check_positive(**values: float) -> None:
    """Check that each value is > 0.

    Args:
        values: The values, by parameter name.

    Raises:
        ValueError: Naming the first value that is not > 0.
    """
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f'{name} must be > 0, got {value}')


def _check_non_negative(**values: float) -> None:
    """Check that each value is >= 0.

    Args:
        values: The values, by parameter name.

    Raises:
        ValueError: Naming the first value that is negative.
    """
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f'{name} must be >= 0, got {value}')


def _check_embeddings(min_batch: int = 1, **inputs: Tensor) -> None:
    """Check that embeddings are 2D and of one shape.

    Args:
        min_batch: Smallest batch size allowed.
        inputs: The embeddings, by argument name.

    Raises:
        ValueError: If an input is not 2D, the shapes differ or the batch is
            smaller than *min_batch*.
    """
    first = next(iter(inputs))
    for name, z in inputs.items():
        if z.dim() != 2:
            msg = f'{name} must be 2D (batch, embedding), got shape {tuple(z.shape)}'
            raise ValueError(msg)
        if z.shape != inputs[first].shape:
            msg = (
                f'{name} has shape {tuple(z.shape)}, expected '
                f'{tuple(inputs[first].shape)} as {first}'
            )
            raise ValueError(msg)
    n = inputs[first].shape[0]
    if n < min_batch:
        msg = f'batch size must be >= {min_batch} for this loss, got {n}'
        raise ValueError(msg)


def _distributed(gather_distributed: bool) -> bool:
    """Whether to gather: asked for, and more than one process.

    Args:
        gather_distributed: Whether the loss was asked to gather.

    Returns:
        True if the embeddings of several processes are to be gathered.
    """
    return (
        gather_distributed
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )


def _gather(z: Tensor) -> Tensor:
    """Concatenate the embeddings of all processes along the batch.

    Args:
        z: Local embeddings (N, K), the same N on every process.

    Returns:
        The global embeddings (world_size * N, K), differentiable with respect
        to the local ones (lightly's autograd all-gather).
    """
    return torch.cat(lightly_dist.gather(z.contiguous()), dim=0)


class CrossModalBarlowTwinsLoss(nn.Module):
    """Barlow Twins loss between two batches of embeddings.

    Barlow Twins [0], Eq. 1: with ``C = BN(z1)^T BN(z2) / N`` the
    cross-correlation of the embeddings normalised along the batch (zero mean,
    unit biased variance, eps 1e-5, as ``nn.BatchNorm1d(K, affine=False)``),

    ``L = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

    Between modality 1 and modality 2 it is the cross-modal Barlow Twins
    baseline of DeCUR [1] (DeCUR without decoupling and without its
    intra-modal terms, i.e. DeCURLoss's ``common`` term with all dimensions
    common); between two views of one modality it is plain Barlow Twins.

    The formula of lightly's :class:`~lightly.loss.BarlowTwinsLoss` (the same
    normalisation, eps and sums), computed as
    :class:`~torchgeo_decur.losses.DeCURLoss` computes its terms
    (:func:`~torchgeo_decur.losses.decur.correlation_stats`): without the
    K x K matrix when the batch is smaller than the embedding, which at the
    paper's size is many times faster (``benchmarks/loss.py``). lightly's
    distributed mode averages per-process correlation matrices, each
    normalised with that process's statistics; here the embeddings are
    gathered instead, so that normalisation and correlation are those of the
    global batch, as in the Barlow Twins and DeCUR code.

    ``terms`` after each call: ``'on_diag'`` (the first sum),
    ``'off_diag'`` (the weighted second sum, so that the two add up to the
    loss) and ``'diag_mean'`` (the mean of ``C_ii``).

    [0] Zbontar, J. et al., 2021. Barlow Twins: Self-Supervised Learning via
    Redundancy Reduction. ICML. https://arxiv.org/abs/2103.03230

    [1] Wang, Y. et al., 2024. Decoupling Common and Unique Representations for
    Multimodal Self-supervised Learning. ECCV. https://arxiv.org/abs/2309.05300

    .. versionadded:: 0.1
    """

    terms: dict[str, Tensor]

    def __init__(self, lambd: float = 0.0051, gather_distributed: bool = False) -> None:
        """Initialize a new CrossModalBarlowTwinsLoss instance.

        Args:
            lambd: Weight of the off-diagonal (redundancy reduction) sum; 0.0051
                as the Barlow Twins and DeCUR code (the paper writes 5e-3).
            gather_distributed: Gather the embeddings of all processes (with
                gradients) so that the loss is that of the global batch.

        Raises:
            ValueError: If *lambd* is negative, or *gather_distributed* is True
                but torch.distributed is not available.
        """
        super().__init__()
        _check_non_negative(lambd=lambd)
        _check_gather(gather_distributed)
        self.lambd = lambd
        self.gather_distributed = gather_distributed
        self.terms = {}

    def extra_repr(self) -> str:
        """Return the configuration shown by ``repr``.

        Returns:
            The constructor arguments.
        """
        return f'lambd={self.lambd}, gather_distributed={self.gather_distributed}'

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            z1: Embeddings of modality 1 (or of view a), shape (N, K).
            z2: Embeddings of modality 2 (or of view b), shape (N, K).

        Returns:
            The loss, a float32 scalar.

        Raises:
            ValueError: If the inputs are not 2D, differ in shape or the batch
                has fewer than 2 samples.
        """
        _check_embeddings(2, z1=z1, z2=z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            a, b = z1.float(), z2.float()
            if _distributed(self.gather_distributed):
                a, b = _gather(a), _gather(b)
            a, b = (F.batch_norm(z, None, None, training=True) for z in (a, b))
            diag, off = correlation_stats(a, b)
            loss = barlow_twins_term(diag, off, self.lambd)
        on_diag = (diag - 1).pow(2).sum().detach()
        self.terms = {
            'on_diag': on_diag,
            'off_diag': loss.detach() - on_diag,
            'diag_mean': diag.detach().mean(),
        }
        return loss


class CLIPLoss(nn.Module):
    """CLIP's symmetric InfoNCE between two modalities, learnable temperature.

    CLIP [0], Fig. 3: with ``u`` and ``v`` the L2-normalised embeddings of
    modality 1 and modality 2 and ``s = exp(logit_scale)`` the inverse
    temperature, the logits are ``S = s * u v^T`` (N x N, matching pairs on
    the diagonal) and

    ``L = (CE(S, I) + CE(S^T, I)) / 2``,

    the mean cross-entropy of each row of ``S`` (modality 1 to 2) and of each
    row of ``S^T`` (modality 2 to 1) with the matching sample as the target.
    Negatives are cross-modal only, unlike NT-Xent.

    ``logit_scale`` is a learnable parameter, ``log(1 / temperature)``,
    initialised from *temperature* (0.07, CLIP's value) and clipped so that
    ``s`` is at most *max_logit_scale* (100, CLIP's value): the parameter is
    clamped in place before each use, as CLIP clamps it after each step.

    With gathering, each process's rows are scored against the columns of
    the global batch (negatives from all processes); the mean over processes
    is the loss of the global batch.

    ``terms`` after each call: ``'loss_12'`` (modality 1 to 2),
    ``'loss_21'`` (modality 2 to 1) and ``'temperature'`` (``1 / s``).

    [0] Radford, A. et al., 2021. Learning Transferable Visual Models From
    Natural Language Supervision. ICML. https://arxiv.org/abs/2103.00020

    .. versionadded:: 0.1
    """

    terms: dict[str, Tensor]

    def __init__(
        self,
        temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        gather_distributed: bool = False,
    ) -> None:
        """Initialize a new CLIPLoss instance.

        Args:
            temperature: Initial temperature; ``logit_scale`` starts at
                ``log(1 / temperature)``.
            max_logit_scale: Largest inverse temperature ``exp(logit_scale)``.
            gather_distributed: Use the embeddings of all processes as
                negatives (with gradients).

        Raises:
            ValueError: If *temperature* or *max_logit_scale* is not > 0, the
                initial inverse temperature exceeds *max_logit_scale*, or
                *gather_distributed* is True but torch.distributed is not
                available.
        """
        super().__init__()
        _check_positive(temperature=temperature, max_logit_scale=max_logit_scale)
        if 1 / temperature > max_logit_scale:
            msg = (
                f'temperature must be >= 1 / max_logit_scale = '
                f'{1 / max_logit_scale}, got {temperature}'
            )
            raise ValueError(msg)
        _check_gather(gather_distributed)
        self.initial_temperature = temperature
        self.max_logit_scale = max_logit_scale
        self.gather_distributed = gather_distributed
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        self.terms = {}

    def extra_repr(self) -> str:
        """Return the configuration shown by ``repr``.

        Returns:
            The constructor arguments.
        """
        return (
            f'temperature={self.initial_temperature}, '
            f'max_logit_scale={self.max_logit_scale}, '
            f'gather_distributed={self.gather_distributed}'
        )

    @property
    def temperature(self) -> float:
        """The current temperature, ``1 / exp(logit_scale)``, clipped."""
        scale = min(math.exp(float(self.logit_scale.detach())), self.max_logit_scale)
        return 1 / scale

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            z1: Embeddings of modality 1, shape (N, K).
            z2: Embeddings of modality 2, shape (N, K).

        Returns:
            The loss, a float32 scalar.

        Raises:
            ValueError: If the inputs are not 2D or differ in shape.
        """
        _check_embeddings(1, z1=z1, z2=z2)
        with torch.no_grad():
            # CLIP's clipping; the graph below keeps exp's output, not this leaf
            self.logit_scale.clamp_(max=math.log(self.max_logit_scale))
        with torch.autocast(device_type=z1.device.type, enabled=False):
            u = F.normalize(z1.float(), dim=1)
            v = F.normalize(z2.float(), dim=1)
            n = u.shape[0]
            labels = torch.arange(n, device=u.device)
            if _distributed(self.gather_distributed):
                u_all, v_all = _gather(u), _gather(v)
                labels = labels + dist.get_rank() * n
            else:
                u_all, v_all = u, v
            scale = self.logit_scale.float().exp()
            loss_12 = F.cross_entropy((u @ v_all.T) * scale, labels)
            loss_21 = F.cross_entropy((v @ u_all.T) * scale, labels)
            loss = (loss_12 + loss_21) / 2
        self.terms = {
            'loss_12': loss_12.detach(),
            'loss_21': loss_21.detach(),
            'temperature': 1 / scale.detach(),
        }
        return loss


class CrossSelfLoss(nn.Module):
    """Cross-modal InfoNCE plus each modality's own SimCLR term ("Cross+Self").

    The Cross+Self baseline of CoMM [0] (as SLIP [1] combines CLIP and SimCLR):

    ``L = cross + ssl_scale * (self1 + self2) / 2``,

    where ``cross`` is NT-Xent (SimCLR [2], :class:`lightly.loss.NTXentLoss`)
    between modality 1 and modality 2 and ``self1``, ``self2`` are NT-Xent between
    the two views of modality 1 and of modality 2 (SimCLR [2]), all with the
    same temperature (0.1 in CoMM). With ``cross_views='both'`` the cross
    term is the mean over the two pairs of views (view a of both modalities,
    view b of both modalities); with ``'first'`` it uses view a only.

    ``terms`` after each call: ``'cross'``, ``'self1'`` and ``'self2'``.

    [0] Dufumier, B. et al., 2025. What to align in multimodal contrastive
    learning? ICLR. https://arxiv.org/abs/2409.07402

    [1] Mu, N. et al., 2022. SLIP: Self-supervision meets Language-Image
    Pre-training. ECCV. https://arxiv.org/abs/2112.12750

    [2] Chen, T. et al., 2020. A Simple Framework for Contrastive Learning of
    Visual Representations. ICML. https://arxiv.org/abs/2002.05709

    .. versionadded:: 0.1
    """

    terms: dict[str, Tensor]

    def __init__(
        self,
        temperature: float = 0.1,
        ssl_scale: float = 1.0,
        cross_views: Literal['both', 'first'] = 'both',
        gather_distributed: bool = False,
    ) -> None:
        """Initialize a new CrossSelfLoss instance.

        Args:
            temperature: Temperature of the three NT-Xent terms.
            ssl_scale: Weight of the mean of the two intra-modal terms (CoMM's
                ``ssl_scale``, 1 by default).
            cross_views: ``'both'`` (mean over the two pairs of views) or
                ``'first'`` (view a only) for the cross-modal term.
            gather_distributed: Use the embeddings of all processes as
                negatives (with gradients).

        Raises:
            ValueError: If *temperature* is not > 0, *ssl_scale* is negative,
                *cross_views* is unknown, or *gather_distributed* is True but
                torch.distributed is not available.
        """
        super().__init__()
        _check_non_negative(ssl_scale=ssl_scale)
        if cross_views not in CROSS_VIEWS:
            msg = f"cross_views must be 'both' or 'first', got {cross_views!r}"
            raise ValueError(msg)
        _check_positive(temperature=temperature)
        _check_gather(gather_distributed)
        self.ntxent = NTXentLoss(temperature, gather_distributed=gather_distributed)
        self.temperature = temperature
        self.ssl_scale = ssl_scale
        self.cross_views = cross_views
        self.gather_distributed = gather_distributed
        self.terms = {}

    def extra_repr(self) -> str:
        """Return the configuration shown by ``repr``.

        Returns:
            The constructor arguments.
        """
        return (
            f'temperature={self.temperature}, ssl_scale={self.ssl_scale}, '
            f'cross_views={self.cross_views!r}'
        )

    def forward(self, z1_a: Tensor, z1_b: Tensor, z2_a: Tensor, z2_b: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            z1_a: Modality 1, view a embeddings (N, K).
            z1_b: Modality 1, view b embeddings (N, K).
            z2_a: Modality 2, view a embeddings (N, K).
            z2_b: Modality 2, view b embeddings (N, K).

        Returns:
            The loss, a float32 scalar.

        Raises:
            ValueError: If an input is not 2D or the shapes differ.
        """
        _check_embeddings(1, z1_a=z1_a, z1_b=z1_b, z2_a=z2_a, z2_b=z2_b)
        with torch.autocast(device_type=z1_a.device.type, enabled=False):
            a1, b1, a2, b2 = (z.float() for z in (z1_a, z1_b, z2_a, z2_b))
            pairs = [(a1, a2), (b1, b2)][: 1 if self.cross_views == 'first' else 2]
            cross = torch.stack([self.ntxent(a, b) for a, b in pairs]).mean()
            self1, self2 = self.ntxent(a1, b1), self.ntxent(a2, b2)
            loss = cross + self.ssl_scale * (self1 + self2) / 2
        self.terms = {
            'cross': cross.detach(),
            'self1': self1.detach(),
            'self2': self2.detach(),
        }
        return loss
