"""The VAE (vae.py), its distributions, and the architectures it is built from (hierarchical.py registers its own)."""

from . import hierarchical  # noqa: F401  (registers arch="hierarchical")
