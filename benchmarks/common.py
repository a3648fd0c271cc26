"""Helpers for the benchmarks: time several candidates in ONE run, interleaved, and report ratios."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

OUT = Path(__file__).resolve().parent / "results"


def compare(candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict:
    """Median wall time of each candidate; runs are interleaved so load changes hit all alike."""
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
    payload = {**payload, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return payload
