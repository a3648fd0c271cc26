"""Do cheap measures of a model predict its robustness? Measures, robustness quantities, findings.

* :func:`performance`, :func:`margin_and_entropy`, :func:`norms`, :func:`sharpness` — the measures
  (definitions of Jiang et al., 2020, "Fantastic generalization measures"); our zoo has no batch
  norm, so nothing needs folding; biases are excluded from norms except the path norm;
* :func:`shift_quantities` — accuracy gap, relative robustness and uncertainty robustness of a model
  on a shifted test set;
* :func:`study` — every measure and quantity for every model of a zoo;
* :data:`FINDINGS` — the study's findings as data, each with the sign it states and why.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_score, recall_score
from torch import nn

from . import validate as check
from .attacks import predict_logits, run_attacks
from .runtime import eval_mode, model_device, progress

PERFORMANCE = ("accuracy", "precision", "recall", "f1", "log_loss")


# --------------------------------------------------------------------------- performance
def performance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                metrics: tuple[str, ...] = PERFORMANCE) -> dict:
    """Accuracy, macro precision / recall / F1 and log-loss on (x, y), or the ``metrics`` asked for (a shifted
    set needs only accuracy and log-loss: the three macro scores cost three times the forward pass)."""
    for m in check.non_empty("metrics", metrics):
        check.choice("metrics", m, PERFORMANCE)
    logits = predict_logits(model, x).cpu()
    pred = logits.argmax(1).numpy()
    labels = list(range(num_classes))
    y = y.cpu()
    scores = {
        "accuracy": lambda: float((pred == y.numpy()).mean()),
        "precision": lambda: float(precision_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "recall": lambda: float(recall_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "f1": lambda: float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "log_loss": lambda: log_loss(logits, y),
    }
    return {m: scores[m]() for m in metrics}


def log_loss(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-probability of the true class, computed as scikit-learn's ``log_loss`` computes it
    (softmax in float64, probabilities clipped to [eps, 1 - eps]), without its input checks, which cost
    about 5 ms a call: the metrics study calls it once per model and shifted set."""
    p = F.softmax(logits.double(), 1).gather(1, y.long()[:, None]).squeeze(1)
    eps = torch.finfo(torch.float64).eps
    return float(-p.clamp(eps, 1 - eps).log().mean())


def margin_and_entropy(model: nn.Module, x_train, y_train, x_test) -> dict:
    """Margin: 10th percentile over the training set of (true logit - best other logit), negative
    when more than 10% of the training set is misclassified. Entropy: mean predictive entropy on test."""
    logits = predict_logits(model, x_train).cpu()
    y_train = y_train.cpu()
    true = logits.gather(1, y_train[:, None]).squeeze(1)
    other = logits.scatter(1, y_train[:, None], float("-inf")).max(1).values
    p = F.softmax(predict_logits(model, x_test).cpu().double(), 1)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1).mean()
    return {"margin": float(torch.quantile(true - other, 0.1)), "entropy": float(entropy)}


# --------------------------------------------------------------------------- norms
def _weight_layers(model: nn.Module, input_shape) -> list[tuple[nn.Module, tuple]]:
    h, layers = torch.zeros((1, *input_shape), device=model_device(model)), []
    model.eval()
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layers.append((layer, tuple(h.shape[1:])))
            h = layer(h)
    return layers


def norms(model: nn.Module, input_shape, margin: float) -> dict:
    """Log products over layers of squared spectral, squared Frobenius and nuclear norms; the path
    norm; and "norm over margin" as Jiang et al. define it, a log of a ratio:

        log(prod ||W||^2 / margin^2) = log prod ||W||^2 - 2 log |margin|.

    A margin <= 0 (more than 10% of the training set misclassified) is not dropped: |margin| is
    used and ``margin_nonpositive`` says so. Spectral norms of convolutions are their exact operator
    norms on this input size (:func:`robustbook.certify.exact_sigma`); Frobenius and nuclear norms of
    a convolution are those of its kernel reshaped to (out_channels, in_channels * k * k).
    """
    from .certify import exact_sigma

    check.number("margin", margin)
    log_spec = log_frob = log_nuc = 0.0
    for layer, shape in _weight_layers(model, input_shape):
        w = layer.weight.detach().double().cpu().flatten(1)
        log_spec += 2 * math.log(float(exact_sigma(layer, shape)))
        log_frob += 2 * math.log(float(w.norm()))
        log_nuc += math.log(float(torch.linalg.matrix_norm(w, ord="nuc")))
    log_margin2 = 2 * math.log(max(abs(margin), 1e-12))
    return {"log_spectral": log_spec, "log_frobenius": log_frob, "log_nuclear": log_nuc,
            "log_path_norm": math.log(path_norm(model, input_shape)),
            "spectral_over_margin": log_spec - log_margin2, "frobenius_over_margin": log_frob - log_margin2,
            "margin_nonpositive": margin <= 0}


