"""Our batched PGD against torchattacks' PGD: same model, same inputs, same budget, one run.

    .venv/bin/python benchmarks/pgd_vs_torchattacks.py
"""
import torch
import torchattacks

from common import compare, report
from robustbook.attacks import accuracy, pgd
from robustbook.data import load_digits
from robustbook.train import TrainConfig, train

torch.set_num_threads(2)
data = load_digits()
model = train(TrainConfig(arch="cnn", epochs=30, seed=0), data, progress=False)
x, y = data.x_test, data.y_test
eps, steps = 0.1, 20
alpha = 2.5 * eps / steps
ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)

times = compare({
    "robustbook.pgd": lambda: pgd(model, x, y, eps, "Linf", steps=steps, step_size=alpha),
    "torchattacks.PGD": lambda: ta(x, y),
})
report("pgd_vs_torchattacks", {
    "points": len(x), "eps": eps, "steps": steps,
    "seconds": times,
    "ratio_torchattacks_over_ours": times["torchattacks.PGD"] / times["robustbook.pgd"],
    "robust_accuracy": {"robustbook.pgd": accuracy(model, pgd(model, x, y, eps, steps=steps, step_size=alpha), y),
                        "torchattacks.PGD": accuracy(model, ta(x, y), y)},
})
