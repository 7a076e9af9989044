"""Evaluation transforms of inputs of several modalities at once.

.. versionadded:: 0.1
"""

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ('DeCURTransforms', 'ModalityTransforms')


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
            ValueError: If *x* is a single tensor (a batch of one modality is
                never split into modalities), a mapping without any modality
                key, or a sequence without one tensor per modality.
        """
        names = ', '.join(self.names)
        if isinstance(x, Tensor):
            msg = (
                f'got one tensor of shape {tuple(x.shape)}; a joint entry takes '
                f'{{modality: tensor}} or one tensor per modality ({names}). For '
                "one modality's images use the entry's .modality(name).transforms"
            )
            raise ValueError(msg)
        if isinstance(x, Mapping):
            if not any(k in self.transforms for k in x):
                msg = (
                    f'none of the keys {sorted(x)} is a modality of this joint '
                    f"entry ({names}); for TorchGeo's 'image' key use the entry's "
                    '.modality(name).transforms'
                )
                raise ValueError(msg)
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


class ModalityTransforms(nn.Module):
    """Evaluation transforms of one modality, for tensors and TorchGeo samples.

    Called with a tensor ``(C, H, W)`` or a batch ``(N, C, H, W)``, it returns
    the transformed tensor; called with a sample dict, it transforms the
    ``image`` key (TorchGeo's single-image samples) or the modality's own key
    and passes the other keys (``label``, ``mask``, ...) through::

        t = ResNet50_Weights.DECUR_S1S2_S1.transforms
        x = t(sar)
        sample = t({'image': sar, 'label': 3})

    .. versionadded:: 0.2
    """

    def __init__(self, name: str, transform: nn.Module) -> None:
        """Initialise a new ModalityTransforms instance.

        Args:
            name: Modality name (also accepted as the sample key).
            transform: The transform of tensors.
        """
        super().__init__()
        self.name = name
        self.transform = transform

    def forward(self, x: Tensor | Mapping[str, Any]) -> Tensor | dict[str, Any]:
        """Transform a tensor, or the image of a sample.

        Args:
            x: A tensor, or a sample with an ``image`` or *name* key.

        Returns:
            The transformed tensor, or the sample with its image transformed.

        Raises:
            ValueError: If a sample has neither an ``image`` nor a *name* key.
        """
        if not isinstance(x, Mapping):
            out: Tensor = self.transform(x)
            return out
        keys = [k for k in ('image', self.name) if k in x]
        if not keys:
            msg = (
                f'a sample for the {self.name!r} transforms needs an '
                f"'image' or {self.name!r} key, got {sorted(x)}"
            )
            raise ValueError(msg)
        return {k: self.transform(v) if k in keys else v for k, v in x.items()}
