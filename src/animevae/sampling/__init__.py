"""Sampling: the samplers that draw latents, decoding them into faces, and exploring the latent space."""
