"""Avoiding robust inaccuracy (Merkli et al.): robustness as an abstain mechanism, selectors, and the
compositional model — with its formula, an end-to-end attack and a sound certificate.

Robustness here is judged against the model's OWN prediction: x is robust when no input in the
ball changes the prediction, whether or not the prediction is right.

* :func:`robustness_metrics` — R_nat, R_rob^acc, R_rob^inacc, the non-robust shares, coverage;
* selectors (:data:`SELECTORS`): ``empirical`` (PGD against the robust model's own prediction, the
  paper's), ``certified`` (a GloRo certificate), ``logit_margin`` and ``pseudo_margin`` (a threshold on
  a one-forward-pass score). Each says per input whether the robust model answers, and exposes a
  score (> 0 iff selected) that is differentiable where the selector is;
* :func:`compositional` — the paper's formula for natural and robust accuracy, selection decided
  at the clean input only;
* :class:`ComposedModel` — "robust model where selected, core model elsewhere" as one classifier;
  :func:`attack_composed` attacks it end to end (the attacker may move an input across the
  selector); :func:`certify_composed` certifies it where a GloRo selector makes that possible.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import validate as check
from .attacks import (AUTOATTACK_SETTINGS, AutoAttackSetting, ascent_step, attacked_points, check_norm, pgd,
                      predict_logits, project, random_start, robust_flags)
from .certify import LOGIT_SLACK, GloroNet
from .margins import logit_margin
from .runtime import batches, caching_off, memo, model_device, model_fingerprint, tensor_fingerprint, timed


# --------------------------------------------------------------------------- robustness w.r.t. the own prediction
def empirically_robust(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", steps: int = 50,
                       restarts: int = 2, seed: int = 0, batch_size: int = 2048) -> torch.Tensor:
    """True where PGD (with restarts) against the model's own prediction fails to change it."""
    check.batch("x", x)
    check.radius("eps", eps)
    dev = model_device(model)

    def compute():
        out = []
        with timed("attacks"):
            for s in batches(len(x), batch_size):
                xb = x[s].to(dev)
                pred = predict_logits(model, xb).argmax(1)
                x_adv = pgd(model, xb, pred, eps, norm, steps=steps, restarts=restarts, seed=seed)
                out.append((predict_logits(model, x_adv).argmax(1) == pred).cpu())
        return torch.cat(out)

    key = [model_fingerprint(model), tensor_fingerprint(x), float(eps), norm, steps, restarts, seed]
    return memo("selections", key, compute, ("attacks", "abstain"), cache=len(x) > 64).to(x.device)


def robustness_metrics(correct: torch.Tensor, robust: torch.Tensor) -> dict:
    """The paper's metrics from per-point correctness and robustness masks."""
    c, r = correct.double(), robust.double()
    acc = (c * r).mean().item()
    inacc = ((1 - c) * r).mean().item()
    return {
        "r_nat": c.mean().item(),
        "r_rob_acc": acc,
        "r_rob_inacc": inacc,
        "nonrobust_acc": (c * (1 - r)).mean().item(),
        "nonrobust_inacc": ((1 - c) * (1 - r)).mean().item(),
        "robust_coverage": acc + inacc,
        "abstain_robust_accuracy": acc / (acc + inacc) if acc + inacc > 0 else float("nan"),
    }


@dataclass(frozen=True)
class Indicators:
    """Per point, for one model: is its prediction correct, and is it robust (against its own prediction)?"""

    correct: torch.Tensor
    robust: torch.Tensor

    def metrics(self) -> dict:
        """:func:`robustness_metrics` of these indicators."""
        return robustness_metrics(self.correct, self.robust)


def indicators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
               **attack) -> Indicators:
    """Per point: is the prediction correct, and is it robust at ``eps`` (own prediction)?

    Robustness is :func:`robustbook.attacks.robust_flags` with the given ``attack`` options: AutoAttack by
    default, or e.g. ``attack_name="pgd", steps=...`` (chapter 4's 2-D toys).
    """
    correct = predict_logits(model, x).argmax(1) == y
    return Indicators(correct, robust_flags(model, x, eps, norm, **attack))


