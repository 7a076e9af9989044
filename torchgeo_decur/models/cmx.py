"""CMX: two MiT streams fused stage by stage, for RGB-X segmentation.

The DeCUR paper scores its RGB-depth encoders (MiT-B2 / MiT-B5 pretrained on
SUN RGB-D) by fine-tuning them in CMX (Zhang et al. 2023, "CMX: Cross-Modal
Fusion for RGB-X Semantic Segmentation with Transformers",
https://arxiv.org/abs/2203.04838) on SUN RGB-D and NYU-Depth v2: the authors'
``src/transfer_segmentation_RGBD/readme.md`` (zhu-xlab/DeCUR f190e9a) sends
the reader to CMX's repository (huaaaliu/RGBX_Semantic_Segmentation, e251d86)
with the two DeCUR backbones as its two streams. This module rebuilds that
network:

* the RGB and the X (HHA) encoder run stage by stage; after every stage a
  **feature rectification module** (:class:`FeatureRectification`, CMX's
  CM-FRM) lets each stream add the other's features, weighted per channel and
  per pixel, and the rectified maps go on into the next stage;
* a **feature fusion module** (:class:`FeatureFusion`, CMX's FFM) merges the
  two rectified maps of each stage into one: a cross-attention exchange of
  global context, then a channel embedding back to the stage's width;
* SegFormer's all-MLP decoder (segmentation-models-pytorch's
  ``SegformerDecoder``, CMX's ``MLPDecoder`` with embedding 512) turns the
  four fused maps into class scores at stride 4, upsampled to the input.

The rectification and fusion modules have no library implementation, so they
are written here from CMX's paper and code (``models/net_utils.py``); the
arithmetic is theirs, including the softmax of the attention context over its
key dimension.

.. versionadded:: 0.2
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
from timm.layers import trunc_normal_
from torch import Tensor, nn

from .mit import MixTransformer

__all__ = (
    'CMXSegmentationModel',
    'CrossAttention',
    'FeatureFusion',
    'FeatureRectification',
)


def _init_cmx(module: nn.Module) -> None:
    """CMX's initialisation of its fusion layers (``_init_weights``).

    Linear layers: truncated normal (std 0.02), zero bias; layer norms: one
    and zero; convolutions: normal with std ``sqrt(2 / fan_out)``, zero bias.
    """
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        kernel_h, kernel_w = module.kernel_size
        fan_out = kernel_h * kernel_w * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class FeatureRectification(nn.Module):
    """CMX's cross-modal feature rectification module (CM-FRM).

    From the two maps ``x1``, ``x2`` of one stage it computes, for each
    stream, channel weights (an MLP on the average- and max-pooled channels
    of both maps) and spatial weights (1x1 convolutions on both maps), and
    adds the other stream's map weighted by them::

        x1' = x1 + (lambda_c * c1 + lambda_s * s1) * x2
        x2' = x2 + (lambda_c * c2 + lambda_s * s2) * x1

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        dim: int,
        reduction: int = 1,
        lambda_c: float = 0.5,
        lambda_s: float = 0.5,
    ) -> None:
        """Initialize a new FeatureRectification instance.

        Args:
            dim: Channels of each stream's map.
            reduction: Width reduction of the hidden layers (CMX: 1).
            lambda_c: Weight of the channel rectification (CMX: 0.5).
            lambda_s: Weight of the spatial rectification (CMX: 0.5).

        Raises:
            ValueError: If *dim* or *reduction* is not positive, or *dim* is
                not a multiple of *reduction*.
        """
        super().__init__()
        _check_width(dim, reduction)
        self.dim = dim
        self.lambda_c = lambda_c
        self.lambda_s = lambda_s
        self.channel_mlp = nn.Sequential(
            nn.Linear(4 * dim, 4 * dim // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(4 * dim // reduction, 2 * dim),
            nn.Sigmoid(),
        )
        self.spatial_mlp = nn.Sequential(
            nn.Conv2d(2 * dim, dim // reduction, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, 2, kernel_size=1),
            nn.Sigmoid(),
        )
        self.apply(_init_cmx)

    def weights(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """The rectification weights of each stream.

        Args:
            x1: First stream's map ``(N, dim, H, W)``.
            x2: Second stream's map, same shape.

        Returns:
            The weights applied to *x2* for stream 1 and to *x1* for stream 2,
            each broadcastable to ``(N, dim, H, W)`` and in ``[0, 2]``.
        """
        n = x1.shape[0]
        both = torch.cat((x1, x2), dim=1)
        pooled = torch.cat((both.mean(dim=(2, 3)), both.amax(dim=(2, 3))), dim=1)
        channel = self.channel_mlp(pooled).view(n, 2, self.dim, 1, 1)
        spatial = self.spatial_mlp(both).unsqueeze(2)  # (N, 2, 1, H, W)
        mixed = self.lambda_c * channel + self.lambda_s * spatial
        # CMX's order: the second weights rectify stream 1, the first stream 2
        return mixed[:, 1], mixed[:, 0]

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """Rectify each stream with the other.

        Args:
            x1: First stream's map ``(N, dim, H, W)``.
            x2: Second stream's map, same shape.

        Returns:
            The rectified maps, same shapes.
        """
        w1, w2 = self.weights(x1, x2)
        return x1 + w1 * x2, x2 + w2 * x1


class CrossAttention(nn.Module):
    """CMX's efficient cross-attention between two token sequences.

    Each stream's keys and values form a global context matrix per head,
    ``softmax(K^T V / sqrt(d))`` (the softmax over the key dimension, as
    CMX computes it), and each stream's tokens (its queries, unprojected)
    read the *other* stream's context. Linear in the number of tokens.

    .. versionadded:: 0.2
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        """Initialize a new CrossAttention instance.

        Args:
            dim: Token width.
            num_heads: Number of heads; must divide *dim*.

        Raises:
            ValueError: If *num_heads* is not positive or does not divide *dim*.
        """
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            msg = f'num_heads must be positive and divide dim={dim}, got {num_heads}'
            raise ValueError(msg)
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.kv1 = nn.Linear(dim, 2 * dim, bias=False)
        self.kv2 = nn.Linear(dim, 2 * dim, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        """``(N, L, C)`` -> ``(N, heads, L, C / heads)``."""
        n, length, width = x.shape
        return x.view(n, length, self.num_heads, width // self.num_heads).transpose(
            1, 2
        )

    def _context(self, kv: nn.Linear, x: Tensor) -> Tensor:
        """The context matrix ``(N, heads, d, d)`` of one stream."""
        key, value = (self._heads(t) for t in kv(x).chunk(2, dim=-1))
        context = key.transpose(-2, -1) @ value * self.scale
        return context.softmax(dim=-2)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """Exchange context between the streams.

        Args:
            x1: First stream's tokens ``(N, L, dim)``.
            x2: Second stream's tokens, same shape.

        Returns:
            Each stream's tokens having read the other's context, same shapes.
        """
        context1, context2 = self._context(self.kv1, x1), self._context(self.kv2, x2)
        out1 = (self._heads(x1) @ context2).transpose(1, 2).reshape(x1.shape)
        out2 = (self._heads(x2) @ context1).transpose(1, 2).reshape(x2.shape)
        return out1, out2


class FeatureFusion(nn.Module):
    """CMX's feature fusion module (FFM): two maps of a stage into one.

    Stage 1, information exchange: each stream's tokens are projected to
    twice the (reduced) width and split into a residual half and a half that
    goes through :class:`CrossAttention`; both halves are projected back and
    added to the tokens, then layer-normalised. Stage 2, fusion: the two
    streams are concatenated along the channels and embedded back to *dim*
    (a 1x1 convolution as residual plus 1x1, depthwise 3x3 and 1x1
    convolutions), with batch norm.

    .. versionadded:: 0.2
    """

    def __init__(self, dim: int, num_heads: int, reduction: int = 1) -> None:
        """Initialize a new FeatureFusion instance.

        Args:
            dim: Channels of each stream's map and of the fused map.
            num_heads: Heads of the cross-attention (CMX: the stage's MiT
                heads).
            reduction: Width reduction inside the module (CMX: 1).

        Raises:
            ValueError: If *dim* or *reduction* is not positive, *dim* is not a
                multiple of *reduction*, or *num_heads* does not divide the
                reduced width.
        """
        super().__init__()
        _check_width(dim, reduction)
        inner = dim // reduction
        self.split1 = nn.Linear(dim, 2 * inner)
        self.split2 = nn.Linear(dim, 2 * inner)
        self.attention = CrossAttention(inner, num_heads)
        self.merge1 = nn.Linear(2 * inner, dim)
        self.merge2 = nn.Linear(2 * inner, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.residual = nn.Conv2d(2 * dim, dim, kernel_size=1, bias=False)
        self.embed = nn.Sequential(
            nn.Conv2d(2 * dim, inner, kernel_size=1),
            nn.Conv2d(inner, inner, kernel_size=3, padding=1, groups=inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, dim, kernel_size=1),
            nn.BatchNorm2d(dim),
        )
        self.norm = nn.BatchNorm2d(dim)
        self.apply(_init_cmx)

    def exchange(self, t1: Tensor, t2: Tensor) -> tuple[Tensor, Tensor]:
        """Stage 1: the cross-attention exchange between token sequences.

        Args:
            t1: First stream's tokens ``(N, L, dim)``.
            t2: Second stream's tokens, same shape.

        Returns:
            The updated tokens, same shapes.
        """
        keep1, attend1 = F.relu(self.split1(t1)).chunk(2, dim=-1)
        keep2, attend2 = F.relu(self.split2(t2)).chunk(2, dim=-1)
        read1, read2 = self.attention(attend1, attend2)
        out1 = self.norm1(t1 + self.merge1(torch.cat((keep1, read1), dim=-1)))
        out2 = self.norm2(t2 + self.merge2(torch.cat((keep2, read2), dim=-1)))
        return out1, out2

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Fuse the two maps of a stage.

        Args:
            x1: First stream's map ``(N, dim, H, W)``.
            x2: Second stream's map, same shape.

        Returns:
            The fused map ``(N, dim, H, W)``.
        """
        n, _, height, width = x1.shape
        t1, t2 = self.exchange(
            x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2)
        )
        merged = torch.cat((t1, t2), dim=-1).transpose(1, 2)
        merged = merged.reshape(n, -1, height, width)
        out: Tensor = self.norm(self.residual(merged) + self.embed(merged))
        return out


def _check_width(dim: int, reduction: int) -> None:
    """Check a module's width and reduction.

    Raises:
        ValueError: If either is not positive or *reduction* does not divide
            *dim*.
    """
    if dim < 1 or reduction < 1 or dim % reduction:
        msg = (
            'dim and reduction must be positive and reduction must divide dim, '
            f'got dim={dim}, reduction={reduction}'
        )
        raise ValueError(msg)


def _stage_heads(encoder: MixTransformer) -> list[int]:
    """The attention heads of each MiT stage (CMX's FFM uses the same)."""
    return [int(blocks[0].attn.num_heads) for _, blocks, _ in encoder.stages()]


class CMXSegmentationModel(nn.Module):
    """CMX over two MiT encoders: rectify and fuse every stage, MLP decoder.

    Both encoders must be :class:`~torchgeo_decur.models.mit.MixTransformer`
    of the same widths (e.g. the RGB and HHA encoders of
    ``MiTB2_Weights.DECUR_RGB_HHA``). The decoder's convolutions start as CMX
    starts them (Kaiming normal, batch norm with eps 1e-3).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        encoders: Sequence[nn.Module],
        num_classes: int,
        embed_dim: int = 512,
        dropout: float = 0.1,
    ) -> None:
        """Initialize a new CMXSegmentationModel instance.

        Args:
            encoders: The RGB and the X encoder, both MiT.
            num_classes: Number of classes.
            embed_dim: Width of the MLP decoder (CMX: 512).
            dropout: Dropout before the classifier (CMX: 0.1).

        Raises:
            ValueError: If there are not two MiT encoders of the same widths,
                or *num_classes* is not positive.
        """
        super().__init__()
        if len(encoders) != 2 or not all(
            isinstance(e, MixTransformer) for e in encoders
        ):
            kinds = [type(e).__name__ for e in encoders]
            msg = (
                "decoder='cmx' needs two MiT encoders (model: mit_b0 ... mit_b5) "
                f'for two modalities, got {kinds}'
            )
            raise ValueError(msg)
        if num_classes < 1:
            msg = f'num_classes must be >= 1, got {num_classes}'
            raise ValueError(msg)
        rgb, other = encoders
        assert isinstance(rgb, MixTransformer) and isinstance(other, MixTransformer)
        dims = [int(info['num_chs']) for info in rgb.feature_info]
        if dims != [int(info['num_chs']) for info in other.feature_info]:
            msg = 'the two MiT encoders of CMX must have the same stage widths'
            raise ValueError(msg)
        self.encoders = nn.ModuleList(encoders)
        heads = _stage_heads(rgb)
        self.rectify = nn.ModuleList(FeatureRectification(d) for d in dims)
        self.fuse = nn.ModuleList(
            FeatureFusion(d, h) for d, h in zip(dims, heads, strict=True)
        )
        self.decoder = SegformerDecoder(
            encoder_channels=[rgb.in_chans, *dims], segmentation_channels=embed_dim
        )
        self.head = nn.Sequential(
            nn.Dropout2d(dropout), nn.Conv2d(embed_dim, num_classes, kernel_size=1)
        )
        for module in (self.decoder, self.head):
            _init_decoder(module)

    def fused_maps(self, x1: Tensor, x2: Tensor) -> list[Tensor]:
        """Run both encoders stage by stage, rectifying and fusing each stage.

        Args:
            x1: RGB input ``(N, C1, H, W)``.
            x2: X input ``(N, C2, H, W)``.

        Returns:
            The fused map of each stage, strides 4, 8, 16 and 32.
        """
        rgb, other = self.encoders
        assert isinstance(rgb, MixTransformer) and isinstance(other, MixTransformer)
        fused = []
        for i, (rectify, fuse) in enumerate(zip(self.rectify, self.fuse, strict=True)):
            x1, x2 = rectify(rgb.forward_stage(i, x1), other.forward_stage(i, x2))
            fused.append(fuse(x1, x2))
        return fused

    def forward(self, *inputs: Tensor) -> Tensor:
        """Segment a batch.

        Args:
            inputs: The RGB and the X input, ``(N, C_i, H, W)`` each.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``.

        Raises:
            ValueError: If there are not two inputs of the same height and
                width.
        """
        if len(inputs) != 2:
            msg = f'expected 2 inputs (RGB and X), got {len(inputs)}'
            raise ValueError(msg)
        x1, x2 = inputs
        if x1.shape[-2:] != x2.shape[-2:]:
            msg = (
                'inputs must have the same height and width, got '
                f'{tuple(x1.shape[-2:])} and {tuple(x2.shape[-2:])}'
            )
            raise ValueError(msg)
        decoded = self.decoder([x1, *self.fused_maps(x1, x2)])
        out = self.head(decoded)
        return F.interpolate(
            out, size=x1.shape[-2:], mode='bilinear', align_corners=False
        )


def _init_decoder(module: nn.Module) -> None:
    """CMX's initialisation of the decode head (``utils/init_func.py``).

    Convolutions: Kaiming normal (fan in, ReLU); batch norms: weight 1, bias
    0, eps 1e-3, momentum 0.1.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.1
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
