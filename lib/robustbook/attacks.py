"""Adversarial attacks at a fixed radius, batched over the inputs, on any device.

* ``fgsm``, ``pgd``, ``bim``: our short implementations for the Linf and L2 threat models. The
  evaluation attack :func:`pgd` keeps, per point, the best iterate over every step and restart (a
  misclassified one, else the highest loss); :func:`pgd_training` is the inner maximisation of
  adversarial training (the last iterate, as the reference code returns it).
* ``deepfool`` (L2 or Linf) and ``cw`` (Carlini & Wagner L2 with a binary search over its constant):
  minimum-norm attacks, capped to a budget when one is given.
* ``autoattack``: pyautoattack's AutoAttack (the papers' robust-accuracy yardstick), and
  :func:`robust_flags` / :func:`robust_accuracy`, which cache its per-point verdicts.
* the building blocks other modules compose into their own attacks: :func:`project` (onto the ball
  and the box), :func:`ascent_step`, :func:`random_start`, :func:`jacobian`, :func:`per_point`.

Every attack takes ``(model, x, y, eps, ...)`` and returns adversarial inputs in the box [0, 1]^d;
the registry :data:`ATTACKS` maps names to them. The minimum-norm attack FAB, which estimates input
margins rather than attacking at a radius, lives in :mod:`robustbook.margins`.

>>> x_adv = attack("pgd", model, x, y, eps=0.1, steps=20)            # doctest: +SKIP
>>> accuracy(model, x_adv, y)                                         # doctest: +SKIP
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import validate as check
from .runtime import batches, memo, memo_path, model_device, model_fingerprint, tensor_fingerprint, timed

NORMS = ("Linf", "L2")


def check_norm(norm: str, allowed=NORMS) -> str:
    return check.choice("norm", norm, allowed)


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if check_norm(norm) == "Linf" else flat.norm(dim=1)


def per_point(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-point vector ``v`` (n,) shaped to broadcast against a batch ``like`` (n, ...)."""
    return v.view(-1, *[1] * (like.dim() - 1))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project onto the eps-ball around ``x`` (in ``norm``) intersected with [0, 1]^d."""
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / lp_norm(delta, "L2").clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * per_point(scale, delta)
    return (x + delta).clamp(0.0, 1.0)


def ascent_step(grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    """The steepest-ascent step of length ``step_size`` in ``norm``: the gradient's sign (Linf) or direction (L2)."""
    if norm == "Linf":
        return step_size * grad.sign()
    g = lp_norm(grad, "L2").clamp_min(1e-12)
    return step_size * grad / per_point(g, grad)


def _generator(seed: int | None) -> torch.Generator | None:
    return torch.Generator().manual_seed(seed) if seed is not None else None


def random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random point of the eps-ball around each x (in ``norm``), clipped to the box."""
    if norm == "Linf":
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    else:  # uniform in the L2 ball
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=gen)
        direction = direction / per_point(lp_norm(direction, "L2").clamp_min(1e-12), direction)
        radius = eps * torch.rand(len(x), generator=gen) ** (1.0 / d)
        noise = direction * per_point(radius, direction)
    return (x + noise.to(x.device)).clamp(0.0, 1.0)


_start = random_start         # for functions whose boolean parameter is named ``random_start``


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, with_loss: bool = False):
    """Input gradient of the summed per-point loss, and the logits (and the per-point loss, detached)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return (grad, logits.detach(), loss.detach()) if with_loss else (grad, logits.detach())


