"""Margin consistency (Ngnawé et al., NeurIPS 2024): does the logit margin rank inputs like the input margin?

* ``kendall_tau`` with a bootstrap confidence interval, ``per_class_tau``;
* ``detection``: AUROC / AUPR / FPR at 95% TPR of a score for the non-robust points
  (input margin <= eps, the positive class), and ``separating_threshold``, the threshold
  the theorem promises when the sample is margin consistent;
* ``PseudoMargin``: a small MLP regressing sqrt(input margin) from logits,
  for models that are not margin consistent;
* ``subset_robust_accuracy``: robust accuracy from a few attacked points and a logit-margin threshold;
* ``RescaledLogits``: a model that is NOT margin consistent by construction.

Every point is counted: a point where FAB found no adversarial example enters every statistic
with the search's bound as its margin (:attr:`robustbook.margins.MinimumNorm.margin`), the most
robust kind of point, and the number of such points is reported.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn

from . import validate as check
from .attacks import predict_logits, robust_flags
from .margins import MinimumNorm, feature_margin, input_margin, linear_head, logit_margin, pairwise_distances
from .runtime import device, memo, progress, tensor_fingerprint
from .stats import Tau, kendall_tau, valid as _valid


# --------------------------------------------------------------------------- a model that is not consistent
class RescaledLogits(nn.Module):
    """Multiplies every logit of ``base`` by a positive factor that depends on the input.

    s(x) = exp(strength * clamp(z(x), -2, 2)), with z(x) the standardised projection of x on
    a fixed random direction. A positive factor never changes the argmax, so decisions,
    decision boundaries and input margins are exactly those of ``base``; the logit margin
    s(x) * (f_1 - f_2), however, is reordered by a quantity unrelated to the margin.
    """

    def __init__(self, base: nn.Module, x_ref: torch.Tensor, strength: float = 1.5, seed: int = 0):
        super().__init__()
        self.base = base
        gen = torch.Generator().manual_seed(seed)
        u = torch.randn(x_ref[0].numel(), generator=gen)
        u = u / u.norm()
        proj = x_ref.flatten(1).cpu() @ u
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
def per_class_tau(a, b, classes) -> dict[int, float]:
    """Kendall's tau within each predicted class (classes with fewer than 3 points are skipped)."""
    a, b, c = _valid(a, b, classes)
    out = {}
    for k in np.unique(c).astype(int):
        sel = c == k
        if sel.sum() >= 3:
            out[int(k)] = float(kendalltau(a[sel], b[sel]).statistic)
    return out


