"""Figures shared by the chapters (matplotlib + seaborn)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

sns.set_theme(context="notebook", style="whitegrid")


def _image(ax, x: torch.Tensor, cmap="gray_r"):
    img = x.detach().cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap=cmap, vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
    ax.set_xticks([]), ax.set_yticks([])


def adversarial_pairs(x, x_adv, y, pred, pred_adv, class_names: Sequence[str] | None = None, n: int = 8):
    """Clean images (top row), their adversarial versions (middle) and the perturbation (bottom)."""
    n = min(n, len(x))
    names = class_names or [str(i) for i in range(int(max(y.max(), pred_adv.max())) + 1)]
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.6), squeeze=False)
    for i in range(n):
        _image(axes[0, i], x[i])
        axes[0, i].set_title(f"{names[int(pred[i])]}", fontsize=10, color="black" if pred[i] == y[i] else "red")
        _image(axes[1, i], x_adv[i])
        axes[1, i].set_title(f"{names[int(pred_adv[i])]}", fontsize=10, color="black" if pred_adv[i] == y[i] else "red")
        delta = (x_adv[i] - x[i]).detach().cpu()
        scale = float(delta.abs().max()) or 1.0
        axes[2, i].imshow(delta.mean(0), cmap="RdBu", vmin=-scale, vmax=scale)
        axes[2, i].set_xticks([]), axes[2, i].set_yticks([])
    for row, label in enumerate(("clean", "adversarial", "perturbation")):
        axes[row, 0].set_ylabel(label)
    fig.tight_layout()
    return fig


def decision_regions(model, x: torch.Tensor, y: torch.Tensor, ax=None, resolution: int = 300,
                     extra_class_color: str = "0.25", title: str | None = None, lim=(0.0, 1.0)):
    """Decision regions of a 2-D classifier; a class beyond the data's classes (e.g. GloRo's bottom) is shaded dark."""
    ax = ax or plt.gca()
    grid = torch.linspace(lim[0], lim[1], resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)
    from .attacks import predict_logits

    pred = predict_logits(model, pts).argmax(1).reshape(resolution, resolution).cpu().numpy()
    n_classes = int(y.max()) + 1
    colors = sns.color_palette("pastel", n_classes) + [extra_class_color]
    from matplotlib.colors import ListedColormap

    ax.imshow(pred, origin="lower", extent=(*lim, *lim), cmap=ListedColormap(colors[: max(pred.max() + 1, n_classes)]),
              vmin=0, vmax=max(pred.max(), n_classes - 1), interpolation="nearest", aspect="auto")
    return _points(ax, x, y, n_classes, lim, title)


def _points(ax, x, y, n_classes: int, lim, title: str | None):
    """The data points of a 2-D region plot, in strong class colours, and the axes' limits and title."""
    strong = sns.color_palette("deep", n_classes)
    for c in range(n_classes):
        sel = y == c
        ax.scatter(x[sel, 0], x[sel, 1], s=5, color=strong[c], edgecolor="k", linewidth=0.2)
    ax.set_xlim(*lim), ax.set_ylim(*lim), ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def selection_regions(selectors: dict, x: torch.Tensor, y: torch.Tensor, resolution: int = 120, lim=(0.0, 1.0)):
    """One panel per selector: where in the 2-D plane it hands the input to the robust model (dark), with the data."""
    grid = torch.linspace(lim[0], lim[1], resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)
    fig, axes = plt.subplots(1, len(selectors), figsize=(4.3 * len(selectors), 4.2), squeeze=False)
    n_classes = int(y.max()) + 1
    for ax, (name, selector) in zip(axes[0], selectors.items()):
        chosen = selector.select(pts).reshape(resolution, resolution).float().cpu().numpy()
        ax.imshow(chosen, origin="lower", extent=(*lim, *lim), cmap="Greys", vmin=0, vmax=1.6, aspect="auto",
                  interpolation="nearest")
        _points(ax, x, y, n_classes, lim, f"{name}: {chosen.mean():.0%} of the square selected")
    fig.tight_layout()
    return fig


