"""Helpers for the benchmarks: time several candidates in ONE run, interleaved, with caches off, and report ratios.

A benchmark must measure the work, never the cache: every benchmark runs with a fresh temporary cache
(``ROBUSTBOOK_CACHE`` pointed at an empty folder, so models are trained afresh too) and calls the measured
functions with caching off; its JSON says so.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ["ROBUSTBOOK_CACHE"] = tempfile.mkdtemp(prefix="robustbook-bench-")
os.environ.setdefault("ROBUSTBOOK_PROGRESS", "0")

import torch  # noqa: E402

from robustbook.runtime import reference_workload  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
torch.set_num_threads(int(os.environ.get("ROBUSTBOOK_THREADS", "2")))


def compare(candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict:
    """Median wall time of each candidate; runs are interleaved so load changes hit all alike."""
    from robustbook.runtime import caching_off

    with caching_off():
        for fn in candidates.values():
            for _ in range(warmup):
                fn()
        times = {name: [] for name in candidates}
        for _ in range(repeats):
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(name: str, payload: dict) -> dict:
    payload = {**payload, "cache": "off: a fresh temporary cache, caching_off() around the timed calls",
               "machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                           "reference_workload_seconds": reference_workload()}}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return payload
