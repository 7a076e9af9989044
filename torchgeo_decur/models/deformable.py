"""Deformable attention for ResNet encoders (the DeCUR ECCV version).

The later version of DeCUR adds deformable attention (DAT: Xia et al., "Vision
Transformer with Deformable Attention", CVPR 2022) after the last two stages
of each ResNet encoder, with a residual connection and nothing else (no extra
norm, no MLP)::

    x = layer3(x); x = x + da_l3(x)
    x = layer4(x); x = x + da_l4(x)

One block (:class:`DeformableAttention2d`) computes, for an input map ``x`` of
shape ``(N, C, H, W)`` with ``heads`` heads of ``C // heads`` channels and
``groups`` offset groups:

1. queries ``q = proj_q(x)`` (1x1 convolution);
2. per group, offsets from that group's query channels: a depthwise ``k x k``
   convolution with stride ``s``, LayerNorm over channels, GELU and a 1x1
   convolution without bias to 2 channels ``(dy, dx)``. The same offset
   network is applied to every group. Its output has the key grid's size
   ``(Hk, Wk)``;
3. sampling positions ``clamp(reference + offset, -1, 1)`` in the normalised
   coordinates of :func:`torch.nn.functional.grid_sample` with
   ``align_corners=True``; offsets are not bounded (the authors'
   ``offset_range_factor=-1``);
4. keys and values ``proj_k`` / ``proj_v`` (1x1 convolutions) of ``x`` sampled
   bilinearly at those positions, each group at its own positions;
5. scaled dot-product attention of every query over the ``Hk * Wk`` sampled
   points of its group, plus a relative position bias read by bilinear
   interpolation from a ``(heads, 2 * Hq - 1, 2 * Wq - 1)`` table at the
   query-to-sample displacement;
6. the output projection ``proj_out`` (1x1 convolution).

Parameter names and shapes are those of the authors' ``DAttentionBaseline``
(``conv_offset.{0,1.norm,3}``, ``proj_q``, ``proj_k``, ``proj_v``,
``proj_out``, ``rpe_table``), so their files load unchanged: the key
``module.da{i}_l3.<rest>`` of a joint DeCUR file is ``da_l3.<rest>`` of
a :class:`DeformableResNet` (likewise ``l4``). The authors' pretraining code
runs modality 2 through ``da1_l3`` / ``da1_l4`` too (``forward`` of
``src/pretrain/models/decur.py``, lines 169-172 at commit f190e9a), so the
``da2_*`` blocks of their published files were never trained; their transfer
code nevertheless loads ``da2_*`` for modality 2. The weight loaders give
every modality the trained ``da1_*`` blocks by default
(``da_blocks='trained'``) and the authors' mapping on request
(``da_blocks='authors'``; :func:`~torchgeo_decur.models.weights.files.read_release`).
Files written by this package hold each modality's own, trained blocks.

The maths follows the authors' code where it differs from a textbook
description, because their weights were trained with it: reference points are
the key cells' centres ``(i + 0.5)`` divided by ``Hk - 1`` (not ``Hk``), so
they lie half a key cell after the centres and the last row and column are
clamped to the border; query positions for the position bias are the pixel
indices normalised like ``align_corners=True``.

.. versionadded:: 0.1
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d, create_classifier
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices
from timm.models.resnet import ResNet
from torch import Tensor, nn

__all__ = (
    'DA_PREFIXES',
    'DeformableAttention2d',
    'DeformableResNet',
    'add_deformable_attention',
    'deformable_config',
    'has_deformable_attention',
)


#: Key prefixes of the blocks in a :class:`DeformableResNet` state dict.
DA_PREFIXES = ('da_l3.', 'da_l4.')


def has_deformable_attention(state_dict: Mapping[str, Tensor]) -> bool:
    """Whether an encoder state dict holds deformable-attention blocks (``da_l3.*``).

    .. versionadded:: 0.2
    """
    return any(k.startswith(DA_PREFIXES) for k in state_dict)


def _positive_int(name: str, value: object) -> int:
    """Return *value* if it is a positive int, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f'{name} must be a positive int, got {value!r}'
        raise ValueError(msg)
    return value


