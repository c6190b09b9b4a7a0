"""Models: validated canonical GRU weights, conventions, and file formats."""

from .core import HEAD_ACTIVATIONS, DenseLayer, GRULayer, GRUModel
from .formats import load_model

__all__ = ["HEAD_ACTIVATIONS", "DenseLayer", "GRULayer", "GRUModel", "load_model"]
