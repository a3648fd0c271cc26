"""Margins: the logit margin (free), the input margin (estimated), and exact margins of linear models.

* ``logit_margin(logits)``: top-1 minus top-2 logit, one forward pass.
* ``input_margin(model, x, norm)``: distance to the nearest decision boundary, estimated
  with the minimum-norm attack FAB (an upper bound: FAB returns a real adversarial point);
  a point where FAB fails is counted at the search's bound, never dropped or zeroed.
* ``fab``: FAB (Croce & Hein, 2020) from pyautoattack, run as a batch of targeted runs towards the
  classes whose linearised (box-constrained) boundary is nearest — :func:`nearest_targets`,
  :func:`linear_boundary_distance` — refined by :func:`bisect_to_boundary`; it returns distances AND a
  success mask (:class:`MinimumNorm`), and never reseeds the global random generator.
* ``linear_input_margin(weight, bias, x)``: the exact Linf input margin of a linear
  classifier inside the data box [0, 1]^d, the yardstick for FAB; :func:`check_against_linear`
  compares estimators with it.
* ``feature_margin``: the exact margin of a linear head in its own input space.

>>> found = input_margin(model, x)                                     # doctest: +SKIP
>>> found.margin.median(), found.failures                              # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from . import validate as check
from .attacks import check_norm, jacobian, lp_norm, per_point
from .runtime import batches, memo, memo_path, model_device, model_fingerprint, tensor_fingerprint, timed

# The book's input-margin estimator (chapters 1, 2 and 6 share its cached results): targeted FAB
# runs towards the 3 classes whose linearised boundary is nearest, 50 iterations, then bisection.
MARGIN_FAB = {"targeted": 3, "untargeted": 0, "n_iter": 50}


# --------------------------------------------------------------------------- minimum-norm results and geometry
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
    logits, J = jacobian(model, x)
    rows = torch.arange(len(x), device=x.device)
    gap = logits.gather(1, pred[:, None]) - logits
    v = (J[rows, pred][:, None] - J).flatten(2)
    dist = linear_boundary_distance(gap, v, x.flatten(1), norm)
    dist[rows, pred] = float("inf")
    return dist.argsort(dim=1, stable=True)[:, :k]


# --------------------------------------------------------------------------- FAB
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
        adv = model(x + per_point(mid, x) * direction).argmax(1) != y
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return x + per_point(hi, x) * direction


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

    >>> found = fab(model, x)                     # margins of the model's own predictions   # doctest: +SKIP
    >>> found.distance[found.success], found.failures                    # doctest: +SKIP
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
        best = torch.where(per_point(better, x), pick, best)
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
        best = torch.where(per_point(success, x), refined, best)
    with torch.no_grad():
        success = success & (model(best).argmax(1) != y)
    distance = torch.where(success, lp_norm(best - x, norm), torch.full_like(dist, float("nan")))
    return MinimumNorm(best.detach(), distance.detach(), success)


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 logit minus top-2 logit, per row (0 on ties)."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise check.InvalidArgument(f"logits must have shape (N, C) with C >= 2 classes; got {tuple(logits.shape)}")
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def _margin_shards(model: nn.Module, x: torch.Tensor, norm: str, fab_options: dict):
    """(slice, FAB options, memo key) per shard of an :func:`input_margin` call: FAB's own batches (``batch_size``,
    256 by default), so a sharded estimate equals one call on all points."""
    check.batch("x", x)
    check_norm(norm)
    options = {**MARGIN_FAB, **fab_options}
    size = options.get("batch_size", 256)
    return [(s, options, [model_fingerprint(model), tensor_fingerprint(x[s]), norm, options])
            for s in batches(len(x), size)]


def _margin_payload(r: MinimumNorm) -> dict:
    return {"x_adv": r.x_adv.cpu(), "distance": r.distance.cpu(), "success": r.success.cpu(), "bound": r.bound}


def _margin_entry(model: nn.Module, x: torch.Tensor, norm: str, options: dict) -> dict:
    """One shard's margins where a unit runs (a Ray worker, or here), as the cache entry :func:`memo` reads."""
    from .runtime import device

    return {"value": _margin_payload(fab(model.to(device()), x, None, norm=norm, **options))}


