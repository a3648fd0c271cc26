"""The basis of the colab-profile estimates: per-batch costs of the models those profiles use, measured on this
machine's CPU (forward + backward, batch 64), next to their FLOPs, and the resulting T4 estimate per chapter.

    .venv/bin/python benchmarks/colab_estimates.py
"""
import time

import torch

from common import report
from robustbook.book import chapters, resolve
from robustbook.book.estimate import T4_FLOPS, UTILISATION, forward_flops, minutes, work
from robustbook.data import DATASET_INFO
from robustbook.models import build_model, robustbench_architecture

per_batch = {}
for name in chapters():
    p = resolve(name, "colab")
    for item in work(name, p):
        key = (item.model, p["dataset"])
        if key in per_batch or item.passes == 0:
            continue
        classes, shape = DATASET_INFO[p["dataset"]]
        if ":" in item.model:
            arch, width = item.model.split(":")
            model = build_model(arch, shape, classes, width=int(width))
        elif item.model in ("2C2F", "4C3F", "6C2F"):
            model = build_model(item.model, shape, classes)
        else:
            model = robustbench_architecture(item.model, p["dataset"], "Linf")
        x = torch.rand(64, *shape)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            model(x).sum().backward()
            runs.append(time.perf_counter() - start)
        seconds = sorted(runs)[1]
        flops = 3 * 64 * forward_flops(item.model, p["dataset"])
        per_batch[f"{item.model} on {p['dataset']}"] = {
            "cpu_seconds_per_batch_fwd_bwd": seconds, "flops_per_batch_fwd_bwd": flops,
            "cpu_gflops_achieved": flops / seconds / 1e9,
            "t4_seconds_per_batch_estimated": flops / (T4_FLOPS * UTILISATION)}
estimates = {name: minutes(name, resolve(name, "colab")) for name in chapters()}
report("colab_estimates", {
    "assumption": f"T4 FP32 peak {T4_FLOPS / 1e12} TFLOP/s x {UTILISATION:.0%} utilisation",
    "per_batch": per_batch,
    "chapters_minutes": {k: v["minutes"] for k, v in estimates.items()},
    "chapters_items": {k: v["items"] for k, v in estimates.items()},
})
