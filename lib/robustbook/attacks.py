"""Adversarial attacks, batched over the inputs.

* ``fgsm`` and ``pgd`` for the Linf and L2 threat models (our own short implementations,
  tested to stay inside the eps-ball and the data box [0, 1]);
* ``fab``: the minimum-norm attack FAB from pyautoattack, run as a best-of over restarts
  and target classes, refined by bisection, and returning distances AND a success mask.

Every attack takes ``(model, x, y, eps, ...)`` and returns adversarial inputs; the registry
:data:`ATTACKS` maps names to them.  Points live in the box [0, 1]^d.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("Linf", "L2")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid choices: {', '.join(NORMS)}")
    return norm


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


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator | None) -> torch.Tensor:
    if norm == "Linf":
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    else:  # uniform in the L2 ball
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=gen)
        direction = direction / _expand(lp_norm(direction, "L2"), x)
        radius = eps * torch.rand(len(x), generator=gen) ** (1.0 / d)
        noise = direction * _expand(radius, x)
    return (x + noise.to(x.device)).clamp(0.0, 1.0)


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad, logits.detach()


def _ce(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
         loss_fn: Callable = _ce) -> torch.Tensor:
    """One gradient step of size eps (sign step for Linf, normalised step for L2)."""
    check_norm(norm)
    grad, _ = _input_grad(model, x, y, loss_fn)
    return project(x + _step(grad, eps, norm), x, eps, norm).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf",
        steps: int = 20, step_size: float | None = None, restarts: int = 1,
        random_start: bool = True, loss_fn: Callable = _ce, seed: int | None = 0,
        start: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss inside the eps-ball and the box (Madry et al.).

    Untargeted: with ``restarts > 1`` a point keeps the first run that misclassifies it
    (otherwise the run with the highest final loss).  ``step_size`` defaults to 2.5 eps / steps.
    ``y`` is usually a label vector; any target that ``loss_fn`` accepts works (TRADES
    passes clean logits).  ``start`` replaces the first run's starting point.
    """
    check_norm(norm)
    if eps <= 0:
        return x.detach().clone()
    step_size = step_size if step_size is not None else 2.5 * eps / steps
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    best = x.detach().clone()
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for r in range(restarts):
        if r == 0 and start is not None:
            x_adv = project(start.detach(), x, eps, norm)
        else:
            x_adv = _random_start(x, eps, norm, gen) if random_start else x.detach().clone()
        for _ in range(steps):
            grad, _ = _input_grad(model, x_adv, y, loss_fn)
            x_adv = project(x_adv + _step(grad, step_size, norm), x, eps, norm).detach()
        with torch.no_grad():
            logits = model(x_adv)
            loss = loss_fn(logits, y)
            wrong = logits.argmax(1) != y if y.dim() == 1 else torch.zeros_like(loss, dtype=torch.bool)
        take = (~fooled) & (wrong | (loss > best_loss))
        best[take], best_loss[take] = x_adv[take], loss[take]
        fooled |= wrong
        if bool(fooled.all()):
            break
    return best


def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "Linf", steps: int = 10,
        step_size: float | None = None, **_) -> torch.Tensor:
    """Basic iterative method (Kurakin et al.): PGD from x itself, without random start or restarts."""
    return pgd(model, x, y, eps, norm, steps=steps, step_size=step_size, restarts=1, random_start=False)


