"""Transforms of torchgeo-decur."""
