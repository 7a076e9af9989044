"""Mix Transformer (MiT, SegFormer's encoder) as a timm model.

DeCUR's RGB-depth weights (SUN RGB-D, ``mitb2_...`` and ``mitb5_...``) are
MiT-B2 and MiT-B5 encoders (Xie et al. 2021, "SegFormer",
https://arxiv.org/abs/2105.15203). timm has no MiT, and
segmentation-models-pytorch's ``MixVisionTransformer`` (the same network
as the SegFormer code the authors used, with the same parameter names) speaks
smp's encoder interface. :class:`MixTransformer` wraps it in the interface
the rest of the plugin (and TorchGeo's tasks) expects of a timm model:

* ``model(x)``: the pooled features ``(N, num_features)``, the mean of the
  last stage's normalised tokens, as the authors pool it;
* ``forward_intermediates(x, indices=n, intermediates_only=True)``: the last
  *n* stage maps ``(N, C_i, H / r_i, W / r_i)``, strides 4, 8, 16 and 32;
* ``feature_info``, ``num_features`` and a classifier ``head`` when
  ``num_classes > 0``.

Its state dict keys are those of the authors' backbones (``patch_embed1.*``,
``block1.0.attn.q.*``, ``norm4.*``, ...), so their files load with
``strict=True``. Importing :mod:`torchgeo_decur` registers ``mit_b0`` to
``mit_b5`` with timm (unless timm has models of those names), so
``timm.create_model('mit_b2', in_chans=3, num_classes=0)`` works, and so
does ``model1: mit_b2`` in a :class:`~torchgeo_decur.tasks.DeCURTask` config.

.. versionadded:: 0.1
"""

from collections.abc import Callable
from functools import partial
from typing import Any

import timm
from segmentation_models_pytorch.encoders.mix_transformer import (
    LayerNorm,
    MixVisionTransformer,
)
from timm.models import register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from .encoders import state_dict_mismatches

__all__ = ['MIT_VARIANTS', 'MixTransformer', 'load_imagenet']

#: Architecture of each MiT variant (SegFormer's, as smp and the authors have
#: them): embedding widths, heads, MLP ratios, depths and reduction ratios.
MIT_VARIANTS: dict[str, dict[str, list[int]]] = {
    'mit_b0': {'embed_dims': [32, 64, 160, 256], 'depths': [2, 2, 2, 2]},
    'mit_b1': {'embed_dims': [64, 128, 320, 512], 'depths': [2, 2, 2, 2]},
    'mit_b2': {'embed_dims': [64, 128, 320, 512], 'depths': [3, 4, 6, 3]},
    'mit_b3': {'embed_dims': [64, 128, 320, 512], 'depths': [3, 4, 18, 3]},
    'mit_b4': {'embed_dims': [64, 128, 320, 512], 'depths': [3, 8, 27, 3]},
    'mit_b5': {'embed_dims': [64, 128, 320, 512], 'depths': [3, 6, 40, 3]},
}

#: Output stride of each stage.
_REDUCTIONS = (4, 8, 16, 32)


