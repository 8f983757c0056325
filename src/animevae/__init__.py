"""animevae: train a VAE on anime faces, generate new faces, fine-tune on your own pictures."""

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import UserError
from .models.distributions import BernoulliPixels, DiagonalGaussian, PixelLikelihood, register_likelihood
from .models.vae import VAE, Architecture, EncoderOutput, VAEOutput, register_architecture
from .runs import Latents, load_latents
from .sampling.samplers import MixSampler, PriorSampler, Sampler
from .training.objectives import LossTerms, Objective, register_objective

__version__ = "0.1.0"
_API = ("train", "Run", "load_run", "show")  # api.py, imported on first use: `import animevae` stays light for the CLI


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'animevae' has no attribute {name!r}")


__all__ = [
    "train",
    "Run",
    "load_run",
    "show",
    "VAE",
    "EncoderOutput",
    "VAEOutput",
    "ModelConfig",
    "TrainConfig",
    "DataConfig",
    "UserError",
    "Latents",
    "load_latents",
    "Sampler",
    "MixSampler",
    "PriorSampler",
    "DiagonalGaussian",
    "PixelLikelihood",
    "BernoulliPixels",
    "register_likelihood",
    "Architecture",
    "register_architecture",
    "Objective",
    "LossTerms",
    "register_objective",
    "__version__",
]
