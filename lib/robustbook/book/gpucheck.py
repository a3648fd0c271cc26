"""``make gpu-check``: the GPU tests, then the colab profile of the chapters that run on local data, on one GPU.

Writes ``_build/gpu-check.json``: the device, per-chapter seconds, every claim's verdict, and — where the cpu
book has the same claim — whether the verdicts agree. Chapters whose data are not on disk (CIFAR, RobustBench
checkpoints) are skipped with the reason. Without a CUDA device it stops at once, saying so. Nothing here
downloads: the GPU machines this is meant for have no internet, so the data come from ``ROBUSTBOOK_DATA`` or
Debian's Fashion-MNIST package.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ..runtime import build_dir, project_root, results_dir, save_json
from .results import claim_key
from .runner import ChapterFailed, run_chapter
from .specs import resolve

# chapters 1, 3, 4, 6 run on MNIST in the colab profile (Fashion-MNIST where MNIST is not on disk); 5 on CIFAR-10
CHAPTERS = ("01_local_robustness", "03_certified_relaxed", "04_avoid_robust_inaccuracy", "05_robustness_metrics",
            "06_free_selectors")
NO_GPU = "gpu-check needs a CUDA device: torch.cuda.is_available() is False here; nothing was run"


def _available(dataset: str) -> str | None:
    """None when the dataset loads from disk without a download, else the reason it does not."""
    from ..data import DataNotAvailable, load_dataset

    if dataset in ("digits", "blobs"):
        return None
    try:
        load_dataset(dataset, download=False)
    except DataNotAvailable as err:
        return str(err).splitlines()[0]
    return None


def _compare(name: str, claims: list[dict]) -> list[dict]:
    path = results_dir() / f"{name}.claims.json"
    book = {claim_key(c["claim"]): c for c in json.loads(path.read_text())} if path.is_file() else {}
    rows = []
    for c in claims:
        cpu = book.get(claim_key(c["claim"]))
        rows.append({"claim": c["claim"], "verdict": c["verdict"], "mean": c["mean"],
                     "cpu_verdict": cpu["verdict"] if cpu else None, "cpu_mean": cpu["mean"] if cpu else None,
                     "same_verdict": (cpu["verdict"] == c["verdict"]) if cpu else None})
    return rows


def run(chapters=CHAPTERS, tests: bool = True) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(NO_GPU)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "chapters": {}, "tests": None}
    out = build_dir() / "gpu-check.json"
    if tests:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=project_root())
        report["tests"] = {"exit_code": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
    for name in chapters:
        params = resolve(name, "colab")
        overrides = {}
        reason = _available(params["dataset"])
        if reason and params["dataset"] == "mnist" and _available("fashion_mnist") is None:
            overrides, reason = {"dataset": "fashion_mnist"}, None
        if reason:
            report["chapters"][name] = {"skipped": reason}
            save_json(report, out)
            continue
        try:
            record = run_chapter(name, "colab", overrides)
        except ChapterFailed as err:
            report["chapters"][name] = {"failed": str(err)}
            save_json(report, out)
            continue
        claims = json.loads((Path(record["results"]) / f"{name}.claims.json").read_text())
        report["chapters"][name] = {"seconds": record["seconds"], "dataset": record["parameters"]["dataset"],
                                    "claims": _compare(name, claims)}
        save_json(report, out)
        print(f"{name}: {record['seconds']} s on {report['device']}", flush=True)
    save_json(report, out)
    return report
