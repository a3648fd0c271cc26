"""Margin consistency (Ngnawé et al., NeurIPS 2024): does the logit margin rank inputs like the input margin?

* ``kendall_tau`` with a bootstrap confidence interval, ``per_class_tau``;
* ``detection``: AUROC / AUPR / FPR at 95% TPR of a score for the non-robust points
  (input margin <= eps, the positive class), and ``separating_threshold``, the threshold
  the theorem promises when the sample is margin consistent;
* ``PseudoMargin``: a small MLP regressing sqrt(input margin) from logits or features,
  for models that are not margin consistent;
* ``subset_robust_accuracy``: robust accuracy from a few attacked points and a logit-margin threshold;
* ``RescaledLogits``: a model that is NOT margin consistent by construction.

Every statistic takes the FAB success mask and uses only points whose margin was found.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn
from tqdm.auto import tqdm

from .stats import Tau, kendall_tau, valid as _valid


# --------------------------------------------------------------------------- a model that is not consistent
class RescaledLogits(nn.Module):
    """Multiplies every logit of ``base`` by a positive factor that depends on the input.

    s(x) = exp(strength * clamp(z(x), -2, 2)), with z(x) the standardised projection of x on
    a fixed random direction.  A positive factor never changes the argmax, so decisions,
    decision boundaries and input margins are exactly those of ``base``; the logit margin
    s(x) * (f_1 - f_2), however, is reordered by a quantity unrelated to the margin.
    """

    def __init__(self, base: nn.Module, x_ref: torch.Tensor, strength: float = 1.5, seed: int = 0):
        super().__init__()
        self.base = base
        gen = torch.Generator().manual_seed(seed)
        u = torch.randn(x_ref[0].numel(), generator=gen)
        u = u / u.norm()
        proj = x_ref.flatten(1) @ u
        self.register_buffer("u", u)
        self.register_buffer("mu", proj.mean())
        self.register_buffer("sd", proj.std())
        self.strength = strength

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x.flatten(1) @ self.u - self.mu) / self.sd).clamp(-2, 2)
        return torch.exp(self.strength * z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.scale(x)[:, None]


# --------------------------------------------------------------------------- statistics
def per_class_tau(a, b, classes, success=None) -> dict[int, float]:
    """Kendall's tau within each predicted class (classes with fewer than 3 valid points are skipped)."""
    a, b, c = _valid(a, b, classes, success=success)
    out = {}
    for k in np.unique(c).astype(int):
        sel = c == k
        if sel.sum() >= 3:
            out[int(k)] = float(kendalltau(a[sel], b[sel]).statistic)
    return out