def _cap(x_adv: torch.Tensor, x: torch.Tensor, eps: float | None) -> torch.Tensor:
    """Project a minimum-norm attack's output onto the L2 eps-ball (its budget), when one is given."""
    if eps is None or eps == float("inf"):
        return x_adv
    return project(x_adv, x, eps, "L2")


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None, norm: str = "L2",
             steps: int = 50, overshoot: float = 0.02, **_) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al., 2016), L2, all classes, batched.

    Each step linearises every logit difference at the current point and jumps to the nearest
    linearised boundary; points stop once misclassified.  The total step is scaled by
    (1 + overshoot).  With ``eps`` the result is projected onto the L2 eps-ball (the attacked test
    sets of chapter 5 have a budget); without it, DeepFool is a minimum-norm attack.
    """
    model.eval()
    n = len(x)
    r_tot = torch.zeros_like(x)
    x_adv = x.detach().clone()
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    for _ in range(steps):
        xa = x_adv[active].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            C = logits.shape[1]
            grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=k < C - 1)[0]
                                 for k in range(C)], 1)                       # (m, C, *shape)
        ya = y[active]
        still = logits.argmax(1) == ya
        idx = torch.nonzero(active).flatten()
        active[idx[~still]] = False
        if not still.any():
            break
        logits, grads, ya, idx = logits[still].detach(), grads[still], ya[still], idx[still]
        f = logits - logits.gather(1, ya[:, None])
        w = grads - grads[torch.arange(len(ya)), ya][:, None]
        wn = w.flatten(2).norm(dim=2).clamp_min(1e-12)
        dist = f.abs() / wn
        dist[torch.arange(len(ya)), ya] = float("inf")
        l = dist.argmin(1)
        r = ((f.abs()[torch.arange(len(ya)), l] + 1e-4) / wn[torch.arange(len(ya)), l] ** 2)
        r_tot[idx] = r_tot[idx] + r.view(-1, *[1] * (x.dim() - 1)) * w[torch.arange(len(ya)), l]
        x_adv[idx] = (x[idx] + (1 + overshoot) * r_tot[idx]).clamp(0, 1)
    return _cap(x_adv.detach(), x, eps)


def cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None, norm: str = "L2",
       c: float = 1.0, kappa: float = 0.0, steps: int = 100, lr: float = 0.01, **_) -> torch.Tensor:
    """Carlini & Wagner L2 attack with a fixed trade-off constant ``c`` (no binary search).

    Minimises ||x' - x||^2 + c * max(Z_y - max_{i != y} Z_i, -kappa) over x' = (tanh(w) + 1) / 2
    with Adam, keeping the closest misclassified iterate.  The best other logit is taken with the
    true class masked to -inf, so negative logits are handled (torchattacks 3.5.1 multiplies by a
    one-hot mask instead, which picks the masked 0 when every logit is negative).  With ``eps``
    the result is projected onto the L2 eps-ball.
    """
    model.eval()
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).detach().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best = x.detach().clone()
    best_l2 = torch.full((len(x),), float("inf"), device=x.device)
    for _ in range(steps):
        with torch.enable_grad():
            x_adv = (torch.tanh(w) + 1) / 2
            logits = model(x_adv)
            real = logits.gather(1, y[:, None]).squeeze(1)
            other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
            l2 = (x_adv - x).flatten(1).pow(2).sum(1)
            loss = (l2 + c * (real - other).clamp_min(-kappa)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            wrong = logits.argmax(1) != y
            better = wrong & (l2 < best_l2)
            best[better], best_l2[better] = x_adv.detach()[better], l2[better]
    return _cap(best, x, eps)


ATTACKS: dict[str, Callable[..., torch.Tensor]] = {"fgsm": fgsm, "pgd": pgd, "bim": bim, "deepfool": deepfool, "cw": cw}


def attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **options) -> torch.Tensor:
    """Run a registered attack by name."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACKS)}")
    return ATTACKS[name](model, x, y, eps, **options)


