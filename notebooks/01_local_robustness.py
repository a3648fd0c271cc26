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

# %% tags=["remove-cell"]
# On Colab: install this book's library and its Colab extras;
# Colab's torch and torchvision stay as they are.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get(
        "ROBUSTBOOK_INSTALL_SOURCE",
        "git+https://github.com/robustbook/robustbook@main",
    )
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"robustbook[colab] @ {source}"], check=True)

# %% [markdown]
# # Local robustness and the input margin
#
# A classifier can be right about an input and still be fragile: a change of a few pixels, too
# small for a person to notice, may flip its answer. This chapter sets up the vocabulary of the
# whole book on a small real dataset.
#
# ```{prf:definition} Local robustness
# :label: def-local-robustness
#
# A classifier $F$ is *locally robust* at $x$ with radius $\varepsilon$ in the norm $\|\cdot\|_p$ when
# $F(x') = F(x)$ for every $x'$ with $\|x' - x\|_p \le \varepsilon$ (and $x'$ in the data box $[0, 1]^d$).
# ```
#
# ```{prf:definition} Input margin
# :label: def-input-margin
#
# The *input margin* $d_{in}(x)$ is the distance from $x$ to the nearest point of the box where $F$
# answers differently: $d_{in}(x) = \min \{\|x' - x\|_p : F(x') \neq F(x)\}$. $F$ is locally robust at
# $x$ with radius $\varepsilon$ exactly when $d_{in}(x) > \varepsilon$.
# ```
#
# We train a standard model and an adversarially trained one {cite}`madry2018towards`, break the
# first with tiny perturbations, measure robust accuracy with AutoAttack {cite}`croce2020reliable` as
# the papers do, and estimate input margins with the minimum-norm attack FAB
# {cite}`croce2020minimally`. Because exact margins are intractable for deep networks, we end with the
# one model whose margin we *can* compute exactly — a linear classifier — and check FAB against it.
# Every number comes from several training seeds; the tables show mean ± standard deviation.

# %% tags=["parameters"]
profile = "cpu"
dataset = None
data_points = None
width = None
epochs = None
eps = None
eps_grid = None
train_steps = None
curve_steps = None
autoattack = None
autoattack_iterations = None
eval_points = None
margin_points = None
linear_epochs = None
seeds = None

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import robustbook as rb
from robustbook import margins, plots
from robustbook.attacks import (
    accuracy,
    autoattack_setting,
    pgd,
    predict_logits,
    robust_flags_many,
    robustness_curve,
)
from robustbook.book import papers, tables
from robustbook.data import subset

P, res = rb.start("01_local_robustness", globals())
P.table()

# %% [markdown]
# ## Data
#
# In the `cpu` profile the data are Zalando's Fashion-MNIST {cite}`xiao2017fashion`: grey 28x28
# photographs of ten kinds of clothing, read from disk (Debian's `dataset-fashion-mnist` package, or
# torchvision's download), so the book runs offline. We keep fixed random subsets of the splits
# (`data_points`), the same in every chapter, so that chapters share their trained models. Pixels are
# scaled to $[0, 1]$, the *data box* every perturbed input must stay in; the test split is only used for
# the numbers we report. The `smoke` profile runs the same code on scikit-learn's 8x8 digits in seconds.
#
# The threat model is the $\ell_\infty$ ball of radius $\varepsilon$ = 0.1 in the `cpu` profile, the usual
# radius for Fashion-MNIST (MNIST's is 0.3): every pixel may move by a tenth of the grey scale, about 25 of
# 255 levels — enough to blur a collar or a sleeve, not enough to turn a shirt into a bag for a person.
#
# Fashion-MNIST's classes are not equally far apart: a shirt, a T-shirt, a pullover and a coat look
# alike at 28x28 pixels, while a trouser looks like nothing else. That ambiguity is what the later
# chapters are about.

# %%
data = rb.load_dataset(P.dataset, points=P.data_points)
pd.DataFrame([data.sizes()], index=["images"])

