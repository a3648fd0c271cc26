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


def _robustbench_names(dataset: str) -> set[str]:
    from .models import _import_robustbench

    _import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return set(model_dicts[BenchmarkDataset(dataset)][ThreatModel("Linf")])


def _check_margin_models(p: dict) -> None:
    from .consistency import ZOO_NAMES

    unknown = [m for m in p["models"] if m not in ZOO_NAMES]
    if unknown:
        if p["dataset"] not in ("cifar10", "cifar100"):
            raise ParameterError(f"unknown model(s) {unknown}; valid choices on {p['dataset']}: {', '.join(ZOO_NAMES)}")
        known = _robustbench_names(p["dataset"])
        bad = [m for m in unknown if m not in known]
        if bad:
            raise ParameterError(f"unknown model(s) {bad}: neither a digits-zoo recipe ({', '.join(ZOO_NAMES)}) "
                                 f"nor a RobustBench {p['dataset']}/Linf model")
    for key in ("inconsistent_model", "reference_model"):
        if p[key] not in p["models"]:
            raise ParameterError(f"{key} = {p[key]!r} must be one of models: {', '.join(p['models'])}")
    if p["subset_points"] >= p["margin_points"]:
        raise ParameterError("subset_points must be smaller than margin_points (the rest is where the estimate is checked)")


_ZOO = ("standard", "pgd_half_eps", "pgd", "trades", "spectral_norm", "rescaled")

register(Chapter(
    name="02_margin_consistency",
    title="Margin consistency: detecting brittle decisions for free",
    params={
        "dataset": Param(str, "data of the models", choices=_IMAGE_DATASETS),
        "models": Param(list, "digits-zoo recipes or RobustBench model names", item=str),
        "inconsistent_model": Param(str, "the model the pseudo-margin repairs (one of models)"),
        "reference_model": Param(str, "the model for the theorem and the cost measurement (one of models)"),
        "norm": Param(str, "threat model of the input margin", choices=("Linf", "L2")),
        "eps": Param(float, "radius: a point is non-robust when its input margin is <= eps", low=1e-4, high=10.0),
        "width": Param(int, "first-layer channels of the digits-zoo CNNs", low=1, high=1024),
        "epochs": Param(int, "training epochs of the digits-zoo models", low=1, high=1000),
        "train_steps": Param(int, "PGD steps inside adversarial training", low=1, high=100),
        "margin_points": Param(int, "test points whose input margin FAB estimates", low=10, high=100000),
        "fab_restarts": Param(int, "untargeted FAB runs per point", low=1, high=100),
        "fab_target_classes": Param(int, "targeted FAB runs per point", low=0, high=99),
        "fab_iterations": Param(int, "FAB iterations per run", low=1, high=10000),
        "pgd_steps": Param(int, "PGD steps for robust accuracy", low=1, high=1000),
        "pgd_restarts": Param(int, "PGD restarts for robust accuracy", low=1, high=100),
        "pseudo_train_points": Param(int, "training points whose margins train the pseudo-margin", low=10, high=100000),
        "pseudo_val_points": Param(int, "validation points for its early stopping", low=10, high=100000),
        "pseudo_epochs": Param(int, "full-batch epochs of the pseudo-margin MLP", low=1, high=100000),
        "pseudo_lr": Param(float, "Adam learning rate of the pseudo-margin MLP", low=1e-7, high=1.0),
        "subset_points": Param(int, "attacked points that fit the robust-accuracy threshold", low=2, high=100000),
        "bootstrap": Param(int, "bootstrap resamples of the tau intervals", low=0, high=100000),
        **COMMON,
    },
    profiles={
        "smoke": dict(dataset="digits", models=["standard", "pgd", "rescaled"], inconsistent_model="rescaled",
                      reference_model="pgd", norm="Linf", eps=0.1, width=8, epochs=2, train_steps=2, margin_points=40,
                      fab_restarts=1, fab_target_classes=1, fab_iterations=20, pgd_steps=5, pgd_restarts=1,
                      pseudo_train_points=60, pseudo_val_points=40, pseudo_epochs=20, pseudo_lr=1e-3,
                      subset_points=15, bootstrap=10, seed=0),
        "cpu": dict(dataset="digits", models=list(_ZOO), inconsistent_model="rescaled", reference_model="pgd",
                    norm="Linf", eps=0.1, width=32, epochs=30, train_steps=7, margin_points=300, fab_restarts=1,
                    fab_target_classes=3, fab_iterations=100, pgd_steps=50, pgd_restarts=2,
                    pseudo_train_points=500, pseudo_val_points=180, pseudo_epochs=500, pseudo_lr=1e-4,
                    subset_points=100, bootstrap=200, seed=0),
        "paper": dict(dataset="cifar10", models=["Ding2020MMA", "Addepalli2021Towards_RN18", "Engstrom2019Robustness",
                                                 "Rice2020Overfitting", "Sehwag2021Proxy_R18"],
                      inconsistent_model="Ding2020MMA", reference_model="Addepalli2021Towards_RN18", norm="Linf",
                      eps=8 / 255, width=32, epochs=30, train_steps=7, margin_points=1000, fab_restarts=5,
                      fab_target_classes=0, fab_iterations=100, pgd_steps=50, pgd_restarts=1,
                      pseudo_train_points=4000, pseudo_val_points=1000, pseudo_epochs=500, pseudo_lr=1e-4,
                      subset_points=500, bootstrap=200, seed=0),
    },
    check=_check_margin_models,
    budget_seconds=180,
))


