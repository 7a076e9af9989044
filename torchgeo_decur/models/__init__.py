"""Encoders, projection heads and DeCUR weights."""

from .encoders import create_encoder, create_projector

__all__ = ('create_encoder', 'create_projector')
