"""Tensors on the wire: JSON to numpy, numpy to torch, results back to JSON numbers."""
