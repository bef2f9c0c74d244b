"""orl: object-level representation learning from scene images (Xie et al., NeurIPS 2021)."""

__version__ = "0.1.0"
