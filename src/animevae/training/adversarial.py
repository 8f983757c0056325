"""The adversarial objective (``objective="adversarial"``): the seed's ELBO plus a patch discriminator, for faces that look real.

A VAE trained on a pixel likelihood alone averages what it cannot predict, so its faces are blurry.
The VAE inside Stable Diffusion (Rombach et al. 2022, after VQGAN: Esser et al. 2021) adds a small
discriminator that judges patches; this is that recipe, fitted to a laptop and to sampling:

- ``PatchDiscriminator``: 4/2/1 convs and LeakyReLU, no normalisation (real and fake go through as one
  batch), one logit per ~22 px patch of a 96 px face. Hinge loss (Lim & Ye 2017).
- The adversarial term's weight is set as in VQGAN: the ratio of the reconstruction term's and the
  adversarial term's gradient norms at the decoder's last layer (clamped), times ``adv_weight``.
  Refreshed every ``REWEIGHT_EVERY`` steps (two extra partial backward passes); kept in a buffer, so
  resumed runs continue exactly.
- Off for the first ``adv_start_epochs`` (the VAE first learns to reconstruct; a discriminator facing
  noise teaches nothing), or until ``adv_start_fraction`` of the run is done (of its epochs, or of its
  ``--max-minutes``: the same recipe then works at any budget and on any machine's speed).
- ``adv_decoder_only``: once on, only the decoder learns (the encoder's parameters take no gradient), so
  the latents, and a sampler fitted on them, stay those of the likelihood-trained model while the
  decoder learns to draw detail for them (taming-transformers' late, decoder-side GAN phase).
- Fakes (half a batch: ``FAKE_SHARE``) are half reconstructions and half decodes of random two-face
  mixes of the batch's posterior means (what the mix sampler decodes), so generated faces sharpen,
  not only reconstructions; the discriminator sees as many of the batch's real faces. Half a batch
  keeps a step at 0.62x the ELBO step's speed on a 2-core CPU (396 vs 245 ms; a full batch: 525 ms).
- DiffAugment (Zhao et al. 2020) on everything the discriminator sees: colour, translation, cutout,
  differentiable, so a few thousand faces do not let it memorise.
- Options (off by default, measured in experiments/adversarial_options.py, docs/explanation/experiments.md): ``adv_fakes="recon"`` (reconstructions only),
  ``disc_r1`` (a lazy R1 penalty, every ``R1_EVERY`` steps), ``adv_feature_match`` (L1 between the
  discriminator's hidden features of each reconstruction and its face, inside the adaptive term).

The discriminator and its optimizer (``"disc"``) live in the objective: checkpoints hold them, the
saved model (``model.safetensors``) does not, and nothing after training needs them.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .objectives import ELBO, LossTerms, elbo_terms, register_objective

REWEIGHT_EVERY = 8  # steps between two measurements of the adaptive weight
FAKE_SHARE = 0.5  # fakes per step, as a share of the batch (half reconstructions, half mixes, or all reconstructions); as many real faces
R1_EVERY = 16  # steps between two R1 penalties (StyleGAN2's lazy regularisation), each weighted by R1_EVERY
MAX_SCALE = 1e4  # VQGAN's clamp of the gradient-norm ratio
DISC_BETAS = (0.5, 0.9)  # Adam moments usual for GAN discriminators


class Blur(nn.Module):
    """A fixed 3x3 binomial low-pass ([1, 2, 1] x [1, 2, 1] / 16) per channel, stride 1, edges replicated.

    Before a stride-2 conv on features it removes what the stride would alias (Zhang 2019, "Making
    convolutional networks shift-invariant again"; StyleGAN2's discriminator blurs before each
    downsampling): a discriminator that samples every 8th pixel without it cannot see a pattern at its
    own period, and a generator trained against it learns to draw one."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [1, 1, 1, 1], mode="replicate"), self.kernel.to(x.dtype), groups=x.shape[1])