class MixTransformer(MixVisionTransformer):
    """A Mix Transformer encoder with timm's model interface.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        embed_dims: list[int],
        depths: list[int],
        in_chans: int = 3,
        num_classes: int = 0,
        img_size: int = 224,
        drop_path_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        """Initialize a new MixTransformer instance.

        Args:
            embed_dims: Embedding width of each of the four stages.
            depths: Number of blocks of each stage.
            in_chans: Number of input channels.
            num_classes: Size of a linear classifier on the pooled features;
                0 for none (``model(x)`` returns the features).
            img_size: Nominal input size (MiT works at any size).
            drop_path_rate: Stochastic depth rate (SegFormer's and the
                authors' 0.1).
            **kwargs: Further arguments of smp's ``MixVisionTransformer``
                (``num_heads``, ``mlp_ratios``, ``sr_ratios``, ...).

        Raises:
            ValueError: If *in_chans* is not positive or *num_classes* negative.
        """
        if in_chans < 1:
            msg = f'in_chans must be >= 1, got {in_chans}'
            raise ValueError(msg)
        if num_classes < 0:
            msg = f'num_classes must be >= 0, got {num_classes}'
            raise ValueError(msg)
        settings: dict[str, Any] = {
            'num_heads': [1, 2, 5, 8],
            'mlp_ratios': [4, 4, 4, 4],
            'qkv_bias': True,
            'norm_layer': partial(LayerNorm, eps=1e-6),
            'sr_ratios': [8, 4, 2, 1],
        }
        settings.update(kwargs)
        super().__init__(
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dims=embed_dims,
            depths=depths,
            drop_path_rate=drop_path_rate,
            **settings,
        )
        self.in_chans = in_chans
        self.num_features = embed_dims[-1]
        self.head: nn.Module = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        self.feature_info = [
            {'num_chs': c, 'reduction': r, 'module': f'block{i + 1}'}
            for i, (c, r) in enumerate(zip(embed_dims, _REDUCTIONS, strict=True))
        ]
        self.pretrained_cfg: dict[str, Any] = {
            'input_size': (in_chans, img_size, img_size),
            'num_classes': num_classes,
            'first_conv': 'patch_embed1.proj',
            'classifier': 'head',
        }
        self.default_cfg = self.pretrained_cfg

    def stages(self) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
        """The four stages as (patch embedding, blocks, norm).

        Returns:
            One ``(patch embedding, blocks, norm)`` triple per stage
            (:meth:`forward_stage` runs one).
        """
        return [
            (self.patch_embed1, self.block1, self.norm1),
            (self.patch_embed2, self.block2, self.norm2),
            (self.patch_embed3, self.block3, self.norm3),
            (self.patch_embed4, self.block4, self.norm4),
        ]

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Run one stage: ``norm(blocks(embed(x)))``.

        CMX runs two encoders stage by stage this way
        (:class:`~torchgeo_decur.models.cmx.CMXSegmentationModel`).

        Args:
            index: Stage index, 0 to 3.
            x: The stage's input ``(N, C, H, W)`` (the image, or the previous
                stage's map).

        Returns:
            The stage's map, at stride 4, 8, 16 or 32 of the image.
        """
        embed, blocks, layer_norm = self.stages()[index]
        out: Tensor = layer_norm(blocks(embed(x))).contiguous()
        return out

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
            indices: Stages to return: the last *n* if an int, these stage
                indices (0 to 3) if a list, all four if None.
            norm: Unused (every stage map is normalised already).
            stop_early: Stop after the last stage returned.
            output_fmt: Only ``'NCHW'``.
            intermediates_only: Return only the stage maps.

        Returns:
            The stage maps, shallowest first; with ``intermediates_only=False``
            also the last stage's map, as ``(final, intermediates)``.

        Raises:
            ValueError: If *output_fmt* is not ``'NCHW'``.
        """
        if output_fmt != 'NCHW':
            msg = f"output_fmt must be 'NCHW', got {output_fmt!r}"
            raise ValueError(msg)
        take, last = feature_take_indices(4, indices)
        stop = last + 1 if stop_early or intermediates_only else 4
        intermediates = []
        for i in range(stop):
            x = self.forward_stage(i, x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def forward_features(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Return the last stage's map.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, num_features, H / 32, W / 32)``.
        """
        for i in range(4):
            x = self.forward_stage(i, x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool the last stage's map (the mean of its tokens) and classify.

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

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Return the pooled features (or class scores with a classifier).

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, num_features)`` (``num_classes=0``) or ``(N, num_classes)``.
        """
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """Return the classifier (``nn.Identity`` without one)."""
        return self.head

    def reset_classifier(
        self, num_classes: int, global_pool: str | None = None
    ) -> None:
        """Replace the classifier, as timm models do.

        Args:
            num_classes: Number of outputs; 0 for none.
            global_pool: Unused (MiT pools by the mean).
        """
        self.num_classes = num_classes
        self.head = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )


def load_imagenet(model: MixTransformer, name: str) -> None:
    """Load SegFormer's ImageNet-1k weights of MiT variant *name* into *model*.

    The weights are segmentation-models-pytorch's copy on the Hugging Face
    hub (``smp-hub/<name>.imagenet`` at the revision smp pins), with the
    parameter names of SegFormer's release, as the authors'
    ``init_weights(pretrained=...)`` loaded them. Read from the hub cache
    when present (``HF_HUB_OFFLINE=1`` without a network). The first layer
    is adapted to ``model.in_chans`` as timm adapts it (one channel: the sum
    over RGB); a classifier ``head`` keeps its initialisation.

    Args:
        model: The encoder; changed in place.
        name: ``'mit_b0'`` ... ``'mit_b5'``.

    Raises:
        ValueError: If the hub file does not fit the *name* architecture.

    .. versionadded:: 0.2
    """
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file
    from segmentation_models_pytorch.encoders import encoders
    from timm.models import adapt_input_conv

    settings = encoders[name]['pretrained_settings']['imagenet']
    path = hf_hub_download(
        settings['repo_id'], filename='model.safetensors', revision=settings['revision']
    )
    state_dict = load_file(path, device='cpu')
    key = 'patch_embed1.proj.weight'
    if key in state_dict and model.in_chans != 3:
        state_dict[key] = adapt_input_conv(model.in_chans, state_dict[key])
    own = model.state_dict().items()
    expected = {k: v for k, v in own if not k.startswith('head.')}
    problems = state_dict_mismatches(expected, state_dict)
    if problems:
        msg = f'{path} does not fit {name}: {"; ".join(problems)}'
        raise ValueError(msg)
    model.load_state_dict(state_dict, strict=False)


def _entrypoint(name: str) -> Callable[..., MixTransformer]:
    """Build the timm entrypoint of one MiT variant."""

    def create(pretrained: bool = False, **kwargs: Any) -> MixTransformer:
        for key in ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir'):
            kwargs.pop(key, None)
        model = MixTransformer(**MIT_VARIANTS[name], **kwargs)
        if pretrained:
            load_imagenet(model, name)
        return model

    create.__name__ = name
    create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = (
        f'Create a {name.upper().replace("_", "-")} encoder (timm); '
        "pretrained=True loads SegFormer's ImageNet-1k weights."
    )
    return create


def register_mit() -> None:
    """Register ``mit_b0`` ... ``mit_b5`` with timm, if timm lacks them.

    Called when :mod:`torchgeo_decur` is imported.

    .. versionadded:: 0.1
    """
    for name in MIT_VARIANTS:
        if not timm.is_model(name):
            # timm lists an entrypoint in its module's __all__: keep it there
            globals()[name] = register_model(_entrypoint(name))
