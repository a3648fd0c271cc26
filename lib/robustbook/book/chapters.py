"""The chapters of the book: parameters, profiles and cross-checks (registered into :mod:`.specs`).

Cross-checks run before any work and test values against the data they will meet: the number of
classes and the input shape of the chosen dataset (known without loading it), model names against
the zoo's recipes (or RobustBench on CIFAR), and the memory a requested width needs.
"""
from __future__ import annotations

from .. import validate as check
from ..abstain import SELECTORS
from ..attacks import AUTOATTACK_SETTINGS, autoattack_setting
from ..data import DATASET_INFO, SPLIT_SIZES
from ..zoo import RECIPES, is_recipe
from .estimate import Work, autoattack_runs, fab_runs, pgd_runs, sizes, training
from .specs import FIRST, KEEP, Chapter, Param, ParameterError, register

IMAGE_DATASETS = tuple(DATASET_INFO)
SEEDS = Param(list, "training seeds: every headline number is measured once per seed", item=int, low=0,
              high=2**31 - 1, unique=True, shrink=FIRST)
POINTS = Param(list, "[train, validation, test] points of the fixed subsets of the data (0: the whole split); "
                      "chapters that share models use the same subsets", item=int, low=0, high=10**7,
               shrink=[20, 10, 10])   # a shrunk run still loads the whole files and takes its subsets
AUTOATTACK = Param(str, "AutoAttack setting for the headline robust accuracies (robustbook.attacks.AUTOATTACK_SETTINGS)",
                   choices=tuple(AUTOATTACK_SETTINGS))
# a size: the tests' shrunk runs keep the setting's attacks and target classes and cut only its iterations
AUTOATTACK_ITERATIONS = Param(int, "iterations of each AutoAttack attack (Square: 50 queries per iteration); "
                              "0 keeps the setting's own", low=0, high=100000, shrink=2)


FAB_TARGETS = Param(int, "targeted FAB runs per point (nearest linearised boundaries)", low=1, high=99, shrink=1)
FAB_ITERATIONS = Param(int, "FAB iterations per run", low=1, high=10000, shrink=5)


def _autoattack(p: dict):
    return autoattack_setting(p["autoattack"], p["autoattack_iterations"])


def _trained(p: dict, *names) -> int:
    """Trainings the executor runs for these model names: zoo recipes (not RobustBench names) per seed."""
    return sum(1 for n in names if n and is_recipe(n) and n != "rescaled") * len(p["seeds"])


def _shards(points: int, size: int) -> int:
    """Units of an attack on ``points`` points in shards of ``size`` (AutoAttack verdicts: 1000, FAB: 256)."""
    return -(-points // size)


def _verdicts(p: dict, models: int, points_key: str = "eval_points") -> int:
    """AutoAttack verdict units of ``models`` models per seed on the chapter's evaluated points."""
    points = min(p[points_key], sizes(p).test)
    return models * len(p["seeds"]) * _shards(points, 1000)


def _robustbench_names(dataset: str, threat: str = "Linf") -> set[str]:
    from ..models import _import_robustbench

    _import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return set(model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)])


def _check_models(names, allowed: tuple[str, ...], dataset: str, key: str, threat: str = "Linf") -> None:
    """Names must be recipes of this chapter, or — on CIFAR — RobustBench models."""
    unknown = [m for m in names if m not in allowed]
    if not unknown:
        return
    if dataset not in ("cifar10", "cifar100"):
        raise ParameterError(f"{key}: unknown model(s) {unknown}; valid choices on {dataset}: {', '.join(allowed)}")
    bad = [m for m in unknown if m not in _robustbench_names(dataset, threat)]
    if bad:
        raise ParameterError(f"{key}: unknown model(s) {bad}: neither a recipe ({', '.join(allowed)}) "
                             f"nor a RobustBench {dataset}/{threat} model")


def _check_memory(dataset: str, arch: str, key: str, **options) -> None:
    """Refuse a width whose training would not fit in this machine's memory (estimated, nothing allocated)."""
    from ..models import estimate_training_bytes
    from ..runtime import available_memory

    classes, shape = DATASET_INFO[dataset]
    need = estimate_training_bytes(arch, shape, classes, **options)
    have = available_memory()
    if have is not None and need > 0.8 * have:
        raise ParameterError(f"{key}: training this {arch} on {dataset} needs about {need / 2**30:.1f} GiB, "
                             f"but this machine has {have / 2**30:.1f} GiB available; choose a smaller {key}")


# parameters that count points of one split (checked against the subset the chapter will load)
_SPLIT_OF = {"eval_points": 2, "margin_points": 2, "attack_points": 2, "pseudo_train_points": 0,
             "pseudo_val_points": 1, "sharpness_points": 0}


def _check_points(p: dict) -> None:
    """``data_points`` must be [train, val, test] within the dataset's splits, and every count of points
    a chapter draws from a split must fit in that split's subset (known before loading anything)."""
    sizes = SPLIT_SIZES[p["dataset"]]
    if len(p["data_points"]) != 3:
        raise ParameterError(f"data_points = {p['data_points']} must be three counts: [train, validation, test]")
    have = []
    for split, n, size in zip(("train", "validation", "test"), p["data_points"], sizes):
        if n > size:
            raise ParameterError(f"data_points: {n} {split} points asked, but {p['dataset']}'s {split} split "
                                 f"has {size}")
        have.append(n or size)
    for key, split in _SPLIT_OF.items():
        if key in p and p[key] > have[split]:
            name = ("training", "validation", "test")[split]
            raise ParameterError(f"{key} = {p[key]} exceeds the {have[split]} {name} points of the data "
                                 f"(data_points = {p['data_points']} on {p['dataset']})")