# %% [markdown]
# ## Two models, several seeds
#
# Both models are the book's small CNN. The first minimises the usual cross-entropy. The second
# is trained by **PGD adversarial training** {cite}`madry2018towards`: every minibatch is replaced by
# its projected-gradient attack inside the $\ell_\infty$ ball of radius $\varepsilon$ before the
# gradient step, i.e. it minimises $\mathbb{E}\,\max_{\|\delta\|_\infty\le\varepsilon} \ell(f(x+\delta), y)$.
# Both are named recipes of the book's model zoo (`robustbook.zoo`), trained once per seed (two models at a
# time, one per core) and cached.

# %%
settings = dict(
    eps=P.eps, epochs=P.epochs, width=P.width, attack_steps=P.train_steps
)
models = rb.zoo.load_seeds(["standard", "pgd"], data, P.seeds, **settings)

# %% [markdown]
# Robust accuracy is the share of test points classified correctly *and* robustly at $\varepsilon$.
# An attack can only show that a point is not robust, so robust accuracy measured by an attack is an
# upper bound of the true one, and a weak attack flatters a model. We measure it as the papers do,
# with AutoAttack: an ensemble of parameter-free attacks that RobustBench uses as its yardstick.

# %%
setting = autoattack_setting(P.autoattack, P.autoattack_iterations)
x_eval, y_eval = subset(data.x_test, data.y_test, P.eval_points, seed=0)
# every model's verdicts are independent units: Ray tasks with ROBUSTBOOK_RAY
robust_flags_many(
    [
        dict(model=m, x=x_eval, eps=P.eps, setting=setting)
        for ms in models.values()
        for m in ms.values()
    ]
)
per_seed = {
    seed: {
        name: {
            "clean accuracy": accuracy(m, x_eval, y_eval),
            "robust accuracy": rb.robust_accuracy(
                m, x_eval, y_eval, P.eps, setting=setting
            ),
        }
        for name, m in ms.items()
    }
    for seed, ms in models.items()
}
summary = tables.collect(per_seed)
tables.mean_std(summary, ".1%", index="model")

# %% [markdown]
# What adversarial training bought and what it cost, seed by seed (a paired difference: the same seed's two
# models):

# %%
standard, adversarial = summary["standard"], summary["pgd"]
gain = adversarial["robust accuracy"] - standard["robust accuracy"]
clean_change = adversarial["clean accuracy"] - standard["clean accuracy"]
tables.per_seed(
    {"robust accuracy gained": gain, "clean accuracy change": clean_change},
    ".1%",
)

# %% tags=["remove-cell"]
res.glue("eps", P.eps)
res.glue("autoattack", setting.describe())
res.glue("n_seeds", len(P.seeds))
for name, key in (("standard", "standard"), ("pgd", "adversarial")):
    res.glue(f"{key}_clean_accuracy", summary[name]["clean accuracy"])
    res.glue(f"{key}_robust_accuracy", summary[name]["robust accuracy"])
res.glue("adversarial_gain", gain)

# %% [markdown]
# Over {glue:text}`n_seeds` seeds, the standard model classifies
# {glue:text}`standard_clean_accuracy.mean:.1%` of the test images correctly, but only
# {glue:text}`standard_robust_accuracy.mean:.1%` (± {glue:text}`standard_robust_accuracy.std:.1%`) survive
# an attack of radius $\varepsilon$ = {glue:text}`eps:.3g` — a change of at most {glue:text}`eps:.3g` per
# pixel. The adversarially trained model keeps {glue:text}`adversarial_robust_accuracy.mean:.1%`
# (± {glue:text}`adversarial_robust_accuracy.std:.1%`), with clean accuracy
# {glue:text}`adversarial_clean_accuracy.mean:.1%`. Robust accuracy is measured with
# {glue:text}`autoattack`.
#
# ## What an adversarial example looks like
#
# Top row: test images with the standard model's prediction (first seed); middle row: their PGD
# versions with the new prediction (red when wrong); bottom row: the perturbation.

