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
# # Do cheap metrics predict robustness? A benchmark over a model zoo
#
# Measuring robustness means building shifted test sets and attacking every model. A student study
# {cite}`pereira2024benchmarking` asked whether something cheaper would do: a single number computed from the
# model and its training data — a weight norm, the sharpness of the minimum, the margin, the entropy of the
# predictions — that ranks models by robustness. They trained more than 50 CIFAR-10 CNNs over a grid of
# hyperparameters, evaluated them on corrupted {cite}`hendrycks2019benchmarking`, naturally shifted and
# attacked test sets, and correlated measures with robustness. Their answer: no single measure predicts
# robustness well, but three moderate relations stood out.
#
# We repeat the study on grids of small CNNs on Fashion-MNIST (a fixed subset of its training split), once per seed, with the measures defined as in
# Jiang et al. {cite}`jiang2020fantastic` and three definitions of robustness for each kind of shift.
#
# ```{prf:definition} Robustness quantities
# :label: def-robustness-quantities
#
# For a model with clean accuracy $a$ and log-loss $\ell$, and accuracy $a_s$ and log-loss $\ell_s$ on a
# shifted test set: the *accuracy gap* $a - a_s$; the *relative robustness* $a_s / a$; the *uncertainty
# robustness* $\ell_s - \ell$ (the increase of the log-loss). A larger gap or log-loss increase is worse; a
# larger relative robustness is better.
# ```

# %% tags=["parameters"]
profile = "cpu"
dataset = None
data_points = None
optimizers = None
lr_levels = None
depths = None
widths = None
dropouts = None
epochs = None
attack_eps = None
attack_eps_l2 = None
attack_points = None
cw_steps = None
cw_search_steps = None
sharpness_points = None
bootstrap = None
seeds = None

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import robustbook as rb
from robustbook import measures as ms
from robustbook import plots
from robustbook.attacks import predict_logits, run_attacks
from robustbook.book import papers, tables
from robustbook.shifts import CORRUPTIONS, SEVERITIES, corrupt, load_cifar10_1
from robustbook.stats import granulated_kendall, kendall_tau

P, res = rb.start("05_robustness_metrics", globals())
P.table()

# %% [markdown]
# ## The zoo
#
# A full grid over optimizer (SGD with momentum or Adam), learning rate (three levels per optimizer), depth
# (convolution layers), width (first-layer channels) and dropout; every model is the book's small CNN
# trained for the same number of epochs, named by its grid point in the zoo (`grid:<optimizer>-lr<level>-…`)
# and cached. One grid per seed.

# %%
data = rb.load_dataset(P.dataset, points=P.data_points)
grid = rb.zoo.grid(P.optimizers, P.lr_levels, P.depths, P.widths, P.dropouts)
names = [rb.zoo.grid_name(point) for point in grid]
zoos = {
    s: list(ms_.values())
    for s, ms_ in rb.zoo.load_seeds(
        names, data, P.seeds, epochs=P.epochs
    ).items()
}
accuracy = pd.DataFrame(
    {
        f"seed {s}": [
            ms.performance(
                m, data.x_test, data.y_test, data.num_classes, ("accuracy",)
            )["accuracy"]
            for m in zoo
        ]
        for s, zoo in zoos.items()
    }
)

# %%
ax = sns.histplot(
    accuracy.melt(var_name="seed", value_name="clean test accuracy"),
    x="clean test accuracy",
    hue="seed",
    bins=20,
    element="step",
)
ax.set(ylabel="models")
plt.show()

# %% tags=["remove-cell"]
res.glue("n_models", len(grid))
res.glue("n_seeds", len(P.seeds))

# %% [markdown]
# {glue:text}`n_models` models per seed, {glue:text}`n_seeds` seeds. The grid deliberately includes poor
# settings, so clean accuracy spreads widely.
#
# ## Shifted test sets
#
# **Corruptions.** Eight corruptions at five severities, implemented in torch for small grayscale images
# (`robustbook.shifts`; severity constants of CIFAR-10-C where they transfer). The `imagecorruptions`
# package, which the paper profile uses on CIFAR-10, needs RGB images of at least 32x32. One test image under
# each corruption and severity:

