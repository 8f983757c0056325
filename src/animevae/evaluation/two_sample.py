"""A classifier two-sample test (Lopez-Paz & Oquab 2017): can a small CNN tell generated faces from real ones?

FID-like scores on offline features miss what people see first, blur and texture; a classifier
trained from scratch on the two sets sees exactly that. Per seed, each set is split 50/20/30: the
CNN (a few 3x3 stride-2 convs, global pooling, one logit; flips as its only augmentation) trains on
the first part round by round (an epoch, at least ``MIN_ROUND_STEPS`` steps) until its accuracy on the
second stops improving (early stopping, ``PATIENCE`` rounds), and its best state is scored on the third, which it never saw. A classifier
stopped after a fixed 100 steps, as this test once was, separates these sets far less well, so it
flattered blurry models. Accuracy 0.5 means the two sets cannot be told apart; 1.0 means every face
is caught. One seed swings by a few points, so the result is the mean over seeds, with each seed's.

The test runs at the images' own size and on both sets shrunk to half that size: the half-size
figure says whether the face is right (layout, colour, shapes), the full-size one whether its detail
is. No pretrained network: it works offline, and on any image size.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROUNDS = 60  # an upper bound; early stopping ends most runs far sooner
PATIENCE = 4  # rounds without a better validation accuracy before training stops
MIN_ROUND_STEPS = 25  # a round is an epoch of the training part, and at least this many Adam steps (small sets)
SPLIT = (0.5, 0.2)  # train and validation shares of each set; the rest is scored


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
    fake: torch.Tensor, real: torch.Tensor, seed: int, max_rounds: int = MAX_ROUNDS, patience: int = PATIENCE, batch: int = 64, lr: float = 1e-3
) -> dict:
    """Train on 50 % of each set (uint8 N x C x H x W) until the accuracy on another 20 % stops improving; score the
    best state on the last 30 %. Returns {"accuracy", "validation_accuracy", "rounds"}."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(fake), len(real))
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
        opt = torch.optim.Adam(net.parameters(), lr=lr)
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


def classifier_two_sample_test(fake: torch.Tensor, real: torch.Tensor, seeds=(0, 1, 2), max_rounds: int = MAX_ROUNDS, half_size: bool = True) -> dict:
    """The mean held-out accuracy over ``seeds`` of a CNN told to separate ``fake`` from ``real`` (uint8 images), at their
    own size and (``half_size``) with both shrunk to half of it."""
    if min(len(fake), len(real)) < 4:
        raise ValueError(f"a two-sample test needs at least 4 images per set, got {len(fake)} and {len(real)}")
    size = fake.shape[-1]
    sizes = [size] + ([size // 2] if half_size and size >= 16 else [])
    out: dict = {}
    for px in sizes:
        runs = [accuracy_once(shrink(fake, px), shrink(real, px), seed, max_rounds) for seed in seeds]
        per_seed = [r["accuracy"] for r in runs]
        out[f"{px}px"] = {
            "accuracy": sum(per_seed) / len(per_seed),
            "per_seed": per_seed,
            "spread": max(per_seed) - min(per_seed),
            "rounds": [r["rounds"] for r in runs],
        }
    trained, validated, scored = split_sizes(min(len(fake), len(real)))
    return {
        **out[f"{size}px"],
        "by_size": out,
        "trained_on_per_class": trained,
        "validated_on_per_class": validated,
        "scored_on_per_class": scored,
        "note": "a CNN trained from scratch until its validation accuracy stopped improving, scored on faces it never saw; 0.5 = indistinguishable",
    }