# %%
standard_model = models[P.seeds[0]]["standard"]
x_show, y_show = data.x_test[:8], data.y_test[:8]
x_adv = pgd(standard_model, x_show, y_show, P.eps, steps=P.curve_steps)

# %%
plots.adversarial_pairs(
    x_show,
    x_adv,
    y_show,
    predict_logits(standard_model, x_show).argmax(1),
    predict_logits(standard_model, x_adv).argmax(1),
    data.class_names,
)
plt.show()

# %% [markdown]
# ## Robust accuracy against the radius
#
# The **fast gradient sign method** (FGSM) takes one step of size $\varepsilon$ along the sign of the
# loss gradient; **PGD** takes many smaller steps and projects back onto the ball and the data box
# after each, from a random start, keeping the best point it visits. PGD is the stronger attack, so
# its curve lies below FGSM's. The curves use the first seed's models, on the test points AutoAttack
# judged above.

# %%
curve = pd.DataFrame(
    robustness_curve(
        models[P.seeds[0]],
        x_eval,
        y_eval,
        P.eps_grid,
        attacks=("fgsm", "pgd"),
        steps=P.curve_steps,
    )
)

# %%
ax = sns.lineplot(
    curve, x="eps", y="robust_accuracy", hue="model", style="attack", marker="o"
)
ax.axvline(P.eps, color="0.6", ls=":", lw=1)
ax.set(
    xlabel=r"$\ell_\infty$ radius $\varepsilon$",
    ylabel="robust accuracy",
    ylim=(0, 1.02),
)
plt.show()

# %% [markdown]
# ## Estimating the input margin
#
# Computing $d_{in}(x)$ exactly means solving a non-convex optimisation over the input; for ReLU
# networks the question "is there an adversarial point within $\varepsilon$?" is NP-hard. A
# **minimum-norm attack** instead searches for the *closest* adversarial point it can find. FAB
# {cite}`croce2020minimally` linearises the classifier around the current iterate, projects onto the
# nearest linearised boundary inside the data box, and biases the step towards the original point.
# Whatever it returns is a real misclassified input, so its distance is an **upper bound** on the
# input margin — never a lower one.
#
# We use pyautoattack's FAB, but not its `perturb` loop, which stops improving a point as soon as one
# run succeeds (right for robust accuracy at a fixed $\varepsilon$, wrong for a *minimum* norm).
# `rb.input_margin` ranks the classes by the distance to their linearised boundary inside the box
# and runs one targeted FAB per nearest class, all in one batch; then it pulls the closest point found
# back along its segment to the first prediction flip. A point where every run fails is reported and
# counted at the search's bound (the diameter of the box), never as margin 0. We attack the model's
# *own* prediction, so misclassified points get a margin too. These are the lines that rank the targets:

# %% [markdown]
# ```{literalinclude} ../../lib/robustbook/margins.py
# :pyobject: nearest_targets
# ```

# %%
x_m, _ = subset(data.x_test, data.y_test, P.margin_points, seed=0)
found = {
    name: rb.input_margin(m, x_m) for name, m in models[P.seeds[0]].items()
}
histogram = pd.concat(
    [
        pd.DataFrame({"model": n, "input margin": r.margin.numpy()})
        for n, r in found.items()
    ]
)
fab_failures = sum(r.failures for r in found.values())

# %%
ax = sns.histplot(
    histogram,
    x="input margin",
    hue="model",
    element="step",
    stat="density",
    common_norm=False,
    bins=30,
)
ax.axvline(P.eps, color="0.3", ls=":", lw=1)
plt.show()

# %% tags=["remove-cell"]
res.glue("fab_failures", fab_failures)
res.glue("margin_points", len(x_m))