def indicators_many(models: dict, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
                    **attack) -> dict:
    """:func:`indicators` for every model of ``{seed: {name: model}}`` (the same structure comes back): the missing
    attack verdicts of all of them first run as units of :mod:`robustbook.executor` (in parallel as Ray tasks with
    ``ROBUSTBOOK_RAY``), then each model's indicators are read from the cache."""
    from . import executor
    from .attacks import verdict_units

    executor.run([u for zoo in models.values() for m in zoo.values() for u in verdict_units(m, x, eps, norm, **attack)],
                 "attack verdicts")
    return {seed: {name: indicators(m, x, y, eps, norm, **attack) for name, m in zoo.items()}
            for seed, zoo in models.items()}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **attack) -> dict:
    """:func:`robustness_metrics` of a model, robustness measured as :func:`indicators` does."""
    return indicators(model, x, y, eps, **attack).metrics()


def compositional(selected: torch.Tensor, robust: Indicators, core: Indicators) -> dict:
    """The paper's formula: natural and robust accuracy of "robust model where selected, core elsewhere".

    natural = mean(S acc_robust + (1 - S) acc_core)
    robust  = mean(S acc_robust rob_robust + (1 - S) acc_core rob_core)
    with the selection S decided at the clean input only (what an attacker can do to the selector
    is not counted: see :func:`attack_composed`).
    """
    s = selected.double()
    ra, rr = robust.correct.double(), robust.robust.double()
    ca, cr = core.correct.double(), core.robust.double()
    natural = (s * ra + (1 - s) * ca).mean().item()
    robust_accuracy = (s * ra * rr + (1 - s) * ca * cr).mean().item()
    inacc = (s * (1 - ra) * rr + (1 - s) * (1 - ca) * cr).mean().item()
    return {"natural_accuracy": natural, "robust_accuracy": robust_accuracy, "r_rob_inacc": inacc,
            "selected": s.mean().item()}


# --------------------------------------------------------------------------- selectors
def l2_radius(radius: float, norm: str, input_shape) -> float:
    """The L2 radius whose ball contains the ``norm`` ball of ``radius`` (Linf: radius * sqrt(d))."""
    return radius if check_norm(norm) == "L2" else radius * math.sqrt(math.prod(input_shape))


class Selector:
    """Decides per input whether the robust model answers. ``score(x) > 0`` iff selected."""

    name = "selector"
    differentiable = True

    def fingerprint(self) -> list:
        """Everything that decides the selector's answers (for cache keys)."""
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def select(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x) > 0

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """A differentiable score an attacker can follow (the score itself when it is differentiable)."""
        return self.score(x)


class ThresholdSelector(Selector):
    """Select where a one-forward-pass score of the robust model exceeds a threshold."""

    def __init__(self, name: str, score_fn: Callable[[torch.Tensor], torch.Tensor], threshold: float = 0.0,
                 parts: tuple[nn.Module, ...] = ()):
        self.name, self.score_fn, self.parts = name, score_fn, parts
        self.threshold = check.number("threshold", threshold)

    def fingerprint(self) -> list:
        return [self.name, self.threshold, [model_fingerprint(p) for p in self.parts]]

    def score(self, x):
        return self.score_fn(x) - self.threshold

    def fit(self, x_val: torch.Tensor, share: float) -> "ThresholdSelector":
        """Set the threshold so that a ``share`` of the validation inputs is selected (validation data only)."""
        check.number("share", share, low=0.0, high=1.0)
        with torch.no_grad():
            s = torch.cat([self.score_fn(x_val[b]) for b in batches(len(x_val), 1024)]).double()
        self.threshold = float(torch.quantile(s, 1 - share)) if 0 < share < 1 else \
            (float(s.max()) + 1 if share == 0 else float(s.min()) - 1)
        return self


def logit_margin_selector(model: nn.Module, threshold: float = 0.0) -> ThresholdSelector:
    """The robust model's logit margin (Ngnawé et al.: a free proxy for its input margin)."""
    def score(x):
        return logit_margin(model(x.to(model_device(model))).float()).to(x.device)
    return ThresholdSelector("logit_margin", score, threshold, parts=(model,))


