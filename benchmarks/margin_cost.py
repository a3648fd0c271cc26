"""Cost of scoring inputs with the logit margin vs estimating their input margins with FAB (chapter 2).

Same model (the chapter's PGD-trained digits CNN), same 300 test points, one run.
    .venv/bin/python benchmarks/margin_cost.py
"""
import torch

from common import compare, report
from robustbook.attacks import predict_logits
from robustbook.consistency import zoo_recipes
from robustbook.data import load_digits, subset
from robustbook.margins import input_margin, logit_margin
from robustbook.train import train

torch.set_num_threads(2)
data = load_digits()
model = train(zoo_recipes(0.1, 30, 32, 7, 0)["pgd"], data, progress=False)
x, _ = subset(data.x_test, data.y_test, 300)
times = compare({
    "logit margin": lambda: logit_margin(predict_logits(model, x)),
    "FAB (1 run + 3 targeted, 100 iterations)": lambda: input_margin(model, x, restarts=1, target_classes=3),
    "FAB (1 run, 100 iterations)": lambda: input_margin(model, x, restarts=1, target_classes=0),
}, repeats=3)
report("margin_cost", {
    "points": len(x), "seconds": times,
    "ratio_fab_over_logit_margin": {k: v / times["logit margin"] for k, v in times.items() if k != "logit margin"},
})
