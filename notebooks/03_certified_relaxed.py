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
# # Certified robustness in one forward pass: GloRo nets, relaxed top-K and affinity
#
# Attacks can only show that a model is *not* robust. A **certificate** proves that it is: no input in
# the ball changes the answer. GloRo nets {cite}`leino2021globally` make certification as cheap as a
# prediction.
#
# ```{prf:theorem} The GloRo certificate
# :label: thm-gloro
#
# Let $K_{ji}$ bound the $\ell_2$ Lipschitz constant of the logit difference $y_j - y_i$, and let $j$ be the
# predicted class at $x$. If $y_j(x) - y_i(x) > \varepsilon K_{ji}$ for every $i \ne j$, then $F(x') = j$ for
# every $x'$ with $\|x' - x\|_2 \le \varepsilon$.
# ```
#
# ```{prf:proof}
# For such $x'$, $y_j(x') - y_i(x') \ge y_j(x) - y_i(x) - K_{ji}\|x' - x\|_2 > \varepsilon K_{ji} - \varepsilon K_{ji} = 0$.
# ```
#
# The net appends a **bottom logit** $y_\bot = \max_{i \ne j} (y_i + \varepsilon K_{ji})$, which wins exactly
# when the condition fails: predicting $\bot$ means "not certified", and training with $\bot$ as a competitor
# pushes the net to be certifiably robust. $K_{ji} = L\,\|w_j - w_i\|_2$, with $L$ the product of the spectral
# norms of all layers before the last (1 for ReLU and MinMax). Note that a tie $y_j = y_i$ can never be
# certified: the condition is strict, and any perturbation may break the tie either way.
#
# Local robustness can be the wrong demand when classes genuinely overlap: a blurry 3 that might be an 8
# cannot be robustly either. Leino & Fredrikson {cite}`leino2021relaxing` relax it.
#
# ```{prf:definition} Relaxed top-K robustness
# :label: def-rtk
#
# $F$ is *relaxed top-K robust* at $x$ with radius $\varepsilon$ when for every $x'$ in the ball there is some
# $k \le K$ such that the set of the $k$ highest classes at $x'$ equals the one at $x$.
# ```
#
# ```{prf:definition} Affinity robustness
# :label: def-affinity
#
# Given *affinity groups* of classes (superclasses, digits people confuse), $F$ is *affinity robust* at $x$
# when for every $x'$ in the ball some top-$k$ set is invariant, as in {prf:ref}`def-rtk`, **and** lies
# inside one group.
# ```
#
# Both are certified by changing only how $\bot$ is computed. For the top-$K$ classes $j_1, \dots, j_K$ and
# $T_k = \{j_1..j_k\}$, let $m_k = \min_{l \le k,\; i \notin T_k} (y_{j_l} - y_i - \varepsilon K_{j_l i})$;
# by {prf:ref}`thm-gloro` applied to each pair, $m_k > 0$ certifies that $T_k$ stays the top-$k$ set, and
# $y_\bot = \max_c y_c - \max_{k \le K} m_k$. With $K = 1$ this is the GloRo bottom logit (a test checks it to
# $10^{-6}$). For affinity, $m_k$ counts only when $T_k$ lies inside a group — for *any* $k \le K$, as the
# reference code checks it; the talk's definition ("the top-$|S|$ set equals $S$") asks for the whole group,
# which is stricter. `robustbook.certify` is our PyTorch implementation; the bottom logit is

# %% [markdown]
# ```{literalinclude} ../../lib/robustbook/certify.py
# :pyobject: GloroNet.augmented
# ```
#
# and the margins $m_k$ it uses, for every relaxation at once:

# %% [markdown]
# ```{literalinclude} ../../lib/robustbook/certify.py
# :pyobject: relaxation_margins
# ```