def pseudo_margin_selector(model: nn.Module, pseudo, threshold: float = 0.0) -> ThresholdSelector:
    """A learned pseudo-margin of the robust model (:class:`robustbook.consistency.PseudoMargin`)."""
    def score(x):
        return pseudo.score(model(x.to(model_device(model))).float()).to(x.device)
    return ThresholdSelector("pseudo_margin", score, threshold, parts=(model, pseudo.net))


class EmpiricalSelector(Selector):
    """The paper's selector: PGD (with restarts) against the robust model's own prediction at ``radius``.

    Not differentiable: :meth:`surrogate` is a logit-margin score fitted to select the same share on
    validation data, which an end-to-end attack follows before the real selector judges its candidates.
    """

    name = "empirical"
    differentiable = False

    def __init__(self, model: nn.Module, radius: float, norm: str = "Linf", steps: int = 50, restarts: int = 2,
                 seed: int = 0):
        self.model, self.radius, self.norm = model, check.radius("radius", radius), check_norm(norm)
        self.steps, self.restarts, self.seed = steps, restarts, seed
        self._surrogate = logit_margin_selector(model)

    @torch.no_grad()
    def select(self, x):
        return empirically_robust(self.model, x, self.radius, self.norm, self.steps, self.restarts, self.seed)

    def score(self, x):
        return self.select(x).double() * 2 - 1

    def fingerprint(self) -> list:
        return [self.name, model_fingerprint(self.model), self.radius, self.norm, self.steps, self.restarts, self.seed,
                self._surrogate.threshold]

    def fit_surrogate(self, x_val: torch.Tensor) -> "EmpiricalSelector":
        self._surrogate.fit(x_val, float(self.select(x_val).double().mean()))
        return self

    def surrogate(self, x):
        return self._surrogate.score(x)


class CertifiedSelector(Selector):
    """Select where a GloRo net certifies its prediction on the ``norm`` ball of ``radius`` (sound).

    The GloRo certificate is an L2 one; for Linf the ball of radius r lies inside the L2 ball of
    radius r sqrt(d). ``score`` is the certificate's margin (max_k m_k minus the float slack), differentiable.
    """

    name = "certified"

    def __init__(self, net: GloroNet, radius: float, norm: str = "Linf"):
        if not isinstance(net, GloroNet):
            raise check.InvalidArgument("the certified selector needs a GloroNet (robustbook.certify.GloroNet)")
        self.net, self.radius, self.norm = net, check.radius("radius", radius), check_norm(norm)

    def score(self, x):
        return top1_certificate_margin(self.net, x, l2_radius(self.radius, self.norm, x.shape[1:]))

    def fingerprint(self) -> list:
        return [self.name, model_fingerprint(self.net), self.radius, self.norm]


def top1_certificate_margin(net: GloroNet, x: torch.Tensor, radius_l2: float) -> torch.Tensor:
    """m_1 - slack: > 0 iff the net's top-1 answer is certified on the L2 ball of ``radius_l2`` (the same
    rule as :meth:`GloroNet.certify`, float64 with the float32 slack); differentiable in x."""
    net.eval()
    y, _, m, _ = net.margins(x.to(model_device(net)), eps=radius_l2)
    slack = LOGIT_SLACK * (1 + y.abs().amax(1).double())
    return (m[:, 0] - slack).to(x.device)


SELECTORS: dict[str, Callable[..., Selector]] = {
    "empirical": EmpiricalSelector,
    "certified": CertifiedSelector,
    "logit_margin": logit_margin_selector,
    "pseudo_margin": pseudo_margin_selector,
}


def make_selector(name: str, *args, **options) -> Selector:
    return SELECTORS[check.choice("selector", name, SELECTORS)](*args, **options)


def selector_cost(selector: Selector, forward: nn.Module, x: torch.Tensor, repeats: int = 5) -> dict:
    """Seconds per input of a selector and of one forward pass of ``forward`` (medians of ``repeats``
    runs after a warm-up), and their ratio."""
    def timeit(fn):
        fn()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
        return float(np.median(runs)) / len(x)
    with caching_off():
        sel = timeit(lambda: selector.select(x))
        fwd = timeit(lambda: predict_logits(forward, x))
    return {"selector_seconds_per_input": sel, "forward_seconds_per_input": fwd, "cost_over_forward": sel / fwd}