# %% [markdown]
# Adversarial training moves the whole distribution of margins to the right: points whose margin is
# below $\varepsilon$ (left of the dotted line) are exactly the non-robust ones. FAB failed on
# {glue:text}`fab_failures` of the 2 x {glue:text}`margin_points` points.
#
# ## A model whose margin is exact: the linear classifier
#
# For a linear classifier $f(x) = Wx + b$ predicting class $i$, the gap to another class $j$ is
# $g_j(x) = (w_i - w_j)^\top x + b_i - b_j \ge 0$. A perturbation with $\|\delta\|_\infty \le t$ can lower
# it by at most $t\,\|w_i - w_j\|_1$ — dual norms — so without constraints the margin would be
# $\min_j g_j / \|w_i - w_j\|_1$. Images must stay in $[0, 1]^d$, however, so coordinate $k$ can only move
# by the room it has in the helpful direction ($x_k$ downwards when $v_k = (w_i - w_j)_k > 0$, $1 - x_k$
# upwards otherwise). The largest reachable decrease is then
#
# $$D_j(t) = \sum_k |v_k|\,\min(t, c_k),$$
#
# piecewise linear, concave and increasing in $t$; sorting the $c_k$ gives the smallest $t$ with
# $D_j(t) \ge g_j$, and the input margin is the minimum over $j$. The same function ranks FAB's targets
# above, with the network's gradients in place of $w_i - w_j$:

# %% [markdown]
# ```{literalinclude} ../../lib/robustbook/margins.py
# :pyobject: linear_boundary_distance
# ```

# `margins.check_against_linear` computes the exact margins of a linear model and the two FAB estimates
# (one untargeted run, pyautoattack's default; and the book's estimator) on the same points:

# %%
linears = rb.zoo.load_seeds(
    ["linear"], data, P.seeds, linear_epochs=P.linear_epochs
)
checks = {
    seed: margins.check_against_linear(ms["linear"], x_m)
    for seed, ms in linears.items()
}
linear_rows = {
    seed: {
        "clean accuracy": accuracy(
            linears[seed]["linear"], data.x_test, data.y_test
        ),
        "one default FAB run": c.default_vs_exact["agreement"],
        "our estimator": c.ours_vs_exact["agreement"],
    }
    for seed, c in checks.items()
}
linear_summary = {
    k: rb.OverSeeds({s: r[k] for s, r in linear_rows.items()})
    for k in linear_rows[P.seeds[0]]
}
comparisons = {seed: c.ours_vs_exact for seed, c in checks.items()}
below_exact = {seed: c["below_exact"] for seed, c in comparisons.items()}
tables.per_seed(linear_summary, ".1%")

# %%
first = checks[P.seeds[0]]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for ax, (label, r) in zip(
    axes, [("one default run", first.default), ("our estimator", first.ours)]
):
    plots.estimate_vs_exact(
        first.exact.numpy(), r.distance.numpy(), label=f"FAB ({label})", ax=ax
    )
plt.show()

# %% tags=["remove-cell"]
res.glue("linear_clean_accuracy", linear_summary["clean accuracy"])
res.glue("fab_default_agreement", linear_summary["one default FAB run"])
res.glue("linear_margin_agreement", linear_summary["our estimator"])
res.glue(
    "linear_margin_median_relative_gap",
    rb.OverSeeds({s: c["median_relative_gap"] for s, c in comparisons.items()}),
)
res.glue("linear_margin_below_exact", sum(below_exact.values()))

# %% [markdown]
# The linear models reach {glue:text}`linear_clean_accuracy.mean:.1%` test accuracy. With a single
# untargeted run — pyautoattack's default — FAB lands within $10^{-3}$ of the exact margin on
# {glue:text}`fab_default_agreement.mean:.1%` of the points: at every iteration it picks the class
# whose *unconstrained* linearised boundary is closest, and when the box blocks that direction it
# settles on a farther boundary. Targeting the classes whose *box-constrained* boundary is nearest,
# then bisecting back along the segment, brings agreement to {glue:text}`linear_margin_agreement.mean:.1%`
# (median relative gap {glue:text}`linear_margin_median_relative_gap.mean:.1e`). FAB lies below the exact
# margin on {glue:text}`linear_margin_below_exact` points over all seeds: it returns real adversarial
# inputs, so anything else would mean a bug in one of the two computations.
#
# ## Takeaways
#
# - Robust accuracy at $\varepsilon$ and the input margin are two views of one object: a point is
#   robust at $\varepsilon$ exactly when its margin exceeds $\varepsilon$ ({prf:ref}`def-input-margin`).
# - Attacks give upper bounds (on robust accuracy and on margins); the stronger the attack, the
#   tighter. Always report the attack and its failures.
# - Exact margins are available only for special models; the linear case is our yardstick for the
#   estimator used in the rest of the book.