# %% tags=["parameters"]
profile = "cpu"
toy_eps = None
toy_epochs = None
dataset = None
data_points = None
gloro_arch = None
gloro_width = None
gloro_eps = None
gloro_epochs = None
trades_lambda = None
rtk_k = None
groups = None
group_count = None
attack_steps = None
attack_restarts = None
seeds = None

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch

import robustbook as rb
from robustbook import certify, plots
from robustbook.book import papers, tables

P, res = rb.start("03_certified_relaxed", globals())
P.table()

# %% [markdown]
# ## Where relaxation pays: overlapping classes in 2-D
#
# RTK's gain comes from inputs that really are ambiguous between a few classes. The smallest setting
# where we can *see* that is a 2-D toy: four Gaussian classes in
# the unit square, classes 0 and 1 overlapping heavily, 2 and 3 apart (a new sample of the data for every
# seed). We train three GloRo MLPs (MinMax activations) at $\ell_2$ radius $\varepsilon$ = {glue:text}`toy_eps:.3g`:
# for local robustness, for RT2, and for affinity with the single group $\{0, 1\}$.


# %%
def toy_data(seed):
    return rb.load_dataset(
        "blobs",
        means=[(0.3, 0.35), (0.42, 0.45), (0.75, 0.7), (0.3, 0.8)],
        stds=[(0.07, 0.07)] * 4,
        counts=[150] * 4,
        seed=seed,
    )


toy_names = {
    "toy_local": "local",
    "toy_rtk2": "rtk2",
    "toy_affinity": "affinity",
}
toy = {s: toy_data(s) for s in P.seeds}
toy_params = dict(
    toy_eps=P.toy_eps, toy_epochs=P.toy_epochs, trades_lambda=P.trades_lambda
)
loaded = iter(
    rb.zoo.load_many(
        [
            (n, {**toy_params, "seed": s}, toy[s])
            for s in P.seeds
            for n in toy_names
        ]
    )
)
toy_nets = {
    s: {label: next(loaded) for label in toy_names.values()} for s in P.seeds
}
toy_vra = {
    label: rb.OverSeeds(
        {
            s: toy_nets[s][label]
            .certify(toy[s].x_test, eps=P.toy_eps)
            .vra(toy[s].y_test)
            for s in P.seeds
        }
    )
    for label in toy_names.values()
}
tables.per_seed(toy_vra, ".1%")

# %% tags=["remove-cell"]
res.glue("toy_eps", P.toy_eps)
res.glue("toy_vra", toy_vra)
res.glue("toy_rtk_gain", toy_vra["rtk2"] - toy_vra["local"])
res.glue("toy_affinity_gain", toy_vra["affinity"] - toy_vra["local"])

# %% [markdown]
# Colours show what is certified at each point of the plane (first seed): a class colour where that class
# is certified, the mix of two colours where a pair is certified as the top-2 set, dark grey where the net
# answers $\bot$.

# %%
first = P.seeds[0]
titles = {
    "local": "local robustness",
    "rtk2": "relaxed top-2",
    "affinity": "affinity, group {0, 1}",
}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, (label, net) in zip(axes, toy_nets[first].items()):
    plots.certified_regions(
        net,
        toy[first].x_test,
        toy[first].y_test,
        P.toy_eps,
        ax=ax,
        title=titles[label],
    )
plt.show()