def input_margin(model: nn.Module, x: torch.Tensor, norm: str = "Linf", cache: bool = True,
                 **fab_options) -> MinimumNorm:
    """Estimate the input margin of the model's own prediction with FAB (:data:`MARGIN_FAB` by default).

    Returns distances with a success mask (failed points: NaN distance, and ``.margin`` at the
    search's bound). FAB is the most expensive step of the book, so results are cached per shard of FAB's
    batch (:func:`robustbook.runtime.memo`, kind ``margins``), keyed by the model (its layers and every weight
    and buffer), the inputs, the norm, the FAB options and the code of this module and of the attacks.
    :func:`input_margin_many` computes the missing shards of several calls as units of :mod:`robustbook.executor`.
    """
    parts = [memo("margins", key, lambda s=s, o=o: _margin_payload(fab(model, x[s], None, norm=norm, **o)),
                  ("attacks", "margins"), cache=cache)
             for s, o, key in _margin_shards(model, x, norm, fab_options)]
    return MinimumNorm(*(torch.cat([p[f] for p in parts]).to(x.device) for f in ("x_adv", "distance", "success")),
                       bound=float(parts[0]["bound"]))


def margin_units(model: nn.Module, x: torch.Tensor, norm: str = "Linf", **fab_options) -> list:
    """The shards of ``input_margin(model, x, norm, ...)`` that are not cached, as units of
    :mod:`robustbook.executor`."""
    from .executor import Unit, portable

    units = []
    if not portable(model):
        return units                          # input_margin computes its shards in this process
    for s, options, key in _margin_shards(model, x, norm, fab_options):
        path = memo_path("margins", key, ("attacks", "margins"))
        if not path.is_file():
            units.append(Unit(f"FAB margins, points {s.start}-{s.stop}", path, "margins", path.stem, _margin_entry,
                              (copy.deepcopy(model).cpu(), x[s].cpu(), norm, options)))
    return units


def input_margin_many(requests: list[dict]) -> list[MinimumNorm]:
    """Several :func:`input_margin` calls (``[{"model": ..., "x": ..., "norm": ..., **fab_options}, ...]``): the
    missing shards of all of them run first as units of :mod:`robustbook.executor` (Ray tasks in parallel with
    ``ROBUSTBOOK_RAY``), then every call reads its margins from the cache."""
    from . import executor

    executor.run([u for r in requests for u in margin_units(**r)], "FAB margins")
    return [input_margin(**r) for r in requests]


def _pair_gaps(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor):
    """Predicted class, logit gaps g_j = f_i - f_j >= 0 and directions v_j = w_i - w_j (float64)."""
    x = x.flatten(1).double().cpu()
    w, b = weight.detach().double().cpu(), bias.detach().double().cpu()
    logits = x @ w.T + b
    pred = logits.argmax(1)
    gap = logits.gather(1, pred[:, None]) - logits            # (n, C)
    v = w[pred][:, None, :] - w[None, :, :]                     # (n, C, d)
    return x, pred, gap, v


def linear_input_margin(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
                        box: bool = True) -> torch.Tensor:
    """Exact Linf input margin of ``x -> weight @ x + bias`` (float64).

    For the predicted class i and another class j, moving x by delta with ||delta||_inf <= t lowers
    the gap g = (w_i - w_j).x + b_i - b_j by at most D(t) = sum_k |v_k| min(t, c_k), with v = w_i - w_j
    and c_k the room left in the box in the helpful direction; the smallest t with D(t) >= g comes from
    sorting the c_k (:func:`linear_boundary_distance`, which FAB also uses to rank its targets). Without the box, t = g / ||v||_1. The margin is the minimum over j; inf when no class
    can be reached inside the box.
    """
    check.batch("x", x)
    x, pred, gap, v = _pair_gaps(weight, bias, x)
    t = linear_boundary_distance(gap, v, x, "Linf", box=box)
    t[torch.arange(len(x)), pred] = float("inf")
    return t.min(1).values