# %% [markdown]
# ## On a GPU
#
# ```{glue:md} gpu_section
# :format: myst
# ```

# %% [markdown]
# ## What we expected, and what we measured
#
# Each row is a finding our numbers could contradict, judged on the seeds: *holds* when the mean is
# on the expected side of the threshold by more than one standard deviation over seeds, *does not
# hold* when it is on the other side by more than that, *within noise* otherwise.

# %% tags=["remove-input"]
madry = papers.number("01_local_robustness", "madry_mnist_pgd")
res.claim(
    f"standard training leaves {rb.data.label(P.dataset)} brittle: AutoAttack robust accuracy at eps "
    "is at most 60%",
    summary["standard"]["robust accuracy"],
    "<=",
    0.60,
    "Szegedy et al. (2014); Goodfellow et al. (2015)",
    fmt=".1%",
)
res.claim(
    "PGD adversarial training raises AutoAttack robust accuracy at eps by at least 20 points",
    gain,
    ">=",
    0.20,
    f"Madry et al. (2018): {madry['value']:.1%} robust on {madry['setting']} ({madry['source']})",
    fmt=".1%",
)
res.claim(
    "adversarial training costs at least one point of clean accuracy",
    -1 * clean_change,
    ">=",
    0.01,
    "Madry et al. (2018); Tsipras et al. (2019)",
    enforce=False,
    fmt=".1%",
    reason="reported, not enforced: the cost depends on how close the classes' balls come (several points "
    "on CIFAR-10, a fraction of a point either way on the 8x8 digits), so the table shows what the "
    "seeds give",
)
res.claim(
    "one default FAB run misses the exact margin (by > 1e-3) on at least 1% more of the points than the "
    "book's estimator",
    linear_summary["our estimator"] - linear_summary["one default FAB run"],
    ">=",
    0.01,
    "our analysis of FAB's target choice",
    fmt=".1%",
)
res.claim(
    "the book's FAB estimator is within 1e-3 of the exact margin on at least 99% of the points",
    linear_summary["our estimator"],
    ">=",
    0.99,
    "Croce & Hein (2020): FAB finds near-minimal perturbations",
    fmt=".1%",
)
res.claim(
    "FAB is never below the exact linear margin",
    below_exact,
    "==",
    0,
    "FAB returns real adversarial points; the exact margin is a minimum",
    fmt=".0f",
)
res.finish(enforce=P.profile == "cpu")

# %% [markdown]
# ## Exercises
#
# ```{exercise}
# :label: ex-1-half-eps
#
# Predict, then check: the standard model's robust accuracy at $\varepsilon$ is shown above. What do
# you expect at $\varepsilon / 2$ — half of it, or more than half? Measure it with
# `rb.robust_accuracy(model, x, y, eps, setting=...)` for the first seed.
# ```
#
# ```{solution-start} ex-1-half-eps
# :class: dropdown
# ```

# %%
half = rb.robust_accuracy(
    standard_model, x_eval, y_eval, P.eps / 2, setting=setting
)
at_eps = per_seed[P.seeds[0]]["standard"]["robust accuracy"]
print(f"robust accuracy at eps/2: {half:.1%}  (at eps: {at_eps:.1%})")

