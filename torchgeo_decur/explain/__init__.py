"""Explainability of DeCUR: alignment, t-SNE, GradCAM, Integrated Gradients.

The analyses of the DeCUR paper's Section 5, for any pretrained
:class:`~torchgeo_decur.tasks.DeCURTask` (and, for comparison, the baselines
of :class:`~torchgeo_decur.tasks.MultimodalSSLTask`):

* :mod:`~torchgeo_decur.explain.alignment`: per embedding dimension, the
  cross-modal misalignment ``(1 - C_ii)^2`` (Eq. 7), common and unique
  dimensions apart;
* :mod:`~torchgeo_decur.explain.tsne`: a t-SNE of the embedding dimensions
  of both modalities;
* :mod:`~torchgeo_decur.explain.saliency`: GradCAM maps of the common and
  unique embedding of each encoder, their cross-modal overlap, and the
  importance of each input band by Integrated Gradients;
* :func:`explain` (``torchgeo-decur explain``): all of them for a
  checkpoint and a data config, as figures and one ``summary.json``.

Each analysis is a function of tensors and modules, so it works on any
encoder + projector pair; :func:`load_task` and :func:`load_pairs` give them
from a checkpoint and a LightningCLI data config. Matplotlib figures are
built without pyplot (no display needed). The t-SNE uses scikit-learn.

.. versionadded:: 0.1
"""

from .alignment import alignment_scores, cross_modal_diagonal, plot_alignment
from .loading import (
    Pairs,
    branches,
    common_dim_of,
    dimension_groups,
    embed,
    load_datamodule,
    load_pairs,
    load_task,
    prepare_pairs,
)
from .report import (
    DEFAULT_SAMPLES,
    FIGURES,
    SUMMARY,
    alignment_figure,
    explain,
    gradcam_figure,
)
from .saliency import (
    EmbeddingTarget,
    band_importance,
    embedding_statistics,
    gradcam_layer,
    gradcam_maps,
    plot_band_importance,
    plot_gradcam,
    plot_spatial_overlap,
    render_rgb,
    spatial_overlap,
)
from .tsne import DimensionTSNE, dimension_tsne, plot_tsne, standardize_dimensions

__all__ = (
    'DEFAULT_SAMPLES',
    'FIGURES',
    'SUMMARY',
    'DimensionTSNE',
    'EmbeddingTarget',
    'Pairs',
    'alignment_figure',
    'alignment_scores',
    'band_importance',
    'branches',
    'common_dim_of',
    'cross_modal_diagonal',
    'dimension_groups',
    'dimension_tsne',
    'embed',
    'embedding_statistics',
    'explain',
    'gradcam_figure',
    'gradcam_layer',
    'gradcam_maps',
    'load_datamodule',
    'load_pairs',
    'load_task',
    'plot_alignment',
    'plot_band_importance',
    'plot_gradcam',
    'plot_spatial_overlap',
    'plot_tsne',
    'prepare_pairs',
    'render_rgb',
    'spatial_overlap',
    'standardize_dimensions',
)
