"""The training state: optimizers by name (the model's and an objective's own), captured and restored bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animevae.config import ModelConfig, TrainConfig
from animevae.models.vae import VAE
from animevae.training.loop import train_step
from animevae.training.objectives import ELBO, OBJECTIVES, LossTerms, register_objective
from animevae.training.state import TrainState, build_model
from animevae.training.system import System

SMALL = ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4)


class CriticELBO(ELBO):
    """The ELBO plus a small critic trained on its own optimizer: the shape an adversarial objective takes."""

    def __init__(self, *args):
        super().__init__(*args)
        self.critic = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, 1, 1))

    def forward(self, model, x, step):
        terms = super().forward(model, x, step)
        fake_score = self.critic(torch.sigmoid(terms.output.logits)).mean()
        return LossTerms(terms.loss - 0.01 * fake_score, terms.recon, terms.kl, terms.output, {"critic": fake_score.detach()})

    def optimizers(self, make_optimizer):
        return {"critic": make_optimizer(self.critic.parameters())}

    def after_step(self, x, terms, step, optimizers):
        opt = optimizers["critic"]
        loss = torch.relu(1 - self.critic(x)).mean() + torch.relu(1 + self.critic(torch.sigmoid(terms.output.logits.detach()))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def make_state(seed: int = 0, objective: str = "test-critic") -> TrainState:
    register_objective("test-critic")(CriticELBO)
    cfg = TrainConfig(objective=objective, precision="fp32", device="cpu", lr=1e-3, ema=0.9, seed=seed, adv_start_epochs=0.25)
    system = System.setup("cpu", "fp32", True)
    torch.manual_seed(seed)
    state = TrainState.create(build_model(SMALL, cfg), cfg, system, steps_per_epoch=4)
    return state


def batches(n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(4, 3, 24, 24, generator=g).contiguous(memory_format=torch.channels_last) for _ in range(n)]


def run_steps(state: TrainState, xs: list[torch.Tensor]) -> list[float]:
    losses = []
    fused = state.optimizers["model"].defaults.get("fused")
    for x in xs:
        terms, _ = train_step(state, state.model, x, fused)
        state.progress.step += 1
        losses.append(terms.loss.item())
    return losses


@pytest.mark.parametrize("objective, net", [("test-critic", "critic"), ("adversarial", "disc")])
def test_optimizers_are_kept_and_checkpointed_by_name_and_resume_is_exact(objective, net):
    """The adversarial objective (discriminator on from step 1 of 4 per epoch, adaptive weight refreshed
    every 8 steps) resumes bit for bit from step 3, past its switch-on, like the test critic."""
    try:
        straight = make_state(objective=objective)
        xs = batches(12, seed=1)
        first = run_steps(straight, xs[:3])
        tensors, meta = straight.capture(world=1, data_fingerprint="x")
        assert set(straight.optimizers) == {"model", net}
        assert set(meta["optimizers"]) == {"model", net} and meta["data_fingerprint"] == "x"
        assert any(k.startswith(f"optim.{net}.") for k in tensors) and any(k.startswith("optim.model.") for k in tensors)
        assert any(k.startswith(f"objective.{net}.") for k in tensors)  # the objective's own network travels with the state
        tensors = {k: v.clone() for k, v in tensors.items()}
        rest = run_steps(straight, xs[3:])

        resumed = make_state(seed=7, objective=objective)  # other initial weights: everything must come from the checkpoint
        resumed.restore(tensors, meta, rank=0)
        assert resumed.progress.step == 3
        again = run_steps(resumed, xs[3:])
        assert again == rest and len(first) == 3 and len(rest) == 9
        for a, b in [(straight.model, resumed.model), (straight.objective, resumed.objective), (straight.ema, resumed.ema)]:
            for (name, t), (_, u) in zip(a.state_dict().items(), b.state_dict().items()):
                assert torch.equal(t, u), name
    finally:
        OBJECTIVES.pop("test-critic", None)


def test_checkpoints_from_before_named_optimizers_still_resume():
    cfg = TrainConfig(precision="fp32", device="cpu")
    system = System.setup("cpu", "fp32", True)
    torch.manual_seed(0)
    state = TrainState.create(VAE(SMALL), cfg, system, steps_per_epoch=4)
    run_steps(state, batches(2, seed=2))
    tensors, meta = state.capture(world=1, data_fingerprint="x")
    legacy = {(k.replace("optim.model.", "optim.", 1)): v for k, v in tensors.items()}  # the old layout: one optimizer, no name
    legacy_meta = {k: v for k, v in meta.items() if k != "optimizers"} | {"param_groups": meta["optimizers"]["model"]}
    fresh = TrainState.create(VAE(SMALL), cfg, system, steps_per_epoch=4)
    fresh.restore(legacy, legacy_meta, rank=0)
    moments = state.optimizers["model"].state_dict()["state"]
    again = fresh.optimizers["model"].state_dict()["state"]
    assert moments.keys() == again.keys() and all(torch.equal(moments[i]["exp_avg"], again[i]["exp_avg"]) for i in moments)


def test_freezing_asks_the_model_for_its_parts():
    model = build_model(SMALL, TrainConfig(freeze="decoder", init_from=None))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(("fc_decode.", "decoder."))}
    assert {n for n, p in build_model(SMALL, TrainConfig(freeze="encoder")).named_parameters() if not p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.startswith(("encoder.", "fc_mu.", "fc_logvar."))
    }
