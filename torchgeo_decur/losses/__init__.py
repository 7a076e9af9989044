"""Losses of torchgeo-decur."""