# --------------------------------------------------------------------------- the composed classifier
class ComposedModel(nn.Module):
    """Robust model where the selector selects the input, core model elsewhere — one classifier.

    ``forward`` returns the answering model's logits per input (the switch itself has no gradient;
    :func:`attack_composed` follows the selector's score instead).
    """

    def __init__(self, core: nn.Module, robust: nn.Module, selector: Selector):
        super().__init__()
        self.core, self.robust, self.selector = core, robust, selector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            chosen = self.selector.select(x).to(x.device)
        # each input goes through the one model that answers it (half the work of running both everywhere)
        to_robust, to_core = torch.nonzero(chosen).flatten(), torch.nonzero(~chosen).flatten()
        parts = [model(x[idx]) for model, idx in ((self.robust, to_robust), (self.core, to_core)) if len(idx)]
        order = torch.cat([to_robust, to_core])
        return torch.cat(parts)[torch.argsort(order)]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        dev = model_device(self.core)
        return torch.cat([self(x[s].to(dev)).argmax(1).to(x.device) for s in batches(len(x), batch_size)])


def _objectives(composed: ComposedModel, y: torch.Tensor, hinge: float):
    """Surrogate losses an attacker of the composed model maximises (per input)."""
    sel = composed.selector

    def ce(model, x):
        return F.cross_entropy(model(x), y, reduction="none")

    return {
        "robust model": lambda x: ce(composed.robust, x),
        "core model": lambda x: ce(composed.core, x),
        "leave the selector, fool the core": lambda x: ce(composed.core, x) - F.relu(sel.surrogate(x) + hinge),
        "stay selected, fool the robust model": lambda x: ce(composed.robust, x) - F.relu(hinge - sel.surrogate(x)),
    }


@dataclass(frozen=True)
class ComposedAttack:
    """Settings of the end-to-end attack on a composed model (see :func:`composed_attack`)."""

    steps: int                       # PGD steps of every surrogate route
    restarts: int                    # PGD restarts of every surrogate route
    autoattack: str | AutoAttackSetting | None = None   # AutoAttack run on the core and on the robust model, judged
    #                                                     end to end


def composed_attack(e2e_steps: int, e2e_restarts: int = 1, autoattack: str | AutoAttackSetting | None = None,
                    selector_steps: int = 0, selector_restarts: int = 0) -> ComposedAttack:
    """The end-to-end attack's settings, derived from the component attacks: on every route at least as strong as
    the strongest attack the book runs on that component alone.

    The core and the robust model are attacked alone with AutoAttack (``autoattack``, the chapter's headline
    setting): the end-to-end attack runs that same AutoAttack on each of them and judges its points with the
    composed model. The selector's own attack is PGD with ``selector_steps`` x ``selector_restarts``: every
    surrogate route gets at least as many steps and restarts.

    >>> composed_attack(20, 1, "cpu", selector_steps=40, selector_restarts=2)
    ComposedAttack(steps=40, restarts=2, autoattack='cpu')
    """
    for name, value in (("e2e_steps", e2e_steps), ("e2e_restarts", e2e_restarts)):
        check.number(name, value, low=1, integer=True)
    for name, value in (("selector_steps", selector_steps), ("selector_restarts", selector_restarts)):
        check.number(name, value, low=0, integer=True)
    if isinstance(autoattack, str):
        check.choice("autoattack", autoattack, AUTOATTACK_SETTINGS)
    elif autoattack is not None and not isinstance(autoattack, AutoAttackSetting):
        raise check.InvalidArgument(f"autoattack must be a name of AUTOATTACK_SETTINGS "
                                    f"({', '.join(AUTOATTACK_SETTINGS)}), an AutoAttackSetting or None; got {autoattack!r}")
    return ComposedAttack(max(int(e2e_steps), int(selector_steps)), max(int(e2e_restarts), int(selector_restarts)),
                          autoattack)


