"""Do cheap measures of a model predict its robustness?  Measures, the zoo, and robustness quantities.

* :func:`zoo_grid` / :func:`train_zoo` — a full grid over optimizer, learning rate, depth, width and
  dropout of small CNNs, each cached by its hyperparameters;
* :func:`performance`, :func:`margin_and_entropy`, :func:`norms`, :func:`sharpness` — the measures
  (definitions of Jiang et al., 2020, "Fantastic generalization measures"); our zoo has no batch
  norm, so nothing needs folding; biases are excluded from norms except the path norm;
* :func:`shift_quantities` — accuracy gap, relative robustness and uncertainty robustness of a model
  on a shifted test set.
"""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, log_loss, precision_score, recall_score
from torch import nn
from tqdm.auto import tqdm

from .attacks import predict_logits

AXES = ("optimizer", "lr", "depth", "width", "dropout")
LEARNING_RATES = {"sgd": (0.01, 0.03, 0.1), "adam": (3e-4, 1e-3, 3e-3)}   # low / mid / high per optimizer


def zoo_grid(optimizers=("sgd", "adam"), lr_levels=(0, 1, 2), depths=(1, 2, 3), widths=(8, 16),
             dropouts=(0.0, 0.25)) -> list[dict]:
    """Every combination of the grid axes (the learning rate is a level: its value depends on the optimizer)."""
    return [dict(optimizer=o, lr=l, depth=d, width=w, dropout=p)
            for o, l, d, w, p in itertools.product(optimizers, lr_levels, depths, widths, dropouts)]


def zoo_config(point: dict, epochs: int, seed: int):
    from .train import TrainConfig

    return TrainConfig(arch="cnn", arch_options={"width": point["width"], "depth": point["depth"],
                                                 "dropout": point["dropout"]},
                       optimizer=point["optimizer"], lr=LEARNING_RATES[point["optimizer"]][point["lr"]],
                       epochs=epochs, batch_size=64, seed=seed)


def train_zoo(grid: list[dict], data, epochs: int, seed: int) -> tuple[list[nn.Module], float]:
    """Train (or load) every model of the grid; returns the models and the wall time in seconds."""
    from .train import train

    start = time.perf_counter()
    models = [train(zoo_config(p, epochs, seed), data, progress=False)
              for p in tqdm(grid, desc="model zoo", leave=False)]
    return models, time.perf_counter() - start