def detection(score, input_margin, eps: float, success=None) -> dict:
    """How well ``score`` (higher = more suspicious) detects non-robust points (input margin <= eps)."""
    s, d = _valid(score, input_margin, success=success)
    positive = d <= eps
    if len(d) == 0 or positive.all() or not positive.any():
        return {"auroc": float("nan"), "aupr": float("nan"), "fpr_at_95_tpr": float("nan"),
                "non_robust_share": float(positive.mean()) if len(d) else float("nan")}
    fpr, tpr, _ = roc_curve(positive, s)
    return {
        "auroc": float(roc_auc_score(positive, s)),
        "aupr": float(average_precision_score(positive, s)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
        "non_robust_share": float(positive.mean()),
    }


def separating_threshold(logit_margin, input_margin, eps: float, success=None) -> dict:
    """The best threshold t on the logit margin for "non-robust iff logit margin <= t".

    When the sample is margin consistent a threshold with zero errors exists (the theorem);
    otherwise ``errors`` counts the points on the wrong side of the best one.
    """
    m, d = _valid(logit_margin, input_margin, success=success)
    order = np.argsort(m)
    m, positive = m[order], (d <= eps)[order]
    # threshold after the k-th smallest margin: errors = robust points below + non-robust points above
    robust_below = np.concatenate([[0], np.cumsum(~positive)])
    nonrobust_above = positive.sum() - np.concatenate([[0], np.cumsum(positive)])
    errors = robust_below + nonrobust_above
    k = int(np.argmin(errors))
    threshold = float(m[k - 1]) if k > 0 else float(m[0]) - 1e-9
    return {"threshold": threshold, "errors": int(errors[k]), "points": len(m), "perfect": bool(errors[k] == 0)}


def subset_robust_accuracy(logit_margin, input_margin, correct, eps: float, n_fit: int, success=None,
                           seed: int = 0) -> dict:
    """Estimate robust accuracy from ``n_fit`` attacked points (Ngnawé et al.).

    A logit-margin threshold is fitted on ``n_fit`` random points whose input margin is
    known; on the remaining points robust accuracy is estimated as the share that is correct
    with a logit margin above the threshold, and compared with the attack's answer there.
    """
    m, d, c = _valid(logit_margin, input_margin, correct, success=success)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(m))
    fit, rest = perm[:n_fit], perm[n_fit:]
    threshold = separating_threshold(m[fit], d[fit], eps)["threshold"]
    estimate = float(((m[rest] > threshold) & (c[rest] > 0)).mean())
    attacked = float(((d[rest] > eps) & (c[rest] > 0)).mean())
    return {"threshold": threshold, "estimate": estimate, "attack": attacked, "error": abs(estimate - attacked),
            "fit_points": len(fit), "evaluated_points": len(rest)}


