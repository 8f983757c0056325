"""`animevae evaluate` end to end on the tiny run: every metric written, FID/KID skipped in one line without Inception."""

from __future__ import annotations

import json
import math

import pytest

from animevae.evaluation.two_sample import split_sizes

# -- the command -------------------------------------------------------------------------------------------------------

LIKELIHOOD_KEYS = {"neg_elbo_per_image", "neg_elbo_per_dim", "neg_iwae_per_image", "neg_iwae_per_dim", "iwae_k", "recon_per_image", "kl_per_image"}
SAMPLER_NAMES = {"mix_k2", "mix_k4", "mix_k16", "mix_all", "prior", "gmm", "two_stage", "diffusion"}


def test_evaluate_writes_every_metric(cli, run_copy, tmp_path):
    out = tmp_path / "metrics.json"
    proc = cli(
        "evaluate",
        "--run",
        run_copy,
        "--data",
        "builtin",
        "--k",
        4,
        "--n-samples",
        24,
        "--gmm-components",
        3,
        "--features",
        "animevae.evaluation.features:pixel_features",
        "--c2st-max-rounds",
        2,
        "--out",
        out,
    )
    m = json.loads(out.read_text())
    assert m["settings"]["c2st_max_rounds"] == 2 and all(r <= 2 for r in m["samplers"]["mix_k2"]["c2st"]["rounds"])
    config = json.loads((run_copy / "config.json").read_text())
    # builtin is the run's training source: its own held-out split is evaluated
    assert m["data"]["images"] == config["split"]["heldout"] and "held-out split" in m["data"]["evaluated_on"]
    assert LIKELIHOOD_KEYS <= set(m["likelihood"])
    lk = m["likelihood"]
    assert lk["neg_elbo_per_dim"] == pytest.approx(lk["neg_elbo_per_image"] / (3 * 96 * 96))
    assert lk["neg_elbo_per_image"] == pytest.approx(lk["recon_per_image"] + lk["kl_per_image"])
    assert lk["neg_iwae_per_image"] <= lk["neg_elbo_per_image"] + 1.0  # IWAE >= ELBO (up to Monte-Carlo noise in the KL)
    assert set(m["reconstruction"]) >= {"mse", "psnr", "ssim"}
    rc = m["reconstruction"]
    assert 0 < rc["mse"] < 1 and rc["psnr"] == pytest.approx(10 * math.log10(1 / rc["mse"]), abs=3) and -1 <= rc["ssim"] <= 1
    assert m["latents"]["latent_dim"] == 256 and 0 <= m["latents"]["active_units"] <= 256 and m["latents"]["kl_per_image"] > 0
    assert set(m["samplers"]) == SAMPLER_NAMES
    for name, s in m["samplers"].items():
        assert s["diversity_rms"] > 0 or name == "mix_all", name
        mem = s["memorisation"]
        assert {"median_nearest_train_rms", "near_copies", "near_copy_threshold_rms"} <= set(mem)
        assert mem["near_copy_threshold_rms"] == 10.0 and 0 <= mem["near_copies"] <= 24
        assert s["fid"] is not None and s["fid"] >= -1e-6 and s["kid"] is not None
    # mixing more latents averages faces together: less diverse
    assert m["samplers"]["mix_k2"]["diversity_rms"] > m["samplers"]["mix_k16"]["diversity_rms"] > m["samplers"]["mix_all"]["diversity_rms"]
    assert m["fid_kid"]["features"] == "animevae.evaluation.features:pixel_features" and m["fid_kid"]["skipped"] is None
    for word in ("ELBO", "IWAE", "PSNR", "SSIM", "active units", "mix_k16", "gmm", "FID", "KID", "realism ladder"):
        assert word in proc.stdout
    # the classifier two-sample test runs on the run's own sampler (the seed preset's: mix, k=2) only, by default
    c2st = m["samplers"]["mix_k2"]["c2st"]
    n = min(24, m["data"]["images"])  # samples and held-out faces: the smaller set decides
    check_mean_of_seeds(c2st, 3)
    assert c2st["scored_on_per_class"] == split_sizes(n)[2]
    assert list(c2st["by_size"]) == ["96px", "48px", "32px", "24px", "16px"] and c2st["by_size"]["96px"]["accuracy"] == c2st["accuracy"]
    assert m["settings"]["c2st_sizes"] == [96, 48, 32, 24, 16]
    ladder = proc.stdout[proc.stdout.index("realism ladder") :].splitlines()
    row = next(line for line in ladder if line.strip().startswith("mix_k2 "))  # the ladder table shows the file's figures
    assert row.split()[1:6] == [f"{c2st['by_size'][px]['accuracy']:.3f}" for px in c2st["by_size"]]
    up_to = c2st["real_up_to"]
    assert row.split()[6:] == (["INVALID"] if not c2st["valid"] else ["none"] if up_to is None else [str(up_to), "px"])
    # the positive control ran, and this classifier (2 rounds) is told whether it learned
    control = m["c2st_control"]
    assert control["size"] == 96 and control["sigma_px"] == 1.0 and c2st["valid"] == control["caught"] == recons_valid(m)
    assert "control: real faces blurred by 1 px" in proc.stdout
    assert 0 < m["samplers"]["mix_k2"]["high_frequency_ratio"] < 1  # a 2-epoch model draws less fine detail than real faces
    assert all("c2st" not in s for name, s in m["samplers"].items() if name != "mix_k2")
    # and on the decoder's own reconstructions of as many training faces: the reference for every sampler
    recons = m["reconstructions"]["c2st"]
    check_mean_of_seeds(recons, 3)
    assert recons["scored_on_per_class"] == split_sizes(n)[2]
    assert "recons" in proc.stdout and "the decoder's own" in proc.stdout


