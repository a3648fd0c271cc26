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
    with torch.no_grad():
        pred = model(pts).argmax(1).reshape(resolution, resolution).numpy()
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
    """Input margin (x) against logit margin (y), one panel per model; failed FAB points are left out."""
    import pandas as pd

    frames = []
    for name, r in reports.items():
        ok = r.success.numpy()
        frames.append(pd.DataFrame({"model": name, "input margin": r.input_margin.distance.numpy()[ok],
                                    "logit margin": r.logit_margin.numpy()[ok], "correct": r.correct.numpy()[ok]}))
    grid = sns.FacetGrid(pd.concat(frames), col="model", col_wrap=col_wrap, sharex=False, sharey=False, height=2.8)
    grid.map_dataframe(sns.scatterplot, x="input margin", y="logit margin", hue="correct", s=10, alpha=0.6,
                       palette={True: "tab:blue", False: "tab:red"})
    if eps is not None:
        grid.map(plt.axvline, x=eps, color="0.4", ls=":", lw=1)
    grid.add_legend(title="correct")
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