def _normalised(size: int, start: float, like: Tensor) -> Tensor:
    """Positions ``start, start + 1, ...`` on an axis of *size* cells.

    They are divided by ``size - 1`` and mapped to ``[-1, 1]``-style
    coordinates (``align_corners=True``). An axis of one cell gives 0, its
    centre (the authors' formula divides by zero there).
    """
    if size == 1:
        return torch.zeros(1, dtype=like.dtype, device=like.device)
    positions = torch.arange(size, dtype=like.dtype, device=like.device) + start
    return positions / (size - 1) * 2 - 1


def _grid(height: int, width: int, start: float, like: Tensor) -> Tensor:
    """A ``(height, width, 2)`` grid of ``(y, x)`` normalised positions."""
    ys = _normalised(height, start, like)
    xs = _normalised(width, start, like)
    return torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1)


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an ``(N, C, H, W)`` map.

    The LayerNorm is the attribute ``norm``, as in the authors'
    ``LayerNormProxy``, so that parameter names match theirs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise every pixel's channel vector."""
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DeformableAttention2d(nn.Module):
    """Deformable multi-head attention over a feature map (DAT).

    Every query pixel attends to the same ``Hk x Wk`` points of its offset
    group, sampled at learnt, unbounded offsets from reference points (see
    the module docstring for the steps). The key grid ``(Hk, Wk)`` is the
    output size of the offset convolution: ``(H, W)`` for stride 1, about
    ``(H / 2, W / 2)`` for stride 2.

    The block works at any input size. The relative position bias table has
    the size fixed by *query_size* (``2 * Hq - 1`` by ``2 * Wq - 1``), but it
    is read with ``grid_sample`` at displacements normalised by the actual
    map size, so at another size it is interpolated (stretched or shrunk).
    Maps of height or width 1 use the centre (0) as their only position.

    Parameter names and shapes equal those of the authors' DAT block
    ``DAttentionBaseline`` with ``use_pe=True``, ``dwc_pe=False``,
    ``fixed_pe=False``, ``log_cpb=False``, ``no_off=False``. Parameters are
    initialised as theirs: PyTorch's defaults and a truncated normal
    (std 0.01) position bias table.

    Args:
        channels: Input and output channels; ``heads * head channels``.
        heads: Attention heads; each has ``channels // heads`` channels.
        groups: Offset groups; each has ``channels // groups`` channels and
            ``heads // groups`` heads and samples its own points.
        stride: Stride of the offset convolution, the key grid's
            down-sampling.
        offset_kernel: Kernel size of the depthwise offset convolution
            (padded by ``offset_kernel // 2``, or not at all when it equals
            *stride*, as the authors do).
        query_size: Map size ``Hq`` or ``(Hq, Wq)`` the position bias table
            is made for (at which it is read without interpolation).
        attn_drop: Dropout probability of the attention weights.
        proj_drop: Dropout probability after the output projection.

    Raises:
        ValueError: If an argument is out of range, or *channels* is not
            divisible by *heads*, or *heads* not by *groups*.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        groups: int,
        stride: int,
        offset_kernel: int,
        query_size: int | Sequence[int] = 14,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = _positive_int('channels', channels)
        self.heads = _positive_int('heads', heads)
        self.groups = _positive_int('groups', groups)
        self.stride = _positive_int('stride', stride)
        self.offset_kernel = _positive_int('offset_kernel', offset_kernel)
        if isinstance(query_size, int):
            query_size = (query_size, query_size)
        if len(query_size) != 2:
            msg = f'query_size must be an int or a pair of ints, got {query_size!r}'
            raise ValueError(msg)
        self.query_size = (
            _positive_int('query_size', query_size[0]),
            _positive_int('query_size', query_size[1]),
        )
        if channels % heads:
            msg = f'channels ({channels}) must be divisible by heads ({heads})'
            raise ValueError(msg)
        if heads % groups:
            msg = f'heads ({heads}) must be divisible by groups ({groups})'
            raise ValueError(msg)
        for name, p in (('attn_drop', attn_drop), ('proj_drop', proj_drop)):
            if not 0.0 <= p < 1.0:
                msg = f'{name} must be in [0, 1), got {p!r}'
                raise ValueError(msg)
        self.head_channels = channels // heads
        self.group_channels = channels // groups
        self.attn_drop = attn_drop

        cg = self.group_channels
        padding = offset_kernel // 2 if offset_kernel != stride else 0
        self.conv_offset = nn.Sequential(
            nn.Conv2d(cg, cg, offset_kernel, stride, padding, groups=cg),
            _ChannelLayerNorm(cg),
            nn.GELU(),
            nn.Conv2d(cg, 2, 1, bias=False),
        )
        self.proj_q = nn.Conv2d(channels, channels, 1)
        self.proj_k = nn.Conv2d(channels, channels, 1)
        self.proj_v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.proj_drop = nn.Dropout(proj_drop)
        hq, wq = self.query_size
        self.rpe_table = nn.Parameter(torch.empty(heads, 2 * hq - 1, 2 * wq - 1))
        nn.init.trunc_normal_(self.rpe_table, std=0.01)

    def extra_repr(self) -> str:
        """Summarise the configuration."""
        return (
            f'channels={self.channels}, heads={self.heads}, groups={self.groups}, '
            f'stride={self.stride}, offset_kernel={self.offset_kernel}, '
            f'query_size={self.query_size}'
        )

    def _positions(self, q: Tensor) -> Tensor:
        """Sampling positions ``(N * groups, Hk, Wk, 2)`` as ``(y, x)``."""
        n, _, h, w = q.shape
        offset = self.conv_offset(
            q.reshape(n * self.groups, self.group_channels, h, w)
        ).permute(0, 2, 3, 1)
        # positions in at least float32, also under float16/bfloat16 autocast
        offset = offset.to(torch.promote_types(offset.dtype, torch.float32))
        reference = _grid(offset.shape[1], offset.shape[2], 0.5, offset)
        return (offset + reference).clamp(-1.0, 1.0)

    def sampling_positions(self, x: Tensor) -> Tensor:
        """Where each offset group samples its keys and values.

        Args:
            x: Input of shape ``(N, channels, H, W)``.

        Returns:
            Positions of shape ``(N, groups, Hk, Wk, 2)``, as ``(y, x)`` in
            ``[-1, 1]`` (``grid_sample`` coordinates, ``align_corners=True``).

        .. versionadded:: 0.1
        """
        pos = self._positions(self.proj_q(x))
        return pos.reshape(x.shape[0], self.groups, *pos.shape[1:])

    def _position_bias(self, pos: Tensor, height: int, width: int) -> Tensor:
        """Relative position bias ``(N, heads, H * W, Hk * Wk)``.

        Args:
            pos: Sampling positions ``(N * groups, Hk, Wk, 2)`` as ``(y, x)``.
            height: Height of the query map.
            width: Width of the query map.
        """
        ng = pos.shape[0]
        n = ng // self.groups
        queries = _grid(height, width, 0.0, pos).reshape(1, -1, 1, 2)
        # displacement / 2 lies in [-1, 1]: zero reads the table's centre
        displacement = (queries - pos.reshape(ng, 1, -1, 2)) * 0.5
        table = self.rpe_table.to(pos.dtype)
        table = table.reshape(1, self.groups, -1, *table.shape[1:])
        table = table.expand(n, -1, -1, -1, -1).reshape(ng, -1, *table.shape[3:])
        bias = F.grid_sample(
            table, displacement.flip(-1), mode='bilinear', align_corners=True
        )
        return bias.reshape(n, self.heads, height * width, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Attend from every pixel to its group's sampled points.

        Args:
            x: Input of shape ``(N, channels, H, W)``.

        Returns:
            The attention output ``(N, channels, H, W)``, without the residual.

        Raises:
            ValueError: If *x* is not 4-D or has another number of channels.
        """
        if x.ndim != 4 or x.shape[1] != self.channels:
            msg = (
                f'expected input of shape (N, {self.channels}, H, W), '
                f'got {tuple(x.shape)}'
            )
            raise ValueError(msg)
        n, c, h, w = x.shape
        heads, hc = self.heads, self.head_channels
        q = self.proj_q(x)
        pos = self._positions(q)
        sampled = F.grid_sample(
            x.reshape(n * self.groups, self.group_channels, h, w),
            pos.flip(-1).to(x.dtype),
            mode='bilinear',
            align_corners=True,
        )
        samples = pos.shape[1] * pos.shape[2]
        sampled = sampled.reshape(n, c, 1, samples)
        k = self.proj_k(sampled).reshape(n, heads, hc, samples).transpose(2, 3)
        v = self.proj_v(sampled).reshape(n, heads, hc, samples).transpose(2, 3)
        q = q.reshape(n, heads, hc, h * w).transpose(2, 3)
        bias = self._position_bias(pos, h, w).to(q.dtype)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias,
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        out = out.transpose(2, 3).reshape(n, c, h, w)
        return self.proj_drop(self.proj_out(out))