def recons_valid(m: dict) -> bool:
    return m["reconstructions"]["c2st"]["valid"]


def check_mean_of_seeds(c2st: dict, seeds: int) -> None:
    """The reported accuracy is the mean of one balanced accuracy per seed, each scored on the same faces per class.

    What the accuracy means (about 0.5 for two halves of one set, near 1 for sets told apart at a glance) is
    tests/evaluation/test_two_sample.py's; here: the report ran the seeds it says and averaged them."""
    per_seed, m = c2st["per_seed"], c2st["scored_on_per_class"]
    assert len(per_seed) == seeds and m > 0
    # right answers on m fakes and m real faces, each class counting half: a multiple of 1 / (2 m) in [0, 1]
    assert all(0 <= a <= 1 and abs(a * 2 * m - round(a * 2 * m)) < 1e-6 for a in per_seed), (per_seed, m)
    assert c2st["accuracy"] == pytest.approx(sum(per_seed) / seeds)


def test_evaluate_a_chosen_sampler_and_its_two_sample_test(cli, run_copy, tmp_path):
    out = tmp_path / "m.json"
    common = (
        "--run",
        run_copy,
        "--data",
        "builtin",
        "--k",
        2,
        "--n-samples",
        16,
        "--features",
        "animevae.evaluation.features:pixel_features",
        "--c2st-max-rounds",
        2,
        "--out",
        out,
    )
    cli("evaluate", *common, "--samplers", "prior,mix_all", "--c2st-samplers", "prior", "--c2st-seeds", 2)
    m = json.loads(out.read_text())
    assert set(m["samplers"]) == {"prior", "mix_all"}
    check_mean_of_seeds(m["samplers"]["prior"]["c2st"], 2)
    assert "c2st" not in m["samplers"]["mix_all"] and m["settings"]["c2st_seeds"] == 2
    check_mean_of_seeds(m["reconstructions"]["c2st"], 2)
    cli("evaluate", *common, "--samplers", "prior", "--c2st-samplers", "prior", "--c2st-seeds", 1, "--c2st-sizes", "24,16,200")
    m = json.loads(out.read_text())
    assert list(m["samplers"]["prior"]["c2st"]["by_size"]) == ["24px", "16px"] == list(m["reconstructions"]["c2st"]["by_size"])
    sizes = cli("evaluate", *common, "--c2st-sizes", "24,x", check=False)
    assert sizes.returncode == 2 and "comma-separated sizes" in sizes.stderr and "Traceback" not in sizes.stderr
    bad = cli("evaluate", *common, "--samplers", "best", check=False)
    assert bad.returncode == 2 and "sampler 'best'" in bad.stderr and "Traceback" not in bad.stderr
    few = cli("evaluate", *common[:-2], "--limit", 3, "--out", out, check=False)  # 3 held-out faces: too few for the test
    assert few.returncode == 2 and "at least 4" in few.stderr and "--c2st-seeds 0" in few.stderr and "Traceback" not in few.stderr


def test_evaluate_without_inception_skips_fid_in_one_line(cli, run_copy, tmp_path):
    out = tmp_path / "m.json"
    proc = cli(
        "evaluate",
        "--run",
        run_copy,
        "--data",
        "builtin",
        "--limit",
        6,
        "--k",
        2,
        "--n-samples",
        8,
        "--gmm-covariance",
        "diag",
        "--gmm-components",
        2,
        "--c2st-max-rounds",
        1,
        "--out",
        out,
    )
    skipped = [line for line in (proc.stdout + proc.stderr).splitlines() if "FID/KID skipped" in line]
    assert len(skipped) == 1 and "--inception-weights" in skipped[0] and "--features" in skipped[0]
    m = json.loads(out.read_text())
    assert m["data"]["images"] == 6
    assert m["fid_kid"]["skipped"] and all(s["fid"] is None and s["kid"] is None for s in m["samplers"].values())
    assert "memorisation" in m["samplers"]["prior"] and m["likelihood"]["iwae_k"] == 2
    assert "Traceback" not in proc.stderr


def test_a_classifier_that_cannot_learn_makes_the_ladder_invalid_not_realistic(run_copy, tmp_path, monkeypatch, capsys):
    """Break the classifier on purpose (a learning rate of 0: its weights never move): every rung then reads about 0.5,
    which would look like perfect realism; the positive control is not caught, so evaluate says the ladder is INVALID."""
    from animevae.config import DataConfig
    from animevae.evaluation import two_sample
    from animevae.evaluation.report import evaluate

    monkeypatch.setattr(two_sample, "LR", 0.0)
    m, _ = evaluate(
        str(run_copy), DataConfig(source="builtin"), out=tmp_path / "m.json", k=1, n_samples=40, samplers=["mix_k2"], c2st_seeds=1,
        c2st_max_rounds=2, c2st_sizes=[48, 24], features="animevae.evaluation.features:pixel_features", progress=False,
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert not m["c2st_control"]["caught"] and m["c2st_control"]["accuracy"] < 0.9
    for c2st in (m["samplers"]["mix_k2"]["c2st"], m["reconstructions"]["c2st"]):
        assert not c2st["valid"] and c2st["real_up_to"] is None and "not learning" in c2st["invalid_because"]
    assert json.loads((tmp_path / "m.json").read_text())["samplers"]["mix_k2"]["c2st"]["valid"] is False
    ladder = out[out.index("realism ladder") :]
    assert ladder.count("INVALID") == 3  # each row and the control line
    assert "warning: the two-sample test's positive control failed" in err and "INVALID" in err