# %% [markdown]
# Where classes 0 and 1 overlap no single answer is robust, so the local-robustness net has two bad
# options: leave a wide $\bot$ band, or give one class the whole overlap and certify it there — wrongly for
# every point of the other class. The RT2 and affinity nets certify the *pair* $\{0, 1\}$ instead — a
# guarantee that is still useful ("one of these two, whatever the perturbation") — and keep $\bot$ only where
# even that fails. Over the seeds, RT2 gains {glue:text}`toy_rtk_gain.mean:.1%`
# (± {glue:text}`toy_rtk_gain.std:.1%`) of verified-robust accuracy (VRA) over local robustness, affinity
# {glue:text}`toy_affinity_gain.mean:.1%`. RT2 also certifies pairs nobody asked for (the mixed colours
# between far-apart classes); affinity allows only the pair $\{0, 1\}$.
#
# ## Real images: Fashion-MNIST
#
# Fashion-MNIST's ten classes come in natural families: five kinds of tops (T-shirt/top, pullover, dress,
# coat, shirt) that look alike at 28x28 pixels, three kinds of footwear (sandal, sneaker, ankle boot), and
# two loners (trouser, bag). Every model confuses shirts with T-shirts, pullovers and coats — the ambiguity
# relaxed robustness is for, as CIFAR-100's superclasses are in the paper.
#
# We certify at $\ell_2$ radius $\varepsilon$ = {glue:text}`eps:.3g`, the radius the GloRo paper uses on MNIST
# {cite}`leino2021globally`. Over 784 pixels that is a root-mean-square change of
# {glue:text}`eps_rms:.3f` per pixel (the grey scale runs from 0 to 1), or a change of 0.1 in
# {glue:text}`eps_pixels:.0f` pixels: invisible to a person, who would give every image in the ball the same
# label. A test image lies at a median $\ell_2$ distance of {glue:text}`nearest_other_median:.2f` from the
# nearest *training* image of another class, so $\varepsilon$ is {glue:text}`eps_over_nearest:.0%` of the way
# there.

# %%
data = rb.load_dataset(P.dataset, points=P.data_points)
distances = torch.cdist(
    data.x_test.flatten(1).double(), data.x_train.flatten(1).double()
)
other = (
    distances.masked_fill(
        data.y_test[:, None] == data.y_train[None, :], float("inf")
    )
    .min(1)
    .values
)
radius = {
    "L2 radius": P.gloro_eps,
    "RMS change per pixel": P.gloro_eps / data.x_test[0].numel() ** 0.5,
    "pixels changed by 0.1": (P.gloro_eps / 0.1) ** 2,
    "median distance to another class": other.median().item(),
}
radius["share of that distance"] = (
    radius["L2 radius"] / radius["median distance to another class"]
)
pd.Series(radius, name="value").to_frame().style.format("{:.3g}")

# %% tags=["remove-cell"]
res.glue("eps", P.gloro_eps)
res.glue("nearest_other_median", radius["median distance to another class"])
res.glue("eps_over_nearest", radius["share of that distance"])
res.glue("eps_rms", radius["RMS change per pixel"])
res.glue("eps_pixels", radius["pixels changed by 0.1"])

# %% [markdown]
# **Affinity groups.** On Fashion-MNIST the groups are the four families above, fixed before any training
# (`robustbook.data.FASHION_MNIST_GROUPS`); on CIFAR-100 they are the 20 superclasses. Where a dataset has no
# natural groups (`groups = "derived"`, the `smoke` profile's digits) we let a relaxed net tell us: the sets
# of classes that the RT-$K$ net (largest $K$, first seed) certifies most often on the *training and
# validation* splits become the groups (an exercise below derives them on Fashion-MNIST).

# %%
gloro = dict(
    gloro_arch=P.gloro_arch,
    gloro_width=P.gloro_width,
    gloro_eps=P.gloro_eps,
    gloro_epochs=P.gloro_epochs,
    trades_lambda=P.trades_lambda,
)
K_max = max(P.rtk_k)
if P.groups == "fashion_mnist":
    groups = list(rb.data.FASHION_MNIST_GROUPS.values())
    display = pd.DataFrame(
        [
            {
                "group": g,
                "classes": ", ".join(data.class_names[c] for c in members),
            }
            for g, members in rb.data.FASHION_MNIST_GROUPS.items()
        ]
    )
