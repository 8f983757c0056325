"""The model: the VAE with its architecture registry, the distributions it returns, the fast CPU conv layers."""
