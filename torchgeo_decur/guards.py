"""Non-finite numbers stop a run before they reach a weight or a checkpoint.

A diverged run (too high a learning rate, a corrupt batch) gives a NaN or
infinite loss; one optimiser step with it turns every weight into NaN, and
the next checkpoint (with ``save_top_k=1``, after deleting the last finite one)
keeps nothing worth having. The self-supervised tasks check each step's loss
and gradient norm *before* the optimiser step (:class:`FiniteSteps`): by
default the run stops with :class:`NonFiniteError`, naming the step, the loss
terms and the last checkpoint; with ``nonfinite_skips=N`` up to N such steps
are skipped (no update) first. Checkpoints and exports refuse non-finite
weights (:func:`nonfinite_tensors`).

Under DDP the loss of this package's methods is that of the global batch, the
same on every process, so all processes skip or stop together.

.. versionadded:: 0.2
"""

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ('FiniteSteps', 'NonFiniteError', 'nonfinite_tensors')


class NonFiniteError(RuntimeError):
    """A loss, gradient or weight is NaN or infinite.

    .. versionadded:: 0.2
    """


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of a state dict with NaN or inf.

    Args:
        state: A state dict (non-tensor and integer entries are ignored).

    Returns:
        The names, in the state dict's order.
    """
    return [
        name
        for name, value in state.items()
        if isinstance(value, Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


class FiniteSteps:
    """Skip or stop on steps whose loss or gradient norm is not finite.

    Args:
        skips: Non-finite steps to skip (no optimiser update) before stopping.

    .. versionadded:: 0.2
    """

    def __init__(self, skips: int = 0) -> None:
        if skips < 0:
            msg = f'nonfinite_skips must be >= 0, got {skips}'
            raise ValueError(msg)
        self.skips = skips
        self.skipped = 0

    def snapshot(self, module: nn.Module) -> dict[str, Tensor] | None:
        """Copy a module's floating-point buffers if steps may be skipped.

        A forward pass in training mode updates batch-norm statistics, so a
        skipped step must put them back (:meth:`restore`); small next to the
        weights (about 0.2 MB for a ResNet-50).

        Args:
            module: The module about to run a step.

        Returns:
            The copies, or None when no step can be skipped.
        """
        if self.skipped >= self.skips:
            return None
        return {
            name: buffer.detach().clone()
            for name, buffer in module.named_buffers()
            if buffer.is_floating_point()
        }

    @staticmethod
    def restore(module: nn.Module, snapshot: dict[str, Tensor] | None) -> None:
        """Put back the buffers of :meth:`snapshot` (nothing for None).

        Args:
            module: The module.
            snapshot: The copies.
        """
        if snapshot is None:
            return
        with torch.no_grad():
            for name, buffer in module.named_buffers():
                if name in snapshot:
                    buffer.copy_(snapshot[name])

    def loss_ok(
        self, loss: Tensor, terms: Mapping[str, Tensor], step: int, where: str
    ) -> bool:
        """Whether to train on a loss; False to skip the step.

        Args:
            loss: The step's loss.
            terms: Its named terms (named in the error).
            step: The global step.
            where: The last checkpoint, or how to find it (named in the error).

        Returns:
            True if the loss is finite.

        Raises:
            NonFiniteError: If it is not and no skips are left.
        """
        if bool(torch.isfinite(loss)):
            return True
        values = {'loss': loss, **terms}
        described = ', '.join(f'{k}={float(v):.4g}' for k, v in values.items())
        return self._skip_or_stop(f'step {step}: non-finite loss ({described})', where)

    def gradients_ok(
        self, parameters: Iterable[nn.Parameter], step: int, where: str
    ) -> bool:
        """Whether to apply the gradients; False (and grads cleared) to skip.

        Args:
            parameters: The parameters about to be updated.
            step: The global step.
            where: The last checkpoint (named in the error).

        Returns:
            True if the total gradient norm is finite.

        Raises:
            NonFiniteError: If it is not and no skips are left.
        """
        params = [p for p in parameters if p.grad is not None]
        if not params:
            return True
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if bool(torch.isfinite(norm)):
            return True
        ok = self._skip_or_stop(f'step {step}: non-finite gradient norm', where)
        for p in params:  # optimisers skip parameters without a gradient
            p.grad = None
        return ok

    def _skip_or_stop(self, what: str, where: str) -> bool:
        if self.skipped < self.skips:
            self.skipped += 1
            return False
        msg = (
            f'{what}; stopped after {self.skipped} skipped step(s) '
            f'(nonfinite_skips={self.skips}). Last checkpoint: {where}. Lower '
            'the learning rate, or raise nonfinite_skips to skip such steps.'
        )
        raise NonFiniteError(msg)
