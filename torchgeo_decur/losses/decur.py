"""DeCUR loss: decoupling common and unique representations."""

import itertools
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn

__all__ = ('WEIGHTINGS', 'DeCURLoss', 'barlow_twins_term', 'correlation_stats')


def _off_diagonal(c: Tensor) -> Tensor:
    """Return the off-diagonal entries of a square matrix, flattened.

    Args:
        c: A square (K, K) matrix.

    Returns:
        The K * (K - 1) off-diagonal entries.
    """
    k = c.shape[0]
    return c.flatten()[:-1].view(k - 1, k + 1)[:, 1:].flatten()


class _Gram(torch.autograd.Function):
    """Gram matrix ``A A^T`` with a single matrix product in the backward pass."""

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        """Compute the Gram matrix.

        Args:
            ctx: Autograd context.
            a: A (N, K) matrix.

        Returns:
            The (N, N) matrix ``a @ a.T``.
        """
        ctx.save_for_backward(a)
        return a @ a.T

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        """Gradient with respect to the input.

        Args:
            ctx: Autograd context.
            grad: Gradient with respect to the Gram matrix (N, N).

        Returns:
            The gradient with respect to the input, ``(grad + grad^T) A``.
        """
        (a,) = ctx.saved_tensors
        return (grad + grad.T) @ a


def _gram(a: Tensor) -> Tensor:
    """Gram matrix ``a @ a.T`` of the rows of *a*.

    Args:
        a: A (N, K) matrix.

    Returns:
        The (N, N) Gram matrix.
    """
    out: Tensor = _Gram.apply(a)
    return out


def _gram_off(diag: Tensor, gram_a: Tensor, gram_b: Tensor) -> Tensor:
    """Off-diagonal energy of C = A^T B / N from its diagonal and Gram matrices.

    The squared Frobenius norm of A^T B equals the sum of the elementwise product
    of the N x N Gram matrices A A^T and B B^T; the off-diagonal energy is that
    minus the squared diagonal.

    Args:
        diag: Diagonal of C (K,).
        gram_a: ``A @ A.T`` (N, N).
        gram_b: ``B @ B.T`` (N, N).

    Returns:
        The sum of the squared off-diagonal entries of C.
    """
    n = gram_a.shape[0]
    return (gram_a * gram_b).sum() / (n * n) - diag.pow(2).sum()


def _matrix_stats(c: Tensor) -> tuple[Tensor, Tensor]:
    """Diagonal and off-diagonal energy of a materialised square matrix.

    Args:
        c: A square (K, K) matrix.

    Returns:
        The diagonal of c (K,) and the sum of its squared off-diagonal entries.
    """
    return torch.diagonal(c), _off_diagonal(c).pow(2).sum()