def _ce(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


def _check(x, y, eps, norm, allowed=NORMS):
    check.batch("x", x)
    check.radius("eps", eps)
    check_norm(norm, allowed)
    if isinstance(y, torch.Tensor) and y.dim() == 1:
        check.labels("y", y, len(x))


# --------------------------------------------------------------------------- FGSM, PGD, BIM
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
         loss_fn: Callable = _ce, **_) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015): one step of size eps (normalised for L2).

    >>> x_adv = fgsm(model, x, y, eps=0.1)                                # doctest: +SKIP
    """
    _check(x, y, eps, norm)
    if eps == 0:
        return x.detach().clone()
    grad, _ = _input_grad(model, x, y, loss_fn)
    return project(x + ascent_step(grad, eps, norm), x, eps, norm).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        steps: int = 20, step_size: float | None = None, restarts: int = 1,
        random_start: bool = True, loss_fn: Callable = _ce, seed: int | None = 0,
        start: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss inside the eps-ball and the box (Madry et al., 2018), to evaluate.

    Keeps, per point, the best iterate over every step of every restart: the first misclassified one (when
    ``y`` holds labels), otherwise the one with the highest loss. ``step_size`` defaults to 2.5 eps / steps.
    ``y`` may be any target that ``loss_fn`` accepts; ``start`` replaces the first run's starting point.
    (Adversarial training uses :func:`pgd_training`, which returns the last iterate.)

    >>> x_adv = pgd(model, x, y, eps=0.1, steps=20, restarts=2)          # doctest: +SKIP
    >>> (model(x_adv).argmax(1) == y).float().mean()                      # doctest: +SKIP
    """
    _check(x, y, eps, norm)
    check.number("steps", steps, low=1, integer=True)
    check.number("restarts", restarts, low=1, integer=True)
    if eps == 0:
        return x.detach().clone()
    step_size = _step_size(step_size, eps, steps)
    labels = y.dim() == 1 and not y.is_floating_point()
    gen = _generator(seed)
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def keep(rows, candidate, logits, loss):
        """Update the best iterate of the points ``rows`` (indices into the batch, or None for all)."""
        wrong = logits.argmax(1) != (y if rows is None else y[rows]) if labels else torch.zeros_like(loss, dtype=bool)
        was_fooled = fooled if rows is None else fooled[rows]
        old_best, old_loss = (best, best_loss) if rows is None else (best[rows], best_loss[rows])
        take = ~was_fooled & (wrong | (loss > old_loss))
        new_best = torch.where(per_point(take, candidate), candidate, old_best)
        new_loss = torch.where(take, loss, old_loss)
        if rows is None:
            best.copy_(new_best)
            best_loss.copy_(new_loss)
            fooled.logical_or_(wrong)
        else:
            best[rows], best_loss[rows], fooled[rows] = new_best, new_loss, was_fooled | wrong

    for r in range(restarts):
        if r == 0 and start is not None:
            x_adv = project(start.detach(), x, eps, norm)
        else:
            x_adv = _start(x, eps, norm, gen) if random_start else x.clone()
        for step in range(steps + 1):
            # a point already misclassified keeps its first misclassified iterate whatever follows: with
            # labels, only the others are attacked further (the same result, fewer forward passes)
            rows = (~fooled).nonzero().squeeze(1) if labels and bool(fooled.any()) else None
            if rows is not None and rows.numel() == 0:
                break
            xa, xo = (x_adv, x) if rows is None else (x_adv[rows], x[rows])
            ya = y if rows is None else y[rows]
            if step == steps:                        # the last iterate: evaluated, not stepped from
                with torch.no_grad():
                    logits = model(xa)
                keep(rows, xa, logits, loss_fn(logits, ya))
                break
            grad, logits, loss = _input_grad(model, xa, ya, loss_fn, with_loss=True)
            keep(rows, xa, logits, loss)             # the iterate this gradient was taken at
            stepped = project(xa + ascent_step(grad, step_size, norm), xo, eps, norm).detach()
            if rows is None:
                x_adv = stepped
            else:
                x_adv[rows] = stepped
        if labels and bool(fooled.all()):
            break
    return best