def run_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: dict[str, dict]) -> dict[str, torch.Tensor]:
    """Adversarial versions of (x, y) for several attacks: ``{name: {"eps": ..., **options}}``."""
    out = {}
    for name, options in attacks.items():
        opts = dict(options)
        out[name] = attack(name, model, x, y, opts.pop("eps"), **opts)
    return out


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict_logits(model, x).argmax(1) == y).double().mean().item()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                    attack_name: str = "pgd", batch_size: int = 1024, **options) -> float:
    """Fraction of points still correctly classified after the attack."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(attack_name, model, xb, yb, eps, **options)
        correct += (predict_logits(model, x_adv).argmax(1) == yb).sum().item()
    return correct / len(x)


# --------------------------------------------------------------------------- FAB
@dataclass
class MinimumNorm:
    """Result of a minimum-norm attack.

    ``distance[i]`` is ``||x_adv[i] - x[i]||`` where ``success[i]``; NaN where the attack
    found no adversarial point (never 0, which would read as "not robust at all").
    """

    x_adv: torch.Tensor
    distance: torch.Tensor
    success: torch.Tensor

    @property
    def failures(self) -> int:
        return int((~self.success).sum())


@torch.no_grad()
def bisect_to_boundary(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                       steps: int = 20) -> torch.Tensor:
    """Move each adversarial point along the segment from ``x`` towards the first flip.

    Keeps the invariant "upper end misclassified", so the result is a real adversarial point
    at most as far as ``x_adv`` (and in the box, which is convex).  Points where ``x_adv``
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
        restarts: int = 1, n_iter: int = 100, target_classes: int = 0, bisection_steps: int = 20,
        alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, seed: int = 0,
        batch_size: int = 512) -> MinimumNorm:
    """Minimum-norm adversarial points with FAB (Croce & Hein, 2020), pyautoattack's implementation.

    ``y`` defaults to the model's own prediction, so the distance estimates the input margin.
    pyautoattack's ``perturb`` stops improving a point as soon as one restart succeeds,
    which suits robust accuracy at a fixed eps but not a minimum norm; here every run
    (``restarts`` untargeted runs, the first from x itself, then one targeted run for each
    of the ``target_classes`` highest-ranked other classes) is kept when it is closer.
    Finally each point is pulled back along its segment to the first prediction flip.
    """
    from pyautoattack.fab_pt import FABAttack_PT

    check_norm(norm)
    model.eval()
    if len(x) > batch_size:
        parts = [fab(model, x[i:i + batch_size], None if y is None else y[i:i + batch_size], norm,
                     restarts, n_iter, target_classes, bisection_steps, alpha_max, eta, beta, seed,
                     batch_size) for i in range(0, len(x), batch_size)]
        return MinimumNorm(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x_adv", "distance", "success")))
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred if y is None else y
    fab_attack = FABAttack_PT(model, norm=norm, n_restarts=1, n_iter=n_iter, eps=1.0, alpha_max=alpha_max,
                              eta=eta, beta=beta, seed=seed, device=x.device, n_target_classes=max(target_classes, 1))
    best = x.detach().clone()
    dist = torch.full((len(x),), float("inf"), device=x.device)
    runs = [(False, False, None)] + [(True, False, None)] * (restarts - 1)
    runs += [(False, True, rank) for rank in range(2, target_classes + 2)]
    torch.manual_seed(seed)
    for rand_start, targeted, rank in runs:
        if rand_start:  # random starts are drawn in a ball of half this radius
            found = dist[torch.isfinite(dist)]
            fab_attack.eps = float(found.max()) if len(found) else 1.0
        if targeted:
            fab_attack.target_class = rank
        adv = fab_attack.attack_single_run(x, y, use_rand_start=rand_start, is_targeted=targeted)
        with torch.no_grad():
            ok = model(adv).argmax(1) != y
        d = lp_norm(adv - x, norm)
        better = ok & (d < dist)
        best[better], dist[better] = adv[better], d[better]
    success = torch.isfinite(dist)
    if bisection_steps:
        refined = bisect_to_boundary(model, x, best, y, bisection_steps)
        best = torch.where(_expand(success, x), refined, best)
    with torch.no_grad():
        success = success & (model(best).argmax(1) != y)
    distance = torch.where(success, lp_norm(best - x, norm), torch.full_like(dist, float("nan")))
    return MinimumNorm(best.detach(), distance.detach(), success)


def robustness_curve(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, eps_grid,
                     attacks=("fgsm", "pgd"), norm: str = "Linf", progress: bool = True, **options):
    """Robust accuracy of each model under each attack at each radius, as a long DataFrame."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    jobs = [(m, a, float(e)) for m in models for a in attacks for e in eps_grid]
    for model_name, attack_name, eps in tqdm(jobs, desc="robustness curve", disable=not progress, leave=False):
        opts = options if attack_name == "pgd" else {}
        acc = robust_accuracy(models[model_name], x, y, eps, attack_name, norm=norm, **opts)
        rows.append({"model": model_name, "attack": attack_name, "eps": eps, "robust_accuracy": acc})
    return pd.DataFrame(rows)
