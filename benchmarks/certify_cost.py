"""Chapter 3: certifying with a GloRo net against a plain forward pass, and a PGD robustness check against the
certificate. One run, ratios.

    .venv/bin/python benchmarks/certify_cost.py
"""
import torch

from common import compare, report
from robustbook import zoo
from robustbook.attacks import pgd, predict_logits
from robustbook.data import load_digits

data = load_digits()
params = dict(seed=0, gloro_eps=0.5, gloro_epochs=60, gloro_width=128)
x = torch.cat([data.x_train, data.x_val, data.x_test])
nets = {name: zoo.load(name, data, **params) for name in ("gloro_local", "gloro_rtk3")}
local = nets["gloro_local"]
local.sound_constants()
nets["gloro_rtk3"].sound_constants()
y = predict_logits(local, x).argmax(1)
times = compare({
    "forward": lambda: predict_logits(local, x),
    "certify local": lambda: local.certify(x, eps=0.5),
    "certify rtk3": lambda: nets["gloro_rtk3"].certify(x, eps=0.5),
    "PGD check (L2, 20 steps)": lambda: pgd(local, x, y, 0.5, "L2", steps=20),
}, repeats=7)
report("certify_cost", {
    "points": len(x), "seconds": times,
    "certify_local_over_forward": times["certify local"] / times["forward"],
    "certify_rtk3_over_forward": times["certify rtk3"] / times["forward"],
    "pgd_check_over_certify_local": times["PGD check (L2, 20 steps)"] / times["certify local"],
})
