"""Parameters and profiles of every chapter (registered into :mod:`robustbook.chapters`)."""
from __future__ import annotations

from .chapters import Chapter, Param, ParameterError, register
from .data import DATASETS
from .models import ARCHITECTURES

_IMAGE_DATASETS = tuple(d for d in DATASETS if d != "blobs")

COMMON = {
    "seed": Param(int, "seed of every random choice", low=0, high=2**31 - 1),
}


def _eps_in_grid(p: dict) -> None:
    if p["eps"] > max(p["eps_grid"]):
        raise ParameterError(f"eps = {p['eps']} lies beyond eps_grid (max {max(p['eps_grid'])}); extend the grid")


register(Chapter(
    name="01_local_robustness",
    title="Local robustness and the input margin",
    params={
        "dataset": Param(str, "training and test data", choices=_IMAGE_DATASETS),
        "arch": Param(str, "architecture of both models", choices=tuple(a for a in ARCHITECTURES if a != "linear")),
        "width": Param(int, "hidden units (mlp) or first-layer channels (cnn)", low=1, high=4096),
        "epochs": Param(int, "training epochs of each model", low=1, high=1000),
        "lr": Param(float, "Adam learning rate", low=1e-6, high=1.0),
        "eps": Param(float, "Linf radius for adversarial training and the headline robust accuracy", low=1e-4, high=1.0),
        "eps_grid": Param(list, "Linf radii of the robustness curves", item=float, low=0.0, high=1.0),
        "train_steps": Param(int, "PGD steps inside adversarial training", low=1, high=100),
        "pgd_steps": Param(int, "PGD steps of the evaluation attack", low=1, high=1000),
        "pgd_restarts": Param(int, "random restarts of the evaluation attack", low=1, high=100),
        "margin_points": Param(int, "test points whose input margin FAB estimates", low=1, high=100000),
        "fab_restarts": Param(int, "untargeted FAB runs (the first from x, the rest from random starts)", low=1, high=100),
        "fab_target_classes": Param(int, "targeted FAB runs, one per highest-ranked other class", low=0, high=99),
        "linear_epochs": Param(int, "full-batch epochs of the linear model", low=1, high=10000),
        **COMMON,
    },
    profiles={
        "smoke": dict(dataset="digits", arch="mlp", width=32, epochs=2, lr=1e-3, eps=0.1, eps_grid=[0.0, 0.1],
                      train_steps=2, pgd_steps=3, pgd_restarts=1, margin_points=16, fab_restarts=1,
                      fab_target_classes=2, linear_epochs=20, seed=0),
        "cpu": dict(dataset="digits", arch="cnn", width=32, epochs=30, lr=1e-3, eps=0.1,
                    eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3], train_steps=7, pgd_steps=50,
                    pgd_restarts=2, margin_points=300, fab_restarts=2, fab_target_classes=9, linear_epochs=500,
                    seed=0),
        "paper": dict(dataset="cifar10", arch="cnn", width=64, epochs=60, lr=1e-3, eps=8 / 255,
                      eps_grid=[0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255, 16 / 255], train_steps=10, pgd_steps=50,
                      pgd_restarts=2, margin_points=1000, fab_restarts=5, fab_target_classes=9,
                      linear_epochs=500, seed=0),
    },
    check=_eps_in_grid,
    budget_seconds=120,
))
