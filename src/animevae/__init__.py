"""animevae: train a VAE on anime faces, generate new faces, fine-tune on your own pictures."""

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import UserError
from .model import VAE, EncoderOutput, VAEOutput
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
    "__version__",
]