def _check_certified(p: dict) -> None:
    from .certify import affinity_groups

    if any(k < 2 for k in p["rtk_k"]):
        raise ParameterError("rtk_k values must be >= 2 (K = 1 is local robustness)")
    largest = max(len(g) for g in affinity_groups(p["groups"]))
    if largest not in p["rtk_k"]:
        raise ParameterError(f"rtk_k must include the largest affinity group size ({largest}) "
                             "so that affinity can be compared with RTK at that K")
    expected = {"digits_confusable": ("digits",), "cifar100_superclasses": ("cifar100",)}[p["groups"]]
    if p["dataset"] not in expected:
        raise ParameterError(f"groups {p['groups']!r} are for {', '.join(expected)}, not {p['dataset']}")


_TOY = dict(toy_eps=0.06, toy_epochs=60)

register(Chapter(
    name="03_certified_relaxed",
    title="Certified robustness in one forward pass: GloRo nets, relaxed top-K and affinity",
    params={
        "toy_eps": Param(float, "L2 radius on the 2-D toy data", low=1e-4, high=1.0),
        "toy_epochs": Param(int, "training epochs of the toy GloRo nets", low=1, high=10000),
        "dataset": Param(str, "image data", choices=_IMAGE_DATASETS),
        "arch": Param(str, "GloRo architecture (MinMax activations)", choices=tuple(a for a in ARCHITECTURES if a != "linear")),
        "width": Param(int, "first-layer channels (cnn) or units (mlp); ignored by the xCyF networks", low=1, high=4096),
        "eps": Param(float, "L2 radius of the certificates", low=1e-4, high=100.0),
        "epochs": Param(int, "training epochs of each GloRo net", low=1, high=10000),
        "trades_lambda": Param(float, "weight of the GloRo TRADES term (0: cross-entropy on the augmented logits)", low=0.0, high=100.0),
        "rtk_k": Param(list, "K values of the relaxed top-K nets", item=int, low=1, high=99),
        "groups": Param(str, "named affinity grouping (robustbook.certify.AFFINITY_GROUPS)", choices=("digits_confusable", "cifar100_superclasses")),
        "attack_steps": Param(int, "PGD steps of the soundness check on certified points", low=1, high=10000),
        "attack_restarts": Param(int, "PGD restarts of the soundness check", low=1, high=100),
        **COMMON,
    },
    profiles={
        "smoke": dict(toy_eps=0.06, toy_epochs=3, dataset="digits", arch="mlp", width=32, eps=0.5, epochs=3,
                      trades_lambda=2.0, rtk_k=[2, 3], groups="digits_confusable",
                      attack_steps=5, attack_restarts=1, seed=0),
        "cpu": dict(toy_eps=0.06, toy_epochs=60, dataset="digits", arch="cnn", width=32, eps=0.5, epochs=150,
                    trades_lambda=2.0, rtk_k=[2, 3], groups="digits_confusable",
                    attack_steps=50, attack_restarts=3, seed=0),
        "paper": dict(toy_eps=0.06, toy_epochs=60, dataset="cifar100", arch="4C3F", width=32, eps=36 / 255, epochs=800,
                      trades_lambda=2.0, rtk_k=[5], groups="cifar100_superclasses", attack_steps=100, attack_restarts=5, seed=0),
    },
    check=_check_certified,
    budget_seconds=180,
))


def _check_era(p: dict) -> None:
    if p["selector_eps"] < p["eps"]:
        raise ParameterError("selector_eps must be >= eps (the paper checks the selector at 2 x eps)")
    for key in ("core_model", "robust_model"):
        if p[key] not in ("standard", "trades", "pgd"):
            if p["dataset"] not in ("cifar10", "cifar100"):
                raise ParameterError(f"{key} = {p[key]!r}: valid choices on {p['dataset']}: standard, trades, pgd")
            if p[key] not in _robustbench_names(p["dataset"]):
                raise ParameterError(f"{key} = {p[key]!r} is neither a digits recipe nor a RobustBench model")


