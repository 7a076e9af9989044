"""A small convolutional encoder for CPU benchmarks, registered with timm.

The controlled benchmarks (``benchmarks/trifeature.py``, the demo) train
dozens of models on 32-64 px images on a laptop CPU; a ResNet-18 spends most
of that time on capacity they do not need (at 32 px, where its stem
downsamples by 4 at once, it still costs about six times as much), and
reduces a 32 px image to a single 1 x 1 map, which leaves CoMM's fusion one
token per modality. :class:`SmallConvNet` is four stages of two 3 x 3
convolutions with batch norm and ReLU, each stage halving the resolution
(a 32 px input ends as a 2 x 2 map, 64 px as 4 x 4), global average
pooling, and timm's interface (pooled
features from ``model(x)``, ``forward_intermediates``, ``feature_info``), so
every task and head of the plugin takes it by name:
``timm.create_model('convnet_small', in_chans=3, num_classes=0)``.

.. versionadded:: 0.1
"""

from typing import Any

import timm
from timm.models import register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn

__all__ = ['SmallConvNet', 'register_small']


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Two 3 x 3 convolutions with batch norm and ReLU, the first strided."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallConvNet(nn.Module):
    """Four-stage ConvNet with timm's model interface.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        **kwargs: Any,
    ) -> None:
        """Initialize a new SmallConvNet instance.

        Args:
            in_chans: Number of input channels.
            num_classes: Size of a linear classifier; 0 for none (``model(x)``
                returns the pooled features).
            widths: Channels of the four stages.
            **kwargs: Ignored timm arguments (``drop_rate``, ...).

        Raises:
            ValueError: If *in_chans* is not positive, *num_classes* negative
                or *widths* does not hold four positive numbers.
        """
        super().__init__()
        if in_chans < 1:
            msg = f'in_chans must be >= 1, got {in_chans}'
            raise ValueError(msg)
        if num_classes < 0:
            msg = f'num_classes must be >= 0, got {num_classes}'
            raise ValueError(msg)
        if len(widths) != 4 or min(widths) < 1:
            msg = f'widths must be four positive numbers, got {widths}'
            raise ValueError(msg)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.num_features = widths[-1]
        channels = (in_chans, *widths)
        self.stages = nn.ModuleList(
            _stage(channels[i], channels[i + 1], 2) for i in range(4)
        )
        self.head: nn.Module = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        self.feature_info = [
            {'num_chs': c, 'reduction': 2 ** (i + 1), 'module': f'stages.{i}'}
            for i, c in enumerate(widths)
        ]
        self.pretrained_cfg: dict[str, Any] = {
            'num_classes': num_classes,
            'first_conv': 'stages.0.0',
            'classifier': 'head',
        }
        self.default_cfg = self.pretrained_cfg

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Return stage maps, as timm's ``forward_intermediates``.

        Args:
            x: Input ``(N, C, H, W)``.
            indices: The last *n* stages if an int, these stages if a list,
                all four if None.
            norm: Unused.
            stop_early: Stop after the last stage returned.
            output_fmt: Only ``'NCHW'``.
            intermediates_only: Return only the stage maps.

        Returns:
            The stage maps, shallowest first; with ``intermediates_only=False``
            also the last map, as ``(final, intermediates)``.

        Raises:
            ValueError: If *output_fmt* is not ``'NCHW'``.
        """
        if output_fmt != 'NCHW':
            msg = f"output_fmt must be 'NCHW', got {output_fmt!r}"
            raise ValueError(msg)
        take, last = feature_take_indices(4, indices)
        stages = list(self.stages)
        if stop_early or intermediates_only:
            stages = stages[: last + 1]
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last stage's map ``(N, num_features, H / 16, W / 16)``."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Average-pool the last map and classify.

        Args:
            x: The last stage's map.
            pre_logits: Return the pooled features, without the classifier.

        Returns:
            ``(N, num_features)`` or ``(N, num_classes)``.
        """
        pooled = x.mean(dim=(-2, -1))
        if pre_logits:
            return pooled
        out: Tensor = self.head(pooled)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Return the pooled features (or class scores with a classifier)."""
        return self.forward_head(self.forward_features(x))


def convnet_small(pretrained: bool = False, **kwargs: Any) -> SmallConvNet:
    """Create a :class:`SmallConvNet` (timm entrypoint).

    Args:
        pretrained: Must be False: there are no pretrained weights.
        **kwargs: Arguments of :class:`SmallConvNet` and ignored timm ones.

    Returns:
        The model.

    Raises:
        ValueError: If *pretrained* is True.

    .. versionadded:: 0.1
    """
    if pretrained:
        raise ValueError('convnet_small has no pretrained weights')
    for key in ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir'):
        kwargs.pop(key, None)
    return SmallConvNet(**kwargs)


def register_small() -> None:
    """Register ``convnet_small`` with timm (if timm lacks that name).

    Called when :mod:`torchgeo_decur` is imported.

    .. versionadded:: 0.1
    """
    if not timm.is_model('convnet_small'):
        register_model(convnet_small)
