"""Datasets of torchgeo-decur."""