def _eps_range(p: dict, key: str = "eps") -> None:
    if p[key] > 1.0 and p.get("norm", "Linf") == "Linf":
        raise ParameterError(f"{key} = {p[key]} exceeds 1, the largest Linf distance in the data box [0, 1]")


# =========================================================================== chapter 1
def _check_ch1(p: dict) -> None:
    _check_points(p)
    if p["eps"] > max(p["eps_grid"]):
        raise ParameterError(f"eps = {p['eps']} lies beyond eps_grid (max {max(p['eps_grid'])}); extend the grid")
    _check_memory(p["dataset"], "cnn", "width", width=p["width"])
    if p["margin_points"] > 10_000:
        raise ParameterError(f"margin_points = {p['margin_points']}: the test split has at most 10000 points")


def _work_ch1(p: dict) -> list[Work]:
    z = sizes(p)
    return [training(z.cnn, z.train, p["epochs"], seeds=z.seeds, what="standard training"),
            training(z.cnn, z.train, p["epochs"], inner=p["train_steps"], seeds=z.seeds, what="PGD training"),
            autoattack_runs(z.cnn, z.points, _autoattack(p), 2 * z.seeds),
            pgd_runs(z.cnn, z.test, p["curve_steps"], seeds=2 * len(p["eps_grid"]), what="robustness curves"),
            fab_runs(z.cnn, p["margin_points"], 3, 50, 2, what="FAB margins (first seed)"),
            Work("linear models and their FAB margins", "mlp:1",
                 z.seeds * (p["linear_epochs"] * z.train * 3 + p["margin_points"] * 400))]


