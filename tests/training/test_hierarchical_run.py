"""A hierarchical run end to end through the real CLI: training logs each group's KL, every command works on it
unchanged, --fine-temperature reaches the finer groups, evaluate reports the KL per group, torchrun trains it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from animevae.runs import load_tensors

SMALL = ["--data", "builtin", "--builtin-count", "320", "--image-size", "48", "--base-channels", "8", "--latent-dim", "144", "--batch-size", "32"]
HIER = ["--preset", "sharp", "--arch", "hierarchical", *SMALL]


@pytest.fixture(scope="module")
def hier_run(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("hier") / "run"
    cli("train", *HIER, "--epochs", "2", "--out", out, "--quiet", "--seed", "1")
    return out


def test_training_logs_each_groups_kl_and_every_group_is_used(hier_run):
    lines = [json.loads(s) for s in (hier_run / "metrics.jsonl").read_text().splitlines()]
    last = lines[-1]
    assert {"kl0", "kl1", "kl2"} <= set(last)
    assert last["kl1"] > 1 and last["kl2"] > 1  # the finer groups carry information
    config = json.loads((hier_run / "config.json").read_text())
    assert config["model"]["arch"] == "hierarchical"
    assert load_tensors(hier_run / "latents.safetensors")["mu"].shape[1] == 144  # the latents file holds the top group


def test_the_last_clean_pass_keeps_detail_latents_that_a_joint_mixture_draws_from(hier_run, cli, tmp_path):
    """The latents file of a hierarchical run holds each face's 12-px detail latents and 24-px fine latents;
    ``--sampler joint-gmm`` fits a mixture over [top, detail, the fine ones' principal components] once (kept in the
    run), and a seed fixes its faces."""
    latents = load_tensors(hier_run / "latents.safetensors")
    assert latents["detail"].shape == (len(latents["mu"]), 8 * 12 * 12) and latents["detail"].dtype == torch.float16
    assert latents["fine"].shape == (len(latents["mu"]), 4 * 24 * 24) and latents["fine"].dtype == torch.float16
    for name in ("detail", "fine"):
        assert 0.01 < float(latents[name].float().std()) < 20  # whitened values, not zeros
    faces = {}
    for name in ("first", "again"):
        proc = cli("generate", "--run", hier_run, "--sampler", "joint-gmm", "--gmm-components", "3", "--n", "8", "--out", tmp_path / name)
        faces[name] = np.stack([np.asarray(Image.open(tmp_path / name / f"{i:05d}.png")) for i in range(8)])
        assert ("fitting 3 full-covariance components" in proc.stderr) == (name == "first")
    assert np.array_equal(faces["first"], faces["again"])
    mixture = load_tensors(hier_run / "joint_gmm_3_full.safetensors")
    k = min(256, len(latents["mu"]) - 1)  # the fine latents' principal components it draws
    assert mixture["means"].shape == (3, 144 + 8 * 12 * 12 + k) and mixture["fine_basis"].shape == (4 * 24 * 24, k)


def test_the_hierarchical_preset_fits_its_joint_mixture_when_training_ends(cli, tmp_path):
    """``--preset hierarchical``: the hierarchical model with joint-gmm as its own sampler, fitted as the run's last step
    and the one evaluate puts on the ladder by default."""
    run = tmp_path / "preset"
    proc = cli("train", "--preset", "hierarchical", *SMALL, "--epochs", "1", "--out", run, "--seed", "4")
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["arch"] == "hierarchical" and config["train"]["sampler"] == "joint-gmm" and config["train"]["beta"] == 0.1
    assert (run / "joint_gmm_30_full.safetensors").is_file() and "joint_gmm_30_full.safetensors: fitted in" in proc.stderr
    out = tmp_path / "evaluation.json"
    cli(
        *("evaluate", "--run", run, "--data", "builtin", "--n-samples", "16", "--k", "2", "--samplers", "joint_gmm"),
        *("--c2st-seeds", "1", "--c2st-max-rounds", "1", "--c2st-sizes", "16", "--features", "animevae.evaluation.features:pixel_features", "--out", out),
    )
    assert list(json.loads(out.read_text())["samplers"]["joint_gmm"]["c2st"]["by_size"]) == ["16px"]


def test_a_run_without_detail_latents_ends_with_a_note_not_an_error(cli, tmp_path):
    """The hierarchical preset with --clean-latents never keeps no detail latents: training ends normally and says so."""
    run = tmp_path / "no_detail"
    proc = cli("train", "--preset", "hierarchical", *SMALL, "--epochs", "1", "--clean-latents", "never", "--out", run)
    assert "detail" not in load_tensors(run / "latents.safetensors") and "own sampler was not fitted" in proc.stderr and "--sampler gmm" in proc.stderr
    assert not (run / "joint_gmm_30_full.safetensors").exists()


def test_joint_gmm_on_a_one_group_run_says_what_to_use(sharp_run, cli, tmp_path):
    proc = cli("generate", "--run", sharp_run, "--sampler", "joint-gmm", "--out", tmp_path / "x", check=False)
    assert proc.returncode != 0 and "--sampler gmm" in proc.stderr and "Traceback" not in proc.stderr


def test_fine_temperature_reaches_the_finer_groups(hier_run, cli, tmp_path):
    faces = {}
    cold = ["--fine-temperature", "0"]
    for name, extra in {"own": [], "cold": cold, "cold_again": cold, "hot": ["--fine-temperature", "2,2"]}.items():
        cli("generate", "--run", hier_run, "--n", "8", "--out", tmp_path / name, *extra)
        faces[name] = np.stack([np.asarray(Image.open(tmp_path / name / f"{i:05d}.png"), dtype=np.float64) for i in range(8)])
    assert np.array_equal(faces["cold"], faces["cold_again"])
    assert not np.array_equal(faces["own"], faces["cold"])
    assert np.abs(faces["hot"] - faces["cold"]).mean() > np.abs(faces["own"] - faces["cold"]).mean()  # the same top latents, drawn further


@pytest.mark.parametrize("value, says", [("-1", "expected a temperature of 0 or more"), ("warm", "expected a temperature")])
def test_a_bad_fine_temperature_is_a_one_line_error(hier_run, cli, value, says):
    proc = cli("generate", "--run", hier_run, "--fine-temperature", value, check=False)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_fine_temperature_on_a_one_group_run_says_what_it_is_for(sharp_run, cli, tmp_path):
    proc = cli("generate", "--run", sharp_run, "--fine-temperature", "0.5", "--out", tmp_path / "x", check=False)
    assert proc.returncode != 0 and "--arch hierarchical" in proc.stderr and "Traceback" not in proc.stderr


def test_reconstruct_interpolate_and_traverse_work_unchanged(hier_run, cli, tmp_path):
    cli("reconstruct", "--run", hier_run, "--data", "builtin", "--n", "4", "--out", tmp_path / "recon.png")
    cli("interpolate", "--run", hier_run, "--steps", "4", "--mode", "lerp", "--out", tmp_path / "interp")
    cli("traverse", "--run", hier_run, "--steps", "3", "--rows", "2", "--out", tmp_path / "trav.png")
    assert Image.open(tmp_path / "recon.png").size[0] > 0 and (tmp_path / "interp" / "interpolation.png").is_file() and (tmp_path / "trav.png").is_file()


def test_reconstruct_draws_from_the_posterior_unless_told_the_means(hier_run, sharp_run, cli, tmp_path):
    """A hierarchical run's reconstructions decode a seeded posterior draw (the same grid twice), ``--latents mean``
    its means; the inputs are the same either way. A one-latent run decodes its means unless told to draw."""
    grids = {}
    for name, (run, flags) in {
        "default": (hier_run, []),
        "again": (hier_run, []),
        "draw": (hier_run, ["--latents", "draw"]),
        "mean": (hier_run, ["--latents", "mean"]),
        "seed1": (hier_run, ["--seed", "1"]),
        "flat": (sharp_run, []),
        "flat_mean": (sharp_run, ["--latents", "mean"]),
        "flat_draw": (sharp_run, ["--latents", "draw"]),
    }.items():
        cli("reconstruct", "--run", run, "--data", "builtin", "--n", "4", *flags, "--out", tmp_path / f"{name}.png")
        grids[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    half = grids["mean"].shape[0] // 2  # one row of inputs above one of reconstructions
    assert np.array_equal(grids["default"], grids["again"]) and np.array_equal(grids["default"], grids["draw"])
    assert np.array_equal(grids["default"][:half], grids["mean"][:half]) and not np.array_equal(grids["default"], grids["mean"])
    assert not np.array_equal(grids["default"], grids["seed1"])
    assert np.array_equal(grids["flat"], grids["flat_mean"]) and not np.array_equal(grids["flat"], grids["flat_draw"])


def test_evaluate_reports_the_kl_of_each_group(hier_run, cli, tmp_path):
    out = tmp_path / "evaluation.json"
    proc = cli(
        *("evaluate", "--run", hier_run, "--data", "builtin", "--n-samples", "24", "--k", "2", "--samplers", "prior,gmm"),
        *("--c2st-samplers", "gmm", "--c2st-seeds", "1", "--c2st-max-rounds", "2", "--c2st-sizes", "24,16"),
        *("--features", "animevae.evaluation.features:pixel_features", "--out", out),
    )
    m = json.loads(out.read_text())
    groups = m["latents"]["kl_per_group"]
    assert list(groups) == ["top 4x6x6", "8x12x12", "4x24x24"]
    assert abs(sum(groups.values()) - m["latents"]["kl_per_image"]) < 1e-3 * m["latents"]["kl_per_image"]
    assert m["likelihood"]["neg_iwae_per_image"] <= m["likelihood"]["neg_elbo_per_image"] + 1.0
    assert m["reconstructions"]["c2st"]["paired"] is True  # reconstructions of held-out faces, each beside its own face
    assert "every latent drawn from the posterior" in m["reconstructions"]["c2st"]["note"]
    assert m["settings"]["fine_temperatures"] == [1.0, 1.2]  # what the samples' finer groups were drawn at
    assert "KL per group: top 4x6x6" in proc.stdout


def test_the_demo_draws_the_same_grid_for_the_same_seed(hier_run):
    from animevae.demo import DemoModel

    demo = DemoModel(str(hier_run))
    grid = demo.generate_grid("gmm", 4, 0, 2, 1.0)
    assert grid.ndim == 3 and grid.shape[2] == 3
    assert np.array_equal(grid, demo.generate_grid("gmm", 4, 0, 2, 1.0))  # a seed fixes the finer groups' draws too


def test_torchrun_trains_a_hierarchical_model(tmp_path):
    out = tmp_path / "ddp"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(port), "-m", "animevae", "train", *HIER, "--epochs", "1", "--out", str(out), "--quiet", "--seed", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert "kl2" in json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def test_fine_tuning_starts_from_every_groups_weights(hier_run, cli, tmp_path):
    out = tmp_path / "tuned"
    cli("train", "--init-from", hier_run, "--data", "builtin", "--builtin-count", "64", "--epochs", "1", "--out", out, "--quiet")
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["arch"] == "hierarchical" and config["train"]["lr"] == 1e-4
    before, after = load_tensors(hier_run / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert before.keys() == after.keys()
    moved = [k for k in before if before[k].is_floating_point() and not np.allclose(before[k], after[k])]
    assert moved and max(float((before[k] - after[k]).abs().max()) for k in moved) < 0.05  # a few small steps from the trained weights


def test_a_stacked_run_trains_generates_and_names_each_group(cli, tmp_path):
    """``--arch hierarchical-stacked`` (three groups per finer scale) through the same commands: every group logged
    and used, evaluate names the groups of one scale apart, generate draws them."""
    run = tmp_path / "stacked"
    cli("train", "--preset", "sharp", "--arch", "hierarchical-stacked", *SMALL, "--epochs", "1", "--out", run, "--quiet", "--seed", "3")
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert all(last[f"kl{g}"] > 0.1 for g in range(1, 7)) and "kl7" not in last
    out = tmp_path / "evaluation.json"
    cli(
        *("evaluate", "--run", run, "--data", "builtin", "--n-samples", "16", "--k", "2", "--samplers", "gmm", "--c2st-samplers", "gmm"),
        *("--c2st-seeds", "1", "--c2st-max-rounds", "1", "--c2st-sizes", "16", "--features", "animevae.evaluation.features:pixel_features", "--out", out),
    )
    groups = json.loads(out.read_text())["latents"]["kl_per_group"]
    assert list(groups) == ["top 4x6x6", "3x12x12", "3x12x12 #2", "3x12x12 #3", "2x24x24", "2x24x24 #2", "2x24x24 #3"]
    cli("generate", "--run", run, "--n", "4", "--fine-temperature", "0.5", "--out", tmp_path / "faces")
    assert np.asarray(Image.open(tmp_path / "faces" / "00003.png")).shape == (48, 48, 3)