# %%
plots.corruption_grid(
    data.x_test[:1],
    lambda x, name, s: corrupt(x, name, s, 0),
    list(CORRUPTIONS),
    SEVERITIES,
)
plt.show()

# %% [markdown]
# **Attacks.** FGSM, PGD and BIM {cite}`kurakin2017adversarial` at $\ell_\infty$ radius
# {glue:text}`attack_eps:.3g` (BIM with Kurakin et al.'s step of 1/255 and their number of iterations);
# DeepFool {cite}`moosavi2016deepfool` and Carlini-Wagner {cite}`carlini2017towards` (with its binary search
# over the trade-off constant), two minimum-norm attacks, with their result projected onto an $\ell_2$ budget of
# {glue:text}`attack_eps_l2:.3g`. All five are ours (`robustbook.attacks`), each tested to stay within its
# budget and the data box; torchattacks' CW mishandles negative logits and its DeepFool leaves points
# unbroken, so we do not rely on them. Each model is attacked itself. The adversarial versions of one image for
# the most accurate model of the first seed:

# %%
attacks = {
    "fgsm": {"eps": P.attack_eps},
    "pgd": {"eps": P.attack_eps, "steps": 10},
    "bim": {"eps": P.attack_eps},
    "deepfool": {"eps": P.attack_eps_l2, "steps": 20},
    "cw": {
        "eps": P.attack_eps_l2,
        "steps": P.cw_steps,
        "search_steps": P.cw_search_steps,
    },
}
first = P.seeds[0]
best = zoos[first][int(accuracy[f"seed {first}"].idxmax())]
x0, y0 = data.x_test[:1], data.y_test[:1]
adversarial = {"clean": x0, **run_attacks(best, x0, y0, attacks)}
plots.image_row(
    [a[0] for a in adversarial.values()],
    [
        f"{name}: {int(predict_logits(best, a).argmax())}"
        for name, a in adversarial.items()
    ],
)
plt.show()

# %% tags=["remove-cell"]
res.glue("attack_eps", P.attack_eps)
res.glue("attack_eps_l2", P.attack_eps_l2)

# %% [markdown]
# ## Measures and robustness of every model
#
# Per model: in-distribution **performance** (accuracy, macro precision, recall, F1, log-loss); the
# **margin** (10th percentile over the training set of the true logit minus the best other) and the mean
# predictive **entropy**; **norms** — log products over layers of squared spectral (exact operator norms of the
# convolutions at this input size), squared Frobenius and nuclear norms, the path norm, and "norm over margin",
# the log of the ratio $\prod_l \|W_l\|^2 / \gamma^2$ (a model whose margin $\gamma$ is not positive keeps its
# place with $|\gamma|$, and is flagged); and **PAC-Bayes sharpness** $1/\sigma^2$, with $\sigma$ the largest
# weight-noise level that lowers training accuracy by 0.1, found by bisection, and its magnitude-aware variant
# whose noise on a weight $w$ has variance $\sigma^2 w^2 + 10^{-6}$. The noise of the search:

# %% [markdown]
# ```{literalinclude} ../../lib/robustbook/measures.py
# :pyobject: _noise
# ```
#
# and the bisection on $\sigma$:
#
# ```{literalinclude} ../../lib/robustbook/measures.py
# :pyobject: sharpness
# :lines: 15-
# ```

# %%
natural = (
    load_cifar10_1() if P.dataset == "cifar10" else None
)  # the natural shift, paper profile only
study = {
    s: ms.study(
        zoo,
        data,
        attacks,
        P.attack_points,
        P.sharpness_points,
        seed=s,
        rgb=data.x_test.shape[1] == 3,
        natural=natural,
    )
    for s, zoo in zoos.items()
}
taus = {s: ms.correlations(r.measures, r.quantities) for s, r in study.items()}
measure_names = list(taus[first])
quantity_names = [
    q
    for q in taus[first][measure_names[0]]
    if not q.endswith("shifted_accuracy")
]
mean_tau = pd.DataFrame(
    {
        q: {m: np.mean([taus[s][m][q] for s in P.seeds]) for m in measure_names}
        for q in quantity_names
    }
)
sharp_seconds = float(np.mean([r.sharpness_seconds for r in study.values()]))
nonpositive = sum(
    int(m["margin_nonpositive"]) for r in study.values() for m in r.measures
)

