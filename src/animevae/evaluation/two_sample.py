"""A classifier two-sample test (Lopez-Paz & Oquab 2017): can a small CNN tell generated faces from real ones?

FID-like scores on offline features miss what people see first, blur and texture; a classifier
trained from scratch on the two sets sees exactly that. Per seed, each set is split 50/20/30: the
CNN (a few 3x3 stride-2 convs, global pooling, one logit; flips as its only augmentation) trains on
the first part round by round (an epoch, at least ``MIN_ROUND_STEPS`` steps) until its accuracy on the
second stops improving (early stopping, ``PATIENCE`` rounds), and its best state is scored on the third, which it never saw. A classifier
stopped after a fixed 100 steps, as this test once was, separates these sets far less well, so it
flattered blurry models. Accuracy 0.5 means the two sets cannot be told apart; 1.0 means every face
is caught. One seed swings by a few points, so the result is the mean over seeds, with each seed's.

The test runs along a ladder of sizes (``LADDER``: 96, 48, 32, 24, 16 px, both sets shrunk by area
averaging): shrinking first hides the fine detail, then the strokes, then the layout, so where a model's
faces stop being caught says how far they are right. At full size every model this package can train is
caught 98-100 % of the time, a figure that cannot tell a better model from a worse one; the headline is
the largest size up to which the classifier cannot tell the faces from real ones ("real up to N px": every
rung up to N at or below ``PASSES_AT``). A classifier that fails to learn would read 0.5 at every size,
which looks like perfect realism, so a ladder comes with a positive control (``positive_control``: real
faces against other real faces blurred by one pixel, which a working classifier catches; below
``CONTROL_CAUGHT_AT`` the ladder is marked invalid). No pretrained network: it works offline, and on any
image size.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROUNDS = 60  # an upper bound; early stopping ends most runs far sooner
PATIENCE = 4  # rounds without a better validation accuracy before training stops
MIN_ROUND_STEPS = 25  # a round is an epoch of the training part, and at least this many Adam steps (small sets)
SPLIT = (0.5, 0.2)  # train and validation shares of each set; the rest is scored
LR = 1e-3  # the classifier's Adam learning rate
LADDER = (96, 48, 32, 24, 16)  # the sizes the test runs at (those at most the images' own size, and that size)
PASSES_AT = 0.60  # a rung's mean accuracy at or below this: the classifier cannot tell the faces from real ones there
CONTROL_SIGMA = 1.0  # the positive control: real faces blurred by this many pixels (Gaussian sigma) ...
CONTROL_CAUGHT_AT = 0.9  # ... must be caught at least this often at full size, or the ladder is invalid


def critic(channels: int = 3, width: int = 32) -> nn.Module:
    """4 convs (3x3, stride 2; widths 32, 64, 128, 128) + BatchNorm + LeakyReLU, global average pool, one logit."""
    chans = [channels, width, width * 2, width * 4, width * 4]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.BatchNorm2d(chans[i + 1]), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], 1))


def _as_input(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1)


def shrink(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized to ``size`` x ``size`` by area averaging (what a smaller screen shows)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images.float(), size=(size, size), mode="area").round().clamp(0, 255).to(torch.uint8)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images (uint8 or float, N x C x H x W) blurred by a separable Gaussian of ``sigma`` px (reflect padding,
    radius 3 sigma); uint8 in, uint8 out."""
    x = images.float()
    r = int(3 * sigma + 0.5)
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).float()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, [r, r, 0, 0], mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    x = F.conv2d(F.pad(x, [0, 0, r, r], mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    return x.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else x


def ladder_sizes(size: int, sizes=LADDER) -> list[int]:
    """The rungs for ``size``-px images: the image's own size, then each of ``sizes`` below it, largest first."""
    return sorted({size, *(s for s in sizes if s <= size)}, reverse=True)


def real_up_to(by_size: dict[str, dict], passes_at: float = PASSES_AT) -> int | None:
    """The largest size up to which every rung's mean accuracy is at most ``passes_at`` (None: not even the smallest)."""
    best = None
    for px in sorted(int(k.removesuffix("px")) for k in by_size):
        if by_size[f"{px}px"]["accuracy"] > passes_at:
            break
        best = px
    return best


def split_sizes(n: int) -> tuple[int, int, int]:
    """Images per class that train, validate and score (SPLIT of ``n``; each part at least one)."""
    a = max(1, int(SPLIT[0] * n))
    b = max(1, min(int(SPLIT[1] * n), n - a - 1))
    return a, b, n - a - b


@torch.no_grad()
def _balanced_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    logits = torch.cat([net(_as_input(x[s : s + 256])).squeeze(1) for s in range(0, len(x), 256)])
    correct = ((logits > 0).float() == y).float()
    return float((correct[y == 1].mean() + correct[y == 0].mean()) / 2)  # each class counts half


def accuracy_once(
    fake: torch.Tensor,
    real: torch.Tensor,
    seed: int,
    max_rounds: int = MAX_ROUNDS,
    patience: int = PATIENCE,
    batch: int = 64,
    lr: float | None = None,
    paired: bool = False,
) -> dict:
    """Train on 50 % of each set (uint8 N x C x H x W) until the accuracy on another 20 % stops improving; score the
    best state on the last 30 %. Returns {"accuracy", "validation_accuracy", "rounds"}. ``paired``: row i of ``fake``
    is made from row i of ``real`` (a reconstruction of it), and both go to the same part, so no face is scored
    whose own version the classifier trained on."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(fake), len(real))
    if paired:
        perm = torch.randperm(n, generator=g)
        fake, real = fake[:n][perm], real[:n][perm]
    else:
        fake, real = fake[torch.randperm(len(fake), generator=g)[:n]], real[torch.randperm(len(real), generator=g)[:n]]
    a, b, _ = split_sizes(n)
    parts = []
    for lo, hi in ((0, a), (a, a + b), (a + b, n)):
        parts.append((torch.cat([fake[lo:hi], real[lo:hi]]), torch.cat([torch.ones(hi - lo), torch.zeros(hi - lo)])))
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = parts
    batch = min(batch, len(train_x))
    steps_per_round = max(MIN_ROUND_STEPS, -(-len(train_x) // batch))
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # callers may be under no_grad (evaluate is)
        torch.manual_seed(seed)
        net = critic(fake.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=LR if lr is None else lr)
        best, best_state, best_round, rounds = -1.0, None, 0, 0
        while rounds < max_rounds and rounds - best_round < patience:
            rounds += 1
            net.train()
            for _ in range(steps_per_round):
                idx = torch.randint(0, len(train_x), (batch,), generator=g)
                x = _as_input(train_x[idx])
                flip = torch.rand(len(idx), generator=g) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
                loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            val = _balanced_accuracy(net, val_x, val_y)
            if val > best:
                best, best_state, best_round = val, copy.deepcopy(net.state_dict()), rounds
        net.load_state_dict(best_state)
    return {"accuracy": _balanced_accuracy(net, test_x, test_y), "validation_accuracy": best, "rounds": rounds}


def _at_sizes(fake: torch.Tensor, real: torch.Tensor, sizes, seeds, max_rounds: int, paired: bool = False) -> dict[str, dict]:
    """Each size's mean accuracy over ``seeds``, with each seed's, their spread, rounds, and the seconds the size took."""
    out = {}
    for px in sizes:
        start = time.perf_counter()
        runs = [accuracy_once(shrink(fake, px), shrink(real, px), seed, max_rounds, paired=paired) for seed in seeds]
        per_seed = [r["accuracy"] for r in runs]
        out[f"{px}px"] = {
            "accuracy": sum(per_seed) / len(per_seed),
            "per_seed": per_seed,
            "spread": max(per_seed) - min(per_seed),
            "rounds": [r["rounds"] for r in runs],
            "seconds": round(time.perf_counter() - start, 1),
        }
    return out


def classifier_two_sample_test(fake: torch.Tensor, real: torch.Tensor, seeds=(0, 1, 2), max_rounds: int = MAX_ROUNDS, sizes=None, paired: bool = False) -> dict:
    """The mean held-out accuracy over ``seeds`` of a CNN told to separate ``fake`` from ``real`` (uint8 images) at each
    of ``sizes`` (default: ``ladder_sizes`` of their size), and ``real_up_to``, the largest size up to which it cannot.
    ``accuracy`` is the figure at the largest size; ``by_size`` has every rung's mean, per-seed figures, spread and rounds.
    ``paired``: ``fake[i]`` is made from ``real[i]`` (``accuracy_once``)."""
    if min(len(fake), len(real)) < 4:
        raise ValueError(f"a two-sample test needs at least 4 images per set, got {len(fake)} and {len(real)}")
    seeds = list(seeds)
    by_size = _at_sizes(fake, real, ladder_sizes(fake.shape[-1]) if sizes is None else sorted(set(sizes), reverse=True), seeds, max_rounds, paired)
    trained, validated, scored = split_sizes(min(len(fake), len(real)))
    return {
        **next(iter(by_size.values())),
        "by_size": by_size,
        "real_up_to": real_up_to(by_size),
        "passes_at": PASSES_AT,
        "trained_on_per_class": trained,
        "validated_on_per_class": validated,
        "scored_on_per_class": scored,
        "paired": paired,
        "note": "a CNN trained from scratch until its validation accuracy stopped improving, scored on faces it never saw; 0.5 = indistinguishable",
    }


def positive_control(faces: torch.Tensor, real: torch.Tensor, seeds=(0,), max_rounds: int = MAX_ROUNDS) -> dict:
    """The same classifier on a difference it must see: ``faces`` blurred by ``CONTROL_SIGMA`` px against ``real`` (other real
    faces), at full size. ``caught`` is False when it reads below ``CONTROL_CAUGHT_AT``: the classifier is not learning (a
    broken learning rate, normalisation or data), and a ladder measured with it says nothing."""
    by_size = _at_sizes(gaussian_blur(faces, CONTROL_SIGMA), real, [faces.shape[-1]], list(seeds), max_rounds)
    result = next(iter(by_size.values()))
    return result | {
        "caught": result["accuracy"] >= CONTROL_CAUGHT_AT,
        "caught_at": CONTROL_CAUGHT_AT,
        "sigma_px": CONTROL_SIGMA,
        "size": faces.shape[-1],
        "note": f"real faces blurred by {CONTROL_SIGMA:g} px against other real faces; a working classifier catches them (>= {CONTROL_CAUGHT_AT})",
    }


def with_control(c2st: dict, control: dict) -> dict:
    """A two-sample test's result marked valid or not by ``control``; an invalid one has no headline (``real_up_to`` None)."""
    valid = bool(control["caught"])
    marked = c2st | {"valid": valid, "control_accuracy": control["accuracy"]}
    if not valid:
        marked |= {
            "real_up_to": None,
            "invalid_because": f"the positive control read {control['accuracy']:.3f} < {control['caught_at']}: the classifier is not learning",
        }
    return marked