# %% [markdown]
# Much more than half: robust accuracy is the share of points whose margin exceeds the radius, and
# the histogram of margins above puts many standard-model points between $\varepsilon/2$ and
# $\varepsilon$. Halving the radius keeps all of them.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-1-upper-bound
#
# Show that the distance of any point FAB returns is an upper bound of the input margin, and explain
# why this makes "FAB below the exact margin" a bug detector rather than a finding.
# ```
#
# ```{solution-start} ex-1-upper-bound
# :class: dropdown
# ```
#
# FAB only keeps points $x'$ with $F(x') \ne F(x)$, checked by a forward pass. By
# {prf:ref}`def-input-margin`, $d_{in}(x)$ is the minimum of $\|x' - x\|$ over all such points, so
# it is at most the distance of any one of them. If FAB's distance were below the exact linear margin,
# either the exact computation or the adversarial check would be wrong — which is why this row is a
# check with threshold 0, and why it holds on every seed.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-1-l2
#
# Change the norm. Estimate the $\ell_2$ input margins of the first seed's PGD model with
# `rb.input_margin(model, x, "L2")`. An $\ell_\infty$ ball of radius $r$ contains the $\ell_2$ ball of
# radius $r$ and lies inside the $\ell_2$ ball of radius $r\sqrt{d}$. Check both bounds on the medians.
# ```
#
# ```{solution-start} ex-1-l2
# :class: dropdown
# ```

# %%
robust_model = models[P.seeds[0]]["pgd"]
l2 = rb.input_margin(robust_model, x_m, "L2")
linf = found["pgd"]
d = x_m[0].numel()
print(
    f"median Linf margin {linf.margin.median():.3f}, "
    f"median L2 margin {l2.margin.median():.3f}, "
    f"sqrt(d) x Linf {d**0.5 * linf.margin.median():.3f}"
)
print(
    "Linf <= L2 <= sqrt(d) Linf on every point:",
    bool(
        (
            (linf.margin <= l2.margin + 1e-6)
            & (l2.margin <= d**0.5 * linf.margin + 1e-6)
        ).all()
    ),
)

# %% [markdown]
# The $\ell_2$ margin lies between the two, closer to the $\ell_\infty$ margin than to $\sqrt{d}$ times it:
# the nearest $\ell_2$ boundary point moves a few pixels a lot, not every pixel a little. (Both are
# estimates; the inequality holds for the exact margins and is checked here on FAB's.)
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-1-best-iterate
#
# PGD here keeps, per point, the best iterate it visits over every step and restart. Read
# `robustbook.attacks.pgd` and explain why this can never make the attack weaker than returning the
# last iterate, and why it matters most for large step sizes.
# ```
#
# ```{solution-start} ex-1-best-iterate
# :class: dropdown
# ```
#
# The returned point is chosen among all iterates, the last one included, by "misclassified first,
# otherwise highest loss": if the last iterate fools the model, some kept iterate does too. With
# large steps PGD oscillates around the boundary, so a misclassified iterate can be followed by a
# correctly classified one; returning the last iterate would miss it.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-1-open
#
# Open question. Read the clean-accuracy row of the claims table: adversarial training costs clean
# accuracy on CIFAR-10 and, here, on Fashion-MNIST. On scikit-learn's 8x8 digits at the same radius it cost
# next to nothing. Propose an explanation for the difference and an experiment with this chapter's
# parameters that could refute it.
# ```
#
# ```{solution-start} ex-1-open
# :class: dropdown
# ```
#
# One explanation: the cost appears when the $\ell_\infty$ balls of images of different classes come close
# to each other. A shirt and a T-shirt differ in a few sleeve and collar pixels, so a robust classifier must
# give up on some of them; 8x8 digits of different classes are far apart in $\ell_\infty$, so there a robust
# classifier can also be accurate and the attack acts as data augmentation. Refutation test: lower `eps` on
# Fashion-MNIST (e.g. `-p eps 0.03 -p eps_grid "[0.0, 0.03, 0.1]"`) — the explanation predicts the cost
# shrinks with the radius; raise it on the digits (`--profile smoke -p eps 0.3`) — it predicts a cost appears.
#
# ```{solution-end}
# ```