# %%
fig, ax = plt.subplots(figsize=(13, 6.5))
sns.heatmap(
    mean_tau,
    annot=True,
    fmt=".2f",
    cmap="RdBu_r",
    vmin=-1,
    vmax=1,
    ax=ax,
    annot_kws={"fontsize": 7},
)
ax.set(
    title="Kendall's tau between measures (rows) and robustness quantities "
    "(columns), mean over seeds"
)
plt.show()

# %% tags=["remove-cell"]
res.glue("sharpness_seconds_per_model", sharp_seconds)
res.glue("correlations", mean_tau.T.to_dict())
res.glue("margin_nonpositive_models", nonpositive)

# %% [markdown]
# Read the heatmap by column: a quantity is predictable when some row is dark. The sign depends on the
# quantity ({prf:ref}`def-robustness-quantities`). {glue:text}`margin_nonpositive_models` models (over all seeds)
# had a non-positive training margin. Sharpness took {glue:text}`sharpness_seconds_per_model:.2f` s per model
# and variant (the study reports about two hours per model on CIFAR-10).
#
# ## The best predictors of each kind of shift
#
# Mean $\tau$ over seeds, the three largest $|\tau|$ per quantity. A pair marked † shares clean accuracy by
# construction: relative robustness divides by it and the accuracy gap subtracts from it, so a performance
# measure "predicts" them partly by arithmetic.

# %%
top = {}
for q in quantity_names:
    ranked = mean_tau[q].abs().sort_values(ascending=False)
    dagger = {
        m: " †" if ms.construction_linked(m, q) else "" for m in ranked.index
    }
    top[q] = {
        f"#{i + 1}": f"{m} ({mean_tau.loc[m, q]:+.2f}){dagger[m]}"
        for i, m in enumerate(ranked.index[:3])
    }
pd.DataFrame(top).T

# %%
strongest = [
    (mean_tau[q].abs().idxmax(), q)
    for q in (
        "corruption/relative_robustness",
        "adversarial/relative_robustness",
        "corruption/uncertainty_robustness",
    )
]
measures0, quantities0 = study[first].measures, study[first].quantities
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, (m, q) in zip(axes, strongest):
    xs, ys = (
        np.array([r[m] for r in measures0]),
        np.array([r[q] for r in quantities0]),
    )
    defined = np.isfinite(xs) & np.isfinite(ys)  # as in ms.correlations
    ax.scatter(
        xs[defined],
        ys[defined],
        s=14,
        c=accuracy[f"seed {first}"][defined],
        cmap="viridis",
    )
    if defined.sum() >= 2:
        t = kendall_tau(
            xs[defined], ys[defined], n_boot=P.bootstrap, seed=first
        )
        ax.set(title=f"tau {t.tau:+.2f} [{t.low:+.2f}, {t.high:+.2f}]")
    ax.set(xlabel=m, ylabel=q)
plt.show()

# %% [markdown]
# First seed; colour is clean accuracy; brackets are 95% bootstrap intervals over the models.
#
# **Granulated Kendall.** A correlation over the whole zoo can come from one hyperparameter that moves both
# the measure and the robustness. Jiang et al.'s granulated coefficient compares only models that differ in a
# single axis, averaged over the groups and then over the axes (mean over seeds):

# %%
gran = {
    f"{m} vs {q}": {
        a: np.mean(
            [
                granulated_kendall(
                    grid,
                    [r[m] for r in study[s].measures],
                    [r[q] for r in study[s].quantities],
                    rb.zoo.GRID_AXES,
                )[a]
                for s in P.seeds
            ]
        )
        for a in (*rb.zoo.GRID_AXES, "average")
    }
    for m, q in strongest
}
pd.DataFrame(gran).T.style.format("{:+.2f}")

