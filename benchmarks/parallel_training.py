"""Two worker processes with one thread each (zoo.load_many, measures.study) against one process with two threads,
and one process with one thread, on two workloads, fresh caches:
- training chapter 2's zoo (PGD/TRADES/spectral-norm CNNs of width 32, two seeds: 8 models);
- chapter 5's small grid CNNs (width 8 and 16, one seed: 16 models), trained and then studied (corruptions, five
  attacks, sharpness) with chapter 5's cpu-profile settings.

    .venv/bin/python benchmarks/parallel_training.py
"""
import os
import tempfile
import time

import torch

from common import report
from robustbook import measures, zoo
from robustbook.data import load_digits

data = load_digits()   # cheap; also loaded by each spawned worker when it imports this file
ch2 = [(n, {"eps": 0.1, "epochs": 20, "width": 32, "attack_steps": 5, "seed": s})
       for s in (10, 11) for n in ("standard", "pgd", "trades", "spectral_norm")]
ch5 = [(zoo.grid_name(p), {"epochs": 15, "seed": 10})
       for p in zoo.grid(["sgd", "adam"], [0, 2], [1, 2], [8, 16], [0.0])]
ATTACKS = {"fgsm": {"eps": 0.1}, "pgd": {"eps": 0.1, "steps": 10}, "bim": {"eps": 0.1},
           "deepfool": {"eps": 0.5, "steps": 20}, "cw": {"eps": 0.5, "steps": 30, "search_steps": 3}}
CONFIGS = {"2 workers x 1 thread": (2, 2), "1 process x 2 threads": (1, 2), "1 process x 1 thread": (1, 1)}


def fresh(threads):
    os.environ["ROBUSTBOOK_CACHE"] = tempfile.mkdtemp(prefix="robustbook-bench-")
    torch.set_num_threads(threads)
    return time.perf_counter()


def train(requests, workers, threads):
    start = fresh(threads)
    zoo.load_many(requests, data, workers=workers)
    return time.perf_counter() - start


def study(models, workers, threads):
    start = fresh(threads)
    measures.study(models, data, ATTACKS, attack_points=100, sharpness_points=300, workers=workers)
    return time.perf_counter() - start


def main():
    results = {}
    for label, requests in (("chapter 2 zoo, training", ch2), ("chapter 5 grid, training", ch5)):
        seconds = {config: train(requests, *wt) for config, wt in CONFIGS.items()}
        results[label] = {"models": len(requests), "seconds": seconds}
    torch.set_num_threads(2)
    models = zoo.load_many(ch5, data, workers=1)                  # from the last run's cache
    results["chapter 5 grid, study"] = {"models": len(models),
                                        "seconds": {config: study(models, *wt) for config, wt in CONFIGS.items()}}
    for r in results.values():
        r["speedup_workers_over_two_threads"] = r["seconds"]["1 process x 2 threads"] / r["seconds"]["2 workers x 1 thread"]
    torch.set_num_threads(2)
    report("parallel_training", results)


if __name__ == "__main__":   # the spawned workers import this file again: they must not rerun the benchmark
    main()