def component_adversarials(model: nn.Module, x: torch.Tensor, eps: float, norm: str,
                           setting: str | AutoAttackSetting) -> torch.Tensor:
    """AutoAttack's points against ``model`` alone: the very run behind its headline verdicts
    (:func:`robustbook.attacks.robust_flags` with ``setting``, the same cache entries), as candidates for the
    composed model."""
    return attacked_points(model, x, eps, norm, setting=setting).cpu()


def attack_composed(composed: ComposedModel, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
                    steps: int = 50, restarts: int = 1, check_every: int = 1, seed: int = 0,
                    hinge: float = 0.1, batch_size: int = 1024,
                    autoattack: str | AutoAttackSetting | None = None) -> dict:
    """Attack the composed model as one classifier inside the eps-ball (and the box).

    Four PGD attacks follow surrogate objectives (fool the robust model; fool the core; push the
    selector's score below 0 while fooling the core; keep it above 0 while fooling the robust
    model). Every ``check_every`` steps each iterate is judged by the REAL composed model — the
    real selector at the perturbed input — and a point counts as robust only if no candidate (nor
    x itself) gets a wrong composed answer; a point once broken stays broken, so each route attacks and judges only
    the points no earlier route has broken. For a non-differentiable selector the attacks follow its
    surrogate (a transfer attack) and only the real selector decides. With ``autoattack`` (a key of
    ``AUTOATTACK_SETTINGS``), AutoAttack's points against the core alone and against the robust model
    alone are judged by the composed model too, so no route is weaker than the component's own headline
    attack (:func:`composed_attack` derives the settings).

    Returns per-point ``robust`` flags, ``found_by`` (the first route that broke each point, "clean" when
    the clean input is already wrong, or ""), ``broken_by`` (points per route), and the candidates judged.

    >>> settings = composed_attack(20, 1, "cpu", selector_steps=20, selector_restarts=2)
    >>> out = attack_composed(composed, x, y, 0.1, steps=settings.steps, restarts=settings.restarts,
    ...                       autoattack=settings.autoattack)            # doctest: +SKIP
    >>> out["robust"].double().mean()                                      # doctest: +SKIP
    """
    check.batch("x", x)
    check.labels("y", y, len(x))
    check.radius("eps", eps)
    check_norm(norm)
    dev = model_device(composed.core)
    broken = torch.zeros(len(x), dtype=torch.bool)
    found_by = [""] * len(x)
    judged = 0
    gen = torch.Generator().manual_seed(seed)
    step_size = 2.5 * eps / steps
    routes = {}
    if autoattack is not None:          # the components' own headline attack, judged end to end
        routes = {f"AutoAttack on the {part}": component_adversarials(model, x, eps, norm, autoattack)
                  for part, model in (("core model", composed.core), ("robust model", composed.robust))}
    with timed("attacks"):
        for s in batches(len(x), batch_size):
            xb, yb = x[s].to(dev), y[s].to(dev)
            wrong = (composed.predict(xb) != yb).cpu()
            for i in torch.nonzero(wrong).flatten().tolist():
                found_by[s.start + i] = "clean"
            broken[s] |= wrong
            for name, points in routes.items():
                hit = (composed.predict(points[s].to(dev)) != yb).cpu()
                judged += len(hit)
                for i in torch.nonzero(hit & ~broken[s]).flatten().tolist():
                    found_by[s.start + i] = name
                broken[s] |= hit
            for name in _objectives(composed, yb, hinge):
                for r in range(restarts):
                    start = xb.clone() if r == 0 else random_start(xb, eps, norm, gen)   # drawn for the whole batch
                    # a broken point stays broken: only the points no route has broken yet are attacked and judged
                    live = torch.nonzero(~broken[s]).flatten()
                    if not len(live):
                        break
                    on_dev = live.to(dev)
                    x0, y0 = xb[on_dev], yb[on_dev]
                    objective = _objectives(composed, y0, hinge)[name]
                    x_adv, candidates = start[on_dev], []
                    for t in range(steps):
                        xa = x_adv.detach().requires_grad_(True)
                        with torch.enable_grad():
                            (grad,) = torch.autograd.grad(objective(xa).sum(), xa)
                        x_adv = project(x_adv + ascent_step(grad, step_size, norm), x0, eps, norm).detach()
                        if (t + 1) % check_every == 0 or t == steps - 1:
                            candidates.append(x_adv)
                    cand = torch.stack(candidates)                         # (c, live, ...)
                    pred = composed.predict(cand.flatten(0, 1)).view(len(candidates), -1)
                    judged += pred.numel()
                    hit = (pred != y0[None]).any(0).cpu()
                    for i in live[hit].tolist():
                        found_by[s.start + i] = name
                    broken[s.start + live[hit]] = True
    broken_by = {name: found_by.count(name) for name in ("clean", *routes, *_objectives(composed, y[:1], hinge))}
    return {"robust": ~broken, "found_by": found_by, "broken_by": broken_by, "candidates_judged": judged}


