"""Which precision ``--precision auto`` picks on a CPU: bf16 only where its kernels run natively and measure faster."""

import os
import subprocess
import sys

import pytest
import torch

from animevae.training import system


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bf16 that runs it twice as fast as fp32 and nothing capped, whatever this machine is."""
    monkeypatch.setattr(system, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(system, "bf16_matmul_speedup", lambda: 2.0)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def test_auto_picks_bf16_where_the_cpu_has_it(bf16_cpu):
    assert system.cpu_has_bf16()
    assert system.pick_precision("auto", torch.device("cpu")) is torch.bfloat16


@pytest.mark.parametrize("speedup", [0.55, 1.2])
def test_auto_picks_fp32_where_bf16_measures_slower_or_barely_faster(bf16_cpu, monkeypatch, speedup):
    """The instructions alone do not make bf16 pay: an Intel Xeon with AVX512-BF16 and no AMX ran bf16 matmuls at 0.55x."""
    monkeypatch.setattr(system, "bf16_matmul_speedup", lambda: speedup)
    assert system.cpu_has_bf16()
    assert system.pick_precision("auto", torch.device("cpu")) is None
    assert system.pick_precision("bf16", torch.device("cpu")) is torch.bfloat16  # asked for by name, it is used


def test_the_speedup_is_measured_once_and_is_a_ratio_of_rates():
    first = system.bf16_matmul_speedup()
    assert first > 0 and system.bf16_matmul_speedup() == first  # cached: one measurement per process


def test_auto_picks_fp32_without_the_instructions(bf16_cpu, monkeypatch):
    monkeypatch.setattr(system, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert system.pick_precision("auto", torch.device("cpu")) is None


@pytest.mark.parametrize("isa", ["AVX2", "avx2", "AVX512_CORE", "AVX512_CORE_VNNI", "SSE41"])
def test_auto_picks_fp32_when_onednn_is_capped_below_bf16(bf16_cpu, monkeypatch, isa):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert not system.cpu_has_bf16()


@pytest.mark.parametrize("isa", ["AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"])
def test_auto_keeps_bf16_when_the_cap_includes_it(bf16_cpu, monkeypatch, isa):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert system.cpu_has_bf16()


def test_auto_picks_fp32_when_torch_is_capped_below_avx512(bf16_cpu, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not system.cpu_has_bf16()


def test_a_process_started_with_the_avx2_kernels_trains_in_fp32():
    """The real environment variables, in a fresh process: what an AVX2-only CPU's run sees."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    code = "import torch; from animevae.training.system import pick_precision; print(pick_precision('auto', torch.device('cpu')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "None"
