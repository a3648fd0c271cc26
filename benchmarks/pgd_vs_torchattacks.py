"""Our batched PGD (keeping the best iterate of every step) against torchattacks' PGD: same model, same inputs,
same budget, one run, on a brittle model (standard) and a robust one (PGD-trained). Target: ours at least as fast.

Ours stops attacking a point once it is misclassified (its first misclassified iterate is kept), so it gains
most where many points fall early; on the robust model it does the same work as torchattacks plus the
bookkeeping of the best iterate.

    .venv/bin/python benchmarks/pgd_vs_torchattacks.py
"""
import torchattacks

from common import compare, report
from robustbook import zoo
from robustbook.attacks import accuracy, pgd
from robustbook.data import load_digits

data = load_digits()
x, y = data.x_test, data.y_test
eps, steps = 0.1, 20
alpha = 2.5 * eps / steps
results = {}
for name in ("standard", "pgd"):
    model = zoo.load(name, data, seed=0, eps=0.1, epochs=20, width=32, attack_steps=5)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    times = compare({
        "robustbook.pgd": lambda: pgd(model, x, y, eps, "Linf", steps=steps, step_size=alpha),
        "torchattacks.PGD": lambda: ta(x, y),
    }, repeats=7)
    results[name] = {
        "seconds": times, "ratio_torchattacks_over_ours": times["torchattacks.PGD"] / times["robustbook.pgd"],
        "robust_accuracy": {"robustbook.pgd": accuracy(model, pgd(model, x, y, eps, steps=steps, step_size=alpha), y),
                            "torchattacks.PGD": accuracy(model, ta(x, y), y)}}
report("pgd_vs_torchattacks", {
    "points": len(x), "eps": eps, "steps": steps, "models": results,
    "ratio_torchattacks_over_ours_min": min(r["ratio_torchattacks_over_ours"] for r in results.values()),
    "target": "ratio >= 1 on every model (ours at least as fast, while keeping the best iterate)",
})
