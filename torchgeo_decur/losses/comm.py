"""CoMM's loss: the fused embedding against each modality's own."""

from collections.abc import Sequence

import torch
from lightly.loss import NTXentLoss
from torch import Tensor, nn

__all__ = ('CoMMLoss',)


class CoMMLoss(nn.Module):
    r"""CoMM's loss of projected embeddings [0].

    From two augmentations ``X'`` and ``X''`` of the multimodal input, the
    fused embeddings ``Z'`` and ``Z''`` (all modalities) and, for each
    modality ``i``, ``Z'_i`` and ``Z''_i`` (only modality ``i`` fused), with
    ``L(a, b)`` SimCLR's NT-Xent (:class:`lightly.loss.NTXentLoss`):

    .. math::

        L(Z', Z'') + \sum_i \frac{L(Z'_i, Z'') + L(Z''_i, Z')}{2}

    the paper's :math:`-I(Z', Z'') - \sum_i (I(Z_i, Z') + I(Z_i, Z''))/2` with
    InfoNCE estimates: a modality's embedding of one augmentation is
    contrasted with the fused embedding of the other. (The authors' code
    averages the ``n + 1`` terms instead of summing them, a factor of
    ``1 / (n + 1)``.) Computed in float32 with autocast disabled.

    ``terms`` after each call: ``'loss_joint'`` and ``'loss_mod<i>'`` (from 1).

    [0] Dufumier, B. et al., 2025. What to align in multimodal contrastive
    learning? ICLR. https://arxiv.org/abs/2409.07402

    .. versionadded:: 0.2
    """

    terms: dict[str, Tensor]

    def __init__(
        self, temperature: float = 0.1, gather_distributed: bool = False
    ) -> None:
        """Initialize a new CoMMLoss instance.

        Args:
            temperature: Temperature of the NT-Xent terms (CoMM's 0.1).
            gather_distributed: Use the embeddings of all processes as
                negatives (with gradients).

        Raises:
            ValueError: If *temperature* is not positive.
        """
        super().__init__()
        if not temperature > 0:
            msg = f'temperature must be positive, got {temperature}'
            raise ValueError(msg)
        self.temperature = temperature
        self.ntxent = NTXentLoss(temperature, gather_distributed=gather_distributed)
        self.terms = {}

    def forward(
        self,
        joint1: Tensor,
        joint2: Tensor,
        single1: Sequence[Tensor],
        single2: Sequence[Tensor],
    ) -> Tensor:
        """Compute the loss.

        Args:
            joint1: Projected ``Z'`` (all modalities of augmentation 1), (N, K).
            joint2: Projected ``Z''`` (all modalities of augmentation 2).
            single1: Projected ``Z'_i`` for each modality ``i``.
            single2: Projected ``Z''_i`` for each modality ``i``.

        Returns:
            The loss, a float32 scalar.
        """
        with torch.autocast(device_type=joint1.device.type, enabled=False):
            z1, z2 = joint1.float(), joint2.float()
            terms = {'loss_joint': self.ntxent(z1, z2)}
            for i, (s1, s2) in enumerate(zip(single1, single2, strict=True), start=1):
                pair = self.ntxent(s1.float(), z2) + self.ntxent(s2.float(), z1)
                terms[f'loss_mod{i}'] = pair / 2
            loss = torch.stack(list(terms.values())).sum()
        self.terms = {k: v.detach() for k, v in terms.items()}
        return loss
