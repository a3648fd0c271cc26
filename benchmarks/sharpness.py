"""Chapter 5: the PAC-Bayes sharpness search with its Monte-Carlo samples vectorised by torch.func.vmap against a
plain loop over the samples. Same model, data and seeds, one run (both run all 15 bisection steps x 10 samples).
Target: the vectorised path at least 2x faster, or the faster path made the default — and <= 20 s per model.

    .venv/bin/python benchmarks/sharpness.py
"""
from common import compare, report
from robustbook import measures as ms
from robustbook import zoo
from robustbook.data import load_digits, subset

data = load_digits()
model = zoo.load(zoo.grid_name(zoo.grid()[30]), data, epochs=15, seed=0)
x, y = subset(data.x_train, data.y_train, 500)
times = compare({
    "vmap": lambda: ms.sharpness(model, x, y, tol=-1, vectorised=True),
    "loop": lambda: ms.sharpness(model, x, y, tol=-1, vectorised=False),
    "default (with early stop)": lambda: ms.sharpness(model, x, y),
}, repeats=5)
report("sharpness", {
    "training_points": len(x), "monte_carlo_samples": 10, "bisection_steps": 15, "seconds_per_search": times,
    "ratio_loop_over_vmap": times["loop"] / times["vmap"],
    "decision": "the default is the faster path on this machine (vectorised=False unless vmap measured faster)",
    "study_reference": "about 2 hours per model on CIFAR-10 (the study's slides)",
})
