"""What a run runs on, and what its numbers depend on besides its code, recipe and seed: the device, the
processor's arithmetic, its cores and threads, a run's condition; and the pool of one-thread processes (on the CPU
one per core, on a GPU sharing it) that multi-seed jobs train in (runs.train_seeds)."""
from __future__ import annotations

import multiprocessing
import os
import platform
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPU flags of bf16 arithmetic units


def cpu_flags(cpuinfo: Path | str = "/proc/cpuinfo") -> list[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); [] where they cannot be read (macOS, Windows)."""
    try:
        return next((line.split(":", 1)[1].split() for line in Path(cpuinfo).read_text().splitlines()
                     if line.startswith("flags")), [])
    except OSError:
        return []


def processor(cpuinfo: Path | str = "/proc/cpuinfo") -> dict:
    """What identifies the CPU beyond its model-name line: vendor, family, model and stepping, and the sha256 of its
    sorted feature flags (Linux /proc/cpuinfo); {} where they cannot be read. Two processors of one `arithmetic`
    label can compute other floats (an AMD EPYC and an Intel Xeon, both "AVX512 +avx512_bf16")."""
    import hashlib
    try:
        lines = Path(cpuinfo).read_text().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if "flags" not in fields:
        return {}
    return dict(vendor=fields.get("vendor_id"), family=fields.get("cpu family"), model=fields.get("model"),
                stepping=fields.get("stepping"),
                flags_sha256=hashlib.sha256(" ".join(sorted(fields["flags"].split())).encode()).hexdigest())


def native_bf16(cpuinfo: Path | str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): the CPUs on which bf16 autocast was measured
    faster. Read from the Linux CPU flags; False where they cannot be read (macOS, Windows): fp32 is safe there."""
    return any(flag in cpu_flags(cpuinfo) for flag in NATIVE_BF16_FLAGS)


def arithmetic(device: torch.device | str = "cpu", cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """What decides the floats a run computes, beyond its code and seed: on the CPU, torch's kernel capability
    (`torch.backends.cpu.get_cpu_capability()`: "AVX2", "AVX512", ...) and the bf16 units its flags name
    (`NATIVE_BF16_FLAGS`: oneDNN's bf16 kernels differ by them), e.g. "AVX512 +avx512_bf16 +amx_bf16";
    on a GPU, "cuda sm_<major><minor>". The processor's model-name line cannot tell these apart ("AMD EPYC" has
    been both an AVX2 CPU and one with avx512_bf16, and bf16 ran 2.5x slower on the first, through other kernels)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda sm_{major}{minor}"
    if device.type != "cpu":
        return device.type
    flags = set(cpu_flags(cpuinfo))
    return " ".join([torch.backends.cpu.get_cpu_capability(), *(f"+{f}" for f in NATIVE_BF16_FLAGS if f in flags)])


def device_name(device: torch.device) -> str:
    """The GPU's name, or the processor's model name (results depend on it, and on the thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a named device must exist."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if name not in available:
        raise ValueError(f"device={name!r} is not known; allowed: 'auto', 'cpu', 'cuda', 'mps'")
    if not available[name]:
        present = [d for d, ok in available.items() if ok]
        raise ValueError(f"device={name!r} is not present on this machine; present: {present} (or use 'auto')")
    return torch.device(name)


def usable_cores() -> list[int]:
    """The cores this process may run on. Linux knows its affinity; macOS and Windows have no
    `os.sched_getaffinity`, so there every core counts."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def set_threads(threads: int | None = None) -> int:
    """Intra-op threads for CPU work. Default: one per core the process may use, since on small
    CPUs an oversubscribed pool collapses when another process takes a core (measured in the README)."""
    threads = threads or len(usable_cores())
    torch.set_num_threads(threads)
    return threads


def environment(device: torch.device) -> str:
    """One line: what this run ran on (torch, device and its name, cores, threads, Python)."""
    name = device_name(device) + ("" if device.type == "cuda" else f", {len(usable_cores())} cores")
    return (f"torch {torch.__version__} | device {device.type} ({name}) | {torch.get_num_threads()} threads | "
            f"python {platform.python_version()}")


CONDITION_KEYS = ("device_name", "arithmetic", "threads", "precision", "memory_format")


def run_condition(run: dict) -> tuple:
    """What a run's numbers depend on besides its model, recipe and seed (CONDITION_KEYS): processor (or GPU) and
    its arithmetic (`arithmetic`: which kernels computed the floats), thread count, precision ('fp32' or 'bf16'
    autocast) and memory format. Runs are compared only under one condition. Records from before precision was
    recorded were fp32, contiguous; those from before arithmetic was recorded have it as None (unknown), which
    matches no measured one, until `relabel_arithmetic` writes in what can be inferred."""
    return (run.get("device_name"), run.get("arithmetic"), run.get("threads"), run.get("precision", "fp32"),
            run.get("memory_format", "contiguous"))


def condition_of(device: torch.device | str, threads: int, hp: dict) -> dict:
    """The condition (CONDITION_KEYS -> value) that a run on `device` with `threads` threads and hyperparameters `hp`
    is made under, as its record states it (`make_record`): `run_condition` of that record is its values."""
    device = torch.device(device)
    return dict(device_name=device_name(device), arithmetic=arithmetic(device), threads=threads,
                precision="bf16" if hp.get("bf16") else "fp32",
                memory_format="channels_last" if hp.get("channels_last") else "contiguous")


POOL_DATA: dict = {}  # in a pinned_pool worker: the data the pool was given, on the worker's device


def _init_pinned_worker(cores, device: str, data: dict | None) -> None:
    """Pool initializer: one thread; on the CPU this worker takes the next free core, so runs never share one."""
    core = cores.get()
    if device == "cpu" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    POOL_DATA.update({k: v.to(device) for k, v in (data or {}).items()})


def pinned_pool(jobs: int, device: str = "cpu", data: dict | None = None):
    """A pool of `jobs` fresh (spawned) processes with one thread each, on the CPU each pinned to its own core:
    on small CPUs two one-thread runs side by side get through more images than one two-thread run
    (research log, performance). On a GPU the processes share the device. `data` (tensors) is sent to each
    worker once, as POOL_DATA, moved to `device`."""
    ctx = multiprocessing.get_context("spawn")
    cores = ctx.Manager().Queue()
    for core in (usable_cores() * jobs)[:jobs]:
        cores.put(core)
    data = {k: v.cpu() for k, v in (data or {}).items()}  # CPU tensors travel; CUDA ones would need IPC
    return ctx.Pool(jobs, initializer=_init_pinned_worker, initargs=(cores, str(device), data))