def pgd_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
                 steps: int = 10, step_size: float | None = None, loss_fn: Callable = _ce,
                 seed: int | None = None, start: torch.Tensor | None = None,
                 random_start: bool = True) -> torch.Tensor:
    """The inner maximisation of adversarial training: PGD's last iterate, as Madry et al.'s and TRADES's
    reference code return it (one run, no restarts, no best-iterate bookkeeping).

    ``y`` may be any target ``loss_fn`` accepts (TRADES passes the clean logits with a KL loss);
    ``start`` replaces the random start. Call it in eval mode (:func:`robustbook.runtime.eval_mode`).

    >>> x_adv = pgd_training(model, x, y, eps=0.1, steps=5)              # doctest: +SKIP
    >>> loss = F.cross_entropy(model(x_adv), y)                           # doctest: +SKIP
    """
    _check(x, y, eps, norm)
    check.number("steps", steps, low=1, integer=True)
    if eps == 0:
        return x.detach().clone()
    step_size = _step_size(step_size, eps, steps)
    x = x.detach()
    if start is not None:
        x_adv = project(start.detach(), x, eps, norm)
    else:
        x_adv = _start(x, eps, norm, _generator(seed)) if random_start else x.clone()
    for _ in range(steps):
        grad, _logits = _input_grad(model, x_adv, y, loss_fn)
        x_adv = project(x_adv + ascent_step(grad, step_size, norm), x, eps, norm).detach()
    return x_adv


def _step_size(step_size: float | None, eps: float, steps: int) -> float:
    return check.number("step_size", step_size, low=0, low_open=True) if step_size is not None else 2.5 * eps / steps


def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        steps: int | None = None, step_size: float | None = None, **_) -> torch.Tensor:
    """Basic iterative method (Kurakin et al., 2017), Linf: from x itself (no random start), step
    alpha = 1/255 and min(255 eps + 4, 1.25 * 255 eps) iterations, as the paper sets them for pixels in [0, 1].

    >>> x_adv = bim(model, x, y, eps=8 / 255)          # 10 steps of 1/255    # doctest: +SKIP
    """
    _check(x, y, eps, norm, allowed=("Linf",))
    if eps == 0:
        return x.detach().clone()
    if steps is None:
        steps = max(1, int(min(255 * eps + 4, 1.25 * 255 * eps)))
    return pgd(model, x, y, eps, norm, steps=steps, step_size=step_size or 1 / 255, restarts=1,
               random_start=False)


def _cap(x_adv: torch.Tensor, x: torch.Tensor, eps: float | None, norm: str) -> torch.Tensor:
    """Project a minimum-norm attack's output onto its budget (the eps-ball), when one is given."""
    if eps is None or math.isinf(eps):
        return x_adv
    return project(x_adv, x, eps, norm)


# --------------------------------------------------------------------------- DeepFool, CW
def jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, C) and their input gradients (n, C, *shape), one batched backward pass."""
    xa = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xa)
        C = logits.shape[1]
        eye = torch.eye(C, device=x.device)[:, None, :].expand(C, len(x), C)
        (grads,) = torch.autograd.grad(logits, xa, grad_outputs=eye, is_grads_batched=True)
    return logits.detach(), grads.transpose(0, 1)


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None, norm: str = "L2",
             steps: int = 50, overshoot: float = 0.02, **_) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al., 2016), all classes, batched, for the L2 or the Linf norm.

    Each step linearises every logit difference at the current point and jumps to the nearest
    linearised boundary in ``norm`` (distance |f| / ||w||_2 along w for L2, |f| / ||w||_1 along
    sign(w) for Linf); points stop once misclassified, and the total step is scaled by
    (1 + overshoot). With ``eps`` the result is projected onto the eps-ball of the same norm.

    >>> x_adv = deepfool(model, x, y, norm="L2")       # minimum-norm points   # doctest: +SKIP
    >>> x_adv = deepfool(model, x, y, eps=0.5)         # capped to a budget    # doctest: +SKIP
    """
    if eps is not None:
        check.radius("eps", eps)
    _check(x, y, 0.0, norm)
    n = len(x)
    r_tot = torch.zeros_like(x)
    x_adv = x.detach().clone()
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    for _ in range(steps):
        idx = torch.nonzero(active).flatten()
        if len(idx) == 0:
            break
        logits, grads = jacobian(model, x_adv[idx])
        ya = y[idx]
        still = logits.argmax(1) == ya
        active[idx[~still]] = False
        if not still.any():
            break
        logits, grads, ya, idx = logits[still], grads[still], ya[still], idx[still]
        m = torch.arange(len(ya), device=x.device)
        f = logits - logits.gather(1, ya[:, None])
        w = grads - grads[m, ya][:, None]
        dual = w.flatten(2).norm(dim=2) if norm == "L2" else w.flatten(2).abs().sum(2)
        dist = f.abs() / dual.clamp_min(1e-12)
        dist[m, ya] = float("inf")
        l = dist.argmin(1)
        wl, fl, dl = w[m, l], f.abs()[m, l] + 1e-4, dual[m, l].clamp_min(1e-12)
        if norm == "L2":
            step = per_point(fl / dl ** 2, wl) * wl
        else:
            step = per_point(fl / dl, wl) * wl.sign()
        r_tot[idx] = r_tot[idx] + step
        x_adv[idx] = (x[idx] + (1 + overshoot) * r_tot[idx]).clamp(0, 1)
    return _cap(x_adv.detach(), x, eps, norm)


def cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None, norm: str = "L2",
       c: float = 0.1, kappa: float = 0.0, steps: int = 100, lr: float = 0.01, search_steps: int = 5,
       **_) -> torch.Tensor:
    """Carlini & Wagner's L2 attack (2017) with their binary search over the trade-off constant.

    For each point, minimise ||delta||^2 + c * max(Z_y - max_{i != y} Z_i, -kappa) with Adam; after each
    of ``search_steps`` rounds, c shrinks (bisection) where the round succeeded and grows (x10 until
    an upper bound is known) where it failed. The closest misclassified point over all rounds is kept.
    The box is kept by projecting x + delta onto [0, 1] after every step — not by CW's tanh change of
    variables, which pins pixels at 0 or 1 (the tanh gradient there is ~1e-6, so they never move).
    The best other logit masks the true class with -inf, so negative logits are handled (torchattacks
    3.5.1 multiplies by a one-hot mask instead and picks the masked 0 when every logit is negative).
    With ``eps`` the result is projected onto the L2 eps-ball.

    >>> x_adv = cw(model, x, y, eps=1.0, steps=100, search_steps=5)      # doctest: +SKIP
    """
    if eps is not None:
        check.radius("eps", eps)
    _check(x, y, 0.0, norm, allowed=("L2",))
    x = x.detach()
    n = len(x)
    const = torch.full((n,), float(c), device=x.device)
    lower = torch.zeros(n, device=x.device)
    upper = torch.full((n,), float("inf"), device=x.device)
    best = x.clone()
    best_l2 = torch.full((n,), float("inf"), device=x.device)
    for _ in range(search_steps):
        delta = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=lr)
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            with torch.enable_grad():
                x_adv = x + delta
                logits = model(x_adv)
                real = logits.gather(1, y[:, None]).squeeze(1)
                other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
                l2 = (x_adv - x).flatten(1).pow(2).sum(1)
                loss = (l2 + const * (real - other).clamp_min(-kappa)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                wrong = logits.argmax(1) != y
                better = wrong & (l2 < best_l2)
                best = torch.where(per_point(better, x), x_adv.detach(), best)
                best_l2 = torch.where(better, l2.detach(), best_l2)
                success |= wrong
                delta.copy_((x + delta).clamp(0, 1) - x)          # back into the box
        upper = torch.where(success, torch.minimum(upper, const), upper)
        lower = torch.where(success, lower, torch.maximum(lower, const))
        const = torch.where(torch.isfinite(upper), (lower + upper) / 2, const * 10)
    return _cap(best, x, eps, norm)


# --------------------------------------------------------------------------- evaluation helpers
@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``x`` in eval mode, computed on the model's device batch by batch, returned on x's device.

    The model is left in eval mode (every caller in the book evaluates; training code switches back itself).
    """
    model.eval()
    dev = model_device(model)
    if len(x) == 0:
        raise check.InvalidArgument("x is an empty batch; pass at least one input")
    return torch.cat([model(x[s].to(dev)).to(x.device) for s in batches(len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    check.labels("y", y, len(x))
    return (predict_logits(model, x).argmax(1) == y).double().mean().item()


# --------------------------------------------------------------------------- AutoAttack
@dataclass
class AutoAttackSetting:
    """Which AutoAttack to run: pyautoattack's ``standard`` version, or a named reduction of it."""

    version: str = "standard"
    attacks: tuple = ()                 # for version="custom"
    target_classes: int = 9             # APGD-T and FAB-T
    n_iter: int = 100
    square_queries: int = 5000

    def describe(self) -> str:
        if self.version == "standard":
            text = "AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square)"
            if (self.n_iter, self.square_queries) != (100, 5000):
                text += f", {self.n_iter} iterations each (Square: {self.square_queries} queries)"
            return text
        return (f"AutoAttack reduced to {', '.join(a.upper() for a in self.attacks)} "
                f"({self.n_iter} iterations, {self.target_classes} target classes)")


AUTOATTACK_SETTINGS = {
    "standard": AutoAttackSetting(),
    # the cpu profile's reduction: pyautoattack's standard attacks without FAB-T and Square, 3 targets
    "cpu": AutoAttackSetting("custom", ("apgd-ce", "apgd-t"), target_classes=3),
    "smoke": AutoAttackSetting("custom", ("apgd-ce",), target_classes=1, n_iter=10),
}


def autoattack_setting(name: str, iterations: int = 0) -> AutoAttackSetting:
    """The setting ``name`` of :data:`AUTOATTACK_SETTINGS`; with ``iterations`` > 0, the same attacks and target
    classes run with that many iterations each (Square: 50 queries per iteration) — a size, which the tests'
    seconds-long runs of the colab and paper profiles cut.

    >>> autoattack_setting("standard", 2).describe()
    'AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square), 2 iterations each (Square: 100 queries)'
    """
    setting = AUTOATTACK_SETTINGS[check.choice("setting", name, AUTOATTACK_SETTINGS)]
    check.number("iterations", iterations, low=0, integer=True)
    if iterations == 0:
        return setting
    return replace(setting, n_iter=int(iterations), square_queries=50 * int(iterations))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
               setting: str | AutoAttackSetting = "standard", seed: int = 0, batch_size: int = 500,
               **_) -> torch.Tensor:
    """Adversarial inputs from pyautoattack's AutoAttack (Croce & Hein, 2020) at radius eps.

    ``setting``: a key of :data:`AUTOATTACK_SETTINGS` or an :class:`AutoAttackSetting`. pyautoattack's
    sanity checks are collected instead of printed; a model that looks randomized or outputs
    probabilities is refused, since AutoAttack's verdict would not mean robustness then.
    The global random generator is left as it was.

    >>> x_adv = autoattack(model, x, y, eps=8 / 255)                      # doctest: +SKIP
    >>> x_adv = autoattack(model, x, y, eps=0.1, setting="cpu")   # APGD-CE + APGD-T   # doctest: +SKIP
    """
    from pyautoattack import AutoAttack

    _check(x, y, eps, norm)
    s = AUTOATTACK_SETTINGS[check.choice("setting", setting, AUTOATTACK_SETTINGS)] if isinstance(setting, str) \
        else setting
    if eps == 0:
        return x.detach().clone()
    model.eval()
    dev = model_device(model)
    C = int(predict_logits(model, x[:1]).shape[1])
    logger = logging.getLogger("auto-attack")
    collect = _Collect()
    logger.addHandler(collect)
    logger.propagate = False
    try:
        with timed("attacks"), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            aa = AutoAttack(model, norm=norm, eps=float(eps), version=s.version, seed=seed, device=dev,
                            attacks=list(s.attacks) if s.version == "custom" else None)
            aa.verbose = False
            if s.version == "custom":                 # as the standard version sets them
                aa.apgd.n_restarts = aa.apgd_targeted.n_restarts = aa.fab.n_restarts = 1
            aa.apgd.n_iter = aa.apgd_targeted.n_iter = aa.fab.n_iter = s.n_iter
            aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = max(1, min(s.target_classes, C - 1))
            aa.square.n_queries = s.square_queries
            x_adv, _ = aa.run_standard_evaluation(x.to(dev), y.to(dev), batch_size=batch_size)
    finally:
        logger.removeHandler(collect)
    bad = [m for m in collect.messages if "randomized" in m or "probability distribution" in m]
    if bad:
        raise RuntimeError(f"AutoAttack refused this model: {bad[0]}")
    return project(x_adv.to(x.device), x, eps, norm).detach()


