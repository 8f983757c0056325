"""Where a run executes: device, precision, processes (DDP), memory settings, and stop signals.

``System.setup(cfg)`` is the one call; the training loop asks it for ``autocast()``, ``rank``,
``world`` and ``is_writer`` and never looks at the environment itself.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import UserError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device name (try cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def keep_freed_memory() -> None:
    """Ask glibc to serve blocks up to 32 MB from its heap and keep up to 64 MB free there for reuse.

    By default the threshold starts at 128 kB, so early activations are fresh mmaps whose pages fault
    in (and are zeroed) again on every batch. Fixed thresholds avoid that: on one epoch over 63,565
    faces the held-out + latents pass took 17.7 s instead of 20.1 s, peak memory 2.98 GB instead of
    2.89 GB (256 MB thresholds were faster still in isolation but peaked at 5.2 GB). No-op where the
    C library has no ``mallopt``.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.partition(":")[2].split()}


BF16_ONEDNN_ISAS = ("BF16", "AMX", "AVX10", "FP16")  # ONEDNN_MAX_CPU_ISA names whose kernels do bf16 natively


def cpu_has_bf16() -> bool:
    """Whether bf16 convolutions run natively here: the CPU has the instructions, and neither torch nor oneDNN is
    capped below them (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, as on an AVX2-only CPU);
    capped, oneDNN emulates bf16, far slower than fp32, so auto precision picks fp32 there."""
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return False
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    return isa in ("ALL", "DEFAULT", "") or any(part in isa for part in BF16_ONEDNN_ISAS)


# bf16 autocast trains on a CPU only where a bf16 matmul runs at least this much faster than an fp32 one. The
# instructions alone do not say: an AMD EPYC with AVX512-BF16 ran bf16 matmuls 2.2x as fast as fp32 and trained
# the seed preset 1.56x as fast in bf16 (benchmarks/peak.py), while an Intel Xeon with AVX512-BF16 and no AMX ran
# them at 0.55x and trained every preset slower in bf16 than in fp32 (benchmarks/precision.py)
BF16_MIN_SPEEDUP = 1.5


@functools.cache
def bf16_matmul_speedup(n: int = 512, reps: int = 4, tries: int = 3) -> float:
    """A bf16 n x n matmul's rate over an fp32 one's on this CPU, the best of a few timed loops each (about 0.05 s;
    measured once per process)."""
    best = {}
    for dtype in (torch.bfloat16, torch.float32):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        times = []
        for _ in range(tries):
            start = time.perf_counter()
            for _ in range(reps):
                a @ b
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


def cpu_bf16_pays() -> bool:
    """Whether bf16 autocast trains faster than fp32 here: the CPU runs bf16 natively (``cpu_has_bf16``) and a
    bf16 matmul measures at least ``BF16_MIN_SPEEDUP`` times as fast as an fp32 one."""
    return cpu_has_bf16() and bf16_matmul_speedup() >= BF16_MIN_SPEEDUP


def pick_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = fp32). auto: bf16 on a CPU where it measures faster (``cpu_bf16_pays``) and on
    GPUs that have it, fp16 on older GPUs."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_pays() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device): one process, or one of ``torchrun``'s (gloo on CPUs, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        device = pick_device(device_name)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return dist.get_rank(), world, device
    return 0, 1, pick_device(device_name)


def gather_rows(tensors: list[torch.Tensor], world: int) -> list[torch.Tensor]:
    """Concatenate each rank's rows on every rank (ranks may hold different counts)."""
    if world == 1:
        return tensors
    out = []
    for t in tensors:
        size = torch.tensor([len(t)])
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        biggest = int(max(s.item() for s in sizes))
        padded = torch.zeros((biggest, *t.shape[1:]), dtype=t.dtype)
        padded[: len(t)] = t
        parts = [torch.zeros_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]))
    return out


@dataclass
class System:
    rank: int
    world: int
    device: torch.device
    amp: torch.dtype | None  # autocast dtype; None = fp32
    memory_format: torch.memory_format

    @classmethod
    def setup(cls, device: str, precision: str, channels_last: bool) -> System:
        rank, world, dev = dist_setup(device)
        if dev.type == "cpu":
            keep_freed_memory()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        amp = pick_precision(precision, dev)
        if world > 1 and dev.type == "cpu" and precision == "auto":  # one precision for every rank: bf16 where it pays on all
            pays = torch.tensor([float(amp is not None)])
            dist.all_reduce(pays, op=dist.ReduceOp.MIN)
            amp = torch.bfloat16 if pays.item() > 0 else None
        return cls(rank, world, dev, amp, fmt)

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes files."""
        return self.rank == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a stop vote)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t)
        return t.item() > 0

    def max_over_ranks(self, value: float) -> float:
        """The largest of every rank's ``value``, on every rank."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next step and exits with a resume hint."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
