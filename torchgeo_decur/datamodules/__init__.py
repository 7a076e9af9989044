"""Datamodules of torchgeo-decur."""