# --------------------------------------------------------------------------- registry
ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fgsm": fgsm, "pgd": pgd, "bim": bim, "deepfool": deepfool, "cw": cw, "autoattack": autoattack,
}
ATTACK_NORMS = {"fgsm": NORMS, "pgd": NORMS, "bim": ("Linf",), "deepfool": NORMS, "cw": ("L2",),
                "autoattack": NORMS}


def attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **options) -> torch.Tensor:
    """Run a registered attack by name (on the model's device; the result is returned on x's device)."""
    check.choice("attack", name, ATTACKS)
    dev = model_device(model)
    with timed("attacks"):
        return ATTACKS[name](model, x.to(dev), y.to(dev), eps, **options).to(x.device)


def run_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: dict[str, dict]) -> dict[str, torch.Tensor]:
    """Adversarial versions of (x, y) for several attacks: ``{name: {"eps": ..., **options}}``."""
    out = {}
    for name, options in attacks.items():
        opts = dict(options)
        out[name] = attack(name, model, x, y, opts.pop("eps"), **opts)
    return out


def _flags_key(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, attack_name: str,
               options: dict) -> list:
    def plain(k, v):                    # a setting named or given as an object: one cache entry
        if k == "setting" and isinstance(v, str) and v in AUTOATTACK_SETTINGS:
            v = AUTOATTACK_SETTINGS[v]
        return v.__dict__ if isinstance(v, AutoAttackSetting) else v
    return [model_fingerprint(model), tensor_fingerprint(x, y), float(eps), norm, attack_name,
            {k: plain(k, v) for k, v in options.items()}]


