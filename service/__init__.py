"""loss-service: PyTorch loss functions and their gradients over HTTP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loss-service")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
