"""The seed's convolutional VAE, with Hub save/load.

Encoder: num_layers x (Conv 4/2/1 -> BatchNorm -> LeakyReLU), 3x96x96 -> 512x3x3, then two linear
heads for the latent mean and log-variance. Decoder mirrors it with transposed convs; its last layer
outputs logits (the loss is BCE-with-logits, sampling applies the sigmoid).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from .config import ModelConfig
from .errors import UserError


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


class BottleneckConv2d(nn.Conv2d):
    """A Conv2d that, when training on the CPU, computes its tiny output map (the 3x3 bottleneck) as
    unfold + one GEMM.

    oneDNN's backward kernels run this shape at a third of the CPU's matmul rate (measured at batch
    64 in bf16, forward + backward: 31 ms native, 23 ms here). Inference (no grad) is faster native,
    so it stays native. Same parameters, same result up to rounding.
    """

    def forward(self, x):
        if x.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(x)
        n, _, h, w = x.shape
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        cols = F.unfold(x, k, padding=p, stride=s)  # N x (Cin*k*k) x L
        positions = cols.shape[-1]
        y = cols.transpose(1, 2).reshape(n * positions, -1) @ self.weight.flatten(1).t() + self.bias  # one GEMM: (N*L) x Cout
        return y.view(n, positions, -1).transpose(1, 2).reshape(n, -1, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


class BottleneckConvTranspose2d(nn.ConvTranspose2d):
    """The decoder's first transposed conv (3x3 in) as one GEMM + fold when training on the CPU
    (33 ms native vs 19 ms here, forward + backward); see BottleneckConv2d."""

    def forward(self, x):
        if x.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(x)
        n, c, h, w = x.shape
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        cols = (x.flatten(2).transpose(1, 2).reshape(n * h * w, c) @ self.weight.flatten(1)).view(n, h * w, -1)  # N x HW x (Cout*k*k)
        y = F.fold(cols.transpose(1, 2), ((h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k), k, padding=p, stride=s)
        return y + self.bias.view(1, -1, 1, 1)


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
            *[_block((BottleneckConv2d if i == last else nn.Conv2d)(chans[i], chans[i + 1], 4, 2, 1), chans[i + 1], config.negative_slope)
              for i in range(config.num_layers)]
        )
        self.bottom = (widths[-1], config.image_size // 2**config.num_layers, config.image_size // 2**config.num_layers)
        flat = widths[-1] * self.bottom[1] * self.bottom[2]  # 512 * 3 * 3 = 4608
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)
        self.fc_decode = nn.Linear(config.latent_dim, flat)
        up = [
            _block((BottleneckConvTranspose2d if i == last else nn.ConvTranspose2d)(chans[i + 1], chans[i], 4, 2, 1), chans[i], config.negative_slope)
            for i in range(config.num_layers - 1, 0, -1)
        ]
        self.decoder = nn.Sequential(*up, nn.ConvTranspose2d(chans[1], chans[0], 4, 2, 1))

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