def detection(score, input_margin, eps: float) -> dict:
    """How well ``score`` (higher = more suspicious) detects non-robust points (input margin <= eps)."""
    s, d = _valid(score, input_margin)
    positive = d <= eps
    if len(d) == 0 or positive.all() or not positive.any():
        raise check.InvalidArgument(
            f"detection at eps = {eps:.3g} needs robust and non-robust points; all {len(d)} points are "
            f"{'non-robust' if len(d) and positive.all() else 'robust'} (choose another eps or more points)")
    fpr, tpr, _ = roc_curve(positive, s)
    return {
        "auroc": float(roc_auc_score(positive, s)),
        "aupr": float(average_precision_score(positive, s)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
        "non_robust_share": float(positive.mean()),
    }


def detection_where_defined(score, input_margin, eps: float) -> dict:
    """:func:`detection`, with NaN metrics where they are undefined: every point on one side of eps (all robust
    or all non-robust — e.g. a handful of points of a model with random weights)."""
    try:
        return detection(score, input_margin, eps)
    except check.InvalidArgument:
        nan = float("nan")
        _, d = _valid(score, input_margin)
        return {"auroc": nan, "aupr": nan, "fpr_at_95_tpr": nan, "non_robust_share": float((d <= eps).mean())}


def separating_threshold(logit_margin, input_margin, eps: float) -> dict:
    """The best threshold t on the logit margin for "non-robust iff logit margin <= t".

    When the sample is margin consistent a threshold with zero errors exists (the theorem);
    otherwise ``errors`` counts the points on the wrong side of the best one.
    """
    m, d = _valid(logit_margin, input_margin)
    order = np.argsort(m, kind="stable")
    m, positive = m[order], (d <= eps)[order]
    # threshold after the k-th smallest margin: errors = robust points below + non-robust points above
    robust_below = np.concatenate([[0], np.cumsum(~positive)])
    nonrobust_above = positive.sum() - np.concatenate([[0], np.cumsum(positive)])
    errors = robust_below + nonrobust_above
    k = int(np.argmin(errors))
    threshold = float(m[k - 1]) if k > 0 else float(m[0]) - 1e-9
    return {"threshold": threshold, "errors": int(errors[k]), "points": len(m), "perfect": bool(errors[k] == 0)}


def subset_robust_accuracy(logit_margin, input_margin, correct, eps: float, n_fit: int, seed: int = 0) -> dict:
    """Estimate robust accuracy from ``n_fit`` attacked points (Ngnawé et al.).

    A logit-margin threshold is fitted on ``n_fit`` random points whose input margin is
    known; on the remaining points robust accuracy is estimated as the share that is correct
    with a logit margin above the threshold, and compared with the attack's answer there.
    """
    m, d, c = _valid(logit_margin, input_margin, correct)
    check.number("n_fit", n_fit, low=2, high=len(m) - 1, integer=True)
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
    (the epoch with the lowest validation loss is kept). Inputs are standardised with
    the training statistics. Trains on :func:`robustbook.runtime.device`.
    """

    def __init__(self, hidden: int = 512, lr: float = 1e-4, epochs: int = 500, patience: int = 100, seed: int = 0):
        self.hidden = check.number("hidden", hidden, low=1, integer=True)
        self.lr = check.number("lr", lr, low=0, low_open=True, high=1.0)
        self.epochs = check.number("epochs", epochs, low=1, integer=True)
        self.patience, self.seed = patience, seed
        self.net: nn.Module | None = None
        self.history: list[tuple[float, float]] = []

    def _net(self, dim: int) -> nn.Module:
        # The released code's layers, kept as they are: no activation between the first two Linear layers (so
        # they compose to one linear map of rank <= hidden; the net has two hidden nonlinear layers, not three).
        h = self.hidden
        return nn.Sequential(nn.Linear(dim, h), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, 1), nn.Sigmoid())

    def fit(self, z_train, margin_train, z_val, margin_val) -> "PseudoMargin":
        """Train on (z_train, margin_train), stopping early on (z_val, margin_val); cached by inputs and settings."""
        dev = device()
        z_train, t_train = self._prepare(z_train, margin_train, dev)
        z_val, t_val = self._prepare(z_val, margin_val, dev)
        key = [tensor_fingerprint(z_train, t_train, z_val, t_val), self.hidden, self.lr, self.epochs, self.patience,
               self.seed]
        state = memo("pseudo_margin", key, lambda: self._train(z_train, t_train, z_val, t_val, dev), ("consistency",))
        self.mean, self.std = state["mean"].to(dev), state["std"].to(dev)
        self.net = self._net(z_train.shape[1]).to(dev)
        self.net.load_state_dict(state["net"])
        self.net.eval()
        self.history = [tuple(h) for h in state["history"].tolist()]
        self.best_epoch = int(np.argmin([v for _, v in self.history])) + 1
        return self

    def _train(self, z_train, t_train, z_val, t_val, dev) -> dict:
        self.mean, self.std = z_train.mean(0), z_train.std(0).clamp_min(1e-6)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(self.seed)
            self.net = self._net(z_train.shape[1]).to(dev)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        best, best_state, since = float("inf"), None, 0
        for _ in progress(range(self.epochs), "pseudo-margin"):
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
        return {"net": {k: v.cpu() for k, v in best_state.items()}, "mean": self.mean.cpu(), "std": self.std.cpu(),
                "history": torch.tensor(self.history, dtype=torch.float64)}

    @staticmethod
    def _prepare(z, margin, dev):
        margin = torch.as_tensor(margin, dtype=torch.float32)
        if not bool(torch.isfinite(margin).all()):
            raise check.InvalidArgument("pseudo-margin targets must be finite (use MinimumNorm.margin, which counts "
                                        "FAB failures at the search's bound)")
        return torch.as_tensor(z, dtype=torch.float32).to(dev), margin.clamp_min(0).sqrt().to(dev)

    def score(self, z: torch.Tensor) -> torch.Tensor:
        """The pseudo-margin of representations ``z`` (squared back to the input-margin scale), differentiable
        in z; on the net's device. What :meth:`__call__` and the pseudo-margin selector compute."""
        self.net.eval()
        return self.net((z.to(self.mean.device) - self.mean) / self.std).squeeze(1) ** 2

    @torch.no_grad()
    def __call__(self, z) -> torch.Tensor:
        """The pseudo-margin (squared back to the input-margin scale), on z's device."""
        z = torch.as_tensor(z, dtype=torch.float32)
        return self.score(z).to(z.device)


# --------------------------------------------------------------------------- one model, one set of points
@dataclass
class MarginReport:
    """Everything the chapter measures on one model and one set of points."""

    logits: torch.Tensor
    logit_margin: torch.Tensor
    input_margin: MinimumNorm
    correct: torch.Tensor
    robust: torch.Tensor          # AutoAttack (or the given attack) found nothing within eps

    @property
    def margin(self) -> torch.Tensor:
        """Input margins with FAB failures counted at the search's bound."""
        return self.input_margin.margin

    @property
    def robust_accuracy(self) -> float:
        return (self.correct & self.robust).double().mean().item()

    def tau(self, **kw) -> Tau:
        return kendall_tau(self.logit_margin, self.margin, **kw)

    def detection(self, eps: float) -> dict:
        return detection(-self.logit_margin, self.margin, eps)

    def row(self, eps: float, n_boot: int = 200, seed: int = 0) -> dict:
        """Accuracy, robust accuracy, tau with its interval, detection metrics, FAB failures.

        The detection metrics are NaN where they are undefined: when every point lies on one side of eps (all
        robust or all non-robust — e.g. a handful of points of a model with random weights).
        """
        tau = self.tau(n_boot=n_boot, seed=seed)
        found = detection_where_defined(-self.logit_margin, self.margin, eps)
        return {"clean_accuracy": self.correct.double().mean().item(), "robust_accuracy": self.robust_accuracy,
                "kendall_tau": tau.tau, "tau_low": tau.low, "tau_high": tau.high, **found,
                "fab_failures": self.input_margin.failures}


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
            fab_options: dict | None = None, attack_options: dict | None = None,
            margins: MinimumNorm | None = None) -> MarginReport:
    """Logit margins, FAB input margins (cached) and AutoAttack robustness of ``model`` on (x, y).

    ``margins`` reuses input margins already estimated (e.g. those of a model with the same decisions).
    """
    check.radius("eps", eps)
    logits = predict_logits(model, x)
    im = margins if margins is not None else input_margin(model, x, norm, **(fab_options or {}))
    robust = robust_flags(model, x, eps, norm, **(attack_options or {}))
    return MarginReport(logits, logit_margin(logits), im, logits.argmax(1) == y, robust)