# --------------------------------------------------------------------------- pseudo-margin
class PseudoMargin:
    """Learns F(z) ~ sqrt(input margin) from a representation z (logits by default).

    As in the reference code: an MLP 512-512-512 with a sigmoid output, MSE on
    sqrt(margin), Adam, full batch; here with early stopping on a validation split
    (the epoch with the lowest validation loss is kept).  Inputs are standardised with
    the training statistics.
    """

    def __init__(self, hidden: int = 512, lr: float = 1e-4, epochs: int = 500, patience: int = 100, seed: int = 0):
        self.hidden, self.lr, self.epochs, self.patience, self.seed = hidden, lr, epochs, patience, seed
        self.net: nn.Module | None = None
        self.history: list[tuple[float, float]] = []

    def _net(self, dim: int) -> nn.Module:
        h = self.hidden
        return nn.Sequential(nn.Linear(dim, h), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, 1), nn.Sigmoid())

    def fit(self, z_train, margin_train, z_val, margin_val, progress: bool = True) -> "PseudoMargin":
        torch.manual_seed(self.seed)
        z_train, t_train = self._prepare(z_train, margin_train)
        z_val, t_val = self._prepare(z_val, margin_val)
        self.mean, self.std = z_train.mean(0), z_train.std(0).clamp_min(1e-6)
        self.net = self._net(z_train.shape[1])
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        best, best_state, since = float("inf"), None, 0
        for _ in tqdm(range(self.epochs), desc="pseudo-margin", disable=not progress, leave=False):
            self.net.train()
            loss = ((self.net((z_train - self.mean) / self.std).squeeze(1) - t_train) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.net.eval()
            with torch.no_grad():
                val = ((self.net((z_val - self.mean) / self.std).squeeze(1) - t_val) ** 2).mean().item()
            self.history.append((loss.item(), val))
            if val < best - 1e-7:
                best, best_state, since = val, copy.deepcopy(self.net.state_dict()), 0
            else:
                since += 1
                if since >= self.patience:
                    break
        self.net.load_state_dict(best_state)
        self.best_epoch = int(np.argmin([v for _, v in self.history])) + 1
        return self

    @staticmethod
    def _prepare(z, margin):
        margin = torch.as_tensor(margin, dtype=torch.float32)
        keep = torch.isfinite(margin)
        return torch.as_tensor(z, dtype=torch.float32)[keep], margin[keep].clamp_min(0).sqrt()

    @torch.no_grad()
    def __call__(self, z) -> torch.Tensor:
        """The pseudo-margin (squared back to the input-margin scale)."""
        self.net.eval()
        return self.net((torch.as_tensor(z, dtype=torch.float32) - self.mean) / self.std).squeeze(1) ** 2


# --------------------------------------------------------------------------- the chapter's model zoo
def zoo_recipes(eps: float, epochs: int, width: int, attack_steps: int, seed: int, arch: str = "cnn") -> dict:
    """Training recipes of the digits zoo, by name (``rescaled`` wraps ``pgd``)."""
    from .train import TrainConfig

    common = dict(arch=arch, arch_options={"width": width}, epochs=epochs, lr=1e-3, seed=seed)
    adv = dict(attack_steps=attack_steps)
    return {
        "standard": TrainConfig(**common),
        "pgd_half_eps": TrainConfig(**common, method="pgd", eps=eps / 2, **adv),
        "pgd": TrainConfig(**common, method="pgd", eps=eps, **adv),
        "trades": TrainConfig(**common, method="trades", eps=eps, **adv),
        "spectral_norm": TrainConfig(**{**common, "arch_options": {"width": width, "spectral_norm": True}}),
        "rescaled": "pgd",
    }


ZOO_NAMES = tuple(zoo_recipes(0.1, 1, 1, 1, 0))


def load_zoo(names, data, eps: float, epochs: int, width: int, attack_steps: int, seed: int,
             threat_model: str = "Linf") -> dict[str, nn.Module]:
    """Train (or load from the cache) the named digits-zoo models; other names load from RobustBench."""
    from .models import load_robustbench
    from .train import train

    recipes = zoo_recipes(eps, epochs, width, attack_steps, seed)
    models = {}
    for name in names:
        if name not in recipes:
            models[name] = load_robustbench(name, data.name, threat_model)
        elif isinstance(recipes[name], str):
            base = recipes[name]
            models[name] = RescaledLogits(train(recipes[base], data), data.x_train, seed=seed).eval()
        else:
            models[name] = train(recipes[name], data)
    return models


@dataclass
class MarginReport:
    """Everything the chapter measures on one model and one set of points."""

    logits: torch.Tensor
    logit_margin: torch.Tensor
    input_margin: "object"      # attacks.MinimumNorm
    correct: torch.Tensor
    robust_accuracy: float

    @property
    def success(self) -> torch.Tensor:
        return self.input_margin.success

    def tau(self, **kw) -> Tau:
        return kendall_tau(self.logit_margin, self.input_margin.distance, self.success, **kw)

    def detection(self, eps: float) -> dict:
        return detection(-self.logit_margin, self.input_margin.distance, eps, self.success)


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
            fab_options: dict | None = None, pgd_options: dict | None = None) -> MarginReport:
    """Logit margins, FAB input margins (cached) and PGD robust accuracy of ``model`` on (x, y)."""
    from .attacks import predict_logits, robust_accuracy
    from .margins import input_margin, logit_margin

    logits = predict_logits(model, x)
    im = input_margin(model, x, norm, **(fab_options or {}))
    rob = robust_accuracy(model, x, y, eps, "pgd", norm=norm, **(pgd_options or {}))
    return MarginReport(logits, logit_margin(logits), im, logits.argmax(1) == y, rob)


def margin_cost(model: nn.Module, x: torch.Tensor, norm: str = "Linf", fab_options: dict | None = None) -> dict:
    """Seconds to score ``x`` with the logit margin (median of five, after a warm-up) and to estimate
    its input margins with FAB (never from the cache: this is what the cache saves), and their ratio."""
    import time

    from .attacks import predict_logits
    from .margins import input_margin, logit_margin

    logit_margin(predict_logits(model, x))                 # warm-up: first calls pay one-off setup costs
    runs = []
    for _ in range(5):                                      # a forward pass is short: median of five
        start = time.perf_counter()
        logit_margin(predict_logits(model, x))
        runs.append(time.perf_counter() - start)
    logit_seconds = float(np.median(runs))
    start = time.perf_counter()
    input_margin(model, x, norm, cache=False, **(fab_options or {}))
    fab_seconds = time.perf_counter() - start
    return {"logit margin (s)": logit_seconds, "FAB input margin (s)": fab_seconds,
            "ratio FAB / logit margin": fab_seconds / logit_seconds}


