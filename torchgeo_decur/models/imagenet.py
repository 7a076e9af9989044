"""The ImageNet weights the DeCUR authors start their encoders from.

The authors' latest pretraining code (``src/pretrain/models/decur.py`` at
zhu-xlab/DeCUR f190e9a, lines 18-39) starts every backbone from ImageNet:

* ResNets: ``torchvision.models.resnet50(pretrained=True)``, torchvision's
  first ImageNet weights (timm's ``resnet50.tv_in1k``; timm's own default
  for ``resnet50``, ``a1_in1k``, is another training);
* ViT-S/16: ``timm.create_model('vit_small_patch16_224', pretrained=True)``
  (timm's ``augreg_in21k_ft_in1k``);
* MiT-B2 / B5: SegFormer's ImageNet-1k encoders (``init_weights`` with the
  ``mit_b*.pth`` of the SegFormer release), here served by
  segmentation-models-pytorch's copy on the Hugging Face hub
  (``smp-hub/mit_b2.imagenet``, pinned by smp to a revision), with the same
  parameter names.

For Sentinel-1 (2 bands) and Sentinel-2 (13 bands) their code then replaces
the first layer by a new ``nn.Conv2d`` (lines 41-49), so it starts at
PyTorch's default initialisation; :func:`imagenet_backbone` does the same for
any input that is neither 3 channels (kept) nor 1 channel. One channel (a
DEM) gets the sum of the RGB filters, which is what the pretrained layer
computes on a DEM repeated to three channels, as their GeoNRW data feeds it.

``weights='imagenet'`` in :func:`~torchgeo_decur.models.create_encoder`
(and in every task's ``weights`` / ``encoders[...]['weights']``) selects this
start; ``weights=True`` keeps timm's default ImageNet weights of the model
name, unchanged.

.. versionadded:: 0.2
"""

from typing import Any

import timm
from torch import nn

__all__ = [
    'IMAGENET',
    'IMAGENET_TAGS',
    'imagenet_backbone',
    'imagenet_model_name',
    'reset_input_layer',
]

#: The value of ``weights`` that selects the authors' ImageNet start.
IMAGENET = 'imagenet'

#: timm pretrained tag of the authors' ImageNet weights, per architecture.
#: Architectures not listed (and names that carry a tag already) get timm's
#: weights of the name as given.
IMAGENET_TAGS: dict[str, str] = {
    'resnet18': 'tv_in1k',
    'resnet50': 'tv_in1k',
    'vit_small_patch16_224': 'augreg_in21k_ft_in1k',
}


def imagenet_model_name(model: str) -> str:
    """The timm name (with pretrained tag) of the authors' ImageNet start.

    Args:
        model: A timm model name, e.g. ``'resnet50'``, or a tagged name
            (``'resnet50.a1_in1k'``), which is kept.

    Returns:
        E.g. ``'resnet50.tv_in1k'`` for ``'resnet50'``.

    .. versionadded:: 0.2
    """
    if '.' in model or model not in IMAGENET_TAGS:
        return model
    return f'{model}.{IMAGENET_TAGS[model]}'


def reset_input_layer(backbone: nn.Module) -> None:
    """Give the first convolution PyTorch's default initialisation.

    The layer is the one timm's ``pretrained_cfg['first_conv']`` names (the
    one timm adapts to the input channels).

    What the authors' code does when it replaces the first layer of an
    ImageNet backbone by ``nn.Conv2d(in_channels, ...)`` for Sentinel-1 and
    Sentinel-2 inputs.

    Args:
        backbone: The backbone; changed in place.

    Raises:
        ValueError: If *backbone* names no first convolution.

    .. versionadded:: 0.2
    """
    cfg = getattr(backbone, 'pretrained_cfg', None) or {}
    name = cfg.get('first_conv')
    layer = backbone.get_submodule(name) if isinstance(name, str) else None
    if not isinstance(layer, nn.Conv2d):
        msg = f'{type(backbone).__name__} has no convolution to take the input'
        raise ValueError(msg)
    layer.reset_parameters()


def _check_weights_exist(name: str) -> None:
    """Refuse a model timm would silently leave at random with pretrained=True.

    Unknown names pass: :func:`timm.create_model` reports them.
    """
    # mit_b*: their timm entrypoint loads SegFormer's weights itself (.mit)
    if name.startswith('mit_b') or not timm.is_model(name.split('.')[0]):
        return
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.url or cfg.hf_hub_id or cfg.file):
        msg = f'weights={IMAGENET!r}: timm has no ImageNet weights for {name!r}'
        raise ValueError(msg)


def imagenet_backbone(model: str, in_channels: int, **model_kwargs: Any) -> nn.Module:
    """Create a timm backbone from the authors' ImageNet weights.

    The weights come through timm (and, for MiT, the Hugging Face hub), so
    they are read from the hub cache when present; set ``HF_HUB_OFFLINE=1``
    on machines without a network.

    Args:
        model: timm model name (``resnet50``, ``vit_small_patch16_224``,
            ``mit_b2``, ...).
        in_channels: Number of input channels: 3 keeps the pretrained first
            layer, 1 sums its filters over RGB, any other number starts it
            anew, as the authors' code.
        **model_kwargs: Further keyword arguments for :func:`timm.create_model`
            (``num_classes`` defaults to 0: pooled features).

    Returns:
        The backbone.

    Raises:
        ValueError: If *in_channels* is not positive or timm has no
            pretrained weights for *model*.

    .. versionadded:: 0.2
    """
    if in_channels < 1:
        msg = f'in_channels must be >= 1, got {in_channels}'
        raise ValueError(msg)
    name = imagenet_model_name(model)
    _check_weights_exist(name)
    kwargs = {'num_classes': 0, **model_kwargs}
    backbone = timm.create_model(name, pretrained=True, in_chans=in_channels, **kwargs)
    if in_channels not in (1, 3):
        reset_input_layer(backbone)
    return backbone
