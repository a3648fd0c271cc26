"""The cpu profile's reduced AutoAttack (APGD-CE + APGD-T with 3 target classes) against pyautoattack's standard
version (APGD-CE, APGD-T with 9 targets, FAB-T, Square 5000 queries), on the chapters' digits models (first
seed), the whole test split. One run: robust accuracies and times.

    .venv/bin/python benchmarks/autoattack_reduced.py
"""
import time

from common import report
from robustbook import zoo
from robustbook.attacks import robust_accuracy
from robustbook.data import load_digits

data = load_digits()
x, y = data.x_test, data.y_test
params = dict(seed=0, eps=0.1, epochs=20, width=32, attack_steps=5)
out = {}
for name in ("standard", "pgd", "trades"):
    model = zoo.load(name, data, **params)
    out[name] = {}
    for setting in ("cpu", "standard"):
        start = time.perf_counter()
        acc = robust_accuracy(model, x, y, 0.1, setting=setting, cache=False)
        out[name][setting] = {"robust_accuracy": acc, "seconds": time.perf_counter() - start}
    out[name]["difference_points"] = 100 * (out[name]["cpu"]["robust_accuracy"] - out[name]["standard"]["robust_accuracy"])
    out[name]["time_ratio_standard_over_cpu"] = out[name]["standard"]["seconds"] / out[name]["cpu"]["seconds"]
report("autoattack_reduced", {"points": len(x), "eps": 0.1, "models": out})
