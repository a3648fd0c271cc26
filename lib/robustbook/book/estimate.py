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
def aa_passes(setting) -> int:
    """Forward-pass equivalents per attacked point of an AutoAttack setting (an upper bound: every stage runs on
    every point; a gradient step counts 3 passes, a FAB step 5, a Square query 1)."""
    attacks = ("apgd-ce", "apgd-t", "fab-t", "square") if setting.version == "standard" else setting.attacks
    per = {"apgd-ce": 3 * setting.n_iter, "apgd-t": 3 * setting.n_iter * setting.target_classes,
           "fab-t": 5 * setting.n_iter * setting.target_classes, "square": setting.square_queries}
    return sum(per.get(a, 3 * setting.n_iter) for a in attacks)


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


def training(model, n, epochs, inner=0, extra=0, seeds=1, what="training") -> Work:
    """``epochs`` over ``n`` points, each a forward and backward pass plus ``inner`` attack steps (and ``extra``)."""
    return Work(what, model, seeds * epochs * n * (3 * (1 + inner) + extra))


def fab_runs(model, points, targets, n_iter, seeds=1, what="FAB input margins") -> Work:
    return Work(what, model, seeds * points * (targets * n_iter * 5 + 10 * 3 + 20))


def autoattack_runs(model, points, setting, seeds=1, what="AutoAttack") -> Work:
    """``setting``: an :class:`robustbook.attacks.AutoAttackSetting`."""
    return Work(what, model, seeds * points * aa_passes(setting))


def pgd_runs(model, points, steps, restarts=1, seeds=1, what="PGD") -> Work:
    return Work(what, model, seeds * points * steps * restarts * 3)


@dataclass(frozen=True)
class Sizes:
    """The sizes most work counts start from: training and test points, seeds, the CNN, evaluated points."""

    train: int
    test: int
    seeds: int
    cnn: str
    points: int


def sizes(p: dict) -> Sizes:
    d = p["dataset"]
    train, _, test = [k or size for k, size in zip(p.get("data_points", [0, 0, 0]), SPLIT_SIZES[d])]
    return Sizes(train, test, len(p["seeds"]), f"cnn:{p.get('width', 32)}", min(p.get("eval_points", test), test))


def work(chapter: str, p: dict) -> list[Work]:
    """The counted work of a chapter under parameters ``p`` (a resolved profile): its registration's ``work``."""
    from .specs import get

    c = get(chapter)
    if c.work is None:
        raise ValueError(f"chapter {chapter} declares no work model (Chapter(work=...))")
    return c.work(p)


def units(chapter: str, p: dict) -> int:
    """How many independent units a chapter hands to :mod:`robustbook.executor` under parameters ``p`` (its
    registration's ``units``): one per training of a zoo recipe and seed (RobustBench models are downloaded,
    not trained) and, in chapter 5, one per zoo model's study. The executor runs them serially or as Ray tasks."""
    from .specs import get

    c = get(chapter)
    if c.units is None:
        raise ValueError(f"chapter {chapter} declares no unit count (Chapter(units=...))")
    return c.units(p)


def minutes(chapter: str, p: dict) -> dict:
    """The T4 estimate of a chapter under parameters ``p``: total minutes and the share of each item."""
    items = work(chapter, p)
    flops = {f"{w.what} ({w.model})": w.flops(p["dataset"]) for w in items}
    total = sum(flops.values())
    return {"minutes": total / (T4_FLOPS * UTILISATION) / 60, "flops": total,
            "items": {k: v / (T4_FLOPS * UTILISATION) / 60 for k, v in sorted(flops.items(), key=lambda kv: -kv[1])},
            "basis": f"{total:.3g} FLOPs counted from the parameters / ({T4_FLOPS / 1e12:.1f} TFLOP/s T4 peak x "
                     f"{UTILISATION:.0%} assumed utilisation)"}


def measured_on_gpu(chapter: str) -> dict | None:
    """The chapter's record in ``benchmarks/results/gpu-check.json`` (a ``make gpu-check`` run kept in the
    repository), with the device; None where no GPU run of it is kept."""
    import json

    from ..runtime import project_root

    path = project_root() / "benchmarks" / "results" / "gpu-check.json"
    try:
        report = json.loads(path.read_text())
        record = report["chapters"][chapter]
        return {**record, "device": report["device"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gpu_section(chapter: str) -> str:
    """The body of every chapter's "On a GPU" section (Markdown), written in one place: what was measured on
    which GPU (from a kept ``make gpu-check`` run) and what is an estimate, and how to run the chapter there."""
    measured = measured_on_gpu(chapter)
    if measured:
        timing = (f"Measured: the colab profile ran in {measured['seconds'] / 60:.1f} minutes on an "
                  f"{measured['device']} (`make gpu-check`, on {measured.get('dataset', 'its data')}; "
                  "`benchmarks/results/gpu-check.json`). ")
    else:
        timing = "No GPU run of this chapter is kept yet (`make gpu-check` writes one). "
    from .specs import get

    note = colab_note(chapter) if get(chapter).work is not None else "No colab estimate: the chapter declares no work model."
    return (f"{timing}{note} Run it with `python -m robustbook run {chapter} --profile colab`, "
            "or open the chapter on Colab (the rocket button above).")


def colab_note(chapter: str) -> str:
    """One sentence for a chapter page: its colab profile's estimated T4 time and the estimate's basis."""
    from .specs import resolve

    est = minutes(chapter, resolve(chapter, "colab"))
    top = next(iter(est["items"]))
    return (f"In the colab profile this chapter needs about {math.ceil(est['minutes'])} minutes on a T4-class "
            f"GPU — an estimate, not a measurement: {est['basis']}; the largest item is {top}.")
