"""Every named model of the book, as data: name -> training recipe, and one :func:`load`.

A :class:`Recipe` is a partial :class:`robustbook.train.TrainConfig` whose values may depend on the
chapter's parameters (``eps``, ``epochs``, ``width``, ``seed``, ...): a value that is a function is
called with those parameters. Recipes that start from another model name it as ``base``
(``finetune``: train further from its weights; ``wrap``: wrap it, e.g. rescale its logits).

``load(name, data, **params)`` trains the model or reads it from the cache; a parameter
``<name>_base`` replaces a recipe's base (e.g. ``era_base`` = a RobustBench model). In the paper profile a
name that is not a recipe is a RobustBench model (loaded for the data's dataset). The metrics
study's zoo is a family of recipes named ``grid:<optimizer>-lr<level>-d<depth>-w<width>-p<dropout>``.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from torch import nn

from . import validate as check
from .data import Data
from .train import TrainConfig, train

RecipeParams = dict   # the parameters a recipe reads (eps, epochs, width, attack_steps, seed, ...)


def _p(key: str, scale: float = 1.0) -> Callable[[RecipeParams], Any]:
    """A recipe value read from the parameters (optionally scaled)."""
    def read(params: RecipeParams):
        if key not in params:
            raise KeyError(key)
        return params[key] * scale if scale != 1.0 else params[key]
    read.__name__ = f"{scale:g} * {key}" if scale != 1.0 else key
    return read


@dataclass(frozen=True)
class Recipe:
    description: str
    config: dict = field(default_factory=dict)
    base: str | None = None          # the recipe this one starts from
    finetune: bool = False           # train further from the base model's weights
    wrap: str | None = None          # wrap the base model (see WRAPS)
    chapters: tuple = ()


# the small CNN every image chapter shares (so that chapters reuse each other's cached models)
CNN = {"arch": "cnn", "arch_options": lambda p: {"width": p["width"]}, "epochs": _p("epochs"), "lr": 1e-3,
       "seed": _p("seed")}
ADV = {"attack_steps": _p("attack_steps")}
def _gloro_arch_options(p: RecipeParams) -> dict:
    arch = p.get("gloro_arch", "mlp")
    if arch == "mlp":
        return {"width": p.get("gloro_width", 128), "depth": 2, "activation": "minmax"}
    if arch == "cnn":
        return {"width": p.get("gloro_width", 32), "activation": "minmax"}
    return {"activation": "minmax"}                # the GloRo papers' xCyF networks


GLORO = {"arch": lambda p: p.get("gloro_arch", "mlp"), "arch_options": _gloro_arch_options,
         "method": "gloro", "epochs": _p("gloro_epochs"), "lr": 1e-3, "seed": _p("seed"), "eps_warmup": 0.5}
# Merkli et al.'s synthetic example (their Figure 1): an MLP 2-64-64-64-3 trained with SGD
SYNTHETIC = {"arch": "mlp", "arch_options": {"width": 64, "depth": 3}, "epochs": _p("synthetic_epochs"),
             "batch_size": 10, "optimizer": "sgd", "lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4,
             "schedule": "step", "seed": _p("seed")}
SYNTHETIC_ADV = {"eps": _p("synthetic_eps"), "attack_steps": 10, "attack_step_size": _p("synthetic_eps", 0.25)}
TOY_GLORO = {"arch": "mlp", "arch_options": {"width": 128, "depth": 3, "activation": "minmax"},
             "method": "gloro", "epochs": _p("toy_epochs"), "batch_size": 32, "seed": _p("seed"), "eps_warmup": 0.5}


def _gloro(eps_key: str, **loss_options) -> dict:
    """GloRo training at 1.1 x the certified radius, ramped up over the first half (as the GloRo code does)."""
    return {"eps": _p(eps_key, 1.1), "loss_options": lambda p: {**{k: (v(p) if callable(v) else v)
                                                                     for k, v in loss_options.items()},
                                                                 "trades_lambda": p.get("trades_lambda", 2.0)}}


RECIPES: dict[str, Recipe] = {
    # chapters 1, 2, 4, 6: the small CNNs (Fashion-MNIST in the cpu book, the digits in the smoke profile)
    "standard": Recipe("cross-entropy", {**CNN}, chapters=("01", "02", "04", "06")),
    "pgd": Recipe("PGD adversarial training at eps (Madry et al., 2018)",
                  {**CNN, **ADV, "method": "pgd", "eps": _p("eps")}, chapters=("01", "02")),
    "pgd_half_eps": Recipe("PGD adversarial training at eps / 2", {**CNN, **ADV, "method": "pgd", "eps": _p("eps", 0.5)},
                           chapters=("02",)),
    "trades": Recipe("TRADES at eps, beta = 6 (Zhang et al., 2019)",
                     {**CNN, **ADV, "method": "trades", "eps": _p("eps")}, chapters=("02", "04", "06")),
    "mma": Recipe("max-margin adversarial training, d_max = 2 eps (Ding et al., 2020)",
                  {**CNN, **ADV, "method": "mma", "eps": _p("eps", 2.0)}, chapters=("02",)),
    "spectral_norm": Recipe("cross-entropy with every layer spectrally normalised",
                            {**CNN, "arch_options": lambda p: {"width": p["width"], "spectral_norm": True}},
                            chapters=("02",)),
    "rescaled": Recipe("the pgd model with every logit multiplied by s(x) > 0 (not margin consistent)",
                       base="pgd", wrap="rescaled", chapters=("02",)),
    "era": Recipe("ERA fine-tuning of the trades model at the selector's radius (Merkli et al.)",
                  {"arch": "finetune", "method": "era", "eps": _p("selector_eps"), "attack_steps": 10,
                   "attack_step_size": _p("selector_eps", 0.25), "beta": 6.0, "epochs": _p("era_epochs"),
                   "lr": _p("era_lr"), "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
                   "select": "val_accuracy", "seed": _p("seed"),
                   "loss_options": lambda p: {"era_beta": p["era_beta"]}},
                  base="trades", finetune=True, chapters=("04", "06")),
    "linear": Recipe("multinomial logistic regression, full batch", {"arch": "linear", "epochs": _p("linear_epochs"),
                                                                     "lr": 1e-2, "batch_size": 1_000_000,
                                                                     "seed": _p("seed")}, chapters=("01",)),
    # chapter 3 (and 6): GloRo nets on the chapter's images, L2 radius gloro_eps
    "gloro_local": Recipe("GloRo, local robustness", {**GLORO, **_gloro("gloro_eps")}, chapters=("03", "06")),
    # "gloro_rtk<K>" for any K: see recipe()
    "gloro_affinity": Recipe("GloRo, affinity robustness with the chapter's groups",
                             {**GLORO, **_gloro("gloro_eps", relaxation="affinity", groups=_p("groups"))},
                             chapters=("03",)),
    # chapter 3's 2-D toy: four overlapping classes
    "toy_local": Recipe("toy GloRo MLP, local robustness", {**TOY_GLORO, **_gloro("toy_eps")}, chapters=("03",)),
    "toy_rtk2": Recipe("toy GloRo MLP, relaxed top-2", {**TOY_GLORO, **_gloro("toy_eps", relaxation="rtk", K=2)},
                       chapters=("03",)),
    "toy_affinity": Recipe("toy GloRo MLP, affinity group {0, 1}",
                           {**TOY_GLORO, **_gloro("toy_eps", relaxation="affinity", groups=[[0, 1]])},
                           chapters=("03",)),
    # chapter 4's synthetic example
    "synthetic_standard": Recipe("Figure 1 of Merkli et al.: standard training", {**SYNTHETIC}, chapters=("04",)),
    "synthetic_trades": Recipe("Figure 1: TRADES", {**SYNTHETIC, **SYNTHETIC_ADV, "method": "trades"},
                               chapters=("04",)),
    "synthetic_era": Recipe("Figure 1: ERA from scratch",
                            {**SYNTHETIC, **SYNTHETIC_ADV, "method": "era",
                             "loss_options": lambda p: {"era_beta": p["synthetic_beta"]}}, chapters=("04",)),
}

WRAPS: dict[str, Callable[[nn.Module, Data, RecipeParams], nn.Module]] = {}


def _rescaled(base: nn.Module, data: Data, params: RecipeParams) -> nn.Module:
    from .consistency import RescaledLogits

    return RescaledLogits(base, data.x_train, seed=params["seed"]).to(next(base.parameters()).device).eval()


WRAPS["rescaled"] = _rescaled

# --------------------------------------------------------------------------- the metrics study's grid
GRID_AXES = ("optimizer", "lr", "depth", "width", "dropout")
LEARNING_RATES = {"sgd": (0.01, 0.03, 0.1), "adam": (3e-4, 1e-3, 3e-3)}   # low / mid / high per optimizer


def grid(optimizers=("sgd", "adam"), lr_levels=(0, 1, 2), depths=(1, 2, 3), widths=(8, 16),
         dropouts=(0.0, 0.25)) -> list[dict]:
    """Every combination of the grid axes (the learning rate is a level: its value depends on the optimizer)."""
    for name, values in (("optimizers", optimizers), ("lr_levels", lr_levels), ("depths", depths),
                         ("widths", widths), ("dropouts", dropouts)):
        check.non_empty(name, values)
    for o in optimizers:
        check.choice("optimizer", o, LEARNING_RATES)
    return [dict(optimizer=o, lr=l, depth=d, width=w, dropout=p)
            for o, l, d, w, p in itertools.product(optimizers, lr_levels, depths, widths, dropouts)]


def grid_name(point: dict) -> str:
    return (f"grid:{point['optimizer']}-lr{point['lr']}-d{point['depth']}-w{point['width']}-"
            f"p{point['dropout']:g}")


def _grid_config(name: str, params: RecipeParams) -> TrainConfig:
    try:
        o, lr, d, w, p = name[len("grid:"):].split("-")
        point = dict(optimizer=o, lr=int(lr[2:]), depth=int(d[1:]), width=int(w[1:]), dropout=float(p[1:]))
    except (ValueError, IndexError):
        raise check.InvalidArgument(f"model name {name!r} is not a grid point "
                                    "(grid:<optimizer>-lr<level>-d<depth>-w<width>-p<dropout>)") from None
    check.choice("optimizer", point["optimizer"], LEARNING_RATES)
    check.number("lr level", point["lr"], low=0, high=2, integer=True)
    return TrainConfig(arch="cnn", arch_options={"width": point["width"], "depth": point["depth"],
                                                 "dropout": point["dropout"]},
                       optimizer=point["optimizer"], lr=LEARNING_RATES[point["optimizer"]][point["lr"]],
                       epochs=params["epochs"], batch_size=64, seed=params["seed"])


# --------------------------------------------------------------------------- loading
def _resolve(value, params: RecipeParams):
    if callable(value):
        return value(params)
    if isinstance(value, dict):
        return {k: _resolve(v, params) for k, v in value.items()}
    return value


def config(name: str, **params) -> TrainConfig:
    """The :class:`TrainConfig` of a recipe (or grid point) under the given parameters."""
    if name.startswith("grid:"):
        try:
            return _grid_config(name, params)
        except KeyError as err:
            raise check.InvalidArgument(f"grid model {name!r} needs the parameter {err.args[0]!r}") from None
    spec = recipe(name)
    if spec.wrap:
        raise check.InvalidArgument(f"{name!r} wraps {spec.base!r}; it has no training config of its own")
    known = {f.name for f in fields(TrainConfig)}
    try:
        values = {k: _resolve(v, params) for k, v in spec.config.items()}
    except KeyError as err:
        raise check.InvalidArgument(f"model {name!r} needs the parameter {err.args[0]!r}") from None
    unknown = set(values) - known
    if unknown:
        raise AssertionError(f"recipe {name!r} sets unknown TrainConfig fields {sorted(unknown)}")
    return TrainConfig(**values)


_RTK = re.compile(r"gloro_rtk(\d+)$")


def recipe(name: str) -> Recipe:
    """The recipe of ``name``: a registered one, or ``gloro_rtk<K>`` for any K (relaxed top-K GloRo)."""
    if name in RECIPES:
        return RECIPES[name]
    match = _RTK.match(name)
    if match:
        k = int(match.group(1))
        return Recipe(f"GloRo, relaxed top-{k}", {**GLORO, **_gloro("gloro_eps", relaxation="rtk", K=k)},
                      chapters=("03",))
    check.choice("model", name, RECIPES)           # raises, listing the recipes
    raise AssertionError("unreachable")


def is_recipe(name: str) -> bool:
    return name in RECIPES or name.startswith("grid:") or bool(_RTK.match(name))


def load(name: str, data: Data, threat_model: str = "Linf", **params) -> nn.Module:
    """The model ``name`` on ``data``: trained (or read from the cache) from its recipe, or — for a
    name that is not a recipe, on CIFAR-10/100 — the RobustBench model of that name."""
    if not is_recipe(name):
        if data.name in ("cifar10", "cifar100"):
            from .models import load_robustbench

            return load_robustbench(name, data.name, threat_model)
        check.choice("model", name, RECIPES)           # raises, listing the recipes
    if name.startswith("grid:"):
        return train(config(name, **params), data)
    spec = recipe(name)
    base = params.get(f"{name}_base", spec.base)
    if spec.wrap:
        return WRAPS[spec.wrap](load(base, data, threat_model, **params), data, params)
    init = load(base, data, threat_model, **params) if spec.finetune else None
    return train(config(name, **params), data, init=init)


def _plan(name: str, data: Data, threat_model: str, params: RecipeParams) -> list[tuple[str, RecipeParams]]:
    """The recipes to train for ``name`` (its base first), as (name, params) — none for RobustBench names."""
    if not is_recipe(name):
        return []
    if name.startswith("grid:"):
        return [(name, params)]
    spec = recipe(name)
    base = params.get(f"{name}_base", spec.base)
    steps = _plan(base, data, threat_model, params) if base else []
    return steps if spec.wrap else [*steps, (name, params)]


def _cached(name: str, data: Data, params: RecipeParams, threat_model: str = "Linf") -> bool:
    """Whether ``name`` is in the cache already (a fine-tuned model's key needs its base: loaded if cached)."""
    from .runtime import model_fingerprint
    from .train import checkpoint_path

    cfg = config(name, **params)
    if not name.startswith("grid:") and recipe(name).finetune:
        base = params.get(f"{name}_base", recipe(name).base)
        if not is_recipe(base) or not _cached(base, data, params, threat_model):
            return False
        init = load(base, data, threat_model, **params)
        cfg = replace(cfg, loss_options={**cfg.loss_options, "init": model_fingerprint(init)})
    return checkpoint_path(cfg, data).is_file()


def training_unit(name: str, data: Data, threat_model: str, params: RecipeParams):
    """The training of recipe ``name`` as a unit of work (its base, if any, must be in the cache already)."""
    from .train import unit

    cfg = config(name, **params)
    init = None
    if not name.startswith("grid:") and recipe(name).finetune:
        init = load(params.get(f"{name}_base", recipe(name).base), data, threat_model, **params)
    return unit(cfg, data, init, name=f"{name} (seed {params.get('seed', 0)})")


def load_many(requests: list[tuple], data: Data | None = None, threat_model: str = "Linf") -> list[nn.Module]:
    """Load several models (``[(name, params), ...]``, or ``(name, params, data)`` when the data differ by
    request), training the missing ones first.

    Models a later request builds on (an ERA fine-tune's base) are trained first. Each missing model is a unit of
    :mod:`robustbook.executor`, stage by stage: trained here with this process's threads (serial, the default),
    or as a Ray task when ``ROBUSTBOOK_RAY`` is set; this process writes the weights to the cache either way.
    Returns the models in the order of ``requests``, loaded from the cache in this process.
    """
    from . import executor
    from .runtime import timed

    requests = [(r[0], r[1], r[2] if len(r) > 2 else data) for r in requests]
    if any(d is None for _, _, d in requests):
        raise check.InvalidArgument("load_many needs data: pass data=... or (name, params, data) requests")
    stages: list[list[tuple[str, RecipeParams, Data]]] = []
    seen = set()
    for name, params, d in requests:
        for depth, step in enumerate(_plan(name, d, threat_model, params)):
            key = (step[0], repr(sorted(step[1].items(), key=lambda kv: kv[0])), id(d))
            if key in seen:
                continue
            seen.add(key)
            if _cached(step[0], d, step[1], threat_model):
                continue
            while len(stages) <= depth:
                stages.append([])
            stages[depth].append((*step, d))
    if any(stages):
        with timed("training"):
            for stage in stages:
                executor.run([training_unit(n, d, threat_model, p) for n, p, d in stage], "training")
    return [load(name, d, threat_model, **params) for name, params, d in requests]


def load_seeds(names, data: Data, seeds, threat_model: str = "Linf", **params) -> dict[int, dict[str, nn.Module]]:
    """``{seed: {name: model}}`` for every name and seed, the missing ones trained by :func:`load_many`."""
    requests = [(n, {**params, "seed": s}) for s in seeds for n in names]
    models = iter(load_many(requests, data, threat_model))
    return {s: {n: next(models) for n in names} for s in seeds}


def describe(names) -> list[dict]:
    """Name and description of each recipe (for a chapter's table of models)."""
    return [{"model": n, "training": recipe(n).description if is_recipe(n) and not n.startswith("grid:")
             else ("grid point of the metrics study" if n.startswith("grid:") else "RobustBench model")} for n in names]


