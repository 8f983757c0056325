"""The VAE: an encoder part, Gaussian heads, a decoder part, and the pixel likelihood; Hub save/load.

    image --encoder--> features --fc_mu, fc_logvar--> q(z|x) --rsample--> z --fc_decode--> features
          --decoder--> likelihood params --> p(x|z)

The encoder and decoder are parts made by an *architecture* registered under a name
(``ModelConfig.arch``); the heads, the posterior and the likelihood are shared by all of them. The
seed's conv VAE is ``arch="conv"``: num_layers x (Conv 4/2/1 -> BatchNorm -> LeakyReLU), 3x96x96 ->
512x3x3, and a mirrored transposed-conv decoder whose last layer outputs logits. Its state_dict keys
(``encoder.*``, ``fc_mu``, ``fc_logvar``, ``fc_decode``, ``decoder.*``) and initialisation order are
the seed's, pinned by tests/training/test_golden.py. The model holds no loss (training/objectives.py does).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..config import RECONSTRUCTION_LATENTS, ModelConfig
from ..errors import UserError
from ..runs import load_tensors, resolve_file, save_tensors
from .distributions import DiagonalGaussian, PixelLikelihood, likelihood_class, noise_like
from .fastconv import Conv2d, ConvTranspose2d

EncoderOutput = DiagonalGaussian  # what ``encode`` returns (``.mu``, ``.logvar``, ``.rsample()``, ``.kl()``, ``.mode()``)


@dataclass
class VAEOutput:
    posterior: DiagonalGaussian
    z: torch.Tensor  # N x latent, one draw from the posterior
    likelihood: PixelLikelihood  # p(x|z)
    detail_kl: list[torch.Tensor] = dataclasses.field(default_factory=list)  # a hierarchical model's finer groups: N x dims KL(q || p) each
    detail_log_ratio: torch.Tensor | None = None  # per image, log p - log q of the finer groups' draws (their importance weight)

    def kl_per_dim(self) -> torch.Tensor:
        """KL per latent dimension, fp32: the top latent's to N(0, I), then each finer group's to its learned prior."""
        return torch.cat([self.posterior.kl_per_dim(), *self.detail_kl], 1) if self.detail_kl else self.posterior.kl_per_dim()

    def kl_groups(self) -> torch.Tensor:
        """N x groups: the KL of the top latent, then of each finer group (nats)."""
        return torch.stack([self.posterior.kl(), *(kl.sum(1) for kl in self.detail_kl)], 1)

    @property
    def mu(self) -> torch.Tensor:
        return self.posterior.mu

    @property
    def logvar(self) -> torch.Tensor:
        return self.posterior.logvar

    @property
    def logits(self) -> torch.Tensor:
        """The decoder's raw output (the Bernoulli likelihood's logits)."""
        return self.likelihood.params


# -- architectures: encoder/decoder pairs, registered by name ------------------------------------


class Architecture:
    """Makes a model's encoder and decoder parts. Register a subclass with ``@register_architecture(name)``.

    ``encoder(config)`` -> (module mapping N x C x H x W images to N x c x h x w features, (c, h, w));
    ``decoder(config, out_channels)`` -> module mapping N x c x h x w features to N x out_channels x H x W.
    They are called in that order, between them the heads are made (the seed's initialisation order).
    ``spatial = True`` keeps the latent a map: the heads are 1x1 convs at the encoder's output size, and
    the latent vector is that map flattened (``latent_dim`` = latent channels x h x w).
    ``hierarchical = True`` (models/hierarchical.py): the encoder returns its features at every size, finest
    first, and the decoder draws finer latent groups itself: ``decoder(h, features, mode=, generator=)`` from
    their posteriors, ``decoder(h, generator=, temperatures=)`` from their priors; it returns (params, KLs, log-ratio).
    """

    spatial = False
    hierarchical = False
    TEMPERATURES: tuple[float, ...] = ()

    def encoder(self, config: ModelConfig) -> tuple[nn.Module, tuple[int, int, int]]:
        raise NotImplementedError

    def decoder(self, config: ModelConfig, out_channels: int) -> nn.Module:
        raise NotImplementedError


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str):
    """Class decorator: make an ``Architecture`` selectable as ``ModelConfig(arch=name)``."""

    def add(cls):
        ARCHITECTURES[name] = cls()
        return cls

    return add


def _cpu_path(layer: int, last: int) -> str:
    """Which CPU training kernels a layer uses (see fastconv.py): GEMMs where oneDNN is slow, the 3x3
    bottleneck and the 6x6 layer's weight gradient (measured at batch 64: 4.9 -> 2.5 ms there). The
    decoder's last layer, built apart in ``SeedConv.decoder``, takes "subpixel"."""
    return "gemm" if layer == last else "gemm-weight-grad" if layer == last - 1 else "native"


def _block(conv: nn.Module, channels: int, slope: float) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.LeakyReLU(slope))


