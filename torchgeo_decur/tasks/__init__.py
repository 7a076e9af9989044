"""TorchGeo tasks (LightningModules) of torchgeo-decur."""

from .decur import DeCURTask

__all__ = ('DeCURTask',)
