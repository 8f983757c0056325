"""The seed's convolutional VAE, with Hub save/load.

Encoder: num_layers x (Conv 4/2/1 -> BatchNorm -> LeakyReLU), 3x96x96 -> 512x3x3, then two linear
heads for the latent mean and log-variance. Decoder mirrors it with transposed convs; its last layer
outputs logits (the loss is BCE-with-logits, sampling applies the sigmoid).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .config import ModelConfig
from .errors import UserError
from .fastconv import Conv2d, ConvTranspose2d


@dataclass
class EncoderOutput:
    mu: torch.Tensor  # N x latent
    logvar: torch.Tensor  # N x latent (the seed's "sigma")


@dataclass
class VAEOutput:
    logits: torch.Tensor  # N x C x H x W, before the sigmoid
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


def _cpu_path(layer: int, last: int) -> str:
    """Which CPU training kernels a layer uses (see fastconv.py): GEMMs where oneDNN is slow, the 3x3
    bottleneck and the 6x6 layer's weight gradient (measured at batch 64: 4.9 -> 2.5 ms there)."""
    return "gemm" if layer == last else "gemm-weight-grad" if layer == last - 1 else "native"


def _block(conv: nn.Module, channels: int, slope: float) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.LeakyReLU(slope))


class VAE(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="animevae",
    tags=["vae", "image-generation", "anime", "animevae"],
    pipeline_tag="unconditional-image-generation",
    license="mit",
):
    """``VAE(ModelConfig())`` is the seed's model; ``VAE.from_pretrained(run_dir_or_repo_id)`` loads one."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self._hub_mixin_config = config  # the mixin recorded the argument (maybe None) before this default
        widths = [config.base_channels * 2**i for i in range(config.num_layers)]  # 32, 64, 128, 256, 512
        chans = [config.in_channels] + widths
        last = config.num_layers - 1
        self.encoder = nn.Sequential(
            *[_block(Conv2d(chans[i], chans[i + 1], _cpu_path(i, last)), chans[i + 1], config.negative_slope)
              for i in range(config.num_layers)]
        )
        self.bottom = (widths[-1], config.image_size // 2**config.num_layers, config.image_size // 2**config.num_layers)
        flat = widths[-1] * self.bottom[1] * self.bottom[2]  # 512 * 3 * 3 = 4608
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)
        self.fc_decode = nn.Linear(config.latent_dim, flat)
        up = [
            _block(ConvTranspose2d(chans[i + 1], chans[i], _cpu_path(i, last)), chans[i], config.negative_slope)
            for i in range(config.num_layers - 1, 0, -1)
        ]
        self.decoder = nn.Sequential(*up, ConvTranspose2d(chans[1], chans[0]))

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        h = self.encoder(x).flatten(1)
        return EncoderOutput(self.fc_mu(h), self.fc_logvar(h))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> logits (apply ``torch.sigmoid`` for pixels in [0, 1])."""
        return self.decoder(self.fc_decode(z).view(-1, *self.bottom))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(logvar / 2) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        enc = self.encode(x)
        z = self.reparameterize(enc.mu, enc.logvar)
        return VAEOutput(self.decode(z), enc.mu, enc.logvar, z)

    def folded(self) -> "VAE":
        """An eval-mode copy for inference only (the latents pass, sampling): every BatchNorm folded into
        the conv before it and LeakyReLU in place, so the same function costs no extra passes over each
        activation. Not for training."""
        model = copy.deepcopy(self).eval()
        for blocks in (model.encoder, model.decoder):
            for block in blocks:
                if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
                    block[0] = fuse_conv_bn_eval(block[0], block[1], transpose=isinstance(block[0], nn.ConvTranspose2d))
                    block[1] = nn.Identity()
                    block[2].inplace = True  # no autograd here: rectify the conv output where it lies
        return model

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> uint8 images N x C x H x W (the seed's sigmoid -> x255 -> uint8)."""
        return (torch.sigmoid(self.decode(z).float()) * 255).round().to(torch.uint8)

    # -- Hub mixin: safetensors only, strict keys and shapes -------------------------------------

    def _save_pretrained(self, save_directory: Path) -> None:
        from .runs import save_tensors

        save_tensors({k: v.detach() for k, v in self.state_dict().items()}, Path(save_directory) / "model.safetensors")

    @classmethod
    def _from_pretrained(cls, *, model_id, revision=None, token=None, map_location="cpu", **_):
        """The mixin's hook: config.json + model.safetensors from a folder or a Hub repo, loaded strictly."""
        from .runs import resolve_file

        name = str(model_id)
        config_file = resolve_file(name, "config.json", revision=revision, token=token)
        config = model_config_from_json(json.loads(Path(config_file).read_text()), config_file)
        model = cls(config)
        load_weights(model, resolve_file(name, "model.safetensors", revision=revision, token=token), map_location)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision=None, token=None, map_location="cpu"):
        """Load from a run folder, a ``save_pretrained`` folder, or a Hub repo id (config.json + model.safetensors)."""
        return cls._from_pretrained(model_id=pretrained_model_name_or_path, revision=revision, token=token, map_location=map_location)


def model_config_from_json(data: dict, where: str | os.PathLike) -> ModelConfig:
    """A run's config.json holds the model fields at top level (plus train/data sections)."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: not a JSON object; is this an animevae config.json?")
    src = data.get("model", data)
    known = ModelConfig.__dataclass_fields__
    try:
        return ModelConfig(**{k: v for k, v in src.items() if k in known})
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def load_weights(model: nn.Module, path: str | os.PathLike, map_location="cpu") -> None:
    """Load safetensors weights, refusing missing, unexpected or mis-shaped tensors."""
    from .runs import load_tensors

    state = load_tensors(path, device=str(map_location))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        if wrong:
            parts.append(f"shape mismatch: {wrong[0]}")
        raise UserError(f"{path}: weights do not fit this model config: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