@register_architecture("conv")
class SeedConv(Architecture):
    """The seed notebook's layers, exactly: widths base_channels * 2^i (32..512), 4/2/1 convs."""

    @staticmethod
    def _widths(c: ModelConfig) -> list[int]:
        return [c.in_channels] + [c.base_channels * 2**i for i in range(c.num_layers)]

    def encoder(self, c):
        chans, last = self._widths(c), c.num_layers - 1
        net = nn.Sequential(*[_block(Conv2d(chans[i], chans[i + 1], _cpu_path(i, last)), chans[i + 1], c.negative_slope) for i in range(c.num_layers)])
        side = c.image_size // 2**c.num_layers
        return net, (chans[-1], side, side)

    def decoder(self, c, out_channels):
        chans, last = self._widths(c), c.num_layers - 1
        up = [_block(ConvTranspose2d(chans[i + 1], chans[i], _cpu_path(i, last)), chans[i], c.negative_slope) for i in range(c.num_layers - 1, 0, -1)]
        return nn.Sequential(*up, ConvTranspose2d(chans[1], out_channels, "subpixel"))


@register_architecture("upconv")
class UpsampleConv(SeedConv):
    """The seed's encoder and inner decoder layers; the decoder's last ``RESIZE_LAYERS`` double the size by
    nearest-neighbour upsampling and a 3x3 conv (Odena et al. 2016) instead of a 4/2/1 transposed conv.
    Under an adversarial loss the transposed convs' outputs grow a visible checkerboard at the pixel
    scale; resize-then-convolve at the full-resolution layers cannot make one there, and costs less than
    replacing every layer (those are the layers with the fewest channels)."""

    RESIZE_LAYERS = 2

    def decoder(self, c, out_channels):
        chans, last = self._widths(c), c.num_layers - 1
        resize = lambda cin, cout: [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1)]  # noqa: E731
        layers = []
        for i in range(c.num_layers - 1, 0, -1):
            up = resize(chans[i + 1], chans[i]) if i < self.RESIZE_LAYERS else [ConvTranspose2d(chans[i + 1], chans[i], _cpu_path(i, last))]
            layers.append(nn.Sequential(*up, nn.BatchNorm2d(chans[i]), nn.LeakyReLU(c.negative_slope)))
        return nn.Sequential(*layers, *resize(chans[1], out_channels))


