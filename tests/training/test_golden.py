"""The seed preset's path, pinned: 42 fp32 CPU steps on real faces must reproduce every loss bit for bit.

Any change to what the seed preset computes (state_dict keys, initialisation order, the number of
random draws per step, the order of floating-point operations) changes a loss or a hash below and
fails this test. The values were recorded before the seams redesign (issue 11) and must never be
re-recorded to make a refactor pass: a change that means to alter the seed preset says so in its
commit and in docs/results.md.

Bit-identity holds for one torch build, CPU kernel family and thread count; the test pins the thread
count and, on another torch or CPU family, still checks every loss to 1e-4 relative (oneDNN picks
other kernels there) and says why it cannot compare bits.

Print the values of the current code: ``python tests/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

import animevae.training.loop as train_module
from animevae.config import PRESETS, DataConfig, ModelConfig, TrainConfig
from animevae.training.loop import train

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "anime-faces-96"

RECORDED_ON = {"torch": "2.13.0+cpu", "cpu_capability": "AVX512", "threads": 2}
STEP_LOSSES = [  # every training step's loss (float.hex: exact), recorded on the commit before the redesign
    "0x1.4792980000000p+14",
    "0x1.43627e0000000p+14",
    "0x1.359d840000000p+14",
    "0x1.2dbb3a0000000p+14",
    "0x1.2a54e00000000p+14",
    "0x1.2707a60000000p+14",
    "0x1.2487680000000p+14",
    "0x1.21f1440000000p+14",
    "0x1.1f5ef40000000p+14",
    "0x1.1f0a3a0000000p+14",
    "0x1.1b6de40000000p+14",
    "0x1.1bba5c0000000p+14",
    "0x1.1b41d20000000p+14",
    "0x1.14eaca0000000p+14",
    "0x1.162d4e0000000p+14",
    "0x1.138daa0000000p+14",
    "0x1.1432ac0000000p+14",
    "0x1.13c1ca0000000p+14",
    "0x1.11ff8a0000000p+14",
    "0x1.0ee0a60000000p+14",
    "0x1.0e31740000000p+14",
    "0x1.0c081a0000000p+14",
    "0x1.0ea9940000000p+14",
    "0x1.098a4a0000000p+14",
    "0x1.09b7c40000000p+14",
    "0x1.0659460000000p+14",
    "0x1.03ffc80000000p+14",
    "0x1.056e620000000p+14",
    "0x1.07fcc40000000p+14",
    "0x1.0ddd8a0000000p+14",
    "0x1.08b1980000000p+14",
    "0x1.07c9480000000p+14",
    "0x1.077a100000000p+14",
    "0x1.0406260000000p+14",
    "0x1.00add40000000p+14",
    "0x1.06ce420000000p+14",
    "0x1.0704fa0000000p+14",
    "0x1.03ab8e0000000p+14",
    "0x1.02a1ce0000000p+14",
    "0x1.05578e0000000p+14",
    "0x1.02c8ee0000000p+14",
    "0x1.0377640000000p+14",
]
HELDOUT_LOSSES = [  # metrics.jsonl's heldout_loss of each epoch
    "0x1.61bd5147ae148p+14",
    "0x1.1675c0b851eb8p+14",
    "0x1.13f01ea3d70a4p+14",
]
WEIGHTS_SHA256 = "4c487cf33360336a8c888db0a3e5183d61ce943ed31e647689b2a6b35717e829"
LATENTS_SHA256 = "9535bca1f036d1396c3f7c4637e7e57eb66a608d52ea557281e5c79d66bdac66"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_seed_preset(out: Path, faces: Path) -> tuple[list[float], list[float]]:
    """Train the seed preset (fp32, CPU) for 3 epochs x 14 steps on 1,000 real faces: (every step's loss, each epoch's held-out loss)."""
    losses: list[float] = []
    original = train_module.train_step

    def recording(*args, **kwargs):
        terms, bad = original(*args, **kwargs)
        losses.append(terms.loss.item())
        return terms, bad

    threads = torch.get_num_threads()
    torch.set_num_threads(RECORDED_ON["threads"])
    train_module.train_step = recording
    try:
        train(
            ModelConfig(),
            TrainConfig(**{**PRESETS["seed"], "epochs": 3, "precision": "fp32", "device": "cpu", "seed": 3}),
            DataConfig(source=str(faces), limit=1000),
            out,
            progress=False,
        )
    finally:
        train_module.train_step = original
        torch.set_num_threads(threads)
    heldout = [json.loads(line)["heldout_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return losses, heldout


def same_platform() -> bool:
    return (torch.__version__, torch.backends.cpu.get_cpu_capability()) == (RECORDED_ON["torch"], RECORDED_ON["cpu_capability"])


def test_seed_preset_is_bit_identical_to_the_recorded_run(tmp_path):
    if not SHARED_FACES.is_dir():
        pytest.skip(f"the shared faces are not at {SHARED_FACES} (CI has ../shared beside the checkout)")
    losses, heldout = run_seed_preset(tmp_path / "run", SHARED_FACES)
    expected = [float.fromhex(h) for h in STEP_LOSSES]
    assert len(losses) == len(expected) == 42
    if not same_platform():
        assert losses == pytest.approx(expected, rel=1e-4)
        assert heldout == pytest.approx([float.fromhex(h) for h in HELDOUT_LOSSES], rel=1e-4)
        pytest.skip(
            f"bit-identity recorded on {RECORDED_ON}, this is torch {torch.__version__} on "
            f"{torch.backends.cpu.get_cpu_capability()}: losses checked to 1e-4 only"
        )
    mismatched = [(i, a.hex(), b.hex()) for i, (a, b) in enumerate(zip(losses, expected)) if a != b]
    assert not mismatched, f"first differing steps (step, got, recorded): {mismatched[:3]}"
    assert [v.hex() for v in heldout] == HELDOUT_LOSSES
    assert _sha256(tmp_path / "run" / "model.safetensors") == WEIGHTS_SHA256
    assert _sha256(tmp_path / "run" / "latents.safetensors") == LATENTS_SHA256


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        got, heldout = run_seed_preset(Path(tmp) / "run", SHARED_FACES)
        print("STEP_LOSSES = [")
        for i in range(0, len(got), 3):
            print("    " + " ".join(f'"{v.hex()}",' for v in got[i : i + 3]))
        print("]")
        print(f"HELDOUT_LOSSES = {[v.hex() for v in heldout]}")
        print(f'WEIGHTS_SHA256 = "{_sha256(Path(tmp) / "run" / "model.safetensors")}"')
        print(f'LATENTS_SHA256 = "{_sha256(Path(tmp) / "run" / "latents.safetensors")}"')
        print({"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}, file=sys.stderr)