elif P.groups == "derived":
    probe = rb.zoo.load(f"gloro_rtk{K_max}", data, seed=first, **gloro)
    derived = certify.derive_groups(
        probe, torch.cat([data.x_train, data.x_val]), P.gloro_eps, P.group_count
    )
    groups = [members for members, _, _ in derived]
    display = pd.DataFrame(
        [
            {
                "group": "{" + ", ".join(map(str, m)) + "}",
                "count": n,
                "source": how,
            }
            for m, n, how in derived
        ]
    )
else:
    groups = certify.cifar100_superclasses()
    display = pd.DataFrame(
        {"group": [f"{len(groups)} superclasses of {len(groups[0])} classes"]}
    )
display

# %% [markdown]
# One net per guarantee and seed — local, RT-$K$ for each $K$, and affinity with these groups — certified
# under its own guarantee on the test split (the papers' protocol):

# %%
names = ["gloro_local", *[f"gloro_rtk{k}" for k in P.rtk_k], "gloro_affinity"]
labels = {n: n.removeprefix("gloro_") for n in names}
loaded = rb.zoo.load_seeds(names, data, P.seeds, groups=groups, **gloro)
nets = {s: {labels[n]: m for n, m in loaded[s].items()} for s in P.seeds}
per_seed = {}
for s in P.seeds:
    per_seed[s] = {}
    for label, net in nets[s].items():
        cert = net.certify(data.x_test, eps=P.gloro_eps)
        per_seed[s][label] = {
            "clean accuracy": (cert.prediction == data.y_test)
            .double()
            .mean()
            .item(),
            "VRA": cert.vra(data.y_test),
            "rejected": cert.rejection_rate,
        }
summary = tables.collect(per_seed)
tables.mean_std(summary, ".1%", index="guarantee")

# %% [markdown]
# The gains over local robustness, seed by seed, for the better RTK net and for affinity:

# %%
best_rtk = max(
    (f"rtk{k}" for k in P.rtk_k), key=lambda n: summary[n]["VRA"].mean
)
rtk_gain = summary[best_rtk]["VRA"] - summary["local"]["VRA"]
affinity_gain = summary["affinity"]["VRA"] - summary["local"]["VRA"]
tables.per_seed(
    {f"{best_rtk} - local": rtk_gain, "affinity - local": affinity_gain}, ".1%"
)

# %% tags=["remove-cell"]
res.glue(
    "groups_text",
    "; ".join(
        "{" + ", ".join(data.class_names[c] for c in g) + "}" for g in groups
    )
    if len(groups) <= 8
    else f"{len(groups)} groups of up to {max(map(len, groups))} classes",
)
for label, cols in summary.items():
    res.glue(
        label,
        {
            "clean_accuracy": cols["clean accuracy"],
            "vra": cols["VRA"],
            "rejection_rate": cols["rejected"],
        },
    )
res.glue("rtk_gain", rtk_gain)
res.glue("affinity_gain", affinity_gain)
res.glue("best_rtk", best_rtk)