def correlation_stats(
    a: Tensor, b: Tensor, gram_a: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Diagonal and off-diagonal energy of the cross-correlation ``C = A^T B / N``.

    With the batch size N below the embedding size K no K x K matrix is
    built: the diagonal costs O(NK) and the squared Frobenius norm of ``A^T
    B`` is the sum of the elementwise product of the N x N Gram matrices
    ``A A^T`` and ``B B^T`` (O(N^2 K)); otherwise C is built.

    Args:
        a: Embeddings (N, K), normalised along the batch.
        b: Embeddings (N, K), normalised along the batch.
        gram_a: ``a @ a.T`` where it was computed already.

    Returns:
        The diagonal of C (K,) and the sum of its squared off-diagonal entries.

    .. versionadded:: 0.2
    """
    n, k = a.shape
    if n >= k:
        return _matrix_stats(a.T @ b / n)
    diag = (a * b).sum(dim=0) / n
    return diag, _gram_off(diag, _gram(a) if gram_a is None else gram_a, _gram(b))


def barlow_twins_term(diag: Tensor, off: Tensor, lambd: float) -> Tensor:
    """``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2`` from its two parts.

    Args:
        diag: The diagonal of C.
        off: The sum of the squared off-diagonal entries of C.
        lambd: Weight of the off-diagonal part.

    Returns:
        The Barlow Twins loss (Zbontar et al. 2021, Eq. 1).

    .. versionadded:: 0.2
    """
    return (diag - 1).pow(2).sum() + lambd * off


#: Ways of combining the four terms (see :class:`DeCURLoss`).
WEIGHTINGS = ('paper', 'official')


class DeCURLoss(nn.Module):
    """DeCUR loss for two modalities with two views each.

    Implements Eq. 1-6 of DeCUR [0]. Embeddings are normalised along the batch
    (zero mean, unit biased variance, as ``nn.BatchNorm1d(K, affine=False)`` in
    training mode), and cross-correlation matrices ``C(A, B) = Z_A^T Z_B / N``
    are formed between them. With ``lbt(C, l) = sum_i (C_ii - 1)^2 +
    l * sum_{i != j} C_ij^2``, the loss combines

    * ``common``: ``lbt`` on the first ``common_dim`` dimensions of
      ``C(z1_a, z2_a)`` (cross-modal, target identity);
    * ``unique``: ``sum_i C_ii^2 + l * sum_{i != j} C_ij^2`` on the remaining
      dimensions of ``C(z1_a, z2_a)`` (cross-modal, target zero);
    * ``intra1`` and ``intra2``: ``lbt`` on all dimensions of
      ``C(z1_a, z1_b)`` and ``C(z2_a, z2_b)`` (intra-modal Barlow Twins).

    With ``weighting='paper'`` (default) the loss is the paper's Eq. 6, the
    plain sum ``common + unique + intra1 + intra2``. With
    ``weighting='official'`` it is what the authors' released code computes
    and what the published checkpoints were trained with:
    ``(intra1 + intra2 + (common + unique) / 2) / 3``, or
    ``(common + unique) / 2`` without the intra-modal terms. The two differ
    by a per-term scale only, which matters for the learning rate and for the
    balance of cross- and intra-modal gradients.

    When the batch size N is smaller than the embedding size K, no K x K matrix
    is built: the diagonals cost O(NK) and the off-diagonal energies are
    obtained from N x N Gram matrices in O(N^2 K). Otherwise the K x K matrices
    are built directly. All correlation maths run in float32 with autocast
    disabled, whatever the input dtype.

    After each call, ``terms`` holds the detached terms for logging:
    ``'common'``, ``'unique'``, ``'intra1'``, ``'intra2'`` (zero where a term is
    switched off), ``'common_diag'`` / ``'unique_diag'``, the mean
    on-diagonal cross-modal correlation of the common and of the unique
    dimensions (zero when there is no unique dimension), ``'unique_absdiag'``,
    the mean of its absolute value, and ``'offdiag'``, the cross-modal
    off-diagonal energy (collapse monitors: a stuck common diagonal or a
    growing off-diagonal energy shows a run that stopped learning).

    [0] Wang, Y. et al., 2024. Decoupling Common and Unique Representations for
    Multimodal Self-supervised Learning. ECCV. https://arxiv.org/abs/2309.05300

    Examples:
        >>> loss_fn = DeCURLoss(common_dim=7168)
        >>> z1_a, z1_b = projector1(encoder1(x1_a)), projector1(encoder1(x1_b))
        >>> z2_a, z2_b = projector2(encoder2(x2_a)), projector2(encoder2(x2_b))
        >>> loss = loss_fn(z1_a, z1_b, z2_a, z2_b)
        >>> loss_fn.terms['common']

    .. versionadded:: 0.1
    """

    terms: dict[str, Tensor]
    #: Weights of the pairs' cross-modal terms (class default: objects
    #: pickled before 0.2 have no instance attribute).
    pair_weights: list[float] | None = None

    def __init__(
        self,
        common_dim: int,
        lambd: float = 0.0051,
        lambd_common: float | None = None,
        lambd_unique: float | None = None,
        lambd_intra1: float | None = None,
        lambd_intra2: float | None = None,
        intra: bool = True,
        decouple: bool = True,
        gather_distributed: bool = False,
        eps: float = 1e-5,
        weighting: Literal['paper', 'official'] = 'paper',
        pair_weights: Sequence[float] | None = None,
    ) -> None:
        """Initialize a new DeCURLoss instance.

        Args:
            common_dim: Number of common dimensions Kc (the first Kc of K). Must
                lie in [1, K], checked at call time. Ignored (treated as K) when
                *decouple* is False.
            lambd: Weight of the off-diagonal (redundancy reduction) part, the
                default for every term.
            lambd_common: Off-diagonal weight of the common term (default
                *lambd*).
            lambd_unique: Off-diagonal weight of the unique term (default
                *lambd*).
            lambd_intra1: Off-diagonal weight of the modality 1 intra-modal term
                (default *lambd*).
            lambd_intra2: Off-diagonal weight of the modality 2 intra-modal term
                (default *lambd*).
            intra: If False, drop the two intra-modal terms.
            decouple: If False, all dimensions are common and there is no unique
                term: the cross-modal part is plain Barlow Twins.
            gather_distributed: If True and torch.distributed is initialised
                with world size > 1, gather the embeddings of all ranks (with
                gradients) so that normalisation statistics, N and correlations
                are those of the global batch. All ranks must hold the same
                local batch size.
            eps: Value added to the variance for numerical stability, as in
                ``nn.BatchNorm1d``.
            weighting: ``'paper'`` for Eq. 6 (plain sum) or ``'official'`` for
                the weighting of the authors' code (see above; two modalities
                only).
            pair_weights: Weight of each pair's cross-modal terms, in the
                order of ``itertools.combinations(range(M), 2)`` ((1, 2),
                (1, 3), ..., (2, 3), ...); None weighs every pair 1.

        Raises:
            ValueError: If *common_dim* < 1, a lambda or *eps* is negative,
                *weighting* is unknown, or *gather_distributed* is True but
                torch.distributed is not available.
        """
        super().__init__()
        if common_dim < 1:
            raise ValueError(f'common_dim must be >= 1, got {common_dim}')
        lambdas = {
            'lambd': lambd,
            'lambd_common': lambd if lambd_common is None else lambd_common,
            'lambd_unique': lambd if lambd_unique is None else lambd_unique,
            'lambd_intra1': lambd if lambd_intra1 is None else lambd_intra1,
            'lambd_intra2': lambd if lambd_intra2 is None else lambd_intra2,
        }
        for name, value in lambdas.items():
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        if eps < 0:
            raise ValueError(f'eps must be >= 0, got {eps}')
        if weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting must be 'paper' or 'official', got {weighting!r}"
            )
        if gather_distributed and not dist.is_available():
            raise ValueError(
                'gather_distributed is True but torch.distributed is not available'
            )

        self.common_dim = common_dim
        self.lambd = lambd
        self.lambd_common = lambdas['lambd_common']
        self.lambd_unique = lambdas['lambd_unique']
        self.lambd_intra1 = lambdas['lambd_intra1']
        self.lambd_intra2 = lambdas['lambd_intra2']
        self.intra = intra
        self.decouple = decouple
        self.gather_distributed = gather_distributed
        self.eps = eps
        self.weighting = weighting
        if pair_weights is not None and any(w < 0 for w in pair_weights):
            msg = f'pair_weights must be >= 0, got {list(pair_weights)}'
            raise ValueError(msg)
        self.pair_weights = None if pair_weights is None else list(pair_weights)
        self.terms = {}

    def extra_repr(self) -> str:
        """Return the configuration shown by ``repr``.

        Returns:
            The constructor arguments.
        """
        return (
            f'common_dim={self.common_dim}, lambd_common={self.lambd_common}, '
            f'lambd_unique={self.lambd_unique}, lambd_intra1={self.lambd_intra1}, '
            f'lambd_intra2={self.lambd_intra2}, intra={self.intra}, '
            f'decouple={self.decouple}, gather_distributed={self.gather_distributed}, '
            f'weighting={self.weighting!r}'
        )

    def _check_inputs(self, inputs: dict[str, Tensor]) -> None:
        """Validate the dimensionality and shapes of the four embeddings.

        Args:
            inputs: The embeddings by argument name.

        Raises:
            ValueError: If an input is not 2D or the shapes differ.
        """
        for name, z in inputs.items():
            if z.dim() != 2:
                raise ValueError(
                    f'{name} must be 2D (batch, embedding), got shape {tuple(z.shape)}'
                )
        shape = inputs['z1_a'].shape
        for name, z in inputs.items():
            if z.shape != shape:
                raise ValueError(
                    f'{name} has shape {tuple(z.shape)}, expected {tuple(shape)} '
                    'as z1_a'
                )

    def _gather(self, zs: list[Tensor]) -> list[Tensor]:
        """Concatenate the embeddings of all ranks along the batch.

        Args:
            zs: Local embeddings, all of the same shape (N, K).

        Returns:
            The global embeddings (world_size * N, K), differentiable with
            respect to the local ones. Unchanged when not distributed.
        """
        if not (
            self.gather_distributed
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return zs
        stacked = torch.stack(zs).contiguous()
        gathered = torch.cat(lightly_dist.gather(stacked), dim=1)
        return list(gathered.unbind(0))

    @staticmethod
    def _cross_stats(
        a1: Tensor, a2: Tensor, kc: int, grams: tuple[Tensor, Tensor] | None = None
    ) -> tuple[
        tuple[Tensor, Tensor], tuple[Tensor, Tensor] | tuple[()], list[Tensor | None]
    ]:
        """Statistics of the common and unique blocks of ``C(a1, a2)``.

        Args:
            a1: Normalised embeddings of modality 1 (N, K).
            a2: Normalised embeddings of modality 2 (N, K).
            kc: Number of common dimensions.
            grams: ``a1 @ a1.T`` and ``a2 @ a2.T`` where they were computed
                already.

        Returns:
            ``(diag, off)`` of the common block, of the unique block (empty
            without unique dimensions), and the Gram matrices of *a1* and *a2*
            for the intra-modal terms (Nones when C is built).
        """
        n, k = a1.shape
        common, unique = slice(0, kc), slice(kc, k)
        if n >= k:
            c = a1.T @ a2 / n
            stats_u = _matrix_stats(c[unique, unique]) if kc < k else ()
            return _matrix_stats(c[common, common]), stats_u, [None, None]
        diag = (a1 * a2).sum(dim=0) / n
        g1, g2 = grams if grams is not None else (_gram(a1), _gram(a2))
        if kc == k:
            return (diag, _gram_off(diag, g1, g2)), (), [g1, g2]
        # Gram of the narrower block; the wider one by difference
        narrow = common if kc <= k - kc else unique
        g1n, g2n = _gram(a1[:, narrow]), _gram(a2[:, narrow])
        narrow_grams, wide_grams = (g1n, g2n), (g1 - g1n, g2 - g2n)
        if narrow == common:
            grams_c, grams_u = narrow_grams, wide_grams
        else:
            grams_c, grams_u = wide_grams, narrow_grams
        stats_c = (diag[common], _gram_off(diag[common], *grams_c))
        stats_u = (diag[unique], _gram_off(diag[unique], *grams_u))
        return stats_c, stats_u, [g1, g2]

    def forward(self, *zs: Tensor, present: Tensor | None = None) -> Tensor:
        """Compute the DeCUR loss of M >= 2 modalities with two views each.

        ``loss(z1_a, z1_b, z2_a, z2_b)`` is the paper's two-modality loss
        (Eq. 6). With M modalities,

        ``L = sum_m L_BT(z_m^a, z_m^b) + sum_{i<j} w_ij [L_common(z_i^a, z_j^a)
        + L_unique(z_i^a, z_j^a)]``,

        each term as above (the common and unique blocks of the pair's
        cross-correlation; *intra* and *decouple* apply to every term), with
        the weights *pair_weights* (1 by default).

        With *present* (``(M, N)`` booleans: which locations have which
        modality), every term trains on the locations that have both of its
        modalities (an intra-modal term: the locations with its modality),
        with the batch statistics of those locations only, so each term
        equals its value on that complete sub-batch; a term with fewer than
        two such locations is zero.

        Args:
            *zs: The 2M embeddings ``(N, K)``, in the order m1 view a, m1 view
                b, m2 view a, m2 view b, ...
            present: Optional ``(M, N)`` boolean mask of the locations that
                have each modality; None when every location has every one.

        Returns:
            The total loss, a float32 scalar, combined as *weighting* says.

        Raises:
            ValueError: If fewer than 4 or an odd number of embeddings are
                given, an input is not 2D, the shapes differ, the (global)
                batch size is below 2, *common_dim* is not in [1, K],
                *present* has the wrong shape, *pair_weights* does not have
                one weight per pair, or ``weighting='official'`` is used with
                more than two modalities.
        """
        if len(zs) < 4 or len(zs) % 2:
            msg = (
                'DeCURLoss takes two views per modality for M >= 2 modalities '
                f'(m1 a, m1 b, m2 a, m2 b, ...), got {len(zs)} embeddings'
            )
            raise ValueError(msg)
        m = len(zs) // 2
        names = [f'z{i + 1}_{v}' for i in range(m) for v in 'ab']
        self._check_inputs(dict(zip(names, zs, strict=True)))
        pairs = m * (m - 1) // 2
        if self.pair_weights is not None and len(self.pair_weights) != pairs:
            msg = (
                f'pair_weights has {len(self.pair_weights)} weights, {m} modalities '
                f'have {pairs} pairs'
            )
            raise ValueError(msg)
        if self.weighting == 'official' and m != 2:
            msg = (
                "weighting='official' (the authors' code) is defined for two "
                f"modalities only, got {m}; use weighting='paper'"
            )
            raise ValueError(msg)
        if m == 2 and present is None and not self.pair_weights:
            return self._two(*zs)
        return self._many(list(zs), present)

    def _two(self, z1_a: Tensor, z1_b: Tensor, z2_a: Tensor, z2_b: Tensor) -> Tensor:
        """The two-modality loss on complete batches (Gram matrices shared).

        Raises:
            ValueError: If the batch is below 2 or *common_dim* is not in [1, K].
        """
        k = z1_a.shape[1]
        kc = self.common_dim if self.decouple else k
        if not 1 <= kc <= k:
            raise ValueError(
                f'common_dim must be in [1, {k}] (the embedding size), got {kc}'
            )

        with torch.autocast(device_type=z1_a.device.type, enabled=False):
            zs = [z.float() for z in (z1_a, z2_a, z1_b, z2_b)]
            zs = self._gather(zs if self.intra else zs[:2])
            n = zs[0].shape[0]
            if n < 2:
                raise ValueError(
                    f'batch size must be >= 2 to normalise along it, got {n}'
                )
            zs = [F.batch_norm(z, None, None, training=True, eps=self.eps) for z in zs]
            a1, a2 = zs[0], zs[1]

            (diag_c, off_c), unique, grams = self._cross_stats(a1, a2, kc)
            intra_stats: list[tuple[Tensor, Tensor]] = []
            if self.intra:
                for a, b, g in zip(zs[:2], zs[2:], grams, strict=True):
                    intra_stats.append(correlation_stats(a, b, g))

            zero = a1.new_zeros(())
            loss_common = barlow_twins_term(diag_c, off_c, self.lambd_common)
            loss_unique = unique_diag = unique_absdiag = zero
            offdiag = off_c
            if unique:
                diag_u, off_u = unique
                loss_unique = diag_u.pow(2).sum() + self.lambd_unique * off_u
                unique_diag, unique_absdiag = diag_u.mean(), diag_u.abs().mean()
                offdiag = off_c + off_u
            loss_intra1 = loss_intra2 = zero
            if self.intra:
                (d11, off11), (d22, off22) = intra_stats
                loss_intra1 = barlow_twins_term(d11, off11, self.lambd_intra1)
                loss_intra2 = barlow_twins_term(d22, off22, self.lambd_intra2)

            if self.weighting == 'paper':
                loss = loss_common + loss_unique + loss_intra1 + loss_intra2
            elif self.intra:
                cross = (loss_common + loss_unique) / 2
                loss = (loss_intra1 + loss_intra2 + cross) / 3
            else:
                loss = (loss_common + loss_unique) / 2

        self.terms = {
            'common': loss_common.detach(),
            'unique': loss_unique.detach(),
            'intra1': loss_intra1.detach(),
            'intra2': loss_intra2.detach(),
            'common_diag': diag_c.detach().mean(),
            'unique_diag': unique_diag.detach(),
            'unique_absdiag': unique_absdiag.detach(),
            'offdiag': offdiag.detach(),
        }
        return loss

    def _present(self, present: Tensor | None, m: int, n: int, like: Tensor) -> Tensor:
        """The ``(M, N)`` mask of the locations that have each modality.

        Raises:
            ValueError: If *present* has another shape.
        """
        if present is None:
            return torch.ones(m, n, dtype=torch.bool, device=like.device)
        if tuple(present.shape) != (m, n):
            msg = (
                f'present must have shape (M, N) = ({m}, {n}) (modalities, '
                f'locations), got {tuple(present.shape)}'
            )
            raise ValueError(msg)
        return present.to(device=like.device, dtype=torch.bool)

    def _gather_mask(self, mask: Tensor) -> Tensor:
        """The masks of all ranks, concatenated along the batch as the embeddings."""
        if not (
            self.gather_distributed
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return mask
        parts = [torch.empty_like(mask) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, mask.contiguous())
        return torch.cat(parts, dim=1)

    def _normalised(self, z: Tensor, rows: Tensor) -> Tensor | None:
        """*z* on the locations *rows*, normalised along them; None below 2."""
        if int(rows.sum()) < 2:
            return None
        return F.batch_norm(z[rows], None, None, training=True, eps=self.eps)

    def _many(self, zs: list[Tensor], present: Tensor | None) -> Tensor:
        """The loss of M modalities, or of a batch with missing modalities.

        Raises:
            ValueError: If *common_dim* is not in [1, K] or the global batch
                is below 2.
        """
        m, (n_local, k) = len(zs) // 2, zs[0].shape
        kc = self.common_dim if self.decouple else k
        if not 1 <= kc <= k:
            msg = f'common_dim must be in [1, {k}] (the embedding size), got {kc}'
            raise ValueError(msg)
        mask = self._present(present, m, n_local, zs[0])
        with torch.autocast(device_type=zs[0].device.type, enabled=False):
            zs = self._gather([z.float() for z in zs])
            mask = self._gather_mask(mask)
            n = zs[0].shape[0]
            if n < 2:
                msg = f'batch size must be >= 2 to normalise along it, got {n}'
                raise ValueError(msg)
            zero = zs[0].new_zeros(())
            full = self._complete_views(zs, mask)
            intra = [zero] * m
            if self.intra:
                intra = [self._intra_term(zs, mask, i, full) for i in range(m)]
            common, unique, diags, offdiag = self._cross_terms(zs, mask, kc, full)
            if self.weighting == 'official':
                cross = (common + unique) / 2
                loss = (intra[0] + intra[1] + cross) / 3 if self.intra else cross
            else:
                loss = common + unique + sum(intra, zero)
        mean = [torch.stack(d).mean() if d else zero for d in diags[:2]]
        self.terms = {
            'common': common.detach(),
            'unique': unique.detach(),
            **{f'intra{i + 1}': t.detach() for i, t in enumerate(intra)},
            'common_diag': mean[0].detach(),
            'unique_diag': mean[1].detach(),
            'unique_absdiag': (
                torch.stack(diags[2]).mean() if diags[2] else zero
            ).detach(),
            'offdiag': offdiag.detach(),
        }
        return loss

    def _complete_views(
        self, zs: list[Tensor], mask: Tensor
    ) -> dict[int, tuple[Tensor, Tensor | None]]:
        """View a of each modality that every location has, normalised once.

        Returns:
            ``{modality: (normalised view a, its Gram matrix or None)}``; the
            Gram matrix (N < K only) is shared by that modality's terms.
        """
        n, k = zs[0].shape
        out: dict[int, tuple[Tensor, Tensor | None]] = {}
        for i in range(len(zs) // 2):
            if bool(mask[i].all()):
                a = F.batch_norm(zs[2 * i], None, None, training=True, eps=self.eps)
                out[i] = (a, _gram(a) if n < k else None)
        return out

    def _cross_terms(
        self,
        zs: list[Tensor],
        mask: Tensor,
        kc: int,
        full: dict[int, tuple[Tensor, Tensor | None]],
    ) -> tuple[Tensor, Tensor, tuple[list[Tensor], list[Tensor], list[Tensor]], Tensor]:
        """The weighted common and unique terms summed over the pairs.

        Returns:
            ``(common, unique, diagonals, offdiag)``: the diagonals' means per
            pair that has at least two locations (common, unique, absolute
            unique), and the pairs' summed off-diagonal energy.
        """
        m = len(zs) // 2
        zero = zs[0].new_zeros(())
        common, unique, offdiag = zero, zero, zero
        diags: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        weights = self.pair_weights or [1.0] * (m * (m - 1) // 2)
        pairs = itertools.combinations(range(m), 2)
        for w, (i, j) in zip(weights, pairs, strict=True):
            grams = None
            if i in full and j in full:  # every location: shared statistics
                (a_i, g_i), (a_j, g_j) = full[i], full[j]
                grams = (g_i, g_j) if g_i is not None and g_j is not None else None
            else:
                rows = mask[i] & mask[j]
                a_i = self._normalised(zs[2 * i], rows)
                a_j = self._normalised(zs[2 * j], rows)
            if a_i is None or a_j is None:
                continue
            (diag_c, off_c), stats_u, _ = self._cross_stats(a_i, a_j, kc, grams)
            common = common + w * barlow_twins_term(diag_c, off_c, self.lambd_common)
            diags[0].append(diag_c.mean())
            offdiag = offdiag + off_c
            if stats_u:
                diag_u, off_u = stats_u
                unique = unique + w * (diag_u.pow(2).sum() + self.lambd_unique * off_u)
                diags[1].append(diag_u.mean())
                diags[2].append(diag_u.abs().mean())
                offdiag = offdiag + off_u
        return common, unique, diags, offdiag

    def _intra_term(
        self,
        zs: list[Tensor],
        mask: Tensor,
        i: int,
        full: dict[int, tuple[Tensor, Tensor | None]],
    ) -> Tensor:
        """Modality *i*'s Barlow Twins term on the locations that have it."""
        a, gram = full[i] if i in full else (self._normalised(zs[2 * i], mask[i]), None)
        b = self._normalised(zs[2 * i + 1], mask[i])
        if a is None or b is None:
            return zs[0].new_zeros(())
        lambd = {0: self.lambd_intra1, 1: self.lambd_intra2}.get(i, self.lambd)
        return barlow_twins_term(*correlation_stats(a, b, gram), lambd)
