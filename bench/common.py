"""Shared helpers for benchmarks: the machine description, result files and memory peaks."""

from __future__ import annotations

import json
import os
import platform
import resource
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    import numpy
    import torch

    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        nproc = os.cpu_count()
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "nproc": nproc,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def code_version() -> dict[str, Any]:
    """Which copy of the package ran (``PYTHONPATH`` may pin an exported commit) and the
    repository's HEAD and whether its ``src/`` had uncommitted changes."""
    import subprocess

    import unmeasured

    root = Path(__file__).resolve().parent.parent
    info: dict[str, Any] = {
        "package_path": str(Path(unmeasured.__file__).parent),
        "pinned_commit": os.environ.get("UNMEASURED_BENCH_COMMIT"),
    }
    try:
        info["repo_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["repo_src_dirty"] = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "src"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


#: the code as the benchmark found it when it started (what it imported); results written
#: later record the code at that time too, in case the tree changed during the run
CODE_AT_START = code_version()


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: other work on the machine skews every timing."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class RssSampler:
    """Peak resident memory during a ``with`` block, sampled every ``interval`` seconds (the
    process-wide ``ru_maxrss`` never goes down, so it cannot tell two phases of one process
    apart); ``baseline_mb`` is the resident memory when the block starts."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.baseline_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.baseline_mb = self.peak_mb = current_rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "code": CODE_AT_START,
        "code_at_write": code_version(),
        "load_average_at_end": load_average(),
        **payload,
        "process_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