# %% [markdown]
# The affinity groups are {glue:text}`groups_text`. The best relaxed top-$K$ net ({glue:text}`best_rtk`)
# certifies {glue:text}`rtk_gain.mean:.1%` (± {glue:text}`rtk_gain.std:.1%` over seeds) more of
# the test images correctly than the local-robustness net, and affinity with the four families
# {glue:text}`affinity_gain.mean:.1%` (± {glue:text}`affinity_gain.std:.1%`) more.
#
# ## Which classes are certified together
#
# Each row of these maps is a true class; a cell is the share of its test images whose certified set holds
# the column's class (first seed). The diagonal is each class's VRA. The local net certifies single classes,
# so an off-diagonal cell is an image certified as *another* class — robust and wrong; for the relaxed nets
# the off-diagonal mass shows which classes they had to certify together.

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
for ax, label in zip(axes, ["local", f"rtk{min(P.rtk_k)}", "affinity"]):
    together = (
        nets[first][label]
        .certify(data.x_test, eps=P.gloro_eps)
        .co_certification(data.y_test, data.num_classes)
    )
    plots.co_certification(together, data.class_names, title=label, ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# The RT2 net certifies pairs where an image is ambiguous — typically T-shirts with shirts, sneakers with
# sandals — and, unasked, some pairs across families. The affinity net may only certify a whole family, so its off-diagonal mass fills the
# tops and footwear blocks and nothing else: a weaker promise for a shirt ("some top") than RT2's best case, but
# one a person would sign.
#
# ## Top-2 certified where top-1 is not
#
# Test images for which the RT2 net (first seed) certifies the set of its two highest classes although it
# could not certify its first choice alone (titles: the certified pair; the label underneath):

# %%
rtk_label = f"rtk{min(P.rtk_k)}"
cert = nets[first][rtk_label].certify(data.x_test, eps=P.gloro_eps)
relaxed_only_share = (cert.set_size >= 2).double().mean().item()
idx = torch.nonzero(cert.set_size >= 2).flatten()[:8].tolist()
if idx:
    plots.image_row(
        [data.x_test[i] for i in idx],
        [
            "{"
            + ", ".join(
                map(
                    str, torch.nonzero(cert.certified_set[i]).flatten().tolist()
                )
            )
            + "}"
            for i in idx
        ],
        [f"label {int(data.y_test[i])}" for i in idx],
    )
    plt.show()

# %% tags=["remove-cell"]
res.glue("relaxed_only_share", relaxed_only_share)
res.glue("rtk_name", rtk_label)

# %% [markdown]
# {glue:text}`relaxed_only_share:.1%` of the test images get such a set certificate from the
# {glue:text}`rtk_name` net.
#
# ## Are the certificates sound?
#
# A certificate is a proof only if its ingredients are right — in floating point too. During training the
# spectral norms come from warm-started power iteration, cheap but an estimate from below. Certificates use
# sound norms instead: an exact SVD for dense layers and, for convolutions, the exact operator matrix or an
# FFT upper bound {cite}`sedghi2019singular`, all in float64 and rounded up; the weight-row distances are
# explicit float64 differences; and a margin counts only above a slack that covers the float32 forward
# pass. The test suite checks these pieces (ties, brute-force enumeration of top-$k$ sets, a 100-class
# head against float64, gradient-norm search). Here we attack: for every certified test point of every net
# and seed, PGD with {glue:text}`attack_restarts` restarts of {glue:text}`attack_steps` steps inside the
# $\ell_2$ ball tries to push some class outside the certified set above some class inside it.

# %%
checks = {
    (s, label): certify.attack_certificates(
        net, data.x_test, P.gloro_eps, P.attack_steps, P.attack_restarts
    )
    for s in P.seeds
    for label, net in nets[s].items()
}
violations = rb.OverSeeds(
    {
        s: sum(checks[(s, label)]["soundness_violations"] for label in nets[s])
        for s in P.seeds
    }
)
attacked = sum(c["certified_points_attacked"] for c in checks.values())
pd.DataFrame(checks).T.rename_axis(["seed", "guarantee"])

# %% tags=["remove-cell"]
res.glue("attack_steps", P.attack_steps)
res.glue("attack_restarts", P.attack_restarts)
res.glue("certified_points_attacked", attacked)
res.glue("soundness_violations", int(violations.values.sum()))

# %% [markdown]
# {glue:text}`certified_points_attacked` certified points attacked, {glue:text}`soundness_violations`
# certificates broken; `closest_gap` is how close an attack came (negative: the certified set still wins).
#
# ## The papers' numbers next to ours

# %%
paper = papers.table("03_certified_relaxed")[
    ["dataset", "guarantee", "value"]
].rename(columns={"value": "VRA"})
paper["dataset"] = "paper: " + paper["dataset"]
ours = pd.DataFrame(
    [
        {
            "dataset": f"ours: {P.dataset}, L2 {P.gloro_eps:.3g}",
            "guarantee": g,
            "VRA": summary[g]["VRA"].mean,
        }
        for g in summary
    ]
    + [
        {
            "dataset": f"ours: 2-D toy, L2 {P.toy_eps:.3g}",
            "guarantee": g,
            "VRA": v.mean,
        }
        for g, v in toy_vra.items()
    ]
)
pd.concat([paper, ours], ignore_index=True).style.format(
    "{:.3f}", subset=["VRA"]
)

# %% [markdown]
# ## On a GPU
#
# ```{glue:md} gpu_section
# :format: myst
# ```

# %% [markdown]
# Different datasets and radii, so compare the direction: on every dataset the papers report, relaxing the
# guarantee raises VRA, and affinity — a more specific promise — sits between local robustness and RTK.
#
# ## What we expected, and what we measured

# %% tags=["remove-input"]
source = (
    f"Leino & Fredrikson (2021): RT3 {papers.value('03_certified_relaxed', 'eurosat_rt3'):.3f} vs local "
    f"{papers.value('03_certified_relaxed', 'eurosat_local'):.3f} on EuroSAT"
)
res.claim(
    "where classes overlap (2-D toy), RT2 gains at least 5 VRA points over local robustness",
    toy_vra["rtk2"] - toy_vra["local"],
    ">=",
    0.05,
    source,
    fmt=".1%",
)
res.claim(
    "where classes overlap (2-D toy), affinity with the overlapping pair gains at least 5 VRA points",
    toy_vra["affinity"] - toy_vra["local"],
    ">=",
    0.05,
    f"Leino & Fredrikson (2021): superclass affinity "
    f"{papers.value('03_certified_relaxed', 'cifar100_affinity'):.3f} vs local "
    f"{papers.value('03_certified_relaxed', 'cifar100_local'):.3f} on CIFAR-100",
    fmt=".1%",
)
on = rb.data.label(P.dataset)
res.claim(
    f"on {on}, the better RTK net ({best_rtk}) gains at least 5 VRA points over local robustness",
    rtk_gain,
    ">=",
    0.05,
    source,
    enforce=P.dataset == "fashion_mnist",
    fmt=".1%",
    reason="the gain needs test inputs that are ambiguous between a few classes at this radius (see the toy "
    "above); few 8x8 digits are",
)
res.claim(
    f"on {on}, affinity robustness with the {'natural' if P.groups == 'fashion_mnist' else P.groups} "
    "groups gains at least 5 VRA points over local robustness",
    affinity_gain,
    ">=",
    0.05,
    "Leino & Fredrikson (2021): superclass affinity on CIFAR-100",
    enforce=P.dataset == "fashion_mnist",
    fmt=".1%",
    reason="separately trained nets differ by training as much as by guarantee; groups derived on 8x8 digits "
    "are not natural families",
)
res.claim(
    "no certificate is broken by PGD (violations per seed)",
    violations,
    "==",
    0,
    "soundness of the GloRo certificate (our float-safe implementation)",
    fmt=".0f",
)
res.finish(enforce=P.profile == "cpu")

# %% [markdown]
# ## Exercises
#
# ```{exercise}
# :label: ex-3-tie
#
# Why can a tie between the two highest logits never be certified, whatever $\varepsilon$ and however small
# the Lipschitz constants? Check it on a GloRo net with two identical rows in its last layer.
# ```
#
# ```{solution-start} ex-3-tie
# :class: dropdown
# ```

# %%
from torch import nn

head = nn.Linear(2, 3)
with torch.no_grad():
    head.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]))
    head.bias.zero_()