def summary(reports: dict[str, MarginReport], eps: float, n_boot: int = 200):
    """One row per model: accuracy, robust accuracy, tau with its interval, detection metrics, FAB failures."""
    import pandas as pd

    rows = {}
    for name, r in reports.items():
        tau = r.tau(n_boot=n_boot)
        rows[name] = {"clean_accuracy": r.correct.double().mean().item(), "robust_accuracy": r.robust_accuracy,
                      "kendall_tau": tau.tau, "tau_low": tau.low, "tau_high": tau.high,
                      **{k: v for k, v in r.detection(eps).items()}, "fab_failures": r.input_margin.failures}
    return pd.DataFrame(rows).T


def linear_head_table(models: dict[str, nn.Module], reports: dict[str, MarginReport], x: torch.Tensor,
                      norm: str = "Linf"):
    """Per model: the spread of ||w_i - w_j||_q over class pairs (coefficient of variation, q dual to
    ``norm``) and Kendall's tau between the logit margin and the exact feature-space margin of the
    linear head.  NaN for models whose last layer is not a plain linear head."""
    import pandas as pd

    from .margins import feature_margin, linear_head

    q = {"Linf": 1, "L2": 2}[norm]
    rows = {}
    for name, model in models.items():
        head = linear_head(model)
        if head is None:
            rows[name] = {"pair-norm CV": float("nan"), "tau(logit margin, feature margin)": float("nan")}
            continue
        features, w, b = head
        with torch.no_grad():
            fm = feature_margin(w, b, features(x), norm)
        pair = torch.cdist(w.detach()[None], w.detach()[None], p=q)[0]
        pair = pair[~torch.eye(len(pair), dtype=torch.bool)]
        rows[name] = {"pair-norm CV": (pair.std() / pair.mean()).item(),
                      "tau(logit margin, feature margin)": kendall_tau(reports[name].logit_margin, fm, n_boot=0).tau}
    return pd.DataFrame(rows).T


def repair_with_pseudo_margin(model: nn.Module, report: MarginReport, x_fit: torch.Tensor, x_val: torch.Tensor,
                              eps: float, norm: str = "Linf", fab_options: dict | None = None,
                              epochs: int = 500, lr: float = 1e-4, seed: int = 0):
    """Fit a :class:`PseudoMargin` on the logits of held-out points whose input margins FAB estimates
    (``x_fit`` to train, ``x_val`` to stop early), then score the points of ``report``.

    Returns ``(pseudo, score, before, after)``: the learner, its scores on the report's points, and
    tau plus detection metrics of the logit margin (before) and of the pseudo-margin (after).
    """
    from .attacks import predict_logits
    from .margins import input_margin

    fab_options = fab_options or {}
    fit_margin = input_margin(model, x_fit, norm, **fab_options)
    val_margin = input_margin(model, x_val, norm, **fab_options)
    pseudo = PseudoMargin(epochs=epochs, lr=lr, seed=seed).fit(
        predict_logits(model, x_fit), fit_margin.distance, predict_logits(model, x_val), val_margin.distance)
    score = pseudo(report.logits)
    d = report.input_margin.distance
    before = {"tau": report.tau(n_boot=0).tau, **report.detection(eps)}
    after = {"tau": kendall_tau(score, d, report.success, n_boot=0).tau, **detection(-score, d, eps, report.success)}
    return pseudo, score, before, after