def measure_many(models: dict, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
                 fab_options: dict | None = None, attack_options: dict | None = None,
                 same_margins: dict[str, str] | None = None) -> dict:
    """:func:`measure` for ``{seed: {name: model}}``: every missing FAB shard and attack verdict first runs as a
    unit of :mod:`robustbook.executor` (in parallel as Ray tasks with ``ROBUSTBOOK_RAY``), then the reports are
    built from the cache. ``same_margins`` names models that take another's decisions everywhere (``{"rescaled":
    "pgd"}``): they reuse its input margins instead of estimating their own. Returns ``{seed: {name: report}}``."""
    from . import executor
    from .attacks import verdict_units
    from .margins import margin_units

    fab_options, attack_options, same_margins = fab_options or {}, attack_options or {}, same_margins or {}
    units = []
    for zoo in models.values():
        for name, model in zoo.items():
            if same_margins.get(name) not in zoo:
                units += margin_units(model, x, norm, **fab_options)
            units += verdict_units(model, x, eps, norm, **attack_options)
    executor.run(units, "margins and verdicts")
    out = {}
    for seed, zoo in models.items():
        out[seed] = {}
        for name, model in zoo.items():
            other = same_margins.get(name)
            reuse = out[seed][other].input_margin if other in zoo and other in out[seed] else None
            if other in zoo and reuse is None:
                reuse = input_margin(zoo[other], x, norm, **fab_options)
            out[seed][name] = measure(model, x, y, eps, norm, fab_options, attack_options, margins=reuse)
    return out