@register_architecture("spatial")
class SpatialConv(SeedConv):
    """The seed's layers with one stride-2 layer fewer each side and a spatial latent: 96 px -> 256 x 6 x 6
    features -> a (latent_dim / 36) x 6 x 6 latent map through 1x1 conv heads -> the seed's last four
    decoder layers. Each latent cell describes its own patch of the face (the layout of the KL-regularised
    autoencoders behind latent diffusion, Rombach et al. 2022), so the decoder draws detail locally
    instead of unfolding every pixel from one global vector: reconstructions are far sharper for the
    same training time. On the 6x6 map the gmm sampler works (the 12x12 one needs the diffusion sampler)."""

    spatial = True
    FEWER = 1  # stride-2 layers fewer than the seed's, each side

    def encoder(self, c):
        net, (channels, _, _) = super().encoder(self._fewer(c))
        side = c.image_size // 2 ** (c.num_layers - self.FEWER)
        return net, (channels, side, side)

    def decoder(self, c, out_channels):
        return super().decoder(self._fewer(c), out_channels)

    def _fewer(self, c: ModelConfig) -> ModelConfig:
        if c.num_layers <= self.FEWER:
            raise UserError(f"model arch {c.arch!r} needs num_layers above {self.FEWER} (a larger --image-size), got {c.num_layers}")
        return dataclasses.replace(c, num_layers=c.num_layers - self.FEWER, image_size=c.image_size // 2**self.FEWER)


@register_architecture("spatial12")
class SpatialConv12(SpatialConv):
    """``spatial`` with a 12x12 latent map at 96 px (two stride-2 layers fewer each side)."""

    FEWER = 2


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), 3x3 convs at one resolution; the second conv starts at zero, so a
    new block is the identity and the decoder it extends starts where the plain one does."""

    def __init__(self, channels: int, slope: float):
        super().__init__()
        act = lambda: nn.LeakyReLU(slope)  # noqa: E731
        conv = lambda: nn.Conv2d(channels, channels, 3, 1, 1)  # noqa: E731
        self.body = nn.Sequential(nn.BatchNorm2d(channels), act(), conv(), nn.BatchNorm2d(channels), act(), conv())
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_architecture("spatialres")
class SpatialResidual(SpatialConv):
    """``spatial`` whose decoder draws the last octave at full resolution: after the transposed convs to 48 px, a
    residual block there, then nearest-neighbour x2 + 3x3 conv to ``FULL_RES`` channels, a residual block at
    96 px and a 3x3 conv to the pixels. ``spatial`` maps 32 channels at 48 px to the 96-px pixels in one linear
    transposed conv, so every 2x2 output patch is a linear function of the features under it: it can place
    an edge only as sharply as the 48-px features do (the shape of latent diffusion's autoencoder decoder,
    at laptop width)."""

    FULL_RES = 16  # channels at the output resolution

    def decoder(self, c, out_channels):
        f = self._fewer(c)
        chans, last, slope, w = self._widths(f), f.num_layers - 1, f.negative_slope, self.FULL_RES
        up = [_block(ConvTranspose2d(chans[i + 1], chans[i], _cpu_path(i, last)), chans[i], slope) for i in range(last, 0, -1)]
        full = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(chans[1], w, 3, 1, 1), nn.BatchNorm2d(w), nn.LeakyReLU(slope)]
        return nn.Sequential(*up, ResidualBlock(chans[1], slope), *full, ResidualBlock(w, slope), nn.Conv2d(w, out_channels, 3, 1, 1))


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise UserError(f"model arch {name!r} is not known; choose one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


# -- the VAE -----------------------------------------------------------------------------------


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
        arch, self.pixels = architecture(config.arch), likelihood_class(config.likelihood)
        self.hierarchical = arch.hierarchical
        self.temperatures = arch.TEMPERATURES  # a hierarchical model's finer groups, when decoding latents (settable)
        self.encoder, self.bottom = arch.encoder(config)
        channels, h, w = self.bottom
        if arch.spatial:  # 1x1 conv heads; the latent is a (latent_dim / hw) x h x w map, flattened
            if config.latent_dim % (h * w):
                raise UserError(
                    f"latent_dim {config.latent_dim} does not fill arch {config.arch!r}'s {h}x{w} latent map; "
                    f"use a multiple of {h * w} (e.g. --latent-dim {16 * h * w})"
                )
            self.latent_shape = (config.latent_dim // (h * w), h, w)
            self.fc_mu = nn.Conv2d(channels, self.latent_shape[0], 1)
            self.fc_logvar = nn.Conv2d(channels, self.latent_shape[0], 1)
            self.fc_decode = nn.Conv2d(self.latent_shape[0], channels, 1)
        else:
            self.latent_shape = None
            flat = channels * h * w  # 512 * 3 * 3 = 4608 in the seed
            self.fc_mu = nn.Linear(flat, config.latent_dim)
            self.fc_logvar = nn.Linear(flat, config.latent_dim)
            self.fc_decode = nn.Linear(config.latent_dim, flat)
        self.decoder = arch.decoder(config, config.in_channels * self.pixels.params_per_channel)

    def parts(self) -> dict[str, tuple[nn.Module, ...]]:
        """The modules of each half, for freezing one while fine-tuning the other."""
        return {"encoder": (self.encoder, self.fc_mu, self.fc_logvar), "decoder": (self.fc_decode, self.decoder)}

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return self._heads(self.encoder(x))

    def encode_detail(self, x: torch.Tensor, generator: torch.Generator | None = None, scales: int = 1) -> tuple[DiagonalGaussian, torch.Tensor]:
        """Images -> (the top latent's posterior, N x ``sum(detail_dims[:scales])`` detail latents): a hierarchical model's
        first ``scales`` finer scales, their posterior means given the top's mean and the coarser ones (with ``generator``:
        posterior draws), in their priors' whitened coordinates (``TopDown.whitened``). ``decode(torch.cat([mu, detail], 1))``
        draws those scales as the face's own and any finer one from its prior."""
        if not self.hierarchical:
            raise ValueError(f"arch {self.config.arch!r} has no finer latent groups: only a hierarchical model has detail latents")
        features = self.encoder(x)
        posterior = self._heads(features)
        return posterior, self.decoder.whitened(self._top(posterior.mu), features[:-1], generator, scales)

    @property
    def detail_dims(self) -> tuple[int, ...]:
        """Width of each finer scale's latents (every group of it), coarse to fine: () unless the model is hierarchical."""
        if not self.hierarchical:
            return ()
        _, h, w = self.latent_shape
        scales = sorted({g.scale for g in self.decoder.groups})
        return tuple(sum(g.z_channels for g in self.decoder.groups if g.scale == j) * 4 ** (j + 1) * h * w for j in scales)

    @property
    def detail_dim(self) -> int:
        """Width of ``encode_detail``'s detail latents of the first finer scale: 0 unless the model is hierarchical."""
        return self.detail_dims[0] if self.detail_dims else 0

    def _heads(self, h) -> DiagonalGaussian:
        if self.hierarchical:
            h = h[-1]
        if self.latent_shape is not None:
            return DiagonalGaussian(self.fc_mu(h).flatten(1), self.fc_logvar(h).flatten(1))
        h = h.flatten(1)
        return DiagonalGaussian(self.fc_mu(h), self.fc_logvar(h))

    def _top(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_shape is not None:
            return self.fc_decode(z.view(-1, *self.latent_shape))
        return self.fc_decode(z).view(-1, *self.bottom)

    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None, temperatures=None) -> torch.Tensor:
        """Latents -> the likelihood's parameters (the seed's: logits; ``likelihood(...).mean`` gives pixels).

        A hierarchical model draws its finer groups from their priors, with noise from ``generator`` at
        ``temperatures`` (a number or one per finer scale; default ``self.temperatures``; 0: the priors' means);
        ``z`` wider than the latent holds the first finer scales too (``encode_detail``'s coordinates): as many as its
        width covers, the rest drawn from their priors."""
        if not self.hierarchical:
            return self.decoder(self._top(z))
        top, detail = z[:, : self.config.latent_dim], z[:, self.config.latent_dim :]
        widths = [self.config.latent_dim + sum(self.detail_dims[:s]) for s in range(len(self.detail_dims) + 1)]
        if z.shape[1] not in widths:
            raise ValueError(f"latents are {z.shape[1]} wide: expected one of {', '.join(map(str, widths))} (the top, then with each finer scale)")
        t = self.temperatures if temperatures is None else temperatures
        t = tuple(t) if isinstance(t, (tuple, list)) else (float(t),)
        params, _, _ = self.decoder(self._top(top), generator=generator, temperatures=t, given=detail if detail.shape[1] else None)
        return params

    def reconstruct(
        self, x: torch.Tensor, groups: int | None = None, generator: torch.Generator | None = None, temperatures=None, latents: str = "mean"
    ) -> torch.Tensor:
        """Images -> the likelihood's parameters of their reconstructions: every latent at its posterior mean, or with
        ``latents="draw"`` drawn from the posterior (noise from ``generator``), as training decodes them.

        A hierarchical model with ``groups=k``: the top and the first k finer groups from the posterior, the
        finer ones after them drawn from their priors (``decode``'s ``generator`` and ``temperatures``): what each group holds."""
        if latents not in RECONSTRUCTION_LATENTS:
            raise ValueError(f"latents must be one of {', '.join(RECONSTRUCTION_LATENTS)}, got {latents!r}")
        features = self.encoder(x)
        q = self._heads(features)
        top = q.mu if latents == "mean" else q.mu + torch.exp(q.logvar / 2) * noise_like(q.mu, generator)
        if not self.hierarchical:
            return self.decode(top)
        t = self.temperatures if temperatures is None else temperatures
        t = tuple(t) if isinstance(t, (tuple, list)) else (float(t),)
        params, _, _ = self.decoder(self._top(top), features[:-1], mode=latents == "mean", keep=groups, generator=generator, temperatures=t)
        return params

    def likelihood(self, params: torch.Tensor) -> PixelLikelihood:
        """p(x|z) from the decoder's output."""
        return self.pixels(params)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return DiagonalGaussian(mu, logvar).rsample()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """One posterior draw and its decode. With ``generator`` (fixed-seed passes) the noise comes from it and
        the top latent's sigma is taken in fp32; without, the seed's draw."""
        features = self.encoder(x)
        posterior = self._heads(features)
        if generator is None:
            z = posterior.rsample()
        else:
            z = posterior.mu + torch.exp(posterior.logvar.float() / 2) * noise_like(posterior.mu, generator)
        if not self.hierarchical:
            return VAEOutput(posterior, z, self.likelihood(self.decoder(self._top(z))))
        params, kls, log_ratio = self.decoder(self._top(z), features[:-1], generator=generator)
        return VAEOutput(posterior, z, self.likelihood(params), kls, log_ratio)

    def folded(self) -> VAE:
        """An eval-mode copy for inference only (the latents pass, sampling): every BatchNorm that follows a
        conv in a Sequential is folded into it and the activation after it runs in place, so the same
        function costs no extra passes over each activation. Not for training."""
        model = copy.deepcopy(self).eval()
        for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
            for i in range(len(seq) - 1):
                conv, bn = seq[i], seq[i + 1]
                if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                    seq[i] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                    seq[i + 1] = nn.Identity()
                    if i + 2 < len(seq) and hasattr(seq[i + 2], "inplace"):
                        seq[i + 2].inplace = True  # no autograd here: rectify the conv output where it lies
        return model

    @torch.no_grad()
    def generate(self, z: torch.Tensor, generator: torch.Generator | None = None, temperatures=None) -> torch.Tensor:
        """Latents -> uint8 images N x C x H x W (the seed's sigmoid -> x255 -> uint8); ``decode``'s options."""
        return self.likelihood(self.decode(z, generator, temperatures)).to_uint8()

    # -- Hub mixin: safetensors only, strict keys and shapes -------------------------------------

    def _save_pretrained(self, save_directory: Path) -> None:
        save_tensors({k: v.detach() for k, v in self.state_dict().items()}, Path(save_directory) / "model.safetensors")

    @classmethod
    def _from_pretrained(cls, *, model_id, revision=None, token=None, map_location="cpu", **_):
        """The mixin's hook: config.json + model.safetensors from a folder or a Hub repo, loaded strictly."""
        name = str(model_id)
        config_file = resolve_file(name, "config.json", revision=revision, token=token)
        config = model_config_from_json(json.loads(Path(config_file).read_text()), config_file)
        try:
            model = cls(config)
        except UserError as e:
            raise UserError(f"{config_file}: {e}") from None
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
    broken = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise UserError(f"{path}: tensor {broken} holds NaN or inf; these weights cannot make faces (an earlier copy may be in RUN/epochs/)")
    model.load_state_dict(state, strict=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