def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of *n* that is at most *limit* (at least 1)."""
    return next(d for d in range(max(1, min(n, limit)), 0, -1) if n % d == 0)


def deformable_config(channels: int, stage: int) -> dict[str, Any]:
    """Configuration of the deformable attention after a ResNet stage.

    For ResNet-50 (1024 and 2048 channels) it is DeCUR's:

    * stage 3: 8 heads x 128 channels, 4 groups, stride 2, offset kernel 5,
      position bias for 14 x 14 queries (224 px inputs);
    * stage 4: 16 heads x 128 channels, 8 groups, stride 1, offset kernel 3,
      position bias for 7 x 7 queries.

    Other widths are scaled: ``heads = max(1, channels // 128)`` and
    ``groups = max(1, heads // 2)`` (each lowered to the nearest divisor of
    *channels*, respectively *heads*, where needed), with the same stride,
    kernel and query size per stage; e.g. ResNet-18 gets 2 heads, 1 group at
    stage 3 (256 channels) and 4 heads, 2 groups at stage 4 (512 channels).

    Args:
        channels: Output channels of the stage.
        stage: 3 or 4 (the stage the block follows).

    Returns:
        Keyword arguments of :class:`DeformableAttention2d`.

    Raises:
        ValueError: If *channels* is not positive or *stage* is not 3 or 4.

    .. versionadded:: 0.1
    """
    _positive_int('channels', channels)
    if stage not in (3, 4):
        msg = f'stage must be 3 or 4, got {stage!r}'
        raise ValueError(msg)
    heads = _largest_divisor(channels, max(1, channels // 128))
    groups = _largest_divisor(heads, max(1, heads // 2))
    stride, kernel, query = (2, 5, 14) if stage == 3 else (1, 3, 7)
    return {
        'channels': channels,
        'heads': heads,
        'groups': groups,
        'stride': stride,
        'offset_kernel': kernel,
        'query_size': query,
    }


class DeformableResNet(nn.Module):
    """A timm ResNet with deformable attention after stages 3 and 4.

    The ResNet's modules become this model's own (same objects, same names),
    so ``state_dict()`` holds exactly timm's ResNet keys plus ``da_l3.*``
    and ``da_l4.*``. The forward pass is the ResNet's with
    ``x = x + da_l3(x)`` after ``layer3`` and ``x = x + da_l4(x)`` after
    ``layer4``. Like a timm model, ``model(x)`` gives pooled features
    (through the ResNet's ``global_pool`` and ``fc``) and
    :meth:`forward_intermediates` gives stage maps (the attended ones for
    stages 3 and 4); ``num_features``, ``feature_info`` and
    ``pretrained_cfg`` are the ResNet's.

    Args:
        resnet: The timm ResNet; its modules are adopted, not copied.
        da_l3: Block after stage 3; by default
            ``DeformableAttention2d(**deformable_config(channels, 3))``.
        da_l4: Block after stage 4; by default likewise for stage 4.

    Raises:
        TypeError: If *resnet* is not a timm ResNet.

    .. versionadded:: 0.1
    """

    conv1: nn.Module
    bn1: nn.Module
    act1: nn.Module
    maxpool: nn.Module
    global_pool: SelectAdaptivePool2d
    fc: nn.Module
    da_l3: nn.Module
    da_l4: nn.Module
    num_features: int
    drop_rate: float
    grad_checkpointing: bool
    feature_info: list[dict[str, Any]]

    def __init__(
        self,
        resnet: ResNet,
        da_l3: nn.Module | None = None,
        da_l4: nn.Module | None = None,
    ) -> None:
        if not isinstance(resnet, ResNet):
            msg = (
                'deformable attention is for ResNet encoders '
                f'(timm.models.resnet.ResNet), got {type(resnet).__name__}'
            )
            raise TypeError(msg)
        super().__init__()
        for name, module in resnet.named_children():
            self.add_module(name, module)
        for attr in (
            'num_classes',
            'in_chans',
            'drop_rate',
            'grad_checkpointing',
            'num_features',
            'head_hidden_size',
            'pretrained_cfg',
            'pretrained_cfg_overlay',
            'default_cfg',
        ):
            if hasattr(resnet, attr):
                setattr(self, attr, getattr(resnet, attr))
        self.feature_info = [dict(info) for info in resnet.feature_info]
        if da_l3 is None:
            channels = self.feature_info[3]['num_chs']
            da_l3 = DeformableAttention2d(**deformable_config(channels, 3))
        if da_l4 is None:
            channels = self.feature_info[4]['num_chs']
            da_l4 = DeformableAttention2d(**deformable_config(channels, 4))
        self.da_l3 = da_l3
        self.da_l4 = da_l4

    def _stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage *index* (1 to 4), followed by its attention if any."""
        layer = getattr(self, f'layer{index}')
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(layer, x)
        else:
            x = layer(x)
        if index == 3:
            x = x + self.da_l3(x)
        elif index == 4:
            x = x + self.da_l4(x)
        return x

    def _stem(self, x: Tensor) -> Tensor:
        """Stem convolution, norm and activation (before the pooling)."""
        return self.act1(self.bn1(self.conv1(x)))

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint the ResNet stages' blocks (as timm does).

        Args:
            enable: Whether to enable it.

        .. versionadded:: 0.1
        """
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> str | nn.Module:
        """The classifier (``fc``), or its name.

        Args:
            name_only: Return the name instead of the module.

        Returns:
            ``'fc'`` or the module.

        .. versionadded:: 0.1
        """
        return 'fc' if name_only else self.fc

    def reset_classifier(
        self, num_classes: int, global_pool: str | None = None
    ) -> None:
        """Replace the pooling and classifier (as timm's ResNet does).

        Args:
            num_classes: Number of classes; 0 for pooled features only.
            global_pool: Pooling type; the current one if None.

        .. versionadded:: 0.1
        """
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        p = next(self.parameters())
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(
            self.num_features,
            num_classes,
            pool_type=global_pool,
            device=p.device,
            dtype=p.dtype,
        )
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def forward_features(self, x: Tensor) -> Tensor:
        """Unpooled features of the last stage (attended).

        Args:
            x: Input of shape ``(N, in_chans, H, W)``.

        Returns:
            The stage-4 map ``(N, num_features, H / 32, W / 32)``.

        .. versionadded:: 0.1
        """
        x = self.maxpool(self._stem(x))
        for index in range(1, 5):
            x = self._stage(index, x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool (and classify) features as the ResNet's head does.

        Args:
            x: Output of :meth:`forward_features`.
            pre_logits: Return the pooled features before ``fc``.

        Returns:
            Pooled features, or the output of ``fc``.

        .. versionadded:: 0.1
        """
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features (or logits when the ResNet has a classifier).

        Args:
            x: Input of shape ``(N, in_chans, H, W)``.

        Returns:
            ``(N, num_features)`` for ``num_classes=0``.

        .. versionadded:: 0.1
        """
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Features and intermediate maps, as timm's ResNet returns them.

        Levels are 0 (stem, before max pooling) and 1 to 4 (stages); levels
        3 and 4 are the attended maps ``x + da(x)``.

        Args:
            x: Input of shape ``(N, in_chans, H, W)``.
            indices: The last *n* levels if an int, all if None, else the
                levels listed.
            norm: Unused (ResNets have no final norm); for timm compatibility.
            stop_early: Stop after the last level asked for.
            output_fmt: Only ``'NCHW'``.
            intermediates_only: Return only the intermediate maps.

        Returns:
            The maps (shallowest first), or the last features and the maps.

        Raises:
            ValueError: If *output_fmt* is not ``'NCHW'``.

        .. versionadded:: 0.1
        """
        if output_fmt != 'NCHW':
            msg = f"output_fmt must be 'NCHW', got {output_fmt!r}"
            raise ValueError(msg)
        take_indices, max_index = feature_take_indices(5, indices)
        intermediates = []
        x = self._stem(x)
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        last = max_index if stop_early else 4
        for index in range(1, last + 1):
            x = self._stage(index, x)
            if index in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates


def add_deformable_attention(resnet: nn.Module) -> DeformableResNet:
    """Add DeCUR's deformable attention to a timm ResNet encoder.

    Args:
        resnet: A :class:`timm.models.resnet.ResNet`, e.g.
            ``timm.create_model('resnet50', in_chans=13, num_classes=0)``.

    Returns:
        A :class:`DeformableResNet` that adopts the ResNet's modules, with
        blocks configured by :func:`deformable_config`.

    Raises:
        TypeError: If *resnet* is not a timm ResNet.

    .. versionadded:: 0.1
    """
    return DeformableResNet(resnet)  # type: ignore[arg-type]