# --------------------------------------------------------------------------- performance
def performance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
    """Accuracy, macro precision / recall / F1 and log-loss on (x, y)."""
    logits = predict_logits(model, x)
    pred = logits.argmax(1).numpy()
    probs = F.softmax(logits.double(), 1).numpy()
    labels = list(range(num_classes))
    return {
        "accuracy": float((pred == y.numpy()).mean()),
        "precision": float(precision_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "recall": float(recall_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "log_loss": float(log_loss(y.numpy(), probs, labels=labels)),
    }


def margin_and_entropy(model: nn.Module, x_train, y_train, x_test) -> dict:
    """Margin: 10th percentile over the training set of (true logit - best other logit), negative
    when more than 10% of the training set is misclassified.  Entropy: mean predictive entropy on test."""
    logits = predict_logits(model, x_train)
    true = logits.gather(1, y_train[:, None]).squeeze(1)
    other = logits.scatter(1, y_train[:, None], float("-inf")).max(1).values
    p = F.softmax(predict_logits(model, x_test).double(), 1)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1).mean()
    return {"margin": float(torch.quantile(true - other, 0.1)), "entropy": float(entropy)}


# --------------------------------------------------------------------------- norms
def _weight_layers(model: nn.Module, input_shape) -> list[tuple[nn.Module, tuple]]:
    shapes, h, layers = [], torch.zeros((1, *input_shape)), []
    model.eval()
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layers.append((layer, tuple(h.shape[1:])))
            h = layer(h)
    return layers


def norms(model: nn.Module, input_shape, margin: float) -> dict:
    """Log products over layers of squared spectral, squared Frobenius and nuclear norms; the path
    norm; and the "norm over margin" measures log(product of squared norms) / margin^2.

    Spectral norms of convolutions are their exact operator norms on this input size (the operator
    matrix for small inputs, an FFT upper bound otherwise: :func:`robustbook.certify.exact_sigma`);
    Frobenius and nuclear norms of a convolution are those of its kernel reshaped to
    (out_channels, in_channels * k * k).
    """
    from .certify import exact_sigma

    log_spec = log_frob = log_nuc = 0.0
    for layer, shape in _weight_layers(model, input_shape):
        w = layer.weight.detach().double().flatten(1)
        log_spec += 2 * math.log(float(exact_sigma(layer, shape)))
        log_frob += 2 * math.log(float(w.norm()))
        log_nuc += math.log(float(torch.linalg.matrix_norm(w, ord="nuc")))
    m2 = margin ** 2 if margin > 0 else float("nan")
    return {"log_spectral": log_spec, "log_frobenius": log_frob, "log_nuclear": log_nuc,
            "log_path_norm": math.log(path_norm(model, input_shape)),
            "spectral_over_margin": log_spec / m2, "frobenius_over_margin": log_frob / m2}


def path_norm(model: nn.Module, input_shape) -> float:
    """The l2 path norm: square every parameter (biases included), feed an all-ones input in eval
    mode, sum the outputs (the squared path norm) and take the square root."""
    import copy

    squared = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in squared.parameters():
            p.pow_(2)
        return float(squared(torch.ones((1, *input_shape))).sum().sqrt())


# --------------------------------------------------------------------------- sharpness
def _accuracy_under_noise(model, params, x, y, sigma, magnitude_aware, samples, gen):
    from torch.func import functional_call, vmap

    noisy = {}
    for name, p in params.items():
        scale = sigma * ((p.abs() + 1e-3) if magnitude_aware else 1.0)
        noisy[name] = p[None] + torch.randn((samples, *p.shape), generator=gen) * scale
    logits = vmap(lambda ps: functional_call(model, ps, (x,)))(noisy)         # (samples, N, C)
    return (logits.argmax(-1) == y[None]).double().mean().item()


def sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, magnitude_aware: bool = False,
              target_drop: float = 0.1, tol: float = 0.01, steps: int = 15, samples: int = 10,
              upper: float = 2.0, seed: int = 0) -> float:
    """PAC-Bayes sharpness 1 / sigma^2 (larger = sharper), sigma found by bisection on [0, upper].

    sigma is the largest noise level at which Gaussian weight noise N(0, sigma^2) (times |w| + 1e-3
    when ``magnitude_aware``) lowers the training accuracy by ``target_drop`` (within ``tol``),
    each step averaging ``samples`` Monte-Carlo perturbations evaluated at once with torch.func.vmap.
    """
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        base = (predict_logits(model, x).argmax(1) == y).double().mean().item()
        lo, hi = 0.0, upper
        for _ in range(steps):
            mid = (lo + hi) / 2
            drop = base - _accuracy_under_noise(model, params, x, y, mid, magnitude_aware, samples, gen)
            if abs(drop - target_drop) <= tol:
                lo = hi = mid
                break
            lo, hi = (mid, hi) if drop < target_drop else (lo, mid)
    sigma = (lo + hi) / 2
    return 1.0 / sigma ** 2


# --------------------------------------------------------------------------- robustness quantities
def shift_quantities(clean: dict, shifted: dict) -> dict:
    """Robustness of one model to one shift, from :func:`performance` on the clean and shifted sets."""
    return {
        "accuracy_gap": clean["accuracy"] - shifted["accuracy"],
        "relative_robustness": shifted["accuracy"] / clean["accuracy"] if clean["accuracy"] > 0 else float("nan"),
        "uncertainty_robustness": shifted["log_loss"] - clean["log_loss"],
    }


# --------------------------------------------------------------------------- the study
SHIFT_FAMILIES = {          # our torch corruptions (small grayscale images)
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("gaussian_blur", "elastic", "pixelate"),
    "digital": ("contrast", "brightness"),
}
RGB_SHIFT_FAMILIES = {      # imagecorruptions (RGB, >= 32x32), CIFAR-10-C's families less the three broken ones
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "spatter"),
    "digital": ("contrast", "brightness", "saturate", "jpeg_compression", "pixelate", "elastic_transform"),
}


