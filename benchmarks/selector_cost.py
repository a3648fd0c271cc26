"""Chapter 4: per-input cost of the three selectors — empirical (PGD against the own prediction),
certified (a GloRo certificate, constants precomputed) and a logit-margin threshold. One run, ratios.

    .venv/bin/python benchmarks/selector_cost.py
"""
import torch

from common import compare, report
from robustbook import abstain
from robustbook.certify import relaxation_configs
from robustbook.data import load_digits
from robustbook.train import train

torch.set_num_threads(2)
data = load_digits()
x = torch.cat([data.x_train, data.x_val, data.x_test])
robust = train(abstain.digits_recipes(0.1, 30, 32, 7, 0)["trades"], data, progress=False)
gloro = train(relaxation_configs(dict(arch="cnn", arch_options={"activation": "minmax", "width": 32}, epochs=150,
                                      lr=1e-3, seed=0), 0.5, [2, 3], [[0, 6]], 2.0)["local"], data, progress=False)
constants = gloro.sound_constants()
times = compare({
    "empirical (PGD 50 steps x 2 restarts)": lambda: abstain.select("empirical", robust, x, 0.15, steps=50, restarts=2),
    "certified (GloRo)": lambda: gloro.certify(x, eps=0.5, constants=constants).certified,
    "logit-margin threshold": lambda: abstain.select("score", robust, x, None, threshold=2.0),
}, repeats=3)
per_input = {k: v / len(x) for k, v in times.items()}
report("selector_cost", {
    "points": len(x), "seconds": times, "seconds_per_input": per_input,
    "empirical_over_certified": times["empirical (PGD 50 steps x 2 restarts)"] / times["certified (GloRo)"],
    "empirical_over_logit_margin": times["empirical (PGD 50 steps x 2 restarts)"] / times["logit-margin threshold"],
    "certified_over_logit_margin": times["certified (GloRo)"] / times["logit-margin threshold"],
    "note": "the certified selector runs a GloRo net (L2, eps 0.5) and the others the TRADES CNN (Linf): "
            "a cost comparison, not a comparison of guarantees",
})