def evaluate_composed(composed: ComposedModel, x: torch.Tensor, y: torch.Tensor, eps: float,
                      core: Indicators, robust: Indicators,
                      norm: str = "Linf", steps: int = 20, restarts: int = 1, seed: int = 0,
                      autoattack: str | AutoAttackSetting | None = None) -> dict:
    """The composed model three ways: the paper's formula, an end-to-end attack, and (for the certified
    selector) a sound certificate — plus selected share, natural accuracy and robust inaccuracy.

    ``core`` / ``robust``: each model's :class:`Indicators` at eps (what :func:`indicators` returns). ``steps``, ``restarts`` and ``autoattack`` are the end-to-end attack's
    settings (:func:`composed_attack` derives them from the component attacks). ``broken_by`` counts the
    points each route of the attack broke first; ``certified_points`` counts the certified points,
    ``certificate_violations`` those the attack broke.
    """
    def compute():
        selected = composed.selector.select(x)
        formula = compositional(selected, robust, core)
        check_every = 1 if composed.selector.differentiable else max(1, steps // 4)
        attacked = attack_composed(composed, x, y, eps, norm, steps, restarts, check_every, seed,
                                   autoattack=autoattack)
        out = {"selected": formula["selected"], "natural_accuracy": formula["natural_accuracy"],
               "robust_accuracy_formula": formula["robust_accuracy"],
               "robust_accuracy_attack": attacked["robust"].double().mean().item(),
               "broken_by": attacked["broken_by"],
               "r_rob_inacc": formula["r_rob_inacc"], "robust_accuracy_certified": None, "certified_points": 0,
               "certificate_violations": 0}
        if isinstance(composed.selector, CertifiedSelector):
            certified = certify_composed(composed, x, y, eps, norm)
            out["robust_accuracy_certified"] = certified.double().mean().item()
            out["certified_points"] = int(certified.sum())
            out["certificate_violations"] = int((certified & ~attacked["robust"]).sum())
        return out

    key = [model_fingerprint(composed.core), model_fingerprint(composed.robust), composed.selector.fingerprint(),
           tensor_fingerprint(x, y, core.correct, core.robust, robust.correct, robust.robust), float(eps), norm, steps, restarts, seed, autoattack]
    return memo("composed", key, compute, ("attacks", "abstain", "certify"))


def certify_composed(composed: ComposedModel, x: torch.Tensor, y: torch.Tensor, eps: float,
                     norm: str = "Linf") -> torch.Tensor:
    """Points where the composed model is certifiably correct on the whole ``norm`` ball of radius eps.

    Needs a :class:`CertifiedSelector` of radius rho: if its GloRo net certifies x at radius eps + rho,
    then at every x' in the eps-ball the net is still certified at radius rho (so x' is selected) and
    its answer is the one at x — so the composed answer on the whole ball is the net's answer at x.
    Points the selector does not cover this way are not certified (the core model has no certificate).
    """
    sel = composed.selector
    if not isinstance(sel, CertifiedSelector):
        raise check.InvalidArgument("a composed certificate needs the certified selector")
    check.radius("eps", eps)
    if norm != sel.norm:
        raise check.InvalidArgument(f"norm {norm!r} differs from the selector's {sel.norm!r}")
    radius = l2_radius(eps + sel.radius, norm, x.shape[1:])
    with torch.no_grad():
        margin = torch.cat([top1_certificate_margin(sel.net, x[b], radius) for b in batches(len(x), 1024)])
    correct = predict_logits(sel.net, x).argmax(1) == y
    return (margin > 0) & correct