# %% [markdown]
# ## The study's findings, checked
#
# Each finding states a sign; we call a relation *moderate* when $\tau$ has that sign and $|\tau| \ge 0.3$, and
# judge it on the seeds (one $\tau$ per seed). The sign each finding states, and why:

# %%
pd.DataFrame(
    [
        {
            "finding": f.finding,
            "measure": f.measure,
            "quantity": f.quantity,
            "sign": f"{f.sign:+d}",
            "why": f.why,
        }
        for f in ms.FINDINGS
    ]
)

# %% [markdown]
# Per seed: each finding's tau times its stated sign (>= 0.3: moderate, the finding's way), the control (clean
# accuracy against the shifted accuracy alone), the share of quantities the best single measure predicts with
# $|\tau| \ge 0.5$, and how far the attacks lower accuracy (mean over the zoo):

# %%
signed = {
    f: rb.OverSeeds(
        {s: f.sign * taus[s][f.measure][f.quantity] for s in P.seeds}
    )
    for f in ms.FINDINGS
}
control = rb.OverSeeds(
    {s: taus[s]["accuracy"]["corruption/shifted_accuracy"] for s in P.seeds}
)
coverage = {s: ms.best_coverage(taus[s]) for s in P.seeds}
best_coverage = rb.OverSeeds({s: c.share for s, c in coverage.items()})
drop = rb.OverSeeds(
    {
        s: float(
            np.mean(
                [
                    m["accuracy"] - q["adversarial/shifted_accuracy"]
                    for m, q in zip(study[s].measures, study[s].quantities)
                ]
            )
        )
        for s in P.seeds
    }
)
tables.per_seed(
    {
        **{
            f"{f.measure} vs {f.quantity} (x{f.sign:+d})": v
            for f, v in signed.items()
        },
        "control: accuracy vs corruption/shifted_accuracy": control,
        "best measure's coverage": best_coverage,
        "attack accuracy drop": drop,
    },
    ".2f",
)

# %% tags=["remove-cell"]
res.glue("findings", {f.finding: signed[f] for f in ms.FINDINGS})
res.glue("control_tau_accuracy_shifted", control)
res.glue("best_coverage", best_coverage)
res.glue("best_coverage_measure", coverage[first].measure)

# %% [markdown]
# ## On a GPU
#
# ```{glue:md} gpu_section
# :format: myst
# ```

# %% [markdown]
# The control for the first finding: clean accuracy against the *shifted* accuracy alone (no division) gives
# $\tau$ = {glue:text}`control_tau_accuracy_shifted.mean:+.2f` on average — how much of the relation survives
# without the arithmetic link. The study's overall finding, "no single measure predicts robustness well", gets
# a criterion that could come out either way: the best measure ({glue:text}`best_coverage_measure` on the first
# seed) reaches $|\tau| \ge 0.5$ on {glue:text}`best_coverage.mean:.0%` of the robustness quantities (pairs
# linked by construction left out); the finding holds if that share stays at most one half.
#
# Agreement or disagreement here is about small CNNs on 28x28 grey images, not CIFAR-10. Run the `paper` profile
# on a GPU for the CIFAR-10 version (CIFAR-10-C through imagecorruptions, CIFAR-10.1 v6 for the natural shift).
#
# ## What we expected, and what we measured

# %% tags=["remove-input"]
study_source = "Pereira, Correia, Gameiro (2024), the study's findings"
for f in ms.FINDINGS:
    note = f" ({f.construction})" if f.construction else ""
    res.claim(
        f"finding: {f.finding} — tau({f.measure}, {f.quantity}) has sign {f.sign:+d} and |tau| >= 0.3{note}",
        signed[f],
        ">=",
        ms.MODERATE,
        study_source,
        enforce=False,
        reason=f"a finding on CIFAR-10 CNNs; our zoo is small CNNs on {rb.data.label(P.dataset)}",
    )