def path_norm(model: nn.Module, input_shape) -> float:
    """The l2 path norm: square every weight and bias, feed an all-ones input through the layers in eval
    mode, sum the outputs (the squared path norm) and take the square root. A parametrized weight (spectral
    norm) counts as the weight the layer uses; the model itself is left untouched."""
    h = torch.ones((1, *input_shape), device=model_device(model))
    with eval_mode(model), torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                weight, bias = layer.weight ** 2, None if layer.bias is None else layer.bias ** 2
                h = F.linear(h, weight, bias) if isinstance(layer, nn.Linear) else \
                    layer._conv_forward(h, weight, bias)
            elif any(True for _ in layer.parameters()):
                raise check.InvalidArgument(f"path_norm: no rule for the parameters of {type(layer).__name__} "
                                            "(it handles Linear and Conv2d layers)")
            else:
                h = layer(h)
    return float(h.sum().clamp_min(0).sqrt())


# --------------------------------------------------------------------------- sharpness
def _noise(p: torch.Tensor, sigma: float, magnitude_aware: bool, samples: int, gen,
           z: torch.Tensor | None = None) -> torch.Tensor:
    """Weight noise of Jiang et al.: N(0, sigma^2), or N(0, sigma^2 w^2 + eps^2) with eps = 1e-3 (magnitude-aware).
    ``z``: standard normal draws of shape (samples, *p.shape), drawn here unless given."""
    z = (torch.randn((samples, *p.shape), generator=gen) if z is None else z).to(p.device)
    if magnitude_aware:
        return z * (sigma ** 2 * p[None] ** 2 + 1e-6).sqrt()
    return z * sigma


def _accuracy_under_noise(model, params, x, y, sigma, magnitude_aware, samples, draws, vectorised: bool):
    from torch.func import functional_call, vmap

    noisy = {name: p[None] + _noise(p, sigma, magnitude_aware, samples, None, draws[name])
             for name, p in params.items()}
    if vectorised:
        logits = vmap(lambda ps: functional_call(model, ps, (x,)))(noisy)         # (samples, N, C)
        return (logits.argmax(-1) == y[None]).double().mean().item()
    hits = [(functional_call(model, {k: v[i] for k, v in noisy.items()}, (x,)).argmax(-1) == y).double().mean()
            for i in range(samples)]
    return float(torch.stack(hits).mean())