def compare_to_exact(estimate: torch.Tensor, exact: torch.Tensor, tol: float = 1e-3) -> dict:
    """How an (upper-bound) margin estimate compares with the exact margin, on the finite exact values.

    A failed estimate (NaN) counts as a disagreement. ``below_exact`` counts points where the
    estimate is below the exact value by more than 1e-6: for a real adversarial point that is
    impossible, so it must be 0.
    """
    estimate, exact = estimate.double().cpu(), exact.double().cpu()
    keep = torch.isfinite(exact)
    est, ex = estimate[keep], exact[keep]
    found = torch.isfinite(est)
    rel = (est[found] - ex[found]) / ex[found].clamp_min(1e-12)
    return {
        "points": int(keep.sum()),
        "agreement": float((found & ((est - ex).abs() <= tol)).double().mean()),
        "median_relative_gap": float(rel.median()) if len(rel) else float("nan"),
        "max_gap": float((est[found] - ex[found]).max()) if len(rel) else float("nan"),
        "below_exact": int((est[found] < ex[found] - 1e-6).sum()),
        "failures": int((~found).sum()),
    }


def pairwise_distances(w: torch.Tensor, p: float) -> torch.Tensor:
    """||w_i - w_j||_p for every pair of rows, in float64, by explicit differences.

    (``torch.cdist`` switches to a matrix-multiply shortcut beyond 25 rows, which loses precision
    through cancellation; the certificates and margins here need the plain computation.)
    """
    w = w.detach().double()
    return torch.linalg.vector_norm(w[:, None, :] - w[None, :, :], ord=p, dim=-1)


def feature_margin(weight: torch.Tensor, bias: torch.Tensor, z: torch.Tensor, norm: str = "Linf") -> torch.Tensor:
    """Exact margin of a linear head in its own input (feature) space.

    min_{j != i} (f_i - f_j) / ||w_i - w_j||_q with q the dual norm (l1 for an Linf threat
    model, l2 for L2). Equals the logit margin up to a constant when all ||w_i - w_j||_q are
    equal ("equidistance").
    """
    q = {"Linf": 1, "L2": 2}[check_norm(norm)]
    z, w, b = z.double().cpu(), weight.detach().double().cpu(), bias.detach().double().cpu()
    logits = z @ w.T + b
    pred = logits.argmax(1)
    gap = logits.gather(1, pred[:, None]) - logits
    dist = pairwise_distances(w, q)[pred]          # ||w_i - w_j||_q per point and class
    ratio = gap / dist
    ratio[torch.arange(len(z)), pred] = float("inf")
    return ratio.min(1).values


@dataclass
class LinearCheck:
    """FAB against the exact input margin of one linear model (chapter 1's yardstick)."""

    exact: torch.Tensor          # linear_input_margin, per point
    default: MinimumNorm         # one untargeted FAB run: pyautoattack's default
    ours: MinimumNorm            # the book's estimator (:data:`MARGIN_FAB`)

    @property
    def default_vs_exact(self) -> dict:
        return compare_to_exact(self.default.distance, self.exact)

    @property
    def ours_vs_exact(self) -> dict:
        return compare_to_exact(self.ours.distance, self.exact)


def check_against_linear(linear: nn.Module, x: torch.Tensor, norm: str = "Linf") -> LinearCheck:
    """The exact margins of a linear model (``Flatten`` then ``Linear``) on ``x``, beside two FAB estimates."""
    head = linear_head(linear)
    if head is None or any(p.numel() for p in head[0].parameters()):
        raise check.InvalidArgument("check_against_linear needs a Sequential whose only weights are its last Linear layer")
    _, weight, bias = head
    return LinearCheck(linear_input_margin(weight, bias, x),
                       input_margin(linear, x, norm, targeted=0, untargeted=1, bisection_steps=0),
                       input_margin(linear, x, norm))


def linear_head(model: nn.Module):
    """``(features, weight, bias)`` when ``model`` is a Sequential ending in a Linear layer, else None."""
    if isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear):
        return model[:-1], model[-1].weight, model[-1].bias
    return None
