# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
import sys

if "google.colab" in sys.modules:  # only on Colab: install the book's library (torch is already there)
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "robustbook @ git+https://github.com/robustbook/robustbook@main"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustbench==1.1.1",
                    "pyautoattack==0.2.0", "setuptools<81", "myst-nb"], check=True)

# %% [markdown]
# # Local robustness and the input margin
#
# A classifier $F$ is *locally robust* at a point $x$ with radius $\varepsilon$ when no
# input in the ball $\{x' : \|x' - x\|_p \le \varepsilon\}$ changes its decision. The largest
# such radius is the **input margin** $d_{in}(x)$: the distance from $x$ to the nearest
# decision boundary. Every chapter of this book is about that number — how to attack it,
# certify it, predict it for free, or decide to trust it only where the model is right.
#
# This chapter sets up the vocabulary on a small real dataset. We train a standard model and
# an adversarially trained one {cite}`madry2018towards`, break the first with tiny
# perturbations, draw robust accuracy against the radius, and estimate input margins with the
# minimum-norm attack FAB {cite}`croce2020minimally`. Because exact margins are intractable
# for deep networks, we end with the one model whose margin we *can* compute exactly — a
# linear classifier — and check FAB against it.
#
# The parameters below are filled in by the profile (`smoke`, `cpu` or `paper`); leave them
# at `None` to use the profile, or set one to override it.

# %% tags=["parameters"]
profile = "cpu"
dataset = None
arch = None
width = None
epochs = None
lr = None
eps = None
eps_grid = None
train_steps = None
pgd_steps = None
pgd_restarts = None
margin_points = None
fab_restarts = None
fab_target_classes = None
linear_epochs = None
seed = None

# %%
import pandas as pd
import matplotlib.pyplot as plt
import seaborn as sns
import torch

import robustbook as rb
from robustbook.attacks import accuracy, pgd, predict_logits, robustness_curve
from robustbook.margins import compare_to_exact
from robustbook.plots import adversarial_pairs, estimate_vs_exact

CHAPTER = "01_local_robustness"
P, res = rb.start(CHAPTER, globals())
pd.Series(P, name="value").to_frame()

# %% [markdown]
# ## Data
#
# In the `cpu` profile the data are scikit-learn's handwritten digits: 1,797 grey images of
# 8x8 pixels that ship with the package, so the book runs offline. Pixels are scaled to
# $[0, 1]$, the *data box* every perturbed input must stay in. The split is fixed and
# stratified; the test split is only used for the numbers we report.

# %%
data = rb.load_dataset(P["dataset"])
x_test, y_test = data.x_test, data.y_test
pd.DataFrame([data.sizes()], index=["images"])

# %% [markdown]
# ## Two models
#
# Both models share the architecture and the optimiser. The first minimises the usual
# cross-entropy. The second is trained by **PGD adversarial training** {cite}`madry2018towards`:
# every minibatch is replaced by its projected-gradient-descent attack inside the
# $\ell_\infty$ ball of radius $\varepsilon$ before the gradient step, i.e. it minimises
# $\mathbb{E}\,\max_{\|\delta\|_\infty\le\varepsilon} \ell(f(x+\delta), y)$.
# Trained models are cached under `_build/cache`, keyed by every training parameter.

# %%
common = dict(arch=P["arch"], arch_options={"width": P["width"]}, epochs=P["epochs"], lr=P["lr"], seed=P["seed"])
configs = {
    "standard": rb.TrainConfig(**common),
    "adversarial": rb.TrainConfig(**common, method="pgd", eps=P["eps"], attack_steps=P["train_steps"]),
}
models = {name: rb.train(cfg, data) for name, cfg in configs.items()}
pgd_options = dict(steps=P["pgd_steps"], restarts=P["pgd_restarts"])
summary = pd.DataFrame({
    name: {"clean accuracy": accuracy(m, x_test, y_test),
           f"PGD accuracy at eps={P['eps']:.3g}": rb.robust_accuracy(m, x_test, y_test, P["eps"], **pgd_options)}
    for name, m in models.items()}).T
res.glue("eps", P["eps"])
for name in models:
    res.glue(f"{name}_clean_accuracy", summary.loc[name].iloc[0])
    res.glue(f"{name}_robust_accuracy", summary.loc[name].iloc[1])
summary.style.format("{:.1%}")

