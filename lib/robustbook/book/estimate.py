"""How long a chapter takes in a profile on a T4-class GPU, estimated from its parameters.

We cannot run the ``colab`` profile here (no GPU), so each chapter's work is counted from its parameters —
training steps, attack iterations, points — in *forward-pass equivalents* of its models (a forward pass is 1,
a forward and backward pass 3), multiplied by the FLOPs of one forward pass of each model (counted by torch's
``FlopCounterMode`` on the meta device, nothing allocated), and divided by an effective T4 throughput:

    minutes = sum(passes x FLOPs per pass) / (8.1 TFLOP/s FP32 peak x 35% utilisation) / 60.

The 35% is an assumption (small batches and attack loops rarely reach peak); ``benchmarks/colab_estimates.py``
measures the per-batch costs of the same models on this machine's CPU, the basis a reader can check.
Attack counts are upper bounds: every point is assumed to survive every attack stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..data import DATASET_INFO, SPLIT_SIZES

T4_FLOPS = 8.1e12            # NVIDIA T4, FP32 peak (datasheet)
UTILISATION = 0.35
AA_PASSES = {  # forward-pass equivalents per attacked point (upper bound: every stage runs on every point)
    "standard": 100 * 3 + 9 * 100 * 3 + 9 * 100 * 5 + 5000,
    "cpu": 100 * 3 + 3 * 100 * 3,
    "smoke": 10 * 3,
}


@dataclass
class Work:
    what: str
    model: str
    passes: float

    def flops(self, dataset: str) -> float:
        return self.passes * forward_flops(self.model, dataset)


@lru_cache(maxsize=None)
def forward_flops(model: str, dataset: str) -> float:
    """FLOPs of one forward pass of one input: ``model`` is ``cnn:<width>``, ``mlp:<width>``, an xCyF name or a
    RobustBench model name (built on the meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import build_model, robustbench_architecture

    classes, shape = DATASET_INFO[dataset]
    with torch.device("meta"):
        if ":" in model:
            arch, width = model.split(":")
            net = build_model(arch, shape, classes, width=int(width))
        elif model in ("2C2F", "4C3F", "6C2F"):
            net = build_model(model, shape, classes)
        else:
            net = robustbench_architecture(model, dataset, "Linf")
        counter = FlopCounterMode(display=False)
        with counter:
            net(torch.empty((1, *shape)))
    return float(counter.get_total_flops())


def _train(model, n, epochs, inner=0, extra=0, seeds=1, what="training"):
    return Work(what, model, seeds * epochs * n * (3 * (1 + inner) + extra))


def _fab(model, points, targets, n_iter, seeds=1, what="FAB input margins"):
    return Work(what, model, seeds * points * (targets * n_iter * 5 + 10 * 3 + 20))


def _autoattack(model, points, setting, seeds=1, what="AutoAttack"):
    return Work(what, model, seeds * points * AA_PASSES[setting])


def _pgd(model, points, steps, restarts=1, seeds=1, what="PGD"):
    return Work(what, model, seeds * points * steps * restarts * 3)


def work(chapter: str, p: dict) -> list[Work]:
    """The counted work of a chapter under parameters ``p`` (a resolved profile)."""
    d = p["dataset"]
    sizes = [k or size for k, size in zip(p.get("data_points", [0, 0, 0]), SPLIT_SIZES[d])]
    n, test, seeds = sizes[0], sizes[2], len(p["seeds"])
    cnn = f"cnn:{p.get('width', 32)}"
    points = min(p.get("eval_points", test), test)
    if chapter == "01_local_robustness":
        return [_train(cnn, n, p["epochs"], seeds=seeds, what="standard training"),
                _train(cnn, n, p["epochs"], inner=p["train_steps"], seeds=seeds, what="PGD training"),
                _autoattack(cnn, points, p["autoattack"], 2 * seeds),
                _pgd(cnn, test, p["curve_steps"], seeds=2 * len(p["eps_grid"]), what="robustness curves"),
                _fab(cnn, p["margin_points"], 3, 50, 2, what="FAB margins (first seed)"),
                Work("linear models and their FAB margins", "mlp:1", seeds * (p["linear_epochs"] * n * 3
                                                                               + p["margin_points"] * 400))]
    if chapter == "02_margin_consistency":
        out = []
        for m in p["models"]:
            name = cnn if ":" in cnn and m in ("standard", "pgd", "trades", "mma", "spectral_norm", "pgd_half_eps",
                                               "rescaled") else m
            if m in ("pgd", "pgd_half_eps", "trades"):
                out.append(_train(name, n, p["epochs"], inner=p["train_steps"], extra=3, seeds=seeds, what=f"{m} training"))
            elif m == "mma":
                out.append(_train(name, n, p["epochs"], inner=p["train_steps"], extra=30, seeds=seeds, what="mma training"))
            elif m in ("standard", "spectral_norm"):
                out.append(_train(name, n, p["epochs"], seeds=seeds, what=f"{m} training"))
            out.append(_fab(name, p["margin_points"], p["fab_targets"], p["fab_iterations"], seeds, f"FAB, {m}"))
            out.append(_autoattack(name, p["margin_points"], p["autoattack"], seeds, f"AutoAttack, {m}"))
        for m in p["repair_models"]:
            name = cnn if m == "rescaled" else m
            out.append(_fab(name, p["pseudo_train_points"] + p["pseudo_val_points"], p["fab_targets"],
                            p["fab_iterations"], seeds, f"pseudo-margin FAB, {m}"))
        return out
    if chapter == "03_certified_relaxed":
        arch = f"mlp:{p['gloro_width']}" if p["gloro_arch"] == "mlp" else (
            f"cnn:{p['gloro_width']}" if p["gloro_arch"] == "cnn" else p["gloro_arch"])
        nets = len(p["rtk_k"]) + 2
        return [_train(arch, n, p["gloro_epochs"], seeds=seeds * nets, what="GloRo training"),
                _pgd(arch, test, p["attack_steps"], p["attack_restarts"], seeds * nets, "soundness attacks"),
                Work("2-D toy nets", "mlp:1", seeds * 3 * p["toy_epochs"] * 600 * 3 * 20)]
    if chapter == "04_avoid_robust_inaccuracy":
        core = cnn if p["core_model"] == "standard" else p["core_model"]
        robust = cnn if p["robust_model"] in ("trades", "pgd") else p["robust_model"]
        era_n = min(n, p.get("era_points", n))
        out = [Work("synthetic example", "mlp:1", seeds * 3 * p["synthetic_epochs"] * 1000 * 40)]
        if core == cnn:
            out.append(_train(cnn, n, p["epochs"], seeds=seeds, what="core training"))
        if robust == cnn:
            out.append(_train(cnn, n, p["epochs"], inner=p["train_steps"], extra=3, seeds=seeds, what="TRADES training"))
        out += [_train(robust, era_n, p["era_epochs"], inner=10, extra=6, seeds=seeds * (1 + len(p["betas"])),
                       what="ERA fine-tuning (and the beta sweep)"),
                _autoattack(core, points, p["autoattack"], seeds, "AutoAttack, core"),
                _autoattack(robust, points, p["autoattack"], 2 * seeds + len(p["betas"]), "AutoAttack, robust and ERA"),
                _pgd(robust, points, p["selector_steps"], p["selector_restarts"], seeds * (1 + 16), "selector"),
                _pgd(robust, points, p["e2e_steps"], 1, seeds * 4 * 2, "end-to-end attack")]
        return out
    if chapter == "05_robustness_metrics":
        models = len(p["optimizers"]) * len(p["lr_levels"]) * len(p["depths"]) * len(p["widths"]) * len(p["dropouts"])
        cnn5 = f"cnn:{max(p['widths'])}"
        per_model = [_train(cnn5, n, p["epochs"]),
                     Work("corrupted test sets", cnn5, 41 * 5 * test / 5 * 1),
                     Work("attacks", cnn5, p["attack_points"] * (3 + 30 + 30 + 20 * 12 + p["cw_steps"] *
                                                                 p["cw_search_steps"] * 3)),
                     Work("sharpness", cnn5, 2 * 15 * 10 * p["sharpness_points"])]
        return [Work(w.what, w.model, w.passes * models * seeds) for w in per_model]
    if chapter == "06_free_selectors":
        core = cnn if p["core_model"] == "standard" else p["core_model"]
        robust = cnn if p["robust_model"] in ("trades", "pgd") else p["robust_model"]
        gloro = f"mlp:{p['gloro_width']}" if p["gloro_arch"] == "mlp" else p["gloro_arch"]
        pairs = len(p["robust_models"]) * len(p["selectors"])
        return [_train(cnn, n, p["epochs"], seeds=seeds, what="core training") if core == cnn else Work("core", core, 0),
                _train(robust, min(n, p.get("era_points", n)), p["era_epochs"], inner=10, extra=6, seeds=seeds,
                       what="ERA fine-tuning"),
                _train(gloro, n, p["gloro_epochs"], seeds=seeds, what="GloRo training"),
                _autoattack(robust, points, p["autoattack"], 3 * seeds, "AutoAttack"),
                _fab(robust, p["margin_points"] + p["pseudo_train_points"] + 200, 3, 50, 2 * seeds, "FAB margins"),
                _pgd(robust, points, p["e2e_steps"], p["e2e_restarts"], seeds * pairs * 4 * 3, "end-to-end attacks"),
                _pgd(robust, points, p["selector_steps"], p["selector_restarts"], seeds * 2 * 17, "empirical selector")]
    raise ValueError(f"no work model for chapter {chapter!r}")


def units(chapter: str, p: dict) -> int:
    """How many independent units a chapter hands to :mod:`robustbook.executor` under parameters ``p``: one per
    training of a zoo recipe and seed (RobustBench models are downloaded, not trained) and, in chapter 5, one per
    zoo model's study. The executor runs them serially or as Ray tasks."""
    from ..zoo import is_recipe

    seeds = len(p["seeds"])

    def trained(*names):
        return sum(1 for n in names if n and is_recipe(n) and n != "rescaled") * seeds

    if chapter == "01_local_robustness":
        return trained("standard", "pgd", "linear")
    if chapter == "02_margin_consistency":
        return trained(*p["models"])
    if chapter == "03_certified_relaxed":
        return 3 * seeds + (len(p["rtk_k"]) + 2) * seeds
    if chapter == "04_avoid_robust_inaccuracy":
        return 3 * seeds + trained(p["core_model"], p["robust_model"], "era") + len(p["betas"])
    if chapter == "05_robustness_metrics":
        models = len(p["optimizers"]) * len(p["lr_levels"]) * len(p["depths"]) * len(p["widths"]) * len(p["dropouts"])
        return 2 * models * seeds
    if chapter == "06_free_selectors":
        return trained(p["core_model"], p["robust_model"], *p["robust_models"])
    raise ValueError(f"no unit count for chapter {chapter!r}")


def minutes(chapter: str, p: dict) -> dict:
    """The T4 estimate of a chapter under parameters ``p``: total minutes and the share of each item."""
    items = work(chapter, p)
    flops = {f"{w.what} ({w.model})": w.flops(p["dataset"]) for w in items}
    total = sum(flops.values())
    return {"minutes": total / (T4_FLOPS * UTILISATION) / 60, "flops": total,
            "items": {k: v / (T4_FLOPS * UTILISATION) / 60 for k, v in sorted(flops.items(), key=lambda kv: -kv[1])},
            "basis": f"{total:.3g} FLOPs counted from the parameters / ({T4_FLOPS / 1e12:.1f} TFLOP/s T4 peak x "
                     f"{UTILISATION:.0%} assumed utilisation)"}


def colab_note(chapter: str) -> str:
    """One sentence for a chapter page: its colab profile's estimated T4 time and the estimate's basis."""
    from .specs import resolve

    est = minutes(chapter, resolve(chapter, "colab"))
    top = next(iter(est["items"]))
    return (f"In the colab profile this chapter needs about {math.ceil(est['minutes'])} minutes on a T4-class "
            f"GPU — an estimate, not a measurement: {est['basis']}; the largest item is {top}.")
