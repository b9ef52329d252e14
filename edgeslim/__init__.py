"""edgeslim: compress a trained PyTorch vision model into smaller, faster deployment
artifacts and measure each on its target."""

__version__ = "0.1.0"
