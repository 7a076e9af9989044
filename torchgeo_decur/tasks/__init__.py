"""Tasks of torchgeo-decur."""
