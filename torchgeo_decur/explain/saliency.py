"""Where and in which bands the encoders look: GradCAM and Integrated Gradients.

Every attribution explains one scalar per sample and modality, an
:class:`EmbeddingTarget`: the mean, over a group of embedding dimensions
(DeCUR's common or unique ones), of the projector output normalised with
fixed statistics (the mean and standard deviation of each dimension over the
batch being explained, as the loss normalises along the batch). Fixing the
statistics makes each sample's target its own, so that attributions do not
leak between the samples of a batch and Integrated Gradients' scaled inputs
see the same normalisation.

* :func:`gradcam_maps`: captum's :class:`~captum.attr.LayerGradCam` on the
  last convolutional stage of an encoder (:func:`gradcam_layer`), upsampled
  bilinearly to the input size, with GradCAM's ReLU or signed
  (``relu=False``); :func:`plot_gradcam` overlays them on an RGB rendering
  of the input (:func:`render_rgb`), signed maps in a diverging colour map.
  The report shows signed maps: the sign of an embedding dimension is
  arbitrary (a dimension and its negative are the same feature to the
  loss), so evidence against the target is as informative as evidence for
  it, and ReLU'd maps of a target that falls where features fire are all
  zero (Selvaraju et al., 2017, keep only the positive part because a class
  score has a meaningful sign; an embedding dimension has none).
* :func:`spatial_overlap`: how much the two modalities' maps of a pair look at
  the same places, the cosine similarity of the maps (of their magnitudes for
  signed maps); histograms of it for the common and the unique targets with
  :func:`plot_spatial_overlap`.
* :func:`band_importance`: captum's :class:`~captum.attr.IntegratedGradients`
  per input band, the mean absolute attribution over pixels and samples,
  normalised to sum 1; :func:`plot_band_importance`.

.. versionadded:: 0.1
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ..modalities import Modality, get_modality
from ..models.mit import MixTransformer
from .alignment import COLOURS

__all__ = (
    'EmbeddingTarget',
    'band_importance',
    'embedding_statistics',
    'gradcam_layer',
    'gradcam_maps',
    'plot_band_importance',
    'plot_gradcam',
    'plot_spatial_overlap',
    'render_rgb',
    'spatial_overlap',
)

#: Colour map of the GradCAM overlays (non-negative maps).
CMAP = 'jet'

#: Colour map of signed GradCAM maps: red raises the target, blue lowers it.
SIGNED_CMAP = 'RdBu_r'


@contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put modules in evaluation mode, and back."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


class EmbeddingTarget(nn.Module):
    """The mean of a group of normalised embedding dimensions, per sample.

    ``((projector(backbone(x)) - mean) / std)[:, dims].mean(1)`` with fixed
    *mean* and *std* (see :func:`embedding_statistics`).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        dims: slice | Sequence[int],
        mean: Tensor,
        std: Tensor,
    ) -> None:
        """Initialize a new EmbeddingTarget instance.

        Args:
            backbone: The encoder.
            projector: Its projector.
            dims: The embedding dimensions averaged.
            mean: Mean of each embedding dimension ``(K,)``.
            std: Standard deviation of each embedding dimension ``(K,)``.
        """
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.dims = dims if isinstance(dims, slice) else list(dims)
        self.register_buffer('mean', mean.detach().float())
        self.register_buffer('std', std.detach().float())

    def forward(self, x: Tensor) -> Tensor:
        """Compute the target of each sample.

        Args:
            x: Images ``(B, C, H, W)``.

        Returns:
            ``(B,)``.
        """
        z = self.projector(self.backbone(x)).float()
        normalised = (z - self.mean) / self.std
        out: Tensor = normalised[:, self.dims].mean(dim=1)
        return out


