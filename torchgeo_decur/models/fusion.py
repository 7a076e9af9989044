"""Token fusion of several modalities (CoMM's multimodal encoder).

CoMM (Dufumier et al., "What to align in multimodal contrastive learning?",
ICLR 2025) fuses the modalities in a latent space:

1. each modality's encoder gives a feature map ``(B, C_i, h, w)``;
2. a :class:`LatentConverter` per modality maps it to ``d`` channels with a
   1x1 convolution and makes one token per spatial position, plus fixed 2D
   sine-cosine position embeddings (:func:`sincos_position_embedding_2d`);
3. a :class:`FusionTransformer` concatenates the tokens of the modalities
   with a learnable CLS token, runs pre-norm transformer layers and returns
   the CLS output, the multimodal embedding.

A modality that is absent contributes no tokens, so the same transformer
embeds any subset of the modalities (CoMM's per-modality embeddings ``Z_i``,
and missing-modality evaluation).

.. versionadded:: 0.1
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ('FusionTransformer', 'LatentConverter', 'sincos_position_embedding_2d')


def _positive_int(name: str, value: object) -> int:
    """Return *value* if it is a positive int, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f'{name} must be a positive int, got {value!r}'
        raise ValueError(msg)
    return value


def sincos_position_embedding_2d(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Fixed 2D sine-cosine position embeddings of a ``height x width`` grid.

    Positions are in row-major order (index ``r * width + c`` for row ``r``
    and column ``c``). With ``q = dim / 4`` and frequencies
    :math:`\omega_k = T^{-k/q}` for ``k = 0 .. q - 1`` (``T`` the
    *temperature*), the embedding of position ``(r, c)`` is

    .. math::

        [\sin(r\omega), \cos(r\omega), \sin(c\omega), \cos(c\omega)]

    (each block ``q`` channels): the first half encodes the row, the second
    the column, as in MoCo v3 and MultiMAE. Nothing is learned, so any grid
    size can be embedded (no interpolation of a table of fixed size).

    Args:
        height: Number of rows.
        width: Number of columns.
        dim: Embedding size, a multiple of 4.
        temperature: Base ``T`` of the frequencies.
        device: Device of the result.
        dtype: Floating point type of the result (default: float32).

    Returns:
        Tensor of shape ``(height * width, dim)``.

    Raises:
        ValueError: If *height*, *width* or *dim* is not a positive int, or
            *dim* is not a multiple of 4, or *temperature* is not positive.

    .. versionadded:: 0.1
    """
    _positive_int('height', height)
    _positive_int('width', width)
    _positive_int('dim', dim)
    if dim % 4:
        msg = f'dim must be a multiple of 4 for 2D sin-cos embeddings, got {dim}'
        raise ValueError(msg)
    if not temperature > 0:
        msg = f'temperature must be positive, got {temperature}'
        raise ValueError(msg)
    quarter = dim // 4
    omega = temperature ** (
        -torch.arange(quarter, dtype=torch.float64, device=device) / quarter
    )
    rows = torch.arange(height, dtype=torch.float64, device=device)
    cols = torch.arange(width, dtype=torch.float64, device=device)
    r = torch.outer(rows, omega)[:, None, :].expand(height, width, quarter)
    c = torch.outer(cols, omega)[None, :, :].expand(height, width, quarter)
    emb = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=-1)
    return emb.reshape(height * width, dim).to(dtype or torch.float32)


class LatentConverter(nn.Module):
    """Feature map to tokens: a 1x1 convolution and position embeddings.

    One token of size ``dim`` per spatial position of the feature map, in
    row-major order, plus :func:`sincos_position_embedding_2d` of the map's
    own size (so any input size works).

    .. versionadded:: 0.1
    """

    def __init__(self, in_channels: int, dim: int) -> None:
        """Initialize a new LatentConverter instance.

        Args:
            in_channels: Channels of the feature map.
            dim: Token size, a multiple of 4.

        Raises:
            ValueError: If *in_channels* or *dim* is not a positive int, or
                *dim* is not a multiple of 4.
        """
        super().__init__()
        _positive_int('in_channels', in_channels)
        _positive_int('dim', dim)
        if dim % 4:
            msg = f'dim must be a multiple of 4 for 2D sin-cos embeddings, got {dim}'
            raise ValueError(msg)
        self.in_channels = in_channels
        self.dim = dim
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """Turn a feature map into tokens.

        Args:
            x: Feature map of shape ``(B, in_channels, h, w)``.

        Returns:
            Tokens of shape ``(B, h * w, dim)``.

        Raises:
            ValueError: If *x* is not a feature map with ``in_channels``
                channels.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            msg = (
                f'expected a feature map (B, {self.in_channels}, h, w), '
                f'got {tuple(x.shape)}'
            )
            raise ValueError(msg)
        h, w = x.shape[-2:]
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        pos = sincos_position_embedding_2d(
            h, w, self.dim, device=x.device, dtype=tokens.dtype
        )
        return tokens + pos


class FusionTransformer(nn.Module):
    """Fuse the tokens of any subset of modalities into one embedding.

    The tokens of the modalities present are concatenated after a learnable
    CLS token and go through ``num_layers`` pre-norm transformer layers
    (:class:`torch.nn.TransformerEncoderLayer` with ``norm_first=True``, GELU
    MLP of ``mlp_ratio * dim``, no dropout by default) and a final LayerNorm;
    the CLS output is the embedding. No mask is needed for a missing
    modality: it has no tokens, so nothing can attend to it.

    Weights are initialised as in CLIP's text transformer (normal with
    standard deviations ``dim^-0.5`` for the attention input projection,
    ``(2 dim)^-0.5`` for the first MLP layer and ``dim^-0.5 (2 L)^-0.5`` for
    both output projections, ``L`` the number of layers), as in CoMM's code.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        """Initialize a new FusionTransformer instance.

        Args:
            dim: Token and embedding size.
            num_layers: Number of transformer layers.
            num_heads: Number of attention heads; must divide *dim*.
            mlp_ratio: Hidden size of the MLPs relative to *dim*.
            dropout: Dropout of attention weights and MLPs.

        Raises:
            ValueError: If a size is not positive or *num_heads* does not
                divide *dim*.
        """
        super().__init__()
        _positive_int('dim', dim)
        _positive_int('num_layers', num_layers)
        _positive_int('num_heads', num_heads)
        if dim % num_heads:
            msg = f'num_heads={num_heads} must divide dim={dim}'
            raise ValueError(msg)
        if not mlp_ratio > 0:
            msg = f'mlp_ratio must be positive, got {mlp_ratio}'
            raise ValueError(msg)
        if not 0 <= dropout < 1:
            msg = f'dropout must be in [0, 1), got {dropout}'
            raise ValueError(msg)
        self.dim = dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=num_heads,
                dim_feedforward=max(1, round(mlp_ratio * dim)),
                dropout=dropout,
                activation='gelu',
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self._init_weights(num_layers)

    def _init_weights(self, num_layers: int) -> None:
        """CLIP-style initialisation of the attention and MLP weights."""
        attn_std = self.dim**-0.5
        proj_std = attn_std * (2 * num_layers) ** -0.5
        fc_std = (2 * self.dim) ** -0.5
        for layer in self.layers:
            assert isinstance(layer, nn.TransformerEncoderLayer)
            nn.init.normal_(layer.self_attn.in_proj_weight, std=attn_std)
            nn.init.normal_(layer.self_attn.out_proj.weight, std=proj_std)
            nn.init.normal_(layer.linear1.weight, std=fc_std)
            nn.init.normal_(layer.linear2.weight, std=proj_std)

    def forward(self, tokens: Sequence[Tensor]) -> Tensor:
        """Fuse the tokens of the modalities present.

        Args:
            tokens: One tensor of shape ``(B, L_i, dim)`` per modality present
                (any number of tokens each, e.g. from :class:`LatentConverter`).

        Returns:
            The CLS output of shape ``(B, dim)``.

        Raises:
            ValueError: If *tokens* is empty or its tensors differ in batch size
                or do not have ``dim`` channels.
        """
        tokens = list(tokens)
        if not tokens:
            msg = 'tokens must hold the tokens of at least one modality'
            raise ValueError(msg)
        batch = tokens[0].shape[0]
        for i, t in enumerate(tokens):
            if t.ndim != 3 or t.shape[0] != batch or t.shape[2] != self.dim:
                msg = (
                    f'tokens[{i}] must have shape ({batch}, L, {self.dim}), '
                    f'got {tuple(t.shape)}'
                )
                raise ValueError(msg)
        cls = self.cls_token.expand(batch, -1, -1).to(tokens[0].dtype)
        x = torch.cat([cls, *tokens], dim=1)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x[:, 0])
