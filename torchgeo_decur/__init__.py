"""torchgeo-decur: multimodal self-supervised learning (DeCUR) for TorchGeo."""

__version__ = '0.1.0'