# %% [markdown]
# The standard model classifies {glue:text}`standard_clean_accuracy:.1%` of the test digits
# correctly, but only {glue:text}`standard_robust_accuracy:.1%` survive a PGD attack of
# radius $\varepsilon$ = {glue:text}`eps:.3g` — a change of at most
# {glue:text}`eps:.3g` per pixel. The adversarially trained model keeps
# {glue:text}`adversarial_robust_accuracy:.1%` at the same radius, with clean accuracy
# {glue:text}`adversarial_clean_accuracy:.1%`.
#
# ## What an adversarial example looks like
#
# Top row: test digits with the standard model's prediction; middle row: their PGD versions
# with the new prediction (red when wrong); bottom row: the perturbation.

# %%
x_show, y_show = x_test[:8], y_test[:8]
x_adv = pgd(models["standard"], x_show, y_show, P["eps"], **pgd_options)
pred = predict_logits(models["standard"], x_show).argmax(1)
pred_adv = predict_logits(models["standard"], x_adv).argmax(1)
fig = adversarial_pairs(x_show, x_adv, y_show, pred, pred_adv, data.class_names)
plt.show()

# %% [markdown]
# ## Robust accuracy against the radius
#
# The **fast gradient sign method** (FGSM) takes one step of size $\varepsilon$ along the
# sign of the loss gradient; **PGD** takes many smaller steps and projects back onto the ball
# and the data box after each, from random starts. PGD is the stronger attack, so its curve
# lies below FGSM's: robust accuracy measured by an attack is only an *upper bound* on the
# true robust accuracy, and a weak attack flatters a model.

# %%
curve = robustness_curve(models, x_test, y_test, P["eps_grid"], attacks=("fgsm", "pgd"), **pgd_options)
ax = sns.lineplot(curve, x="eps", y="robust_accuracy", hue="model", style="attack", marker="o")
ax.axvline(P["eps"], color="0.6", ls=":", lw=1)
ax.set(xlabel=r"$\ell_\infty$ radius $\varepsilon$", ylabel="robust accuracy", ylim=(0, 1.02))
plt.show()
curve.pivot_table(index="eps", columns=["model", "attack"], values="robust_accuracy").style.format("{:.1%}")

# %% [markdown]
# ## Estimating the input margin
#
# Computing $d_{in}(x)$ exactly means solving a non-convex optimisation over the input; for
# ReLU networks the decision "is there an adversarial point within $\varepsilon$?" is
# NP-hard, and complete verifiers scale only to small networks. A **minimum-norm attack**
# instead searches for the *closest* adversarial point it can find. FAB
# {cite}`croce2020minimally` linearises the classifier around the current iterate, projects
# onto the nearest linearised boundary inside the data box, and biases the step towards the
# original point. Whatever it returns is a real misclassified input, so its distance is an
# **upper bound** on the input margin — never a lower one.
#
# We use pyautoattack's FAB, but not its `perturb` loop: that loop stops improving a point as
# soon as one restart succeeds, which is right for robust accuracy at a fixed $\varepsilon$
# and wrong for a *minimum* norm. `rb.input_margin` keeps the closest of several untargeted
# and targeted runs, pulls the point back along the segment to the first prediction flip,
# and returns a success mask: a point where every run failed is reported, not recorded as
# margin 0. We attack the model's *own* prediction, so misclassified points get a margin too.

# %%
x_m, y_m = rb.data.subset(x_test, y_test, P["margin_points"], seed=P["seed"])
fab_options = dict(restarts=P["fab_restarts"], target_classes=min(P["fab_target_classes"], data.num_classes - 1))
margins = {name: rb.input_margin(m, x_m, "Linf", **fab_options) for name, m in models.items()}
margin_table = pd.DataFrame({
    name: {"points": len(x_m), "FAB failures": r.failures, "median margin": r.distance.nanmedian().item(),
           f"share with margin <= {P['eps']:.3g}": (r.distance[r.success] <= P["eps"]).float().mean().item()}
    for name, r in margins.items()}).T
res.glue("fab_failures", int(sum(r.failures for r in margins.values())))
long = pd.concat([pd.DataFrame({"model": n, "input margin": r.distance[r.success].numpy()}) for n, r in margins.items()])
ax = sns.histplot(long, x="input margin", hue="model", element="step", stat="density", common_norm=False, bins=30)
ax.axvline(P["eps"], color="0.3", ls=":", lw=1)
plt.show()
margin_table