res.claim(
    "the attacks break the zoo: adversarial accuracy is at least 10 points below clean accuracy (mean over "
    "the models)",
    drop,
    ">=",
    0.10,
    "every attack is ours and tested to stay within its budget (chapter 1)",
    fmt=".1%",
)
res.claim(
    "no single measure predicts robustness well: the best measure reaches |tau| >= 0.5 on at most half "
    "of the robustness quantities",
    best_coverage,
    "<=",
    0.5,
    study_source,
    fmt=".2f",
    enforce=False,
    reason=f"the study's overall finding, on a small zoo of CNNs on {rb.data.label(P.dataset)}",
)
res.finish(enforce=P.profile == "cpu")

# %% [markdown]
# ## Exercises
#
# ```{exercise}
# :label: ex-5-norm-margin
#
# "Norm over margin" is $\log(\prod_l \|W_l\|^2 / \gamma^2)$. An earlier version of this study computed
# $\log(\prod_l \|W_l\|^2) / \gamma^2$ instead. Show with two made-up models that the two can rank models in
# opposite orders, and explain when.
# ```
#
# ```{solution-start} ex-5-norm-margin
# :class: dropdown
# ```

# %%
models_ = {
    "A": (-2.0, 0.5),
    "B": (-1.0, 1.0),
}  # (log of the product of squared norms, margin)
for name, (log_norm, margin) in models_.items():
    ratio = log_norm - 2 * np.log(margin)
    print(
        f"model {name}: log ratio {ratio:+.2f},",
        f"log / margin^2 {log_norm / margin**2:+.2f}",
    )

# %% [markdown]
# The log ratio ranks A above B (A has the smaller margin); the quotient ranks B above A. Dividing a *negative*
# log by $\gamma^2$ makes it more negative for small margins, so the order reverses whenever the log-product is
# negative — products of spectral norms below 1 are common in small networks.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-5-sharpness
#
# Predict, then measure: is the magnitude-aware sharpness of the most accurate model of the first seed larger
# or smaller than its plain sharpness? Use `ms.sharpness(model, x, y, magnitude_aware=...)` on 300 training points.
# ```
#
# ```{solution-start} ex-5-sharpness
# :class: dropdown
# ```

# %%
xs, ys = data.x_train[:300], data.y_train[:300]
plain, aware = (
    ms.sharpness(best, xs, ys),
    ms.sharpness(best, xs, ys, magnitude_aware=True),
)
print(f"sharpness 1/sigma^2: plain {plain:.3g}, magnitude-aware {aware:.3g}")

# %% [markdown]
# The magnitude-aware noise on a weight is $\sigma |w|$ (plus a floor), smaller than $\sigma$ for the many
# weights below 1 in magnitude, so a larger $\sigma$ is needed for the same accuracy drop, and the measure
# $1/\sigma^2$ comes out smaller.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-5-granulated
#
# Why does the granulated Kendall coefficient need a *full* grid? What happens to an axis's coefficient when
# only one value of that axis was trained?
# ```
#
# ```{solution-start} ex-5-granulated
# :class: dropdown
# ```
#
# For each axis, models are grouped by the values of all *other* axes and $\tau$ is computed inside each
# group; a group needs at least two models that differ only in that axis, which only a full grid guarantees.
# With a single value on the axis, every group holds one model, no $\tau$ exists, and the coefficient is
# undefined (our implementation reports NaN for it and averages over the other axes).
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-5-open
#
# Open question. Which measure of this chapter would you expect to predict *adversarial* relative robustness
# best on CIFAR-10, and how would you test it without training fifty models?
# ```
#
# ```{solution-start} ex-5-open
# :class: dropdown
# ```
#
# A margin in *input* space — the quantity of chapters 1 and 2 — is the most direct candidate: adversarial
# robustness is a statement about input margins, and for margin-consistent models the cheap logit margin
# orders them. One test without a large zoo: take the RobustBench models of chapter 2 (already trained), compute
# their mean logit margin on clean data and rank them against their reported robust accuracy.
#
# ```{solution-end}
# ```
