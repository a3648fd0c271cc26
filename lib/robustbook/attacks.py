"""Adversarial attacks, batched over the inputs, on any device.

* ``fgsm``, ``pgd``, ``bim``: our short implementations for the Linf and L2 threat models. PGD keeps,
  per point, the best iterate over every step and restart (a misclassified one, else the highest loss).
* ``deepfool`` (L2 or Linf) and ``cw`` (Carlini & Wagner L2 with a binary search over its constant):
  minimum-norm attacks, capped to a budget when one is given.
* ``fab``: the minimum-norm attack FAB (Croce & Hein, 2020) from pyautoattack, run as a batch of
  targeted runs towards the classes whose linearised boundary is nearest, refined by bisection; it
  returns distances AND a success mask, and never reseeds the global random generator.
* ``autoattack``: pyautoattack's AutoAttack (the papers' robust-accuracy yardstick), and
  :func:`robust_flags` / :func:`robust_accuracy`, which cache its per-point verdicts.

Every attack takes ``(model, x, y, eps, ...)`` and returns adversarial inputs in the box [0, 1]^d;
the registry :data:`ATTACKS` maps names to them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import validate as check
from .runtime import (batches, cache_dir, cache_load, cache_save, code_hash, model_device, model_fingerprint,
                      stable_hash, tensor_fingerprint, timed)

NORMS = ("Linf", "L2")


def check_norm(norm: str, allowed=NORMS) -> str:
    return check.choice("norm", norm, allowed)


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if check_norm(norm) == "Linf" else flat.norm(dim=1)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (like.dim() - 1))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project onto the eps-ball around ``x`` (in ``norm``) intersected with [0, 1]^d."""
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / lp_norm(delta, "L2").clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * _expand(scale, delta)
    return (x + delta).clamp(0.0, 1.0)


def _step(grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return step_size * grad.sign()
    g = lp_norm(grad, "L2").clamp_min(1e-12)
    return step_size * grad / _expand(g, grad)


def _generator(seed: int | None) -> torch.Generator | None:
    return torch.Generator().manual_seed(seed) if seed is not None else None


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator | None) -> torch.Tensor:
    if norm == "Linf":
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    else:  # uniform in the L2 ball
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=gen)
        direction = direction / _expand(lp_norm(direction, "L2").clamp_min(1e-12), direction)
        radius = eps * torch.rand(len(x), generator=gen) ** (1.0 / d)
        noise = direction * _expand(radius, direction)
    return (x + noise.to(x.device)).clamp(0.0, 1.0)


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
    """Fast gradient sign method (Goodfellow et al., 2015): one step of size eps (normalised for L2)."""
    _check(x, y, eps, norm)
    if eps == 0:
        return x.detach().clone()
    grad, _ = _input_grad(model, x, y, loss_fn)
    return project(x + _step(grad, eps, norm), x, eps, norm).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        steps: int = 20, step_size: float | None = None, restarts: int = 1,
        random_start: bool = True, loss_fn: Callable = _ce, seed: int | None = 0,
        start: torch.Tensor | None = None, keep_best: bool = True) -> torch.Tensor:
    """Projected gradient ascent on the loss inside the eps-ball and the box (Madry et al., 2018).

    As an evaluation attack (``keep_best``, the default) it keeps, per point, the best iterate over every
    step of every restart: the first misclassified one (when ``y`` holds labels), otherwise the one with the
    highest loss. As the inner maximisation of adversarial training (``keep_best=False``, one restart) it
    returns the last iterate, as Madry et al.'s and TRADES's reference code do. ``step_size`` defaults to
    2.5 eps / steps. ``y`` may be any target that ``loss_fn`` accepts (TRADES passes clean logits);
    ``start`` replaces the first run's starting point.
    """
    _check(x, y, eps, norm)
    check.number("steps", steps, low=1, integer=True)
    check.number("restarts", restarts, low=1, integer=True)
    if not keep_best and restarts > 1:
        raise check.InvalidArgument("restarts > 1 needs keep_best=True (which restart's last iterate would count?)")
    if eps == 0:
        return x.detach().clone()
    step_size = check.number("step_size", step_size, low=0, low_open=True) if step_size is not None \
        else 2.5 * eps / steps
    if not keep_best:
        gen = _generator(seed)
        x = x.detach()
        x_adv = project(start.detach(), x, eps, norm) if start is not None else \
            (_random_start(x, eps, norm, gen) if random_start else x.clone())
        for _ in range(steps):
            grad, _logits = _input_grad(model, x_adv, y, loss_fn)
            x_adv = project(x_adv + _step(grad, step_size, norm), x, eps, norm).detach()
        return x_adv
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
        new_best = torch.where(_expand(take, candidate), candidate, old_best)
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
            x_adv = _random_start(x, eps, norm, gen) if random_start else x.clone()
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
            stepped = project(xa + _step(grad, step_size, norm), xo, eps, norm).detach()
            if rows is None:
                x_adv = stepped
            else:
                x_adv[rows] = stepped
        if labels and bool(fooled.all()):
            break
    return best