register(Chapter(
    name="01_local_robustness",
    title="Local robustness and the input margin",
    params={
        "dataset": Param(str, "training and test data", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "width": Param(int, "first-layer channels of the CNNs", low=1, high=4096, shrink=4),
        "epochs": Param(int, "training epochs of each model", low=1, high=1000, shrink=1),
        "eps": Param(float, "Linf radius for adversarial training and the headline robust accuracy", low=1e-4, high=1.0),
        "eps_grid": Param(list, "Linf radii of the robustness curves", item=float, low=0.0, high=1.0, unique=True, shrink=KEEP),
        "train_steps": Param(int, "PGD steps inside adversarial training", low=1, high=100, shrink=1),
        "curve_steps": Param(int, "PGD steps of the robustness curves", low=1, high=1000, shrink=2),
        "autoattack": AUTOATTACK,
        "autoattack_iterations": AUTOATTACK_ITERATIONS,
        "eval_points": Param(int, "test points of the headline evaluation (a fixed random subset when fewer than "
                                  "the test split)", low=10, high=100000, shrink=10),
        "margin_points": Param(int, "test points whose input margin FAB estimates", low=2, high=100000, shrink=4),
        "linear_epochs": Param(int, "full-batch epochs of the linear model", low=1, high=10000, shrink=2),
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(dataset="digits", data_points=[0, 0, 0], width=8, epochs=2, eps=0.1, eps_grid=[0.0, 0.1], train_steps=2, curve_steps=3,
                      autoattack="smoke", autoattack_iterations=0, eval_points=540, margin_points=16, linear_epochs=20, seeds=[0, 1]),
        "cpu": dict(dataset="fashion_mnist", data_points=[8000, 500, 1000], width=16, epochs=4,
                    eps=0.1, eps_grid=[0.0, 0.025, 0.05, 0.1, 0.15, 0.2], train_steps=3, curve_steps=20,
                    autoattack="cpu", autoattack_iterations=0, eval_points=300, margin_points=150, linear_epochs=300,
                    seeds=[0, 1, 2]),
        "colab": dict(dataset="mnist", data_points=[0, 0, 0], width=32, epochs=5, eps=0.3, eps_grid=[0.0, 0.1, 0.2, 0.3, 0.4], train_steps=10,
                      curve_steps=20, autoattack="standard", autoattack_iterations=0, eval_points=1000, margin_points=500, linear_epochs=100,
                      seeds=[0, 1, 2]),
        "paper": dict(dataset="cifar10", data_points=[0, 0, 0], width=64, epochs=60, eps=8 / 255,
                      eps_grid=[0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255, 16 / 255], train_steps=10, curve_steps=50,
                      autoattack="standard", autoattack_iterations=0, eval_points=10000, margin_points=1000, linear_epochs=500, seeds=[0, 1, 2]),
    },
    check=_check_ch1,
    budget_seconds=180,
    work=_work_ch1,
    units=lambda p: _trained(p, "standard", "pgd", "linear") + _verdicts(p, 2),
))

# =========================================================================== chapter 2
CH2_MODELS = ("standard", "pgd_half_eps", "pgd", "trades", "mma", "spectral_norm", "rescaled")


def _work_ch2(p: dict) -> list[Work]:
    z = sizes(p)
    out = []
    for m in p["models"]:
        name = z.cnn if m in RECIPES else m                   # a zoo recipe is the book's CNN; else RobustBench
        if m in ("pgd", "pgd_half_eps", "trades"):
            out.append(training(name, z.train, p["epochs"], inner=p["train_steps"], extra=3, seeds=z.seeds,
                                what=f"{m} training"))
        elif m == "mma":
            out.append(training(name, z.train, p["epochs"], inner=p["train_steps"], extra=30, seeds=z.seeds,
                                what="mma training"))
        elif m in ("standard", "spectral_norm"):
            out.append(training(name, z.train, p["epochs"], seeds=z.seeds, what=f"{m} training"))
        out.append(fab_runs(name, p["margin_points"], p["fab_targets"], p["fab_iterations"], z.seeds, f"FAB, {m}"))
        out.append(autoattack_runs(name, p["margin_points"], _autoattack(p), z.seeds, f"AutoAttack, {m}"))
    for m in p["repair_models"]:
        name = z.cnn if m in RECIPES else m
        out.append(fab_runs(name, p["pseudo_train_points"] + p["pseudo_val_points"], p["fab_targets"],
                            p["fab_iterations"], z.seeds, f"pseudo-margin FAB, {m}"))
    return out


def _check_ch2(p: dict) -> None:
    _check_points(p)
    _check_models(p["models"], CH2_MODELS, p["dataset"], "models", p["norm"])
    for key in ("repair_models",):
        missing = [m for m in p[key] if m not in p["models"]]
        if missing:
            raise ParameterError(f"{key}: {missing} must be among models: {', '.join(p['models'])}")
    if p["reference_model"] not in p["models"]:
        raise ParameterError(f"reference_model = {p['reference_model']!r} must be one of models: {', '.join(p['models'])}")
    if p["subset_points"] >= p["margin_points"]:
        raise ParameterError("subset_points must be smaller than margin_points (the rest is where the estimate is checked)")
    _check_fab(p)
    _eps_range(p)
    _check_memory(p["dataset"], "cnn", "width", width=p["width"])


def _check_fab(p: dict) -> None:
    if p["fab_targets"] >= DATASET_INFO[p["dataset"]][0]:
        raise ParameterError(f"fab_targets = {p['fab_targets']} must be below the number of classes of "
                             f"{p['dataset']} ({DATASET_INFO[p['dataset']][0]})")


register(Chapter(
    name="02_margin_consistency",
    title="Margin consistency: detecting brittle decisions for free",
    params={
        "dataset": Param(str, "data of the models", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "models": Param(list, "zoo recipes (or RobustBench names on CIFAR)", item=str, unique=True, shrink=KEEP),
        "repair_models": Param(list, "models whose logit margin the pseudo-margin tries to repair", item=str, unique=True, shrink=KEEP),
        "reference_model": Param(str, "the model for the theorem, the per-class tau and the cost (one of models)"),
        "norm": Param(str, "threat model of the input margin", choices=("Linf", "L2")),
        "eps": Param(float, "radius: a point is non-robust when its input margin is <= eps", low=1e-4, high=100.0),
        "width": Param(int, "first-layer channels of the zoo's CNNs", low=1, high=1024, shrink=4),
        "epochs": Param(int, "training epochs of the zoo's models", low=1, high=1000, shrink=1),
        "train_steps": Param(int, "PGD steps inside adversarial training", low=1, high=100, shrink=1),
        "margin_points": Param(int, "test points whose input margin FAB estimates", low=10, high=100000, shrink=10),
        "fab_targets": FAB_TARGETS,
        "fab_iterations": FAB_ITERATIONS,
        "autoattack": AUTOATTACK,
        "autoattack_iterations": AUTOATTACK_ITERATIONS,
        "pseudo_train_points": Param(int, "training points whose margins train the pseudo-margin", low=10, high=100000, shrink=10),
        "pseudo_val_points": Param(int, "validation points for its early stopping", low=10, high=100000, shrink=10),
        "pseudo_epochs": Param(int, "full-batch epochs of the pseudo-margin MLP", low=1, high=100000, shrink=2),
        "pseudo_lr": Param(float, "Adam learning rate of the pseudo-margin MLP", low=1e-7, high=1.0),
        "subset_points": Param(int, "attacked points that fit the robust-accuracy threshold", low=2, high=100000, shrink=4),
        "bootstrap": Param(int, "bootstrap resamples of the tau intervals", low=0, high=100000, shrink=0),
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(dataset="digits", data_points=[0, 0, 0], models=["standard", "pgd", "mma", "rescaled"], repair_models=["rescaled"],
                      reference_model="pgd", norm="Linf", eps=0.1, width=8, epochs=2, train_steps=2, margin_points=40,
                      fab_targets=1, fab_iterations=20, autoattack="smoke", autoattack_iterations=0, pseudo_train_points=60, pseudo_val_points=40,
                      pseudo_epochs=20, pseudo_lr=1e-3, subset_points=15, bootstrap=10, seeds=[0, 1]),
        "cpu": dict(dataset="fashion_mnist", data_points=[8000, 500, 1000],
                    models=["standard", "pgd", "trades", "mma", "rescaled"],
                    repair_models=["rescaled"], reference_model="pgd", norm="Linf", eps=0.1, width=16, epochs=4,
                    train_steps=3, margin_points=150, fab_targets=2, fab_iterations=50, autoattack="cpu", autoattack_iterations=0,
                    pseudo_train_points=300, pseudo_val_points=100, pseudo_epochs=500, pseudo_lr=1e-4, subset_points=80,
                    bootstrap=200, seeds=[0, 1, 2]),
        "colab": dict(dataset="cifar10", data_points=[0, 0, 0], models=["Ding2020MMA", "Addepalli2021Towards_RN18"],
                      repair_models=["Ding2020MMA"], reference_model="Addepalli2021Towards_RN18", norm="Linf",
                      eps=8 / 255, width=32, epochs=20, train_steps=5, margin_points=200, fab_targets=3, fab_iterations=50,
                      autoattack="cpu", autoattack_iterations=0, pseudo_train_points=300, pseudo_val_points=100, pseudo_epochs=500,
                      pseudo_lr=1e-4, subset_points=80, bootstrap=200, seeds=[0]),
        "paper": dict(dataset="cifar10", data_points=[0, 0, 0], models=["Ding2020MMA", "Addepalli2021Towards_RN18", "Engstrom2019Robustness",
                                                 "Rice2020Overfitting", "Sehwag2021Proxy_R18"],
                      repair_models=["Ding2020MMA"], reference_model="Addepalli2021Towards_RN18", norm="Linf",
                      eps=8 / 255, width=32, epochs=20, train_steps=5, margin_points=1000, fab_targets=9,
                      fab_iterations=100, autoattack="standard", autoattack_iterations=0, pseudo_train_points=4000, pseudo_val_points=1000,
                      pseudo_epochs=500, pseudo_lr=1e-4, subset_points=500, bootstrap=200, seeds=[0]),
    },
    check=_check_ch2,
    budget_seconds=180,
    work=_work_ch2,
    units=lambda p: (_trained(p, *p["models"]) + _verdicts(p, len(p["models"]), "margin_points")
                     + len(p["seeds"]) * len([m for m in p["models"] if m != "rescaled"])
                     * _shards(p["margin_points"], 256)),
))


# =========================================================================== chapter 3
def _work_ch3(p: dict) -> list[Work]:
    z = sizes(p)
    arch = f"{p['gloro_arch']}:{p['gloro_width']}" if p["gloro_arch"] in ("mlp", "cnn") else p["gloro_arch"]
    nets = len(p["rtk_k"]) + 2
    return [training(arch, z.train, p["gloro_epochs"], seeds=z.seeds * nets, what="GloRo training"),
            pgd_runs(arch, z.test, p["attack_steps"], p["attack_restarts"], z.seeds * nets, "soundness attacks"),
            Work("2-D toy nets", "mlp:1", z.seeds * 3 * p["toy_epochs"] * 600 * 3 * 20)]


def _check_ch3(p: dict) -> None:
    _check_points(p)
    classes = DATASET_INFO[p["dataset"]][0]
    for k in p["rtk_k"]:
        if not 2 <= k < classes:
            raise ParameterError(f"rtk_k contains K = {k}: a relaxed top-K needs 2 <= K < {classes} (the number of "
                                 f"classes of {p['dataset']}); K = 1 is local robustness, K = {classes} certifies everything")
    if p["groups"] == "cifar100_superclasses" and p["dataset"] != "cifar100":
        raise ParameterError(f"groups 'cifar100_superclasses' are CIFAR-100 classes, not {p['dataset']}'s")
    if p["groups"] == "fashion_mnist" and p["dataset"] != "fashion_mnist":
        raise ParameterError(f"groups 'fashion_mnist' are Fashion-MNIST's classes, not {p['dataset']}'s; "
                             "use 'derived'")
    if p["groups"] == "cifar100_superclasses" and 5 not in p["rtk_k"]:
        raise ParameterError("rtk_k must include 5, the size of a CIFAR-100 superclass, to compare affinity with RTK")
    if p["gloro_arch"] == "mlp":
        _check_memory(p["dataset"], "mlp", "gloro_width", width=p["gloro_width"])


register(Chapter(
    name="03_certified_relaxed",
    title="Certified robustness in one forward pass: GloRo nets, relaxed top-K and affinity",
    params={
        "toy_eps": Param(float, "L2 radius on the 2-D toy data", low=1e-4, high=1.0),
        "toy_epochs": Param(int, "training epochs of the toy GloRo nets", low=1, high=10000, shrink=1),
        "dataset": Param(str, "image data", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "gloro_arch": Param(str, "GloRo architecture (MinMax activations)", choices=("mlp", "cnn", "2C2F", "4C3F", "6C2F")),
        "gloro_width": Param(int, "hidden units (mlp) or first-layer channels (cnn); the xCyF nets ignore it",
                             low=2, high=4096, shrink=8),
        "gloro_eps": Param(float, "L2 radius of the certificates", low=1e-4, high=100.0),
        "gloro_epochs": Param(int, "training epochs of each GloRo net", low=1, high=10000, shrink=1),
        "trades_lambda": Param(float, "weight of the GloRo TRADES term (0: cross-entropy on the augmented logits)",
                               low=0.0, high=100.0),
        "rtk_k": Param(list, "K values of the relaxed top-K nets", item=int, low=1, high=999, unique=True, shrink=KEEP),
        "groups": Param(str, "affinity groups: Fashion-MNIST's natural groups (tops, footwear, trousers, bags), "
                             "'derived' from the largest-K RTK net's certificates on train+val, or the CIFAR-100 "
                             "superclasses", choices=("fashion_mnist", "derived", "cifar100_superclasses")),
        "group_count": Param(int, "how many derived groups", low=1, high=100, shrink=2),
        "attack_steps": Param(int, "PGD steps of the soundness check on certified points", low=1, high=10000, shrink=2),
        "attack_restarts": Param(int, "PGD restarts of the soundness check", low=1, high=100, shrink=1),
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(toy_eps=0.06, toy_epochs=3, dataset="digits", data_points=[0, 0, 0], gloro_arch="mlp", gloro_width=32, gloro_eps=0.5,
                      gloro_epochs=3, trades_lambda=2.0, rtk_k=[2, 3], groups="derived", group_count=3,
                      attack_steps=5, attack_restarts=1, seeds=[0, 1]),
        "cpu": dict(toy_eps=0.06, toy_epochs=60, dataset="fashion_mnist", data_points=[8000, 500, 1000], gloro_arch="2C2F",
                    gloro_width=32, gloro_eps=0.3, gloro_epochs=5, trades_lambda=2.0, rtk_k=[2, 3],
                    groups="fashion_mnist", group_count=4,
                    attack_steps=30, attack_restarts=2, seeds=[0, 1, 2]),
        "colab": dict(toy_eps=0.06, toy_epochs=60, dataset="mnist", data_points=[0, 0, 0], gloro_arch="2C2F", gloro_width=32, gloro_eps=1.58,
                      gloro_epochs=100, trades_lambda=2.0, rtk_k=[2, 3], groups="derived", group_count=4,
                      attack_steps=50, attack_restarts=3, seeds=[0, 1, 2]),
        "paper": dict(toy_eps=0.06, toy_epochs=60, dataset="cifar100", data_points=[0, 0, 0], gloro_arch="4C3F", gloro_width=32,
                      gloro_eps=36 / 255, gloro_epochs=800, trades_lambda=2.0, rtk_k=[5], groups="cifar100_superclasses",
                      group_count=20, attack_steps=100, attack_restarts=5, seeds=[0]),
    },
    check=_check_ch3,
    budget_seconds=180,
    work=_work_ch3,
    units=lambda p: 3 * len(p["seeds"]) + (len(p["rtk_k"]) + 2) * len(p["seeds"]),
))


# =========================================================================== chapter 4
def _work_ch4(p: dict) -> list[Work]:
    z = sizes(p)
    core = z.cnn if p["core_model"] == "standard" else p["core_model"]
    robust = z.cnn if p["robust_model"] in ("trades", "pgd") else p["robust_model"]
    out = [Work("synthetic example", "mlp:1", z.seeds * 3 * p["synthetic_epochs"] * 1000 * 40)]
    if core == z.cnn:
        out.append(training(z.cnn, z.train, p["epochs"], seeds=z.seeds, what="core training"))
    if robust == z.cnn:
        out.append(training(z.cnn, z.train, p["epochs"], inner=p["train_steps"], extra=3, seeds=z.seeds,
                            what="TRADES training"))
    out += [training(robust, z.train, p["era_epochs"], inner=10, extra=6, seeds=z.seeds * (1 + len(p["betas"])),
                     what="ERA fine-tuning (and the beta sweep)"),
            autoattack_runs(core, z.points, _autoattack(p), z.seeds, "AutoAttack, core"),
            autoattack_runs(robust, z.points, _autoattack(p), 2 * z.seeds + len(p["betas"]), "AutoAttack, robust and ERA"),
            pgd_runs(robust, z.points, p["selector_steps"], p["selector_restarts"], z.seeds * (1 + 16), "selector"),
            pgd_runs(robust, z.points, p["e2e_steps"], 1, z.seeds * 4 * 2, "end-to-end attack")]
    return out


def _check_composition(p: dict) -> None:
    """Chapters 4 and 6: a core model, a robust model and a selector checking a ball at least as large as eps."""
    _check_points(p)
    if p["selector_eps"] < p["eps"]:
        raise ParameterError("selector_eps must be >= eps (the paper checks the selector at 2 x eps)")
    _check_models([p["core_model"]], ("standard",), p["dataset"], "core_model")
    _check_models([p["robust_model"]], ("trades", "pgd"), p["dataset"], "robust_model")
    _eps_range(p)
    _check_memory(p["dataset"], "cnn", "width", width=p["width"])


register(Chapter(
    name="04_avoid_robust_inaccuracy",
    title="Just avoid robust inaccuracy: ERA, abstaining, compositional models",
    params={
        "synthetic_epochs": Param(int, "epochs on the synthetic example (paper: 20)", low=1, high=10000, shrink=1),
        "synthetic_eps": Param(float, "Linf radius of the synthetic example (paper: 0.1)", low=1e-4, high=1.0),
        "synthetic_beta": Param(float, "ERA beta on the synthetic example (paper: 0.2)", low=0.0, high=100.0),
        "synthetic_eval_steps": Param(int, "PGD steps of the synthetic evaluation (paper: 100)", low=1, high=10000, shrink=2),
        "dataset": Param(str, "image data", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "core_model": Param(str, "the accurate model: 'standard' or a RobustBench name"),
        "robust_model": Param(str, "the robust model ERA fine-tunes: 'trades', 'pgd' or a RobustBench name"),
        "width": Param(int, "first-layer channels of the CNNs", low=1, high=1024, shrink=4),
        "epochs": Param(int, "training epochs of the core and robust models", low=1, high=1000, shrink=1),
        "train_steps": Param(int, "PGD steps inside TRADES training", low=1, high=100, shrink=1),
        "eps": Param(float, "Linf radius of the robustness evaluation", low=1e-4, high=1.0),
        "selector_eps": Param(float, "Linf radius at which the selector checks robustness", low=1e-4, high=1.0),
        "era_epochs": Param(int, "ERA fine-tuning epochs", low=1, high=1000, shrink=1),
        "era_lr": Param(float, "ERA fine-tuning learning rate (SGD)", low=1e-7, high=1.0),
        "era_beta": Param(float, "ERA beta (weight of the TRADES term)", low=0.0, high=100.0),
        "betas": Param(list, "beta values of the sweep", item=float, low=0.0, high=100.0, unique=True, shrink=FIRST),
        "selector_steps": Param(int, "PGD steps of the empirical selector", low=1, high=10000, shrink=2),
        "selector_restarts": Param(int, "PGD restarts of the empirical selector", low=1, high=100, shrink=1),
        "autoattack": AUTOATTACK,
        "autoattack_iterations": AUTOATTACK_ITERATIONS,
        "eval_points": Param(int, "test points of the headline evaluation (a fixed random subset when fewer than "
                                  "the test split)", low=10, high=100000, shrink=10),
        "e2e_steps": Param(int, "steps of the end-to-end attack on the composed model", low=1, high=10000, shrink=2),
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(synthetic_epochs=2, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=5,
                      dataset="digits", data_points=[0, 0, 0], core_model="standard", robust_model="trades", width=8, epochs=2, train_steps=2,
                      eps=0.1, selector_eps=0.15, era_epochs=1, era_lr=1e-3, era_beta=1.0, betas=[0.5, 1.0],
                      selector_steps=5, selector_restarts=1, autoattack="smoke", autoattack_iterations=0, eval_points=540, e2e_steps=5, seeds=[0, 1]),
        "cpu": dict(synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=100,
                    dataset="fashion_mnist", data_points=[8000, 500, 1000], core_model="standard", robust_model="trades",
                    width=16, epochs=4, train_steps=3, eps=0.1, selector_eps=0.15, era_epochs=2, era_lr=1e-3,
                    era_beta=1.0, betas=[0.1, 1.0, 5.0], selector_steps=20, selector_restarts=1,
                    autoattack="cpu", autoattack_iterations=0, eval_points=300, e2e_steps=20, seeds=[0, 1, 2]),
        "colab": dict(synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=100,
                      dataset="mnist", data_points=[0, 0, 0], core_model="standard", robust_model="trades", width=32, epochs=5, train_steps=10,
                      eps=0.1, selector_eps=0.15, era_epochs=2, era_lr=1e-3, era_beta=1.0, betas=[0.5, 1.0, 5.0],
                      selector_steps=20, selector_restarts=1, autoattack="standard", autoattack_iterations=0, eval_points=800, e2e_steps=20,
                      seeds=[0, 1, 2]),
        "paper": dict(synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2, synthetic_eval_steps=100,
                      dataset="cifar10", data_points=[0, 0, 0], core_model="Standard", robust_model="Gowal2020Uncovering_28_10_extra",
                      width=32, epochs=30, train_steps=10, eps=1 / 255, selector_eps=2 / 255, era_epochs=50,
                      era_lr=1e-3, era_beta=1.0, betas=[0.1, 0.5, 1.0, 5.0], selector_steps=40, selector_restarts=1,
                      autoattack="standard", autoattack_iterations=0, eval_points=10000, e2e_steps=40, seeds=[0]),
    },
    check=_check_composition,
    budget_seconds=180,
    work=_work_ch4,
    units=lambda p: (3 * len(p["seeds"]) + _trained(p, p["core_model"], p["robust_model"], "era") + len(p["betas"])
                     + _verdicts(p, 3)),
))


# =========================================================================== chapter 5
def _grid_models(p: dict) -> int:
    return len(p["optimizers"]) * len(p["lr_levels"]) * len(p["depths"]) * len(p["widths"]) * len(p["dropouts"])


def _work_ch5(p: dict) -> list[Work]:
    z = sizes(p)
    cnn = f"cnn:{max(p['widths'])}"
    per_model = [training(cnn, z.train, p["epochs"]),
                 Work("corrupted test sets", cnn, 41 * 5 * z.test / 5 * 1),
                 Work("attacks", cnn, p["attack_points"] * (3 + 30 + 30 + 20 * 12 + p["cw_steps"] * p["cw_search_steps"] * 3)),
                 Work("sharpness", cnn, 2 * 15 * 10 * p["sharpness_points"])]
    return [Work(w.what, w.model, w.passes * _grid_models(p) * z.seeds) for w in per_model]


def _check_ch5(p: dict) -> None:
    _check_points(p)
    for width in p["widths"]:
        for depth in p["depths"]:
            _check_memory(p["dataset"], "cnn", "widths", width=width, depth=depth)
    side = DATASET_INFO[p["dataset"]][1][-1]
    if 2 ** (max(p["depths"]) - 1) > side:
        raise ParameterError(f"depths: {max(p['depths'])} convolutions halve a {side}x{side} image to nothing; "
                             f"use at most {side.bit_length()}")
    if p["attack_points"] > 10_000:
        raise ParameterError("attack_points: the test split has at most 10000 points")


register(Chapter(
    name="05_robustness_metrics",
    title="Do cheap metrics predict robustness? A benchmark over a model zoo",
    params={
        "dataset": Param(str, "data of the zoo", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "optimizers": Param(list, "optimizer axis of the grid", item=str, choices=("sgd", "adam"), unique=True, shrink=KEEP),
        "lr_levels": Param(list, "learning-rate axis: levels 0, 1, 2 (low, mid, high for each optimizer)", item=int,
                           low=0, high=2, unique=True, shrink=FIRST),
        "depths": Param(list, "depth axis: convolution layers", item=int, low=1, high=6, unique=True, shrink=KEEP),
        "widths": Param(list, "width axis: first-layer channels", item=int, low=1, high=512, unique=True, shrink=FIRST),
        "dropouts": Param(list, "dropout axis", item=float, low=0.0, high=0.9, unique=True, shrink=KEEP),
        "epochs": Param(int, "training epochs of every zoo model", low=1, high=1000, shrink=1),
        "attack_eps": Param(float, "Linf radius of FGSM, PGD and BIM", low=1e-4, high=1.0),
        "attack_eps_l2": Param(float, "L2 budget of DeepFool and CW", low=1e-4, high=100.0),
        "attack_points": Param(int, "test points attacked per model", low=10, high=100000, shrink=10),
        "cw_steps": Param(int, "Adam steps per CW binary-search round", low=1, high=10000, shrink=2),
        "cw_search_steps": Param(int, "binary-search rounds over CW's constant", low=1, high=20, shrink=1),
        "sharpness_points": Param(int, "training points for the sharpness search", low=10, high=100000, shrink=10),
        "bootstrap": Param(int, "bootstrap resamples of the tau intervals", low=0, high=100000, shrink=0),
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(dataset="digits", data_points=[0, 0, 0], optimizers=["sgd", "adam"], lr_levels=[1], depths=[1, 2], widths=[4],
                      dropouts=[0.0], epochs=2, attack_eps=0.1, attack_eps_l2=0.5, attack_points=30, cw_steps=5,
                      cw_search_steps=1, sharpness_points=60, bootstrap=10, seeds=[0, 1]),
        "cpu": dict(dataset="fashion_mnist", data_points=[3000, 500, 1000], optimizers=["sgd", "adam"],
                    lr_levels=[0, 2], depths=[1, 2], widths=[8, 16], dropouts=[0.0], epochs=4, attack_eps=0.1, attack_eps_l2=0.5, attack_points=100, cw_steps=30,
                    cw_search_steps=2, sharpness_points=200, bootstrap=200, seeds=[0, 1, 2]),
        "colab": dict(dataset="cifar10", data_points=[0, 0, 0], optimizers=["sgd", "adam"], lr_levels=[0, 2], depths=[2, 3], widths=[16, 32],
                      dropouts=[0.0, 0.25], epochs=5, attack_eps=8 / 255, attack_eps_l2=0.5, attack_points=200,
                      cw_steps=30, cw_search_steps=3, sharpness_points=1000, bootstrap=200, seeds=[0]),
        "paper": dict(dataset="cifar10", data_points=[0, 0, 0], optimizers=["sgd", "adam"], lr_levels=[0, 1, 2], depths=[2, 3, 4],
                      widths=[32, 64], dropouts=[0.0, 0.25], epochs=30, attack_eps=8 / 255, attack_eps_l2=0.5,
                      attack_points=1000, cw_steps=100, cw_search_steps=9, sharpness_points=5000, bootstrap=200,
                      seeds=[0]),
    },
    check=_check_ch5,
    budget_seconds=180,
    work=_work_ch5,
    units=lambda p: 2 * _grid_models(p) * len(p["seeds"]),
))


# =========================================================================== chapter 6
CH6_ROBUST = ("era", "gloro_local")


def _work_ch6(p: dict) -> list[Work]:
    z = sizes(p)
    core = z.cnn if p["core_model"] == "standard" else p["core_model"]
    robust = z.cnn if p["robust_model"] in ("trades", "pgd") else p["robust_model"]
    gloro = f"mlp:{p['gloro_width']}" if p["gloro_arch"] == "mlp" else p["gloro_arch"]
    pairs = len(p["robust_models"]) * len(p["selectors"])
    return [training(z.cnn, z.train, p["epochs"], seeds=z.seeds, what="core training") if core == z.cnn
            else Work("core", core, 0),
            training(robust, z.train, p["era_epochs"], inner=10, extra=6, seeds=z.seeds, what="ERA fine-tuning"),
            training(gloro, z.train, p["gloro_epochs"], seeds=z.seeds, what="GloRo training"),
            autoattack_runs(robust, z.points, _autoattack(p), 3 * z.seeds, "AutoAttack"),
            fab_runs(robust, p["margin_points"] + p["pseudo_train_points"] + 200, p["fab_targets"], p["fab_iterations"],
                     2 * z.seeds, "FAB margins"),
            pgd_runs(robust, z.points, p["e2e_steps"], p["e2e_restarts"], z.seeds * pairs * 4 * 3, "end-to-end attacks"),
            pgd_runs(robust, z.points, p["selector_steps"], p["selector_restarts"], z.seeds * 2 * 17,
                     "empirical selector")]


def _check_ch6(p: dict) -> None:
    bad = [r for r in p["robust_models"] if r not in CH6_ROBUST]
    if bad:
        raise ParameterError(f"robust_models: unknown {bad}; valid choices: {', '.join(CH6_ROBUST)}")
    bad = [s for s in p["selectors"] if s not in SELECTORS]
    if bad:
        raise ParameterError(f"selectors: unknown {bad}; valid choices: {', '.join(SELECTORS)}")
    if p["dataset"] not in ("digits", "fashion_mnist", "mnist", "cifar10"):
        raise ParameterError(f"dataset {p['dataset']!r}: chapter 6 runs on digits, fashion_mnist, mnist or cifar10")
    _check_fab(p)
    _check_composition(p)


register(Chapter(
    name="06_free_selectors",
    title="The works meet: free selectors for the compositional model, attacked end to end",
    params={
        "dataset": Param(str, "image data", choices=IMAGE_DATASETS),
        "data_points": POINTS,
        "eps": Param(float, "Linf radius of the threat model (as in chapter 4)", low=1e-4, high=1.0),
        "selector_eps": Param(float, "Linf radius of the empirical selector (as in chapter 4)", low=1e-4, high=1.0),
        "core_model": Param(str, "the accurate model: 'standard' or a RobustBench name"),
        "robust_model": Param(str, "the robust model ERA fine-tunes: 'trades' or a RobustBench name"),
        "width": Param(int, "first-layer channels of the CNNs", low=1, high=1024, shrink=4),
        "epochs": Param(int, "training epochs of the core and TRADES models", low=1, high=1000, shrink=1),
        "train_steps": Param(int, "PGD steps inside TRADES training", low=1, high=100, shrink=1),
        "era_epochs": Param(int, "ERA fine-tuning epochs", low=1, high=1000, shrink=1),
        "era_lr": Param(float, "ERA fine-tuning learning rate", low=1e-7, high=1.0),
        "era_beta": Param(float, "ERA beta", low=0.0, high=100.0),
        "gloro_arch": Param(str, "GloRo architecture (MinMax activations)", choices=("mlp", "2C2F", "4C3F", "6C2F")),
        "gloro_width": Param(int, "hidden units of the GloRo MLP", low=2, high=4096, shrink=8),
        "gloro_epochs": Param(int, "training epochs of the GloRo net", low=1, high=10000, shrink=1),
        "robust_models": Param(list, "robust models composed with the core", item=str, unique=True, shrink=KEEP),
        "selectors": Param(list, "selectors (robustbook.abstain.SELECTORS)", item=str, unique=True, shrink=KEEP),
        "selector_steps": Param(int, "PGD steps of the empirical selector", low=1, high=10000, shrink=2),
        "selector_restarts": Param(int, "PGD restarts of the empirical selector", low=1, high=100, shrink=1),
        "e2e_steps": Param(int, "steps of each end-to-end attack", low=1, high=10000, shrink=2),
        "e2e_restarts": Param(int, "restarts of each end-to-end attack", low=1, high=100, shrink=1),
        "autoattack": AUTOATTACK,
        "autoattack_iterations": AUTOATTACK_ITERATIONS,
        "eval_points": Param(int, "test points of the headline evaluation (a fixed random subset when fewer than "
                                  "the test split)", low=10, high=100000, shrink=10),
        "margin_points": Param(int, "test points whose input margins measure the robust models' consistency",
                               low=10, high=100000, shrink=10),
        "synthetic_epochs": Param(int, "epochs of chapter 4's synthetic models (the 2-D picture)", low=1, high=10000, shrink=1),
        "toy_epochs": Param(int, "epochs of the 2-D GloRo net (the 2-D picture)", low=1, high=10000, shrink=1),
        "pseudo_train_points": Param(int, "training points whose margins train the pseudo-margin selector", low=10,
                                     high=100000, shrink=10),
        "pseudo_epochs": Param(int, "epochs of the pseudo-margin MLP", low=1, high=100000, shrink=2),
        "fab_targets": FAB_TARGETS,
        "fab_iterations": FAB_ITERATIONS,
        "seeds": SEEDS,
    },
    profiles={
        "smoke": dict(dataset="digits", data_points=[0, 0, 0], eps=0.1, selector_eps=0.15, core_model="standard", robust_model="trades", width=8, epochs=2, train_steps=2, era_epochs=1,
                      era_lr=1e-3, era_beta=1.0, gloro_arch="mlp", gloro_width=16, gloro_epochs=2, robust_models=["era", "gloro_local"],
                      selectors=list(SELECTORS), selector_steps=3, selector_restarts=1, e2e_steps=3, e2e_restarts=1,
                      autoattack="smoke", autoattack_iterations=0, eval_points=540, margin_points=30, synthetic_epochs=2, toy_epochs=3, pseudo_train_points=40,
                      pseudo_epochs=10, fab_targets=3, fab_iterations=50, seeds=[0, 1]),
        "cpu": dict(dataset="fashion_mnist", data_points=[8000, 500, 1000], eps=0.1, selector_eps=0.15, core_model="standard",
                    robust_model="trades", width=16, epochs=4, train_steps=3, era_epochs=2,
                    era_lr=1e-3, era_beta=1.0, gloro_arch="mlp", gloro_width=128, gloro_epochs=20, robust_models=["era", "gloro_local"],
                    selectors=list(SELECTORS), selector_steps=20, selector_restarts=1, e2e_steps=20, e2e_restarts=1,
                    autoattack="cpu", autoattack_iterations=0, eval_points=200, margin_points=100, synthetic_epochs=20, toy_epochs=60, pseudo_train_points=200,
                    pseudo_epochs=500, fab_targets=3, fab_iterations=50, seeds=[0, 1, 2]),
        "colab": dict(dataset="mnist", data_points=[0, 0, 0], eps=0.1, selector_eps=0.15, core_model="standard", robust_model="trades", width=32, epochs=5, train_steps=5, era_epochs=2,
                      era_lr=1e-3, era_beta=1.0, gloro_arch="mlp", gloro_width=256, gloro_epochs=20, robust_models=["era", "gloro_local"],
                      selectors=list(SELECTORS), selector_steps=20, selector_restarts=1, e2e_steps=20, e2e_restarts=1,
                      autoattack="standard", autoattack_iterations=0, eval_points=1000, margin_points=300, synthetic_epochs=20, toy_epochs=60,
                      pseudo_train_points=600, pseudo_epochs=500, fab_targets=3, fab_iterations=50, seeds=[0, 1, 2]),
        "paper": dict(dataset="cifar10", data_points=[0, 0, 0], eps=1 / 255, selector_eps=2 / 255, core_model="Standard",
                      robust_model="Gowal2020Uncovering_28_10_extra", width=32, epochs=30, train_steps=10,
                      era_epochs=50, era_lr=1e-3, era_beta=1.0, gloro_arch="6C2F", gloro_width=512, gloro_epochs=200,
                      robust_models=["era", "gloro_local"], selectors=list(SELECTORS), selector_steps=40,
                      selector_restarts=1, e2e_steps=40, e2e_restarts=2, autoattack="standard", autoattack_iterations=0, eval_points=10000, margin_points=1000,
                      synthetic_epochs=20, toy_epochs=60, pseudo_train_points=4000, pseudo_epochs=500, fab_targets=3, fab_iterations=50, seeds=[0]),
    },
    check=_check_ch6,
    budget_seconds=180,
    work=_work_ch6,
    units=lambda p: (_trained(p, p["core_model"], p["robust_model"], *p["robust_models"])
                     + _verdicts(p, 1 + len(p["robust_models"]))),
))

del check