# %% [markdown]
# Adversarial training moves the whole distribution of margins to the right: points whose
# margin is below $\varepsilon$ (left of the dotted line) are exactly the non-robust ones.
# FAB failed on {glue:text}`fab_failures` points in total.
#
# ## A model whose margin is exact: the linear classifier
#
# For a linear classifier $f(x) = Wx + b$ predicting class $i$, the gap to another class $j$
# is $g_j(x) = (w_i - w_j)^\top x + b_i - b_j \ge 0$. A perturbation with
# $\|\delta\|_\infty \le t$ can lower it by at most $t\,\|w_i - w_j\|_1$ — dual norms — so
# without constraints the margin would be $\min_j g_j / \|w_i - w_j\|_1$. Images must stay in
# $[0, 1]^d$, however, so coordinate $k$ can only move by the room it has in the helpful
# direction ($x_k$ downwards when $v_k = (w_i - w_j)_k > 0$, $1 - x_k$ upwards otherwise). The
# largest reachable decrease is then
#
# $$D_j(t) = \sum_k |v_k|\,\min(t, c_k),$$
#
# piecewise linear, concave and increasing in $t$; sorting the $c_k$ gives the smallest $t$ with
# $D_j(t) \ge g_j$, and the input margin is the minimum over $j$
# (`rb.linear_input_margin`). On digits the box matters: many pixels sit at 0 and can only
# move one way.

# %%
linear = rb.train(rb.TrainConfig(arch="linear", epochs=P["linear_epochs"], lr=1e-2, batch_size=len(data.y_train),
                                 seed=P["seed"]), data)
exact = rb.linear_input_margin(linear[1].weight, linear[1].bias, x_m)
fab_default = rb.input_margin(linear, x_m, "Linf", restarts=1, target_classes=0, bisection_steps=0)
fab_ours = rb.input_margin(linear, x_m, "Linf", **fab_options)
checks = pd.DataFrame({
    "FAB, one untargeted run": compare_to_exact(fab_default.distance, exact),
    "FAB, best of runs + bisection": compare_to_exact(fab_ours.distance, exact),
}).T
checks["failures"] = [fab_default.failures, fab_ours.failures]
check = checks.loc["FAB, best of runs + bisection"]
res.glue("linear_clean_accuracy", accuracy(linear, x_test, y_test))
res.glue("linear_margin_agreement", check["agreement"])
res.glue("linear_margin_median_relative_gap", check["median_relative_gap"])
res.glue("linear_margin_below_exact", int(check["below_exact"]))
res.glue("fab_default_agreement", checks.loc["FAB, one untargeted run", "agreement"])
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for ax, (label, r) in zip(axes, [("one untargeted run", fab_default), ("best of runs + bisection", fab_ours)]):
    estimate_vs_exact(exact.numpy(), r.distance.numpy(), label=f"FAB ({label})", ax=ax)
plt.show()
checks

# %% [markdown]
# The linear model reaches {glue:text}`linear_clean_accuracy:.1%` test accuracy. With a
# single untargeted run — pyautoattack's default — FAB lands within $10^{-3}$ of the exact
# margin on {glue:text}`fab_default_agreement:.1%` of the points: at every iteration it picks
# the class whose *unconstrained* linearised boundary is closest, and when the box blocks that
# direction, it settles on a farther boundary. Adding one targeted run per class (each finds
# the boundary of that class inside the box) and a bisection back along the segment brings
# agreement to {glue:text}`linear_margin_agreement:.1%`, with a median relative gap of
# {glue:text}`linear_margin_median_relative_gap:.2e`. The soundness check holds: FAB is
# below the exact margin (by more than $10^{-6}$) on {glue:text}`linear_margin_below_exact`
# points — it cannot be anything but 0, since FAB's points are real adversarial inputs.
#
# ## Takeaways
#
# - Robust accuracy at $\varepsilon$ and the input margin are two views of one object: a
#   point is robust at $\varepsilon$ exactly when its margin exceeds $\varepsilon$.
# - Attacks give upper bounds (on robust accuracy and on margins); the stronger the attack,
#   the tighter. Always report the attack and its failures.
# - Exact margins are available only for special models; the linear case is our yardstick
#   for the estimators used in the rest of the book.

# %% [markdown]
# ## What we expected, and what we measured

# %%
v = res.values
res.expect("the standard model reaches >= 95% clean accuracy", v["standard_clean_accuracy"] >= 0.95,
           f"{v['standard_clean_accuracy']:.1%}")
res.expect("adversarial training clearly raises robust accuracy at eps (>= 20 points)",
           v["adversarial_robust_accuracy"] >= v["standard_robust_accuracy"] + 0.2,
           f"{v['standard_robust_accuracy']:.1%} -> {v['adversarial_robust_accuracy']:.1%}")
res.expect("FAB is never below the exact linear margin", v["linear_margin_below_exact"] == 0,
           f"{v['linear_margin_below_exact']} points below")
res.expect("FAB's median relative gap to the exact margin is <= 1%", v["linear_margin_median_relative_gap"] <= 0.01,
           f"{v['linear_margin_median_relative_gap']:.2e}")
res.save()
res.enforce(P["profile"] == "cpu")
res.claims_table()