def _verdicts(model, x, y, pred, eps, norm, attack_name, options) -> dict:
    """One shard attacked: the per-point verdicts and the attack's points (kept, so that an end-to-end attack can
    judge the same points on another model without running the attack again)."""
    x_adv = attack(attack_name, model, x, y, eps, norm=norm, **options)
    return {"robust": ((predict_logits(model, x_adv).argmax(1) == y) & (pred == y)).cpu(), "x_adv": x_adv.cpu()}


def _flags_entry(model, x, y, pred, eps, norm, attack_name, options) -> dict:
    """One shard's verdicts where a unit runs (a Ray worker, or here), as the cache entry :func:`memo` reads."""
    from .runtime import device

    return {"value": _verdicts(model.to(device()), x, y, pred, eps, norm, attack_name, options)}


# Points per cached shard of verdicts. Small, so that chapters that attack the first 200, 300 or 400 points of the
# same fixed permutation of a test set share the shards they have in common (and Ray gets more units).
VERDICT_SHARD = 100


def _shards(model, x, eps, norm, y, attack_name, batch_size, options):
    """The shards of a :func:`robust_flags` call: (slice, targets, predictions, memo key) per ``batch_size`` points."""
    check.batch("x", x)
    check.radius("eps", eps)
    check_norm(norm, ATTACK_NORMS.get(attack_name, NORMS))
    check.choice("attack_name", attack_name, ATTACKS)
    pred = predict_logits(model, x).argmax(1)
    y = pred if y is None else check.labels("y", y, len(x))
    return [(s, y[s], pred[s], _flags_key(model, x[s], y[s], eps, norm, attack_name, options))
            for s in batches(len(x), batch_size)]


def robust_flags(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", y: torch.Tensor | None = None,
                 attack_name: str = "autoattack", batch_size: int = VERDICT_SHARD, cache: bool = True,
                 **options) -> torch.Tensor:
    """Per point: True where the attack found no input within eps whose prediction differs from ``y``.

    ``y`` defaults to the model's own prediction (robustness judged against the model's answer; a
    point already predicted differently from a given ``y`` is not robust). The points are attacked in shards of
    ``batch_size``; each shard's verdicts are cached (:func:`robustbook.runtime.memo`, kind ``attacks``), keyed by
    the model, the shard's inputs and targets, the attack and its options, and the code of this module.
    :func:`robust_flags_many` computes the missing shards of several calls as units of :mod:`robustbook.executor`.

    >>> robust = robust_flags(model, x, eps=0.1, setting="cpu")          # doctest: +SKIP
    >>> robust.float().mean()                # the share of points whose answer AutoAttack cannot change
    """
    return _attacked(model, x, eps, norm, y, attack_name, batch_size, cache, options)["robust"]


