"""Training several small models: two worker processes with one thread each (zoo.load_many) against one process
with two threads, and one process with one thread. Same models (chapter 2's zoo, two seeds), fresh caches.

    .venv/bin/python benchmarks/parallel_training.py
"""
import os
import tempfile
import time

import torch

from common import report
from robustbook import zoo
from robustbook.data import load_digits

data = load_digits()   # cheap; also loaded by each spawned worker when it imports this file
params = dict(eps=0.1, epochs=20, width=32, attack_steps=5)
requests = [(n, {**params, "seed": s}) for s in (10, 11) for n in ("standard", "pgd", "trades", "spectral_norm")]


def run(workers, threads):
    os.environ["ROBUSTBOOK_CACHE"] = tempfile.mkdtemp(prefix="robustbook-bench-")
    torch.set_num_threads(threads)
    start = time.perf_counter()
    if workers > 1:
        zoo.load_many(requests, data, workers=workers)
    else:
        for name, p in requests:
            zoo.load(name, data, **p)
    return time.perf_counter() - start


def main():
    times = {"2 workers x 1 thread": run(2, 2), "1 process x 2 threads": run(1, 2), "1 process x 1 thread": run(1, 1)}
    torch.set_num_threads(2)
    report("parallel_training", {"models": len(requests), "seconds": times,
                                 "speedup_workers_over_two_threads": times["1 process x 2 threads"]
                                 / times["2 workers x 1 thread"]})


if __name__ == "__main__":   # the spawned workers import this file again: they must not rerun the benchmark
    main()
