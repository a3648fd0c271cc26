"""Chapters 4 and 6: per-input cost of the selectors — empirical (PGD against the own prediction), certified
(a GloRo certificate), logit margin and pseudo-margin thresholds. One run, ratios.

    .venv/bin/python benchmarks/selector_cost.py
"""
import torch

from common import compare, report
from robustbook import abstain, zoo
from robustbook.attacks import predict_logits
from robustbook.consistency import PseudoMargin
from robustbook.data import load_digits

data = load_digits()
x = data.x_test
params = dict(seed=0, eps=0.1, epochs=20, width=32, attack_steps=5, selector_eps=0.15, era_epochs=10, era_lr=1e-3,
              era_beta=1.0, gloro_eps=0.8, gloro_epochs=60, gloro_width=128)
era = zoo.load("era", data, **params)
gloro = zoo.load("gloro_local", data, **params)
z = predict_logits(era, data.x_val)
pseudo = PseudoMargin(epochs=50).fit(z, torch.rand(len(z)), z, torch.rand(len(z)))
selectors = {"empirical (PGD 20 steps x 2 restarts)": abstain.EmpiricalSelector(era, 0.15, steps=20, restarts=2),
             "certified (GloRo)": abstain.CertifiedSelector(gloro, 0.1),
             "logit margin": abstain.logit_margin_selector(era, 2.0),
             "pseudo-margin": abstain.pseudo_margin_selector(era, pseudo, 0.01)}
times = compare({**{k: (lambda s=s: s.select(x)) for k, s in selectors.items()},
                 "forward (ERA CNN)": lambda: predict_logits(era, x)}, repeats=3)
forward = times.pop("forward (ERA CNN)")
report("selector_cost", {
    "points": len(x), "seconds": times, "seconds_per_input": {k: v / len(x) for k, v in times.items()},
    "over_one_forward_pass": {k: v / forward for k, v in times.items()},
})