register(Chapter(
    name="04_avoid_robust_inaccuracy",
    title="Just avoid robust inaccuracy: ERA, abstaining, compositional models",
    params={
        "synthetic_epochs": Param(int, "epochs on the synthetic example (paper: 20)", low=1, high=10000),
        "synthetic_eps": Param(float, "Linf radius of the synthetic example (paper: 0.1)", low=1e-4, high=1.0),
        "synthetic_beta": Param(float, "ERA beta on the synthetic example (paper: 0.2)", low=0.0, high=100.0),
        "synthetic_eval_steps": Param(int, "PGD steps of the synthetic evaluation (paper: 100)", low=1, high=10000),
        "dataset": Param(str, "image data", choices=_IMAGE_DATASETS),
        "core_model": Param(str, "the accurate model: 'standard' or a RobustBench name"),
        "robust_model": Param(str, "the robust model ERA fine-tunes: 'trades', 'pgd' or a RobustBench name"),
        "width": Param(int, "first-layer channels of the digits CNNs", low=1, high=1024),
        "epochs": Param(int, "training epochs of the digits core and robust models", low=1, high=1000),
        "train_steps": Param(int, "PGD steps inside TRADES / ERA training", low=1, high=100),
        "eps": Param(float, "Linf radius of the robustness evaluation", low=1e-4, high=1.0),
        "selector_eps": Param(float, "Linf radius at which the selector checks robustness", low=1e-4, high=1.0),
        "era_epochs": Param(int, "ERA fine-tuning epochs", low=1, high=1000),
        "era_lr": Param(float, "ERA fine-tuning learning rate (SGD)", low=1e-7, high=1.0),
        "era_beta": Param(float, "ERA beta (weight of the TRADES term)", low=0.0, high=100.0),
        "betas": Param(list, "beta values of the sweep", item=float, low=0.0, high=100.0),
        "eval_steps": Param(int, "PGD steps of the robustness checks", low=1, high=10000),
        "eval_restarts": Param(int, "PGD restarts of the robustness checks", low=1, high=100),
        **COMMON,
    },
    profiles={
        "smoke": dict(synthetic_epochs=2, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=5, dataset="digits",
                      core_model="standard", robust_model="trades", width=8, epochs=2, train_steps=2, eps=0.1,
                      selector_eps=0.2, era_epochs=1, era_lr=1e-3, era_beta=1.0, betas=[0.5, 1.0], eval_steps=5,
                      eval_restarts=1, seed=0),
        "cpu": dict(synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=100,
                    dataset="digits", core_model="standard", robust_model="trades", width=32, epochs=30, train_steps=7,
                    eps=0.1, selector_eps=0.15, era_epochs=15, era_lr=1e-3, era_beta=1.0, betas=[0.1, 0.5, 1.0, 5.0],
                    eval_steps=50, eval_restarts=2, seed=0),
        "paper": dict(synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=100,
                      dataset="cifar10", core_model="Standard", robust_model="Gowal2020Uncovering_28_10_extra",
                      width=32, epochs=30, train_steps=10, eps=1 / 255, selector_eps=2 / 255, era_epochs=50,
                      era_lr=1e-3, era_beta=1.0, betas=[0.1, 0.5, 1.0, 5.0], eval_steps=40, eval_restarts=1, seed=0),
    },
    check=_check_era,
    budget_seconds=180,
))


register(Chapter(
    name="05_robustness_metrics",
    title="Do cheap metrics predict robustness? A benchmark over a model zoo",
    params={
        "dataset": Param(str, "data of the zoo", choices=_IMAGE_DATASETS),
        "optimizers": Param(list, "optimizer axis of the grid", item=str, choices=("sgd", "adam")),
        "lr_levels": Param(list, "learning-rate axis: levels 0, 1, 2 (low, mid, high for each optimizer)", item=int, low=0, high=2),
        "depths": Param(list, "depth axis: convolution layers", item=int, low=1, high=6),
        "widths": Param(list, "width axis: first-layer channels", item=int, low=1, high=512),
        "dropouts": Param(list, "dropout axis", item=float, low=0.0, high=0.9),
        "epochs": Param(int, "training epochs of every zoo model", low=1, high=1000),
        "attack_eps": Param(float, "Linf radius of FGSM, PGD and BIM", low=1e-4, high=1.0),
        "attack_eps_l2": Param(float, "L2 budget of DeepFool and CW", low=1e-4, high=100.0),
        "attack_points": Param(int, "test points attacked per model", low=10, high=100000),
        "sharpness_points": Param(int, "training points for the sharpness search", low=10, high=100000),
        "bootstrap": Param(int, "bootstrap resamples of the tau intervals", low=0, high=100000),
        **COMMON,
    },
    profiles={
        "smoke": dict(dataset="digits", optimizers=["sgd", "adam"], lr_levels=[1], depths=[1, 2], widths=[4],
                      dropouts=[0.0], epochs=2, attack_eps=0.1, attack_eps_l2=0.5, attack_points=30,
                      sharpness_points=60, bootstrap=10, seed=0),
        "cpu": dict(dataset="digits", optimizers=["sgd", "adam"], lr_levels=[0, 1, 2], depths=[1, 2, 3], widths=[8, 16],
                    dropouts=[0.0, 0.25], epochs=15, attack_eps=0.1, attack_eps_l2=0.5, attack_points=200,
                    sharpness_points=500, bootstrap=200, seed=0),
        "paper": dict(dataset="cifar10", optimizers=["sgd", "adam"], lr_levels=[0, 1, 2], depths=[2, 3, 4],
                      widths=[32, 64], dropouts=[0.0, 0.25], epochs=30, attack_eps=8 / 255, attack_eps_l2=0.5,
                      attack_points=1000, sharpness_points=5000, bootstrap=200, seed=0),
    },
    budget_seconds=300,
))