class PatchDiscriminator(nn.Module):
    """``layers`` 4/2/1 convs (width doubling from ``width``) + LeakyReLU(0.2), then a 3x3 conv to one logit per patch;
    with ``blur``, each strided conv after the first reads a low-passed input (``Blur``); the first reads the
    pixels as they are, or a pixel-scale checkerboard would be filtered out before anything could see it."""

    def __init__(self, in_channels: int = 3, width: int = 32, layers: int = 3, blur: bool = False):
        super().__init__()
        chans = [in_channels] + [width * 2**i for i in range(layers)]
        body = []
        for i in range(layers):
            body += [Blur(chans[i])] if blur and i > 0 else []  # not on the pixels: a checkerboard would vanish there
            body += [nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*body, nn.Conv2d(chans[-1], 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)  # pixels in [0, 1] -> [-1, 1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each LeakyReLU: what feature matching compares."""
        feats, h = [], x * 2 - 1
        for layer in self.body[:-1]:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return feats


def diff_augment(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour + translation (1/8) + cutout (1/2) policy, per image, differentiable in ``x``."""
    n, _, h, w = x.shape
    r = lambda: torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
    x = x + (r() - 0.5)  # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (r() * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (r() + 0.5) + mean  # contrast
    # translation: shift by up to 1/8 of the side, zeros coming in
    sy, sx = int(h / 8 + 0.5), int(w / 8 + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    gy = (torch.arange(h, device=x.device).view(1, h, 1) + ty + 1).clamp(0, h + 1)
    gx = (torch.arange(w, device=x.device).view(1, 1, w) + tx + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    x = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)
    # cutout: a half-side square of zeros at a random place
    ch, cw = h // 2, w // 2
    cy = torch.randint(0, h + 1 - ch % 2, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + 1 - cw % 2, (n, 1, 1), device=x.device)
    yy, xx = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    keep = ((yy - cy + ch // 2).abs() >= ch // 2 + 1) | ((xx - cx + cw // 2).abs() >= cw // 2 + 1)
    return x * keep.unsqueeze(1).to(x.dtype)


def unwrap(model: nn.Module) -> nn.Module:
    """The VAE inside DistributedDataParallel and/or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def last_layer(model: nn.Module) -> nn.Parameter:
    """The weight of the decoder's last layer with one (where VQGAN measures the two gradients)."""
    return [m.weight for m in model.decoder.modules() if isinstance(getattr(m, "weight", None), nn.Parameter)][-1]


def mix_pairs(mu: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` random convex combinations of two of the batch's posterior means (the mix sampler with k = 2)."""
    a = torch.randint(0, len(mu), (n,), device=mu.device)
    b = torch.randint(0, len(mu), (n,), device=mu.device)
    w = torch.rand(n, 1, device=mu.device, dtype=mu.dtype)
    return w * mu[a] + (1 - w) * mu[b]


@register_objective("adversarial")
class Adversarial(ELBO):
    """-ELBO + adv_weight * lambda * hinge generator loss on reconstructions and mix decodes; the discriminator learns in ``after_step``."""

    def __init__(self, cfg, steps_per_epoch, autocast=nullcontext, model_config=None):
        super().__init__(cfg, steps_per_epoch, autocast, model_config)
        self.disc = PatchDiscriminator(self.model_config.in_channels, cfg.disc_width, blur=cfg.disc_blur).to(memory_format=torch.channels_last)
        self.register_buffer("scale", torch.zeros(()))  # the adaptive weight lambda, per pixel dimension
        self.start_step = round(cfg.adv_start_epochs * steps_per_epoch)
        if cfg.adv_start_fraction is not None:  # the step it switched on at (-1: not yet), kept in checkpoints
            self.register_buffer("started_at", torch.tensor(-1, dtype=torch.long))
        self._started: int | None = None
        self._fake: torch.Tensor | None = None

    def switched_on(self, step: int) -> bool:
        """Whether the discriminator's term is on at ``step``: after ``adv_start_epochs``, or once ``run_share``
        reached ``adv_start_fraction`` (then for good, resumed runs included)."""
        if self.cfg.adv_start_fraction is None:
            return step >= self.start_step
        if self._started is None:  # the first step of this process: a restored checkpoint may already have started
            self._started = int(self.started_at)
        if self._started < 0 and self.run_share >= self.cfg.adv_start_fraction:
            self._started = step
            self.started_at.fill_(step)
        return self._started >= 0

    def freeze_encoder(self, model: nn.Module) -> None:
        """``adv_decoder_only``: every parameter outside the decoder stops taking gradients (the optimizer skips them)."""
        if isinstance(model, nn.parallel.DistributedDataParallel):
            from ..errors import UserError

            raise UserError("--adv-decoder-only is not supported under torchrun (DDP needs every parameter's gradient); train on one process")
        vae = unwrap(model)
        decoder = {id(p) for p in vae.decoder.parameters()}
        for p in vae.parameters():
            if id(p) not in decoder:
                p.requires_grad_(False)

    def optimizers(self, make_optimizer):
        opt = make_optimizer(self.disc.parameters())
        for group in opt.param_groups:
            group["betas"] = DISC_BETAS
        return {"disc": opt}

    def judge(self, x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x) if self.cfg.diffaug else x
        return self.disc(x.contiguous(memory_format=torch.channels_last)).float()

    def forward(self, model, x, step):
        on = self.switched_on(step)
        if on and self.cfg.adv_decoder_only:
            self.freeze_encoder(model)  # before the forward pass, so not even this step's gradient reaches the encoder
        with self.autocast():
            output = model(x)
        loss, recon, kl = elbo_terms(output, x, self.beta_at(step), self.cfg.free_bits, self.fine_beta_at(step))
        self._fake = None
        if not on:
            return LossTerms(loss, recon, kl, output)
        vae, n = unwrap(model), max(2, round(len(x) * FAKE_SHARE))
        n_rec = n if self.cfg.adv_fakes == "recon" else n // 2
        self.disc.requires_grad_(False)  # the generator's step needs gradients through it, not for it
        with self.autocast():
            fake = output.likelihood.mean[:n_rec]
            if n_rec < n:
                fake = torch.cat([fake, vae.likelihood(vae.decode(mix_pairs(output.mu.detach(), n - n_rec))).mean])
            g_loss = g_term = -self.judge(fake).mean()
            logs = {"adv_g": g_loss.detach()}
            if self.cfg.adv_feature_match > 0:
                fm = self.feature_distance(fake[:n_rec], x[:n_rec])
                g_term = g_loss + self.cfg.adv_feature_match * fm
                logs["adv_fm"] = fm.detach()
        dims = x[0].numel()
        if step % REWEIGHT_EVERY == 0 or step == self.start_step or step == self._started:
            self.reweight(vae, recon.mean() / dims, g_term)
        loss = loss + self.cfg.adv_weight * dims * self.scale * g_term
        self._fake = fake.detach()
        return LossTerms(loss, recon, kl, output, logs | {"adv_lambda": self.scale.clone()})

    def feature_distance(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Feature matching (Larsen et al. 2016's learned similarity; pix2pixHD): the mean L1 distance between the
        discriminator's hidden features of each reconstruction and of its own face, averaged over layers. A
        perceptual reconstruction loss that needs no pretrained network."""
        cl = torch.channels_last
        with torch.no_grad():
            target = self.disc.features(real.to(fake.dtype).contiguous(memory_format=cl))
        made = self.disc.features(fake.contiguous(memory_format=cl))
        return sum((a.float() - b.float()).abs().mean() for a, b in zip(made, target)) / len(made)

    def reweight(self, vae: nn.Module, recon_per_dim: torch.Tensor, g_loss: torch.Tensor) -> None:
        """lambda = ||d recon / d w_last|| / ||d g_loss / d w_last||, clamped (VQGAN's adaptive weight)."""
        w = last_layer(vae)
        g_rec = torch.autograd.grad(recon_per_dim, w, retain_graph=True)[0]
        g_adv = torch.autograd.grad(g_loss, w, retain_graph=True)[0]
        self.scale.copy_((g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, MAX_SCALE).detach())

    def after_step(self, x, terms, step, optimizers):
        """The discriminator's hinge step on this batch's real faces and the fakes the model just made."""
        if self._fake is None:
            return
        fake, self._fake = self._fake, None
        self.disc.requires_grad_(True)
        with self.autocast():
            logits = self.judge(torch.cat([x[: len(fake)], fake.to(x.dtype)]))
        real, made = logits[: len(fake)], logits[len(fake) :]
        d_loss = F.relu(1 - real).mean() + F.relu(1 + made).mean()
        if self.cfg.disc_r1 > 0 and step % R1_EVERY == 0:
            r1 = self.r1_penalty(x[: max(1, len(fake) // 2)])
            d_loss = d_loss + self.cfg.disc_r1 / 2 * r1 * R1_EVERY
            terms.logs["adv_r1"] = r1.detach()
        opt = optimizers["disc"]
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
        terms.logs["adv_d"] = d_loss.detach()

    def r1_penalty(self, real: torch.Tensor) -> torch.Tensor:
        """E ||d D(x) / d x||^2 at real faces, in fp32, no augmentation (Mescheder et al. 2018): keeps the
        discriminator smooth around the data. Too strong, it holds it at chance (gamma 0.1 here: docs/explanation/experiments.md)."""
        real = real.detach().float().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.disc(real.contiguous(memory_format=torch.channels_last)).sum(), real, create_graph=True)
        return grad.pow(2).flatten(1).sum(1).mean()