def cost_vs_robustness(points, ax=None):
    """Robust accuracy (attacked) against selector cost (log axis), one point per (robust model, selector) pair,
    with the spread over seeds as error bars. ``points``: rows with model, selector, cost, robust, robust_std."""
    ax = ax or plt.subplots(figsize=(6.5, 4.2))[1]
    palette = dict(zip(sorted({p["model"] for p in points}), sns.color_palette("deep")))
    for p in points:
        ax.errorbar(p["cost"], p["robust"], yerr=p["robust_std"], fmt="o", color=palette[p["model"]], capsize=3)
        ax.annotate(p["selector"], (p["cost"], p["robust"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for model, colour in palette.items():
        ax.plot([], [], "o", color=colour, label=f"robust model: {model}")
    ax.set(xscale="log", xlabel="selector cost per input (forward passes)", ylabel="robust accuracy, attacked end to end")
    ax.legend(fontsize=8)
    return ax


def estimate_vs_exact(exact, estimate, label: str = "FAB", ax=None):
    """Scatter of a margin estimate against the exact margin, with the diagonal."""
    ax = ax or plt.gca()
    exact, estimate = np.asarray(exact), np.asarray(estimate)
    ax.scatter(exact, estimate, s=8, alpha=0.6)
    hi = float(np.nanmax([exact.max(), np.nanmax(estimate)]))
    ax.plot([0, hi], [0, hi], color="k", lw=1, ls="--", label="estimate = exact")
    ax.set_xlabel("exact input margin")
    ax.set_ylabel(f"{label} estimate")
    ax.legend()
    return ax


def margin_scatter(reports: dict, eps: float | None = None, col_wrap: int = 3):
    """Input margin (x) against logit margin (y), one panel per model; points where FAB found no
    adversarial example sit at the search's bound and are drawn as crosses."""
    import pandas as pd

    frames = []
    for name, r in reports.items():
        frames.append(pd.DataFrame({"model": name, "input margin": r.margin.cpu().numpy(),
                                    "logit margin": r.logit_margin.cpu().numpy(),
                                    "correct": r.correct.cpu().numpy(),
                                    "FAB": np.where(r.input_margin.success.cpu().numpy(), "found", "failed")}))
    grid = sns.FacetGrid(pd.concat(frames), col="model", col_wrap=col_wrap, sharex=False, sharey=False, height=2.8)
    grid.map_dataframe(sns.scatterplot, x="input margin", y="logit margin", hue="correct", style="FAB",
                       markers={"found": "o", "failed": "X"}, s=10, alpha=0.6,
                       palette={True: "tab:blue", False: "tab:red"})
    if eps is not None:
        grid.map(plt.axvline, x=eps, color="0.4", ls=":", lw=1)
    grid.add_legend()
    return grid


def certified_regions(net, x: torch.Tensor, y: torch.Tensor, eps: float, ax=None, resolution: int = 250,
                      title: str | None = None, lim=(0.0, 1.0)):
    """Decision regions of a 2-D GloRo net: class colour where one class is certified, the mix of
    the members' colours where a larger set is certified, dark grey where the net outputs bottom."""
    ax = ax or plt.gca()
    grid = torch.linspace(lim[0], lim[1], resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    cert = net.certify(torch.stack([gx.flatten(), gy.flatten()], 1), eps=eps)
    n_classes = cert.certified_set.shape[1]
    palette = torch.tensor(sns.color_palette("pastel", n_classes))
    members = cert.certified_set.double()
    colour = (members @ palette.double()) / members.sum(1, keepdim=True).clamp_min(1)
    colour[~cert.certified] = 0.3
    ax.imshow(colour.reshape(resolution, resolution, 3).numpy(), origin="lower", extent=(*lim, *lim), aspect="auto",
              interpolation="nearest")
    return _points(ax, x, y, n_classes, lim, title)


def separating_threshold(input_margin, logit_margin, eps: float, threshold: float, title: str = "", ax=None):
    """Input vs logit margin with the radius (dotted) and a logit-margin threshold (dashed); points on
    the wrong side of "non-robust iff logit margin <= threshold" in red."""
    ax = ax or plt.subplots(figsize=(5.5, 4))[1]
    d_in, d_out = np.asarray(input_margin), np.asarray(logit_margin)
    wrong = (d_in <= eps) != (d_out <= threshold)
    ax.scatter(d_in[~wrong], d_out[~wrong], s=10, alpha=0.5, label="separated correctly")
    ax.scatter(d_in[wrong], d_out[wrong], s=18, color="tab:red", label="on the wrong side")
    ax.axvline(eps, color="0.3", ls=":", lw=1)
    ax.axhline(threshold, color="0.3", ls="--", lw=1)
    ax.set(xlabel="input margin (FAB)", ylabel="logit margin", title=title)
    ax.legend()
    return ax


def pseudo_margin_fit(pseudo, input_margin, score, title: str = ""):
    """Training curves of a pseudo-margin (with the kept epoch) and its scores against the input margin."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(np.array(pseudo.history), label=["training", "validation"])
    axes[0].axvline(pseudo.best_epoch - 1, color="0.4", ls=":")
    axes[0].set(xlabel="epoch", ylabel=r"MSE on $\sqrt{d_{in}}$", yscale="log", title="pseudo-margin training")
    axes[0].legend()
    axes[1].scatter(np.asarray(input_margin), np.asarray(score), s=8, alpha=0.6)
    axes[1].set(xlabel="input margin (FAB)", ylabel="pseudo-margin", title=title)
    return fig


def image_row(images, titles, xlabels=None, width: float = 1.5):
    """One row of images (C, H, W in [0, 1]) with a title (and optionally a label) under each."""
    fig, axes = plt.subplots(1, len(images), figsize=(width * len(images), 2.2), squeeze=False)
    for i, (ax, img) in enumerate(zip(axes[0], images)):
        _image(ax, img)
        ax.set_title(titles[i], fontsize=9)
        if xlabels:
            ax.set_xlabel(xlabels[i], fontsize=9)
    return fig


def corruption_grid(image, corrupt_fn, names, severities):
    """One image (1, C, H, W) under every corruption (rows) and severity (columns), the clean image first."""
    fig, axes = plt.subplots(len(names), len(severities) + 1, figsize=(7.5, 1.25 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        _image(axes[row, 0], image[0])
        axes[row, 0].set_ylabel(name.replace("_", " "), rotation=0, ha="right", va="center", fontsize=9)
        for col, s in enumerate(severities, start=1):
            _image(axes[row, col], corrupt_fn(image, name, s)[0])
    for col in range(len(severities) + 1):
        axes[0, col].set_title("clean" if col == 0 else f"severity {severities[col - 1]}", fontsize=9)
    return fig


ANNOTATE_MAX_CLASSES = 20     # heat maps of more classes are drawn without numbers and class names


def co_certification(matrix, class_names: Sequence[str], title: str = "", ax=None):
    """Heat map of :meth:`robustbook.certify.Certificate.co_certification`: rows are true classes,
    columns the classes their certified sets hold."""
    ax = ax or plt.gca()
    few = len(class_names) <= ANNOTATE_MAX_CLASSES       # 100 classes: 10,000 unreadable numbers, a minute to draw
    sns.heatmap(np.asarray(matrix), vmin=0, vmax=1, cmap="Blues", annot=few, fmt=".0%", annot_kws={"size": 7},
                xticklabels=class_names if few else False, yticklabels=class_names if few else False,
                cbar=not few, ax=ax)
    ax.set(xlabel="class in the certified set", ylabel="true class", title=title)
    ax.tick_params(axis="x", labelrotation=60)
    return ax
