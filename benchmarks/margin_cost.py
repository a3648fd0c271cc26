"""Input margins at the price of one FAB run (issue 15) and the cost of FAB against the logit margin (chapter 2).

1. The linear-model check of chapter 1 (exact margins): pyautoattack's default FAB (one untargeted run) against
   the book's estimator (targeted runs towards the 3 nearest linearised boundaries, batched, plus bisection):
   agreement within 1e-3 of the exact margin, and time as a ratio in one run.
   Targets: >= 99% agreement at <= 3x the time of one default run.
2. The PGD-trained digits CNN: the book's estimator against the logit margin, and against the old best-of
   estimator (2 untargeted + 9 targeted runs).

    .venv/bin/python benchmarks/margin_cost.py
"""
from common import compare, report
from robustbook import zoo
from robustbook.attacks import predict_logits
from robustbook.data import load_digits, subset
from robustbook.margins import compare_to_exact, input_margin, linear_input_margin, logit_margin

data = load_digits()
x, _ = subset(data.x_test, data.y_test, 300)
linear = zoo.load("linear", data, seed=0, linear_epochs=500)
exact = linear_input_margin(linear[1].weight, linear[1].bias, x)
default = dict(targeted=0, untargeted=1, bisection_steps=0)
old = dict(targeted=9, untargeted=2, n_iter=100)
linear_times = compare({
    "FAB default (1 untargeted run)": lambda: input_margin(linear, x, cache=False, **default),
    "FAB book estimator": lambda: input_margin(linear, x, cache=False),
}, repeats=3)
agreement = {"FAB default (1 untargeted run)": compare_to_exact(input_margin(linear, x, cache=False, **default).distance,
                                                                exact)["agreement"],
             "FAB book estimator": compare_to_exact(input_margin(linear, x, cache=False).distance, exact)["agreement"]}

cnn = zoo.load("pgd", data, seed=0, eps=0.1, epochs=20, width=32, attack_steps=5)
cnn_times = compare({
    "logit margin": lambda: logit_margin(predict_logits(cnn, x)),
    "FAB default (1 untargeted run)": lambda: input_margin(cnn, x, cache=False, **default),
    "FAB book estimator": lambda: input_margin(cnn, x, cache=False),
    "FAB old best-of (2 untargeted + 9 targeted)": lambda: input_margin(cnn, x, cache=False, **old),
}, repeats=2)
ours, best_of = input_margin(cnn, x, cache=False).margin, input_margin(cnn, x, cache=False, **old).margin
report("margin_cost", {
    "points": len(x),
    "linear_check": {"seconds": linear_times, "agreement_within_1e-3": agreement,
                     "ratio_estimator_over_default": linear_times["FAB book estimator"]
                     / linear_times["FAB default (1 untargeted run)"],
                     "targets": ">= 99% agreement at <= 3x one default run"},
    "pgd_cnn": {"seconds": cnn_times,
                "ratio_estimator_over_logit_margin": cnn_times["FAB book estimator"] / cnn_times["logit margin"],
                "ratio_estimator_over_default": cnn_times["FAB book estimator"]
                / cnn_times["FAB default (1 untargeted run)"],
                "ratio_old_best_of_over_estimator": cnn_times["FAB old best-of (2 untargeted + 9 targeted)"]
                / cnn_times["FAB book estimator"],
                "estimator_within_1pct_of_best_of": float(((ours - best_of) <= 0.01 * best_of).double().mean()),
                "estimator_mean_relative_excess_over_best_of": float(((ours - best_of) / best_of).mean())},
})
