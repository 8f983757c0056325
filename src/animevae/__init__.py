"""animevae: train a VAE on anime faces, generate new faces, fine-tune on your own pictures."""

from .config import DataConfig, ModelConfig, TrainConfig
from .distributions import BernoulliPixels, DiagonalGaussian, PixelLikelihood, register_likelihood
from .errors import UserError
from .model import VAE, Architecture, EncoderOutput, VAEOutput, register_architecture
from .objectives import LossTerms, Objective, register_objective
from .runs import Latents, load_latents
from .samplers import MixSampler, PriorSampler, Sampler

__version__ = "0.1.0"

__all__ = [
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