def study(models: list[nn.Module], data, attacks: dict[str, dict], attack_points: int = 200,
          sharpness_points: int = 500, seed: int = 0, progress: bool = True, rgb: bool = False,
          natural: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Measures and robustness quantities of every model of a zoo.

    ``attacks``: {name: {"eps": ..., **options}} for :func:`robustbook.attacks.attack`; each model is
    attacked itself on ``attack_points`` test points.  Returns (measures, quantities, seconds spent on
    sharpness per model) where quantities has columns "<family>/<quantity>" for the corruption
    families, "corruption" (all corruptions), "adversarial" (all attacks) and, when ``natural`` test
    data is given (CIFAR-10.1 for CIFAR-10), "natural".  ``rgb`` uses imagecorruptions' corruptions.
    """
    import pandas as pd

    from .attacks import run_attacks
    from .data import subset
    from .shifts import SEVERITIES, corrupt, corrupt_rgb

    x, y = data.x_test, data.y_test
    xa, ya = subset(x, y, attack_points, seed=seed)
    xs, ys = subset(data.x_train, data.y_train, sharpness_points, seed=seed)
    families, corrupt_fn = (RGB_SHIFT_FAMILIES, corrupt_rgb) if rgb else (SHIFT_FAMILIES, corrupt)
    corrupted = {(c, s): corrupt_fn(x, c, s, seed) for fam in families.values() for c in fam for s in SEVERITIES}
    C = data.num_classes
    measure_rows, quantity_rows, sharp_seconds = [], [], []
    for model in tqdm(models, desc="measures", disable=not progress, leave=False):
        model.eval()
        clean = performance(model, x, y, C)
        me = margin_and_entropy(model, data.x_train, data.y_train, x)
        start = time.perf_counter()
        sharp = {"sharpness": sharpness(model, xs, ys, seed=seed),
                 "sharpness_magnitude": sharpness(model, xs, ys, magnitude_aware=True, seed=seed)}
        sharp_seconds.append((time.perf_counter() - start) / 2)
        measure_rows.append({**clean, **me, **norms(model, data.input_shape, me["margin"]), **sharp})
        per_shift = {}
        for fam, names in families.items():
            per_shift[fam] = [shift_quantities(clean, performance(model, corrupted[(c, s)], y, C))
                              for c in names for s in SEVERITIES]
        per_shift["corruption"] = [q for fam in families for q in per_shift[fam]]
        if natural is not None:
            per_shift["natural"] = [shift_quantities(clean, performance(model, natural[0], natural[1], C))]
        clean_a = performance(model, xa, ya, C)
        per_shift["adversarial"] = [shift_quantities(clean_a, performance(model, x_adv, ya, C))
                                    for x_adv in run_attacks(model, xa, ya, attacks).values()]
        quantity_rows.append({f"{fam}/{k}": float(np.mean([q[k] for q in qs]))
                              for fam, qs in per_shift.items() for k in qs[0]})
    return pd.DataFrame(measure_rows), pd.DataFrame(quantity_rows), float(np.mean(sharp_seconds))


def correlations(measures, quantities, n_boot: int = 0):
    """Kendall's tau of every measure against every robustness quantity over the zoo."""
    import pandas as pd

    from .stats import kendall_tau

    return pd.DataFrame({q: {m: kendall_tau(measures[m], quantities[q], n_boot=n_boot).tau for m in measures.columns}
                         for q in quantities.columns})


# The study's findings as data: (measures that must all relate moderately, the quantity they predict).
FINDINGS = {
    "performance and norm over margin moderately predict relative robustness":
        (("accuracy", "spectral_over_margin"), "corruption/relative_robustness"),
    "margin and entropy moderately correlate with uncertainty robustness":
        (("margin", "entropy"), "corruption/uncertainty_robustness"),
    "sharpness moderately predicts relative robustness to attacks":
        (("sharpness",), "adversarial/relative_robustness"),
}


def check_findings(tau, moderate: float = 0.3, strong: float = 0.7) -> dict:
    """Each finding of the study against a tau table: {finding: (agrees, what was measured)}.

    A relation is moderate when |tau| >= ``moderate``.  The overall finding "no single measure
    predicts every kind of robustness well" agrees when no measure reaches |tau| >= ``strong`` on every quantity.
    """
    out = {}
    for finding, (measures_, quantity) in FINDINGS.items():
        values = {m: float(tau.loc[m, quantity]) for m in measures_}
        out[finding] = (all(abs(v) >= moderate for v in values.values()),
                        ", ".join(f"tau({m}) {v:+.2f}" for m, v in values.items()) + f" on {quantity}")
    best = tau.abs().max()
    out[f"no single measure predicts every kind of robustness well (|tau| >= {strong} everywhere)"] = (
        not bool((tau.abs() >= strong).all(axis=1).any()),
        f"best |tau| per quantity from {best.min():.2f} to {best.max():.2f}")
    return out
