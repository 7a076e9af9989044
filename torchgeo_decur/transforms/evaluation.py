"""Evaluation transforms of inputs of several modalities at once.

.. versionadded:: 0.1
"""

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ('DeCURTransforms',)


class DeCURTransforms(nn.Module):
    """Per-modality transforms of a joint DeCUR weight entry.

    Called with a mapping, it transforms the values whose key is a modality
    name and passes other keys through; called with a sequence of tensors
    (one per modality), it transforms them in modality order::

        t = ResNet50_Weights.DECUR_S1S2.transforms
        out = t({'s1': sar, 's2c': optical})
        sar, optical = t((sar, optical))

    .. versionadded:: 0.1
    """

    def __init__(self, transforms: Mapping[str, nn.Module]) -> None:
        """Initialise a new DeCURTransforms instance.

        Args:
            transforms: Transform per modality name, in modality order.
        """
        super().__init__()
        self.names = tuple(transforms)
        self.transforms = nn.ModuleDict(dict(transforms))

    def forward(
        self, x: Mapping[str, Any] | Sequence[Tensor]
    ) -> dict[str, Any] | tuple[Tensor, ...]:
        """Transform the inputs of every modality.

        Args:
            x: ``{modality: tensor}``, or the tensors in modality order.

        Returns:
            The transformed inputs, of the same kind as *x*.

        Raises:
            ValueError: If a sequence does not hold one tensor per modality.
        """
        if isinstance(x, Mapping):
            return {
                k: self.transforms[k](v) if k in self.transforms else v
                for k, v in x.items()
            }
        if len(x) != len(self.names):
            msg = (
                f'expected {len(self.names)} inputs ({", ".join(self.names)}), '
                f'got {len(x)}'
            )
            raise ValueError(msg)
        return tuple(self.transforms[n](v) for n, v in zip(self.names, x, strict=True))