@torch.no_grad()
def embedding_statistics(
    backbone: nn.Module,
    projector: nn.Module,
    x: Tensor,
    batch_size: int = 256,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of each embedding dimension over a batch.

    Args:
        backbone: The encoder (run in evaluation mode).
        projector: Its projector.
        x: The batch ``(N, C, H, W)``, N >= 2.
        batch_size: Samples per forward pass.
        eps: Added to the variance, as in ``nn.BatchNorm1d``.

    Returns:
        ``(mean, std)``, each ``(K,)``, std biased and with *eps*, as the
        DeCUR loss normalises.

    .. versionadded:: 0.1
    """
    with _evaluating(backbone, projector):
        z = torch.cat(
            [
                projector(backbone(x[i : i + batch_size])).float()
                for i in range(0, len(x), batch_size)
            ]
        )
    return z.mean(dim=0), (z.var(dim=0, unbiased=False) + eps).sqrt()


def _is_transformer(backbone: nn.Module) -> bool:
    """Whether an encoder is a vision transformer (ViT, MiT, Swin, ...)."""
    if isinstance(backbone, MixTransformer):
        return True
    if isinstance(backbone, VisionTransformer):
        return True
    return hasattr(backbone, 'patch_embed') or hasattr(backbone, 'patch_embed1')


def gradcam_layer(backbone: nn.Module) -> tuple[str, nn.Module]:
    """The last convolutional stage of an encoder, where GradCAM looks.

    The module of the last entry of timm's ``feature_info`` (``layer4`` of a
    ResNet, ``stages.3`` of ``convnet_small`` or a ConvNeXt, ...); for a
    model without ``feature_info`` its last :class:`~torch.nn.Conv2d`.

    Args:
        backbone: The encoder.

    Returns:
        ``(name, module)``.

    Raises:
        ValueError: If the encoder is a vision transformer (ViT, MiT, ...) or
            has no convolution.

    .. versionadded:: 0.1
    """
    kind = type(backbone).__name__
    if _is_transformer(backbone):
        msg = (
            f'GradCAM needs a convolutional encoder (ResNet, convnet_small, timm '
            f'conv nets); {kind} is a vision transformer (ViT / MiT), which is '
            'not supported'
        )
        raise ValueError(msg)
    info = getattr(backbone, 'feature_info', None)
    name: str | None = None
    if info is not None:
        if hasattr(info, 'module_name'):
            name = info.module_name(-1)
        elif isinstance(info, Sequence) and info and isinstance(info[-1], Mapping):
            name = info[-1].get('module')
    if name:
        for candidate in (name, name.replace('_', '.')):
            try:
                return candidate, backbone.get_submodule(candidate)
            except AttributeError:
                continue
    convs = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        msg = f'GradCAM needs a convolutional encoder; {kind} has no Conv2d'
        raise ValueError(msg)
    return convs[-1]


def gradcam_maps(
    backbone: nn.Module,
    projector: nn.Module,
    x: Tensor,
    groups: Mapping[str, slice],
    stats: tuple[Tensor, Tensor] | None = None,
    layer: nn.Module | None = None,
    relu: bool = True,
) -> dict[str, Tensor]:
    """GradCAM maps of each group of embedding dimensions.

    Args:
        backbone: The encoder (run in evaluation mode).
        projector: Its projector.
        x: Images ``(B, C, H, W)``.
        groups: Target name to embedding dimensions, e.g.
            :func:`~torchgeo_decur.explain.dimension_groups`.
        stats: ``(mean, std)`` of the embedding dimensions; None computes
            them over *x* (:func:`embedding_statistics`).
        layer: The layer GradCAM looks at; None for :func:`gradcam_layer`.
        relu: Whether to keep only the positive part (GradCAM's ReLU); False
            for signed maps, negative where the features lower the target.

    Returns:
        ``{group: (B, H, W)}`` maps, non-negative with *relu*, upsampled
        bilinearly to the input size, on the device of *x*.

    Raises:
        ValueError: If the encoder is not convolutional, or the layer's
            output is not a ``(B, C, h, w)`` map.

    .. versionadded:: 0.1
    """
    if layer is None:
        layer = gradcam_layer(backbone)[1]
    mean, std = (
        stats if stats is not None else embedding_statistics(backbone, projector, x)
    )
    maps: dict[str, Tensor] = {}
    with _evaluating(backbone, projector), torch.enable_grad():
        for group, dims in groups.items():
            target = EmbeddingTarget(backbone, projector, dims, mean, std)
            attr = LayerGradCam(target, layer).attribute(x, relu_attributions=relu)
            if attr.ndim != 4:
                msg = (
                    f'GradCAM needs a layer with (B, C, h, w) output, got '
                    f'{tuple(attr.shape)} from {type(layer).__name__}'
                )
                raise ValueError(msg)
            up = LayerAttribution.interpolate(
                attr.detach(), tuple(x.shape[-2:]), interpolate_mode='bilinear'
            )
            maps[group] = up[:, 0].clamp_min(0) if relu else up[:, 0]
    return maps


def spatial_overlap(maps1: Tensor, maps2: Tensor, eps: float = 1e-12) -> Tensor:
    """Cosine similarity of the two modalities' saliency maps of each pair.

    ``sum(a * b) / (||a|| ||b||)`` over the pixels of the maps' magnitudes
    (``a = |maps1|``, ``b = |maps2|``; signed maps count where they look,
    whatever the direction): 1 when they look at the same places in the same
    proportions, 0 when at disjoint places; independent of each map's scale.
    Maps of different sizes are compared at the size of *maps1* (bilinear).

    Args:
        maps1: Modality 1 maps ``(B, H, W)``.
        maps2: Modality 2 maps ``(B, H', W')``.
        eps: Norms at or below it count as an empty map.

    Returns:
        ``(B,)``; NaN where either map is empty (all zero).

    .. versionadded:: 0.1
    """
    if maps2.shape[-2:] != maps1.shape[-2:]:
        maps2 = F.interpolate(
            maps2[:, None], size=maps1.shape[-2:], mode='bilinear', align_corners=False
        )[:, 0]
    a = maps1.flatten(1).double().abs()
    b = maps2.flatten(1).double().abs()
    norms = a.norm(dim=1) * b.norm(dim=1)
    cosine = (a * b).sum(dim=1) / norms.clamp_min(eps)
    empty = (a.norm(dim=1) <= eps) | (b.norm(dim=1) <= eps)
    return cosine.masked_fill(empty, float('nan')).float()


def band_importance(
    backbone: nn.Module,
    projector: nn.Module,
    x: Tensor,
    groups: Mapping[str, slice],
    stats: tuple[Tensor, Tensor] | None = None,
    n_steps: int = 32,
    baseline: float = 0.0,
    internal_batch_size: int | None = None,
    normalize: bool = True,
) -> dict[str, Tensor]:
    """Importance of each input band for each group of embedding dimensions.

    Integrated Gradients from a constant *baseline* image (0: the
    preprocessed input's zero) to each input; a band's importance is its mean
    absolute attribution over pixels and samples.

    Args:
        backbone: The encoder (run in evaluation mode).
        projector: Its projector.
        x: Preprocessed images ``(B, C, H, W)``.
        groups: Target name to embedding dimensions.
        stats: ``(mean, std)`` of the embedding dimensions; None computes
            them over *x*.
        n_steps: Steps of the path integral.
        baseline: Value of the baseline image.
        internal_batch_size: Scaled inputs per forward pass; None for *B*.
        normalize: Whether to scale each group's importances to sum 1.

    Returns:
        ``{group: (C,)}`` on the CPU.

    .. versionadded:: 0.1
    """
    mean, std = (
        stats if stats is not None else embedding_statistics(backbone, projector, x)
    )
    out: dict[str, Tensor] = {}
    with _evaluating(backbone, projector), torch.enable_grad():
        for group, dims in groups.items():
            target = EmbeddingTarget(backbone, projector, dims, mean, std)
            attr = IntegratedGradients(target).attribute(
                x,
                baselines=baseline,
                n_steps=n_steps,
                internal_batch_size=internal_batch_size or len(x),
            )
            importance = attr.detach().abs().mean(dim=(0, 2, 3)).double().cpu()
            if normalize and importance.sum() > 0:
                importance = importance / importance.sum()
            out[group] = importance.float()
    return out


def _modality(modality: Modality | str | None) -> Modality | None:
    """A modality object from a name, None if it is not registered."""
    if modality is None or isinstance(modality, Modality):
        return modality
    try:
        return get_modality(modality)
    except ValueError:
        return None


def _stretch(channel: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Linear stretch of one channel between two of its percentiles to [0, 1]."""
    finite = channel[np.isfinite(channel)]
    if finite.size == 0:
        return np.zeros_like(channel)
    lo, hi = np.percentile(finite, percentiles)
    if hi - lo <= 1e-12:
        return np.zeros_like(channel)
    return np.clip((channel - lo) / (hi - lo), 0, 1)


def render_rgb(
    image: Tensor | np.ndarray,
    modality: Modality | str | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """An RGB rendering of one image for display.

    The bands are the modality's
    :attr:`~torchgeo_decur.modalities.Modality.rgb_bands`: three as red,
    green and blue (Sentinel-2 B4 / B3 / B2); two as the composite (first,
    second, first - second), as SAR's VV / VH / VV-VH; none (e.g. a DEM, or an
    unregistered modality) as the first band in grey. Each channel is
    stretched linearly between its *percentiles*.

    Args:
        image: ``(C, H, W)`` (raw or preprocessed: the stretch is per image).
        modality: The modality or its name.
        percentiles: Lower and upper percentile of the stretch.

    Returns:
        ``(H, W, 3)`` float array in [0, 1].

    .. versionadded:: 0.1
    """
    array = np.asarray(
        image.detach().float().cpu() if isinstance(image, Tensor) else image,
        dtype=np.float64,
    )
    found = _modality(modality)
    indices = found.rgb_indices if found is not None else (0,)
    if max(indices) >= array.shape[0]:
        indices = (0,)
    if len(indices) == 3:
        channels = [array[i] for i in indices]
    elif len(indices) == 2:
        first, second = array[indices[0]], array[indices[1]]
        channels = [first, second, first - second]
    else:
        channels = [array[indices[0]]] * 3
    return np.stack([_stretch(c, percentiles) for c in channels], axis=-1)


def _name(modality: Modality | str | None, default: str) -> str:
    if isinstance(modality, Modality):
        return modality.name
    return modality or default


def plot_gradcam(
    x1: Tensor,
    x2: Tensor,
    maps1: Mapping[str, Tensor],
    maps2: Mapping[str, Tensor],
    modalities: Sequence[Modality | str | None] = (None, None),
    max_samples: int = 4,
    sample_names: Sequence[str] | None = None,
    alpha: float = 0.45,
    title: str | None = None,
    signed: bool | None = None,
) -> Figure:
    """GradCAM maps overlaid on the inputs, one row per sample.

    Columns: modality 1's input, its maps (one per group, over the input in
    grey), modality 2's input, its maps. Each map is scaled to its largest
    magnitude. Signed maps
    (:func:`gradcam_maps` with ``relu=False``) are drawn in a diverging
    colour map centred on zero, red where the features raise the target and
    blue where they lower it; non-negative maps in ``jet`` from zero to the
    maximum. An all-zero map is marked 'zero'.

    Args:
        x1: Modality 1 images ``(B, C1, H, W)``.
        x2: Modality 2 images ``(B, C2, H, W)``.
        maps1: ``{group: (B, H, W)}`` of modality 1 (:func:`gradcam_maps`).
        maps2: The same for modality 2.
        modalities: The two modalities (or names), for the rendering and the
            titles.
        max_samples: Rows at most.
        sample_names: Label of each sample (e.g. its dataset index).
        alpha: Opacity of the maps.
        title: Title of the figure.
        signed: Whether the maps are signed; None: if any value is negative.

    Returns:
        The figure.

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       Signed maps in a diverging colour map (*signed*).
    """
    rows = min(len(x1), max_samples)
    groups = list(maps1)
    if signed is None:
        signed = any(
            bool((m[group][:rows] < 0).any()) for m in (maps1, maps2) for group in m
        )
    per_modality = 1 + len(groups)
    cols = 2 * per_modality
    fig = Figure(
        figsize=(0.95 * cols + 0.7, 0.95 * rows + 0.55), dpi=200, layout='constrained'
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = mpl.colormaps[SIGNED_CMAP if signed else CMAP]
    low = -1.0 if signed else 0.0
    for m, (images, maps, modality) in enumerate(
        zip((x1, x2), (maps1, maps2), modalities, strict=True)
    ):
        name = _name(modality, f'modality {m + 1}')
        base = m * per_modality
        for r in range(rows):
            rgb = render_rgb(images[r], modality)
            axes[r, base].imshow(rgb, interpolation='nearest')
            for g, group in enumerate(groups):
                _overlay(axes[r, base + 1 + g], rgb, maps[group][r], cmap, low, alpha)
        axes[0, base].set_title(f'{name} input', fontsize=7)
        for g, group in enumerate(groups):
            axes[0, base + 1 + g].set_title(f'{name} {group}', fontsize=7)
    for r in range(rows):
        label = sample_names[r] if sample_names is not None else f'sample {r}'
        axes[r, 0].set_ylabel(label, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(
        ScalarMappable(Normalize(low, 1), cmap=cmap),
        ax=axes,
        shrink=0.8,
        aspect=30,
        pad=0.01,
    )
    label = (
        'GradCAM / max |GradCAM|\nred raises, blue lowers the target'
        if signed
        else 'GradCAM (scaled to max)'
    )
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(title or 'GradCAM of the normalised embedding', fontsize=9)
    return fig


def _overlay(
    ax: Axes, rgb: np.ndarray, heat: Tensor, cmap: Colormap, low: float, alpha: float
) -> None:
    """One map over its image, scaled to its largest magnitude."""
    values = heat.detach().float().cpu().numpy()
    top = float(np.abs(values).max())
    # the image in grey beneath, so that every colour is the map's
    ax.imshow(rgb.mean(axis=-1), cmap='gray', vmin=0, vmax=1, interpolation='nearest')
    ax.imshow(
        values / top if top > 0 else values, cmap=cmap, vmin=low, vmax=1, alpha=alpha
    )
    if top <= 0:  # no evidence either way (GradCAM's ReLU left nothing): say so
        ax.text(
            0.5,
            0.5,
            'zero',
            transform=ax.transAxes,
            ha='center',
            va='center',
            fontsize=7,
            color='white',
        )


def plot_spatial_overlap(
    values: Mapping[str, Tensor | np.ndarray],
    names: Sequence[str] = ('modality 1', 'modality 2'),
    bins: int = 20,
    title: str | None = None,
) -> Figure:
    """Histograms of the cross-modal overlap of saliency maps, per group.

    Args:
        values: ``{group: (N,)}`` overlaps (:func:`spatial_overlap`); NaNs
            (empty maps) are left out.
        names: Names of the two modalities.
        bins: Number of bins over [0, 1].
        title: Title of the figure.

    Returns:
        The figure.

    .. versionadded:: 0.1
    """
    fig = Figure(figsize=(3.5, 2.6), dpi=200, layout='constrained')
    ax = fig.add_subplot()
    edges = np.linspace(0, 1, bins + 1)
    for group, v in values.items():
        array = np.asarray(v, dtype=np.float64)
        array = array[np.isfinite(array)]
        if array.size == 0:
            continue
        colour = COLOURS.get(group, 'grey')
        ax.hist(
            array,
            bins=list(edges),
            color=colour,
            alpha=0.6,
            label=f'{group} (mean {array.mean():.2f}, n={array.size})',
        )
        ax.axvline(array.mean(), color=colour, linestyle='--', linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel(
        f'cosine similarity of |{names[0]}| and |{names[1]}| maps', fontsize=8
    )
    ax.set_ylabel('number of pairs', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title or 'Spatial saliency overlap (GradCAM)', fontsize=9)
    return fig


def plot_band_importance(
    importance: Mapping[str, Mapping[str, Tensor | np.ndarray]],
    bands: Mapping[str, Sequence[str]],
    title: str | None = None,
) -> Figure:
    """Bar plot of the band importances of each modality and group.

    Args:
        importance: ``{modality: {group: (C,)}}`` (:func:`band_importance`).
        bands: ``{modality: band names}``.
        title: Title of the figure.

    Returns:
        The figure.

    .. versionadded:: 0.1
    """
    names = list(importance)
    widths = [len(bands[n]) + 1 for n in names]
    fig = Figure(
        figsize=(max(3.5, 0.3 * sum(widths) + 1.2), 2.6), dpi=200, layout='constrained'
    )
    axes = fig.subplots(1, len(names), squeeze=False, width_ratios=widths)[0]
    for ax, name in zip(axes, names, strict=True):
        groups = importance[name]
        n_groups = max(1, len(groups))
        width = 0.8 / n_groups
        positions = np.arange(len(bands[name]))
        for g, (group, values) in enumerate(groups.items()):
            offset = (g - (n_groups - 1) / 2) * width
            ax.bar(
                positions + offset,
                np.asarray(values, dtype=np.float64),
                width=width,
                color=COLOURS.get(group, 'grey'),
                label=group,
            )
        ax.set_xticks(positions)
        rotation = 90 if len(bands[name]) > 6 else 0
        ax.set_xticklabels(bands[name], rotation=rotation, fontsize=7)
        ax.tick_params(axis='y', labelsize=7)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel('band', fontsize=8)
    axes[0].set_ylabel('share of |IG attribution|', fontsize=8)
    axes[-1].legend(fontsize=7, frameon=False)
    fig.suptitle(title or 'Spectral saliency (Integrated Gradients)', fontsize=9)
    return fig