tied = certify.GloroNet(nn.Sequential(nn.Identity(), head), eps=1e-6)
print(
    "certified:",
    tied.certify(torch.tensor([[0.5, 0.5], [0.9, 0.1]])).certified.tolist(),
)

# %% [markdown]
# The certificate asks $y_j - y_i > \varepsilon K_{ji}$; at a tie the left side is 0, and $\varepsilon K_{ji} \ge 0$,
# so the strict inequality fails. It must: at a tie any perturbation may tip the answer either way, so no
# radius is safe. (The reference code masks *every* logit equal to the maximum and certified ties; ours masks
# only the argmax index and requires a strictly positive margin above a float slack.)
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-3-k1
#
# Show that with $K = 1$ the relaxed bottom logit $\max_c y_c - m_1$ equals the GloRo bottom logit of
# {prf:ref}`thm-gloro`, and check it numerically with `certify.relaxation_margins` on random logits.
# ```
#
# ```{solution-start} ex-3-k1
# :class: dropdown
# ```

# %%
g = torch.Generator().manual_seed(0)
y = torch.randn(500, 6, generator=g, dtype=torch.float64)
K = torch.rand(6, 6, generator=g, dtype=torch.float64)
K = (K + K.T).fill_diagonal_(0)
m, order = certify.relaxation_margins(y, K, 0.3, 1)
j = y.argmax(1)
gloro_bottom = (
    (y + 0.3 * K[j]).scatter(1, j[:, None], float("-inf")).max(1).values
)
print(
    "largest difference:",
    float((y.max(1).values - m[:, 0] - gloro_bottom).abs().max()),
)