def sharpness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, magnitude_aware: bool = False,
              target_drop: float = 0.1, tol: float = 0.01, steps: int = 15, samples: int = 10,
              upper: float = 2.0, seed: int = 0, vectorised: bool = False) -> float:
    """PAC-Bayes sharpness 1 / sigma^2 (larger = sharper), sigma found by bisection on [0, upper].

    sigma is the largest noise level at which Gaussian weight noise (see :func:`_noise`) lowers the
    training accuracy by ``target_drop`` (within ``tol``), each step averaging ``samples`` Monte-Carlo
    perturbations. The same ``samples`` draws serve every step, rescaled to its sigma (common random numbers:
    the steps compare noise levels, not draws, and the noise is drawn once rather than at each of up to
    ``steps`` steps, which cost more than the forward passes for a large layer). ``vectorised`` evaluates
    the samples at once with torch.func.vmap; on the CPU the plain loop over samples is faster for these
    small CNNs (benchmarks/sharpness.py measures both), so it is the default.
    """
    model.eval()
    dev = model_device(model)
    x, y = x.to(dev), y.to(dev)
    params = {k: v.detach() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    draws = {k: torch.randn((samples, *p.shape), generator=gen).to(dev) for k, p in params.items()}
    with torch.no_grad():
        base = (model(x).argmax(1) == y).double().mean().item()
        lo, hi = 0.0, upper
        for _ in range(steps):
            mid = (lo + hi) / 2
            drop = base - _accuracy_under_noise(model, params, x, y, mid, magnitude_aware, samples, draws, vectorised)
            if abs(drop - target_drop) <= tol:
                lo = hi = mid
                break
            lo, hi = (mid, hi) if drop < target_drop else (lo, mid)
    sigma = (lo + hi) / 2
    return 1.0 / sigma ** 2


# --------------------------------------------------------------------------- robustness quantities
SHIFT_METRICS = ("accuracy", "log_loss")


def shift_quantities(clean: dict, shifted: dict) -> dict:
    """Robustness of one model to one shift, from :func:`performance` (``SHIFT_METRICS``) on the clean and
    shifted sets."""
    return {
        "accuracy_gap": clean["accuracy"] - shifted["accuracy"],
        "relative_robustness": shifted["accuracy"] / clean["accuracy"] if clean["accuracy"] > 0 else float("nan"),
        "uncertainty_robustness": shifted["log_loss"] - clean["log_loss"],
        "shifted_accuracy": shifted["accuracy"],
    }


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


def _study_model(model: nn.Module, data, corrupted: dict, families: dict, attacks: dict, xa, ya, xs, ys, seed: int,
                 natural) -> tuple[dict, dict, float]:
    """Measures and robustness quantities of one model (see :func:`study`)."""
    from .shifts import SEVERITIES

    x, y, C = data.x_test, data.y_test, data.num_classes
    model.eval()
    clean = performance(model, x, y, C)
    me = margin_and_entropy(model, data.x_train, data.y_train, x)
    start = time.perf_counter()
    sharp = {"sharpness": sharpness(model, xs, ys, seed=seed),
             "sharpness_magnitude": sharpness(model, xs, ys, magnitude_aware=True, seed=seed)}
    seconds = (time.perf_counter() - start) / 2
    measures_ = {**clean, **me, **norms(model, data.input_shape, me["margin"]), **sharp}
    per_shift = {}
    for fam, names in families.items():
        per_shift[fam] = [shift_quantities(clean, performance(model, corrupted[(c, s)], y, C, SHIFT_METRICS))
                          for c in names for s in SEVERITIES]
    per_shift["corruption"] = [q for fam in families for q in per_shift[fam]]
    if natural is not None:
        per_shift["natural"] = [shift_quantities(clean, performance(model, natural[0], natural[1], C, SHIFT_METRICS))]
    clean_a = performance(model, xa, ya, C, SHIFT_METRICS)
    per_shift["adversarial"] = [shift_quantities(clean_a, performance(model, x_adv, ya, C, SHIFT_METRICS))
                                for x_adv in run_attacks(model, xa, ya, attacks).values()]
    quantities = {f"{fam}/{k}": float(np.mean([q[k] for q in qs])) for fam, qs in per_shift.items() for k in qs[0]}
    return measures_, quantities, seconds


def _study_key(model, data, attacks, xa, xs, seed, rgb, natural) -> list:
    from .runtime import model_fingerprint, tensor_fingerprint

    return [model_fingerprint(model), data.name, tensor_fingerprint(data.x_test, data.y_test, xa, xs), attacks, seed,
            rgb, None if natural is None else tensor_fingerprint(*natural)]


_MODULES = ("measures", "attacks", "shifts", "certify", "stats")


def _study_entry(model, data, corrupted, families, attacks, xa, ya, xs, ys, seed, natural) -> dict:
    """One zoo model's study as the payload of its cache entry (a unit of work: it runs anywhere, on the device
    :func:`robustbook.runtime.device` picks there)."""
    from .runtime import device

    model = model.to(device())
    return {"value": _study_model(model, data, corrupted, families, attacks, xa, ya, xs, ys, seed, natural)}


@dataclass
class Study:
    """The metrics study of a zoo: one record of measures and one of robustness quantities per model."""

    measures: list[dict]
    quantities: list[dict]
    sharpness_seconds: float          # per model and variant (mean)


def study(models: list[nn.Module], data, attacks: dict[str, dict], attack_points: int = 200,
          sharpness_points: int = 500, seed: int = 0, rgb: bool = False,
          natural: tuple[torch.Tensor, torch.Tensor] | None = None) -> Study:
    """Measures and robustness quantities of every model of a zoo.

    ``attacks``: {name: {"eps": ..., **options}} for :func:`robustbook.attacks.attack`; each model is
    attacked itself on ``attack_points`` test points. Returns a :class:`Study` (measures, quantities, seconds
    spent on sharpness per model and variant) with one record per model; quantities are named
    "<family>/<quantity>" for the corruption families, "corruption" (all corruptions),
    "adversarial" (all attacks) and, when ``natural`` test data is given (CIFAR-10.1), "natural".
    Each model's record is cached; the models are independent, so the missing records are units of
    :mod:`robustbook.executor` (here, or Ray tasks with ``ROBUSTBOOK_RAY``; this process writes the entries).
    """
    from . import executor
    from .data import subset
    from .runtime import memo, memo_path
    from .shifts import SEVERITIES, corrupt, corrupt_rgb

    check.non_empty("models", models)
    x, y = data.x_test, data.y_test
    xa, ya = subset(x, y, attack_points, seed=seed)
    xs, ys = subset(data.x_train, data.y_train, sharpness_points, seed=seed)
    families, corrupt_fn = (RGB_SHIFT_FAMILIES, corrupt_rgb) if rgb else (SHIFT_FAMILIES, corrupt)
    corrupted = {(c, s): corrupt_fn(x, c, s, seed) for fam in families.values() for c in fam for s in SEVERITIES}
    keys = [_study_key(m, data, attacks, xa, xs, seed, rgb, natural) for m in models]
    # each model's study is a unit (here, or a Ray task); models with parametrized modules (spectral norm)
    # cannot be pickled to a worker: the memo below measures them in this process
    units = [executor.Unit(f"study of model {i}", memo_path("study", k, _MODULES), "study",
                           memo_path("study", k, _MODULES).stem, _study_entry,
                           (copy.deepcopy(m).cpu(), data, corrupted, families, attacks, xa, ya, xs, ys, seed, natural))
             for i, (m, k) in enumerate(zip(models, keys))
             if not memo_path("study", k, _MODULES).is_file() and executor.portable(m)]
    executor.run(units, "measures")
    rows = [memo("study", k, lambda m=m: _study_model(m, data, corrupted, families, attacks, xa, ya, xs, ys, seed,
                                                       natural), _MODULES)
            for m, k in zip(progress(models, "measures"), keys)]
    return Study([r[0] for r in rows], [r[1] for r in rows], float(np.mean([r[2] for r in rows])))


def correlations(measures: list[dict], quantities: list[dict]) -> dict[str, dict[str, float]]:
    """Kendall's tau of every (numeric) measure against every robustness quantity over the zoo.

    Where a measure or a quantity is constant over the zoo, tau is undefined and reported as 0 (no association).
    A quantity undefined for a model (a ratio over zero accuracy: a model that gets nothing right) leaves that
    model out of that quantity's tau; with fewer than two models left the tau is 0.
    """
    from .stats import kendall_tau

    names = [k for k, v in measures[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {}
    for m in names:
        out[m] = {}
        for q in quantities[0]:
            pairs = [(r[m], s[q]) for r, s in zip(measures, quantities) if math.isfinite(r[m]) and math.isfinite(s[q])]
            t = kendall_tau(*zip(*pairs), n_boot=0).tau if len(pairs) >= 2 else float("nan")
            out[m][q] = 0.0 if math.isnan(t) else t
    return out


# --------------------------------------------------------------------------- the study's findings
@dataclass(frozen=True)
class Finding:
    """One relation the study reports: ``measure`` predicts ``quantity`` with the stated ``sign``."""

    finding: str
    measure: str
    quantity: str
    sign: int          # +1: larger measure, larger quantity; -1: the opposite
    why: str
    construction: str = ""   # when measure and quantity share a term by construction, what it is


FINDINGS = (
    Finding("in-distribution performance moderately predicts relative robustness", "accuracy",
            "corruption/relative_robustness", +1, "a more accurate model keeps a larger share of its accuracy",
            construction="relative robustness divides the shifted accuracy by this clean accuracy"),
    Finding("weight norms over margin moderately predict relative robustness", "spectral_over_margin",
            "corruption/relative_robustness", -1,
            "a larger norm-over-margin bound means a more complex model, expected to be less robust"),
    Finding("margin moderately correlates with uncertainty robustness", "margin",
            "corruption/uncertainty_robustness", +1,
            "a larger training margin means more confident predictions, which lose more log-likelihood "
            "(a larger log-loss increase) under shift"),
    Finding("entropy moderately correlates with uncertainty robustness", "entropy",
            "corruption/uncertainty_robustness", -1,
            "higher predictive entropy means less confident predictions and a smaller log-loss increase"),
    Finding("sharpness moderately predicts relative robustness to attacks", "sharpness",
            "adversarial/relative_robustness", -1, "sharper minima are expected to be less robust"),
)
MODERATE = 0.3      # |tau| of a "moderate" relation
GOOD = 0.5          # |tau| of a measure that "predicts" a quantity


def construction_linked(measure: str, quantity: str) -> bool:
    """Pairs that share clean accuracy by construction (performance measures vs gap / relative robustness)."""
    return measure in PERFORMANCE and quantity.split("/")[-1] in ("accuracy_gap", "relative_robustness")


@dataclass(frozen=True)
class Coverage:
    """The best single measure and the share of robustness quantities it predicts (|tau| >= the threshold)."""

    measure: str
    share: float


def best_coverage(tau: dict[str, dict[str, float]], threshold: float = GOOD) -> Coverage:
    """The measure that predicts (|tau| >= threshold) the largest share of the robustness quantities,
    pairs linked by construction left out, and that share."""
    best, share = "", -1.0
    for measure, row in tau.items():
        pairs = [q for q in row if not construction_linked(measure, q) and not q.endswith("shifted_accuracy")]
        if not pairs:
            continue
        s = float(np.mean([abs(row[q]) >= threshold for q in pairs]))
        if s > share:
            best, share = measure, s
    return Coverage(best, share)