def margin_cost(model: nn.Module, x: torch.Tensor, norm: str = "Linf", fab_options: dict | None = None) -> dict:
    """Seconds to score ``x`` with the logit margin (median of five, after a warm-up) and to estimate
    its input margins with FAB (never from the cache: this is what the cache saves), and their ratio."""
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
    return {"logit_margin_seconds": logit_seconds, "fab_seconds": fab_seconds, "ratio": fab_seconds / logit_seconds}


def linear_head_stats(model: nn.Module, report: MarginReport, x: torch.Tensor, norm: str = "Linf") -> dict:
    """The spread of ||w_i - w_j||_q over class pairs (coefficient of variation, q dual to ``norm``) and
    Kendall's tau between the logit margin and the exact feature-space margin of the linear head;
    NaN for a model whose last layer is not a plain linear head."""
    head = linear_head(model)
    if head is None:
        return {"pair_norm_cv": float("nan"), "tau_feature_margin": float("nan")}
    features, w, b = head
    q = {"Linf": 1, "L2": 2}[norm]
    fm = feature_margin(w, b, predict_logits(features, x), norm)
    pair = pairwise_distances(w.cpu(), q)
    pair = pair[~torch.eye(len(pair), dtype=torch.bool)]
    return {"pair_norm_cv": (pair.std() / pair.mean()).item(),
            "tau_feature_margin": kendall_tau(report.logit_margin, fm, n_boot=0).tau}


@dataclass
class Repair:
    """A pseudo-margin fitted to a model, and how its scores compare with the logit margin's on the same points."""

    pseudo: PseudoMargin
    score: torch.Tensor          # the pseudo-margin of the report's points
    before: dict                 # tau and detection metrics of the logit margin
    after: dict                  # the same for the pseudo-margin

    @property
    def tau_gain(self) -> float:
        return self.after["tau"] - self.before["tau"]


def repair_with_pseudo_margin(model: nn.Module, report: MarginReport, x_fit: torch.Tensor, x_val: torch.Tensor,
                              eps: float, norm: str = "Linf", fab_options: dict | None = None,
                              epochs: int = 500, lr: float = 1e-4, seed: int = 0,
                              margin_model: nn.Module | None = None) -> Repair:
    """Fit a :class:`PseudoMargin` on the logits of held-out points whose input margins FAB estimates
    (``x_fit`` to train, ``x_val`` to stop early), then score the points of ``report``.

    ``margin_model`` estimates those margins instead of ``model`` when the two take the same decisions
    everywhere (e.g. :class:`RescaledLogits` and its base). Returns a :class:`Repair`: the learner, its
    scores on the report's points, and tau plus detection metrics of the logit margin (``before``) and of
    the pseudo-margin (``after``).
    """
    fab_options = fab_options or {}
    source = margin_model if margin_model is not None else model
    fit_margin = input_margin(source, x_fit, norm, **fab_options)
    val_margin = input_margin(source, x_val, norm, **fab_options)
    pseudo = PseudoMargin(epochs=epochs, lr=lr, seed=seed).fit(
        predict_logits(model, x_fit), fit_margin.margin, predict_logits(model, x_val), val_margin.margin)
    score = pseudo(report.logits)
    before = {"tau": report.tau(n_boot=0).tau, **detection_where_defined(-report.logit_margin, report.margin, eps)}
    after = {"tau": kendall_tau(score, report.margin, n_boot=0).tau,
             **detection_where_defined(-score, report.margin, eps)}
    return Repair(pseudo, score, before, after)