def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        steps: int | None = None, step_size: float | None = None, **_) -> torch.Tensor:
    """Basic iterative method (Kurakin et al., 2017), Linf: from x itself (no random start), step
    alpha = 1/255 and min(255 eps + 4, 1.25 * 255 eps) iterations, as the paper sets them for pixels in [0, 1]."""
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
def _jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        logits, grads = _jacobian(model, x_adv[idx])
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
            step = _expand(fl / dl ** 2, wl) * wl
        else:
            step = _expand(fl / dl, wl) * wl.sign()
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
                best = torch.where(_expand(better, x), x_adv.detach(), best)
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
    """Logits of ``x`` in eval mode, computed on the model's device batch by batch, returned on x's device."""
    model.eval()
    dev = model_device(model)
    if len(x) == 0:
        raise check.InvalidArgument("x is an empty batch; pass at least one input")
    return torch.cat([model(x[s].to(dev)).to(x.device) for s in batches(len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    check.labels("y", y, len(x))
    return (predict_logits(model, x).argmax(1) == y).double().mean().item()


# --------------------------------------------------------------------------- FAB
@dataclass
class MinimumNorm:
    """Result of a minimum-norm attack.

    ``distance[i]`` is ``||x_adv[i] - x[i]||`` where ``success[i]``; NaN where the attack found no
    adversarial point. ``bound`` is the largest distance the search covers (the diameter of the box
    [0, 1]^d in the norm); :attr:`margin` counts a failure as a margin of at least ``bound`` — the most
    robust kind of point — so that no point is ever dropped or zeroed.
    """

    x_adv: torch.Tensor
    distance: torch.Tensor
    success: torch.Tensor
    bound: float = float("inf")

    @property
    def failures(self) -> int:
        return int((~self.success).sum())

    @property
    def margin(self) -> torch.Tensor:
        """Distances, with every failed point at ``bound`` (a lower bound on its margin, above every success)."""
        return torch.where(self.success, self.distance, torch.full_like(self.distance, self.bound))


def box_diameter(shape, norm: str) -> float:
    """The largest distance between two points of [0, 1]^d in ``norm``."""
    return 1.0 if norm == "Linf" else math.sqrt(math.prod(shape))


def linear_boundary_distance(gap: torch.Tensor, v: torch.Tensor, x: torch.Tensor, norm: str = "Linf",
                             box: bool = True) -> torch.Tensor:
    """Distance from ``x`` to the boundaries ``gap_j - v_j . delta = 0`` of linear class gaps, per class.

    ``gap`` (n, C) >= 0, ``v`` (n, C, d) with v_j = w_pred - w_j, ``x`` (n, d) in [0, 1]^d. For Linf with
    ``box``: moving by ||delta||_inf <= t lowers gap_j by at most D(t) = sum_k |v_k| min(t, c_k), where c_k
    is the room in the helpful direction (x_k when v_k > 0, 1 - x_k when v_k < 0); D is piecewise linear,
    concave and increasing, and sorting the c_k gives the smallest t with D(t) >= gap_j (inf when the box
    does not allow it). Without the box (or for L2): gap_j / ||v_j||_dual. Computed in float64.
    """
    gap, v, x = gap.double(), v.double(), x.double()
    if norm == "L2":
        return gap / v.norm(dim=-1).clamp_min(1e-300)
    a = v.abs()
    if not box:
        return gap / a.sum(-1).clamp_min(1e-300)
    room = torch.where(v > 0, x[:, None, :], 1.0 - x[:, None, :])
    room = torch.where(v == 0, torch.zeros_like(room), room)
    room, order = room.sort(-1)
    a = a.gather(-1, order)
    before = torch.cumsum(a * room, -1) - a * room             # sum_{k<m} a_k c_k
    after = torch.flip(torch.cumsum(torch.flip(a, [-1]), -1), [-1])   # sum_{k>=m} a_k
    reach = before + room * after                                # D at each breakpoint
    ok = reach >= gap[..., None]
    m = ok.double().argmax(-1, keepdim=True)
    t = ((gap[..., None] - before.gather(-1, m)) / after.gather(-1, m).clamp_min(1e-300)).squeeze(-1)
    return torch.where(ok.any(-1), t.clamp_min(0), torch.full_like(t, float("inf")))


def nearest_targets(model: nn.Module, x: torch.Tensor, pred: torch.Tensor, k: int, norm: str) -> torch.Tensor:
    """The ``k`` classes whose linearised (box-constrained) boundary is nearest to each x: (n, k)."""
    logits, J = _jacobian(model, x)
    rows = torch.arange(len(x), device=x.device)
    gap = logits.gather(1, pred[:, None]) - logits
    v = (J[rows, pred][:, None] - J).flatten(2)
    dist = linear_boundary_distance(gap, v, x.flatten(1), norm)
    dist[rows, pred] = float("inf")
    return dist.argsort(dim=1, stable=True)[:, :k]


def _fab_class():
    from pyautoattack.fab_pt import FABAttack_PT

    class PerPointTargets(FABAttack_PT):
        """pyautoattack's FAB with a target class per point (its own targeted mode takes one logit rank)."""

        targets: torch.Tensor | None = None

        def get_diff_logits_grads_batch_targeted(self, imgs, la, la_target):
            return super().get_diff_logits_grads_batch_targeted(imgs, la, self.targets)

    return PerPointTargets


@torch.no_grad()
def bisect_to_boundary(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                       steps: int = 20) -> torch.Tensor:
    """Move each adversarial point along the segment from ``x`` towards the first flip.

    Keeps the invariant "upper end misclassified", so the result is a real adversarial point
    at most as far as ``x_adv`` (and in the box, which is convex). Points where ``x_adv``
    is not adversarial are returned unchanged.
    """
    lo = torch.zeros(len(x), device=x.device)
    hi = torch.ones(len(x), device=x.device)
    direction = x_adv - x
    for _ in range(steps):
        mid = (lo + hi) / 2
        adv = model(x + _expand(mid, x) * direction).argmax(1) != y
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return x + _expand(hi, x) * direction


def fab(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, norm: str = "Linf",
        targeted: int = 3, untargeted: int = 0, n_iter: int = 100, bisection_steps: int = 20,
        alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, seed: int = 0,
        batch_size: int = 256) -> MinimumNorm:
    """Minimum-norm adversarial points with FAB (Croce & Hein, 2020), pyautoattack's implementation.

    ``y`` defaults to the model's own prediction, so the distance estimates the input margin.
    pyautoattack's own ``perturb`` stops improving a point as soon as one run succeeds (right for
    robust accuracy at a fixed eps, wrong for a minimum norm), and its targeted mode picks target
    classes by logit rank. Here: ``targeted`` runs, one per class among the ``targeted`` classes whose
    linearised box-constrained boundary is nearest to x (ranked from one Jacobian), batched together;
    plus ``untargeted`` runs (the first from x, the rest from random starts), which is
    pyautoattack's default with ``targeted=0, untargeted=1, bisection_steps=0``. The closest
    adversarial point over all runs is kept and pulled back along its segment to the first
    prediction flip. The global random generator is left as it was.
    """
    check.batch("x", x)
    check_norm(norm)
    for name, value in (("targeted", targeted), ("untargeted", untargeted), ("n_iter", n_iter),
                        ("bisection_steps", bisection_steps)):
        check.number(name, value, low=0, integer=True)
    if targeted + untargeted == 0:
        raise check.InvalidArgument("fab needs at least one run: targeted + untargeted must be >= 1")
    model.eval()
    dev = model_device(model)
    parts = []
    with timed("attacks"), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in batches(len(x), batch_size):
            yb = None if y is None else y[s].to(dev)
            parts.append(_fab_batch(model, x[s].to(dev), yb, norm, targeted, untargeted, n_iter, bisection_steps,
                                    alpha_max, eta, beta, seed))
    out = MinimumNorm(*(torch.cat([getattr(p, f) for p in parts]).to(x.device)
                        for f in ("x_adv", "distance", "success")), bound=box_diameter(x.shape[1:], norm))
    return out


def _fab_batch(model, x, y, norm, targeted, untargeted, n_iter, bisection_steps, alpha_max, eta, beta, seed):
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred if y is None else y
    C = int(model(x[:1]).shape[1]) if len(x) else 2
    k = min(targeted, C - 1)
    atk = _fab_class()(model, norm=norm, n_restarts=1, n_iter=n_iter, eps=box_diameter(x.shape[1:], norm),
                       alpha_max=alpha_max, eta=eta, beta=beta, seed=seed, device=x.device)
    best = x.detach().clone()
    dist = torch.full((len(x),), float("inf"), device=x.device)

    def keep(candidates: torch.Tensor, labels: torch.Tensor):
        nonlocal best, dist
        with torch.no_grad():
            ok = model(candidates).argmax(1) != labels
        d = torch.where(ok, lp_norm(candidates - x.repeat(len(candidates) // len(x), *[1] * (x.dim() - 1)), norm),
                        torch.full_like(ok, float("inf"), dtype=dist.dtype))
        d, candidates = d.view(-1, len(x)), candidates.view(-1, *x.shape)
        j = d.argmin(0)
        closest = d.min(0).values
        better = closest < dist
        pick = candidates[j, torch.arange(len(x), device=x.device)]
        best = torch.where(_expand(better, x), pick, best)
        dist = torch.where(better, closest, dist)

    if k:
        # pyautoattack attacks only points predicted as y; an already misclassified point stays at x
        # (distance 0), so the targeted runs take the others, with their targets in the same order
        sel = torch.nonzero(pred == y).flatten()
        if len(sel):
            targets = nearest_targets(model, x[sel], y[sel], k, norm)         # (m, k)
            atk.targets = targets.T.reshape(-1)
            atk.target_class = 2                                    # unused: the targets above replace it
            xs, ys = x[sel].repeat(k, *[1] * (x.dim() - 1)), y[sel].repeat(k)
            adv = x.repeat(k, *[1] * (x.dim() - 1))
            idx = (sel[None, :] + len(x) * torch.arange(k, device=x.device)[:, None]).reshape(-1)
            adv[idx] = atk.attack_single_run(xs, ys, use_rand_start=False, is_targeted=True)
            keep(adv, y.repeat(k))
    for r in range(untargeted):
        keep(atk.attack_single_run(x, y, use_rand_start=r > 0, is_targeted=False), y)
    success = torch.isfinite(dist)
    if bisection_steps:
        refined = bisect_to_boundary(model, x, best, y, bisection_steps)
        best = torch.where(_expand(success, x), refined, best)
    with torch.no_grad():
        success = success & (model(best).argmax(1) != y)
    distance = torch.where(success, lp_norm(best - x, norm), torch.full_like(dist, float("nan")))
    return MinimumNorm(best.detach(), distance.detach(), success)


def fab_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
               seed: int = 0, **options) -> torch.Tensor:
    """FAB as a budgeted attack: the minimum-norm point where it lies within eps, else x itself."""
    _check(x, y, eps, norm)
    r = fab(model, x, y, norm, seed=seed, **options)
    inside = r.success & (r.distance <= eps)
    return torch.where(_expand(inside, x), project(r.x_adv, x, eps, norm), x)


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
            return "AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square)"
        return (f"AutoAttack reduced to {', '.join(a.upper() for a in self.attacks)} "
                f"({self.n_iter} iterations, {self.target_classes} target classes)")


AUTOATTACK_SETTINGS = {
    "standard": AutoAttackSetting(),
    # the cpu profile's reduction: pyautoattack's standard attacks without FAB-T and Square, 3 targets
    "cpu": AutoAttackSetting("custom", ("apgd-ce", "apgd-t"), target_classes=3),
    "smoke": AutoAttackSetting("custom", ("apgd-ce",), target_classes=1, n_iter=10),
}


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
    "fgsm": fgsm, "pgd": pgd, "bim": bim, "deepfool": deepfool, "cw": cw, "fab": fab_attack,
    "autoattack": autoattack,
}
ATTACK_NORMS = {"fgsm": NORMS, "pgd": NORMS, "bim": ("Linf",), "deepfool": NORMS, "cw": ("L2",),
                "fab": NORMS, "autoattack": NORMS}


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


def robust_flags(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", y: torch.Tensor | None = None,
                 attack_name: str = "autoattack", batch_size: int = 1000, cache: bool = True,
                 **options) -> torch.Tensor:
    """Per point: True where the attack found no input within eps whose prediction differs from ``y``.

    ``y`` defaults to the model's own prediction (robustness judged against the model's answer; a
    point already predicted differently from a given ``y`` is not robust). Results are cached
    under ``cache_dir()/attacks``, keyed by the model, the inputs, the targets, the attack and its
    options, and the code of this module.
    """
    check.batch("x", x)
    check.radius("eps", eps)
    check_norm(norm, ATTACK_NORMS.get(attack_name, NORMS))
    check.choice("attack_name", attack_name, ATTACKS)
    pred = predict_logits(model, x).argmax(1)
    y = pred if y is None else check.labels("y", y, len(x))
    key = stable_hash([model_fingerprint(model), tensor_fingerprint(x, y), float(eps), norm, attack_name,
                       {k: (v.__dict__ if isinstance(v, AutoAttackSetting) else v) for k, v in options.items()},
                       code_hash("attacks")])
    path = cache_dir() / "attacks" / f"{attack_name}-{key}.pt"
    if cache:
        stored = cache_load(path, "robust_flags", key, validate=lambda p: _same_length(p["robust"], len(x)))
        if stored is not None:
            return stored["robust"].to(x.device)
    flags = []
    for s in batches(len(x), batch_size):
        x_adv = attack(attack_name, model, x[s], y[s], eps, norm=norm, **options)
        flags.append((predict_logits(model, x_adv).argmax(1) == y[s]) & (pred[s] == y[s]))
    robust = torch.cat(flags)
    if cache:
        cache_save(path, {"robust": robust.cpu()}, "robust_flags", key,
                   {"attack": attack_name, "eps": eps, "norm": norm, "points": len(x)})
    return robust


def _same_length(t: torch.Tensor, n: int) -> None:
    if len(t) != n:
        raise ValueError(f"holds {len(t)} points, expected {n}")


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
    """Robust accuracy of each model under each attack at each radius, as records."""
    rows = []
    for model_name, model in models.items():
        for attack_name in attacks:
            for eps in eps_grid:
                opts = options if attack_name == "pgd" else {}
                acc = robust_accuracy(model, x, y, float(eps), attack_name, norm=norm, cache=False, **opts) \
                    if eps > 0 else accuracy(model, x, y)
                rows.append({"model": model_name, "attack": attack_name, "eps": float(eps), "robust_accuracy": acc})
    return rows
