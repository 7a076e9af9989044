"""Collapse monitors: is a self-supervised run still learning something?

A run can collapse (every embedding the same, or all of them on a few
directions) and nothing shows it until a downstream probe, hours later.
:class:`CollapseMonitor` computes, from the projector outputs a training step
already has, numbers cheap enough to log at every step:

* :func:`embedding_std`: the mean over dimensions of each dimension's
  standard deviation along the batch (unbiased); 0 when every location gets
  the same embedding (complete collapse);
* :func:`effective_rank`: ``exp`` of the entropy of the normalised singular
  values of the centred embeddings (Roy and Vetterli, 2007), between 1 (one
  direction) and ``min(N, K)``; dimensional collapse lowers it. An
  eigendecomposition of the N x N Gram matrix, so it runs every few steps.

and warns once, naming the step, when either falls below its threshold.
The DeCUR loss adds the cross-modal side (``common_diag``, the mean absolute
``unique_diag`` and the off-diagonal energy) to its logged terms.

.. versionadded:: 0.2
"""

import warnings

import torch
from torch import Tensor

__all__ = ('CollapseMonitor', 'effective_rank', 'embedding_std')


def embedding_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the standard deviation along the batch.

    Args:
        z: Embeddings ``(N, K)``, N >= 2.

    Returns:
        A scalar; 0 for identical embeddings.

    .. versionadded:: 0.2
    """
    x = z.detach().float()
    ones = x.new_ones(1, x.shape[0])  # sums along the batch as products: fast
    n = x.shape[0]
    mean = (ones @ x) / n
    var = ((ones @ (x * x)) / n - mean.pow(2)).clamp_min(0) * (n / (n - 1))
    return var.sqrt().mean()


def effective_rank(z: Tensor, eps: float = 1e-12) -> Tensor:
    """Effective rank of a batch of embeddings (Roy and Vetterli, 2007).

    ``exp(-sum_i p_i log p_i)`` with ``p_i = s_i / sum_j s_j`` over the
    singular values ``s`` of the batch-centred embeddings.

    Args:
        z: Embeddings ``(N, K)``.
        eps: Singular values sum below which the rank is 0 (all identical).

    Returns:
        A scalar in ``[1, min(N, K)]``, or 0 for identical embeddings.

    .. versionadded:: 0.2
    """
    x = z.detach().double()  # float32 round-off would count as directions
    x = x - x.mean(dim=0)
    # the singular values from the eigenvalues of the smaller Gram matrix
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    s = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    total = s.sum()
    if total <= eps:
        return total.new_zeros(())
    p = s / total
    entropy = -(p * torch.log(p.clamp_min(eps))).sum()
    return torch.exp(entropy)


class CollapseMonitor:
    """Per-modality collapse numbers of a training run, and a warning.

    .. versionadded:: 0.2
    """

    def __init__(
        self, every: int = 50, min_std: float = 1e-4, min_rank: float = 2.0
    ) -> None:
        """Initialize a new CollapseMonitor instance.

        Args:
            every: Steps between effective ranks (an SVD); 0 never computes
                them.
            min_std: Embedding standard deviation below which a modality is
                collapsed.
            min_rank: Effective rank below which a modality is collapsed.

        Raises:
            ValueError: If a number is negative.
        """
        for name, value in (
            ('every', every),
            ('min_std', min_std),
            ('min_rank', min_rank),
        ):
            if value < 0:
                msg = f'{name} must be >= 0, got {value}'
                raise ValueError(msg)
        self.every = every
        self.min_std = min_std
        self.min_rank = min_rank
        #: Whether the warning was given (once per monitor).
        self.warned = False

    def __call__(self, embeddings: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """The numbers to log for one step, warning once on a collapse.

        Args:
            embeddings: ``{modality: (N, K)}`` projector outputs of one view.
            step: The global step (the effective rank runs every *every*).

        Returns:
            ``{'emb_std_<modality>': ..., 'eff_rank_<modality>': ...}``, the
            ranks only on their steps.
        """
        out: dict[str, Tensor] = {}
        collapsed = []
        for name, z in embeddings.items():
            if z.shape[0] < 2:
                continue
            std = embedding_std(z)
            out[f'emb_std_{name}'] = std
            if float(std) < self.min_std:
                collapsed.append(
                    f'{name}: embedding std {float(std):.2e} < {self.min_std:g}'
                )
            if self.every and step % self.every == 0:
                rank = effective_rank(z)
                out[f'eff_rank_{name}'] = rank
                if float(rank) < self.min_rank:
                    collapsed.append(
                        f'{name}: effective rank {float(rank):.2f} < {self.min_rank:g}'
                    )
        if collapsed and not self.warned:
            self.warned = True
            msg = (
                f'the embeddings look collapsed at step {step} ('
                + '; '.join(collapsed)
                + '): check the learning rate, the augmentation and the loss terms'
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
        return out