# %% [markdown]
# With $K = 1$, $T_1 = \{j\}$ and $m_1 = \min_{i \ne j} (y_j - y_i - \varepsilon K_{ji}) = y_j - \max_{i \ne j}(y_i +
# \varepsilon K_{ji})$, so $\max_c y_c - m_1 = y_j - m_1 = \max_{i \ne j}(y_i + \varepsilon K_{ji}) = y_\bot$.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-3-radius
#
# Predict, then check: how does the local-robustness VRA of the first seed's net change if it is
# certified at half the radius it was trained for? And at twice?
# ```
#
# ```{solution-start} ex-3-radius
# :class: dropdown
# ```

# %%
local = nets[first]["local"]
for scale in (0.5, 1.0, 2.0):
    c = local.certify(data.x_test, eps=scale * P.gloro_eps)
    vra, rejected = c.vra(data.y_test), c.rejection_rate
    print(f"radius {scale:.1f} x eps: VRA {vra:.1%}, rejected {rejected:.1%}")

# %% [markdown]
# VRA falls steeply with the radius: the certified radius of most points is close to the training radius,
# because training pushes margins just past $\varepsilon K$ and no further.
#
# ```{solution-end}
# ```
#
# ```{exercise}
# :label: ex-3-open
#
# Groups from the model instead of from people. Derive affinity groups from the first seed's largest-$K$
# relaxed net with `certify.derive_groups` on the training and validation images (never the test split),
# and compare them with the natural families. Is it circular to evaluate an affinity net with groups
# derived this way? How would you test whether the choice of groups changes the conclusion?
# ```
#
# ```{solution-start} ex-3-open
# :class: dropdown
# ```

# %%
probe = nets[first][f"rtk{K_max}"]
derived = certify.derive_groups(
    probe, torch.cat([data.x_train, data.x_val]), P.gloro_eps, 4
)
pd.DataFrame(
    [
        {
            "derived group": ", ".join(data.class_names[c] for c in members),
            "count": n,
            "source": how,
        }
        for members, n, how in derived
    ]
)

# %% [markdown]
# The sets the relaxed net certifies most often are pairs inside the families a person would name (tops
# with tops, footwear with footwear). The groups are derived on training and validation data only, so the
# test VRA is not fitted — but they favour what a GloRo net finds hard to separate, which may flatter
# affinity. Test: train affinity nets with both groupings over several seeds
# (`rb.zoo.load_seeds(["gloro_affinity"], data, P.seeds, groups=..., **gloro)`) and compare their VRA
# differences with the spread over seeds.
#
# ```{solution-end}
# ```
