"""The lab: worlds with known answers, and the tools that measure learning.

What the core (datasets, datamodules, transforms, models, losses, tasks,
export, explain) is checked against, and never imports: generated SAR-optical
data with known factors (:mod:`~torchgeo_decur.lab.world`) and the demo that
pretrains on it (:mod:`~torchgeo_decur.lab.demo`), CoMM's bimodal Trifeature
(:mod:`~torchgeo_decur.lab.trifeature`, :mod:`~torchgeo_decur.lab.datamodules`),
a small ConvNet for CPU runs (:mod:`~torchgeo_decur.lab.small`, registered
with timm as ``convnet_small`` when the lab is imported), linear probes
(:mod:`~torchgeo_decur.lab.probe`) and the common-share sweep
(:mod:`~torchgeo_decur.lab.sweep`).

Checkpoints with ``convnet_small`` encoders (the demo's) need ``import
torchgeo_decur.lab`` before they are loaded.

.. versionadded:: 0.2
"""

from .datamodules import TrifeaturePairDataModule
from .demo import DemoSeasons, DemoSettings, run_demo
from .probe import ProbeResult, extract_features, linear_probe, probe_all
from .small import SmallConvNet, register_small
from .sweep import sweep_common_share
from .trifeature import BimodalTrifeature
from .world import make_ssl4eo_s12_demo, read_labels

register_small()

__all__ = (
    'BimodalTrifeature',
    'DemoSeasons',
    'DemoSettings',
    'ProbeResult',
    'SmallConvNet',
    'TrifeaturePairDataModule',
    'extract_features',
    'linear_probe',
    'make_ssl4eo_s12_demo',
    'probe_all',
    'read_labels',
    'register_small',
    'run_demo',
    'sweep_common_share',
)