def attacked_points(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", y: torch.Tensor | None = None,
                    attack_name: str = "autoattack", batch_size: int = VERDICT_SHARD, cache: bool = True,
                    **options) -> torch.Tensor:
    """The points the attack of ``robust_flags(model, x, eps, ...)`` (same arguments) found, one per input: the
    same run and the same cache entries as those verdicts, so asking for both attacks once."""
    return _attacked(model, x, eps, norm, y, attack_name, batch_size, cache, options)["x_adv"]


def _attacked(model, x, eps, norm, y, attack_name, batch_size, cache, options) -> dict:
    parts = [memo("attacks", key, lambda s=s, ys=ys, ps=ps: _verdicts(model, x[s], ys, ps, eps, norm, attack_name,
                                                                        options),
                  ("attacks",), cache=cache)
             for s, ys, ps, key in _shards(model, x, eps, norm, y, attack_name, batch_size, options)]
    return {f: torch.cat([p[f] for p in parts]).to(x.device) for f in ("robust", "x_adv")}


def verdict_units(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", y: torch.Tensor | None = None,
                  attack_name: str = "autoattack", batch_size: int = VERDICT_SHARD, **options) -> list:
    """The shards of ``robust_flags(model, x, eps, ...)`` whose verdicts are not cached, as units of
    :mod:`robustbook.executor` (one per shard of ``batch_size`` points)."""
    from .executor import Unit, portable

    units = []
    if not portable(model):
        return units                          # robust_flags computes its shards in this process
    for s, ys, ps, key in _shards(model, x, eps, norm, y, attack_name, batch_size, options):
        path = memo_path("attacks", key, ("attacks",))
        if not path.is_file():
            units.append(Unit(f"{attack_name} verdicts, points {s.start}-{s.stop}", path, "attacks", path.stem,
                              _flags_entry, (copy.deepcopy(model).cpu(), x[s].cpu(), ys.cpu(), ps.cpu(), float(eps),
                                             norm, attack_name, options)))
    return units


def robust_flags_many(requests: list[dict]) -> list[torch.Tensor]:
    """Several :func:`robust_flags` calls (``[{"model": ..., "x": ..., "eps": ..., **options}, ...]``): the
    missing shards of all of them run first as units of :mod:`robustbook.executor` — one after another here, or
    in parallel as Ray tasks with ``ROBUSTBOOK_RAY`` — then every call reads its verdicts from the cache."""
    from . import executor

    executor.run([u for r in requests for u in verdict_units(**r)], "attack verdicts")
    return [robust_flags(**r) for r in requests]


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, attack_name: str = "autoattack",
                    norm: str = "Linf", **options) -> float:
    """Share of points classified correctly and robustly: no input within eps changes the (correct) answer.

    Computed as "correct AND robust against the own prediction", so that the per-point verdicts are
    shared (through the cache) with the chapters that judge robustness against the model's answer.
    """
    check.labels("y", y, len(x))
    correct = predict_logits(model, x).argmax(1) == y
    robust = robust_flags(model, x, eps, norm, attack_name=attack_name, **options)
    return (correct & robust).double().mean().item()


def robustness_curve(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, eps_grid,
                     attacks=("fgsm", "pgd"), norm: str = "Linf", **options) -> list[dict]:
    """Robust accuracy of each model under each attack at each radius, as records (verdicts cached as
    :func:`robust_flags` caches them, so a rebuild does not attack again)."""
    rows = []
    for model_name, model in models.items():
        for attack_name in attacks:
            for eps in eps_grid:
                opts = options if attack_name == "pgd" else {}
                acc = robust_accuracy(model, x, y, float(eps), attack_name, norm=norm, **opts) \
                    if eps > 0 else accuracy(model, x, y)
                rows.append({"model": model_name, "attack": attack_name, "eps": float(eps), "robust_accuracy": acc})
    return rows
