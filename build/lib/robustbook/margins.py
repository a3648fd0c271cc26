"""Margins: the logit margin (free), the input margin (estimated), and exact margins of linear models.

* ``logit_margin(logits)``: top-1 minus top-2 logit, one forward pass.
* ``input_margin(model, x, norm)``: distance to the nearest decision boundary, estimated
  with the minimum-norm attack FAB (an upper bound: FAB returns a real adversarial point);
  a point where FAB fails is counted at the search's bound, never dropped or zeroed.
* ``linear_input_margin(weight, bias, x)``: the exact Linf input margin of a linear
  classifier inside the data box [0, 1]^d, the yardstick for FAB.
* ``feature_margin``: the exact margin of a linear head in its own input space.
"""
from __future__ import annotations

import torch
from torch import nn

from . import validate as check
from .attacks import MinimumNorm, check_norm, fab, linear_boundary_distance
from .runtime import cache_dir, cache_load, cache_save, code_hash, model_fingerprint, stable_hash, tensor_fingerprint

# The book's input-margin estimator (chapters 1, 2 and 6 share its cached results): targeted FAB
# runs towards the 3 classes whose linearised boundary is nearest, 50 iterations, then bisection.
MARGIN_FAB = {"targeted": 3, "untargeted": 0, "n_iter": 50}


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 logit minus top-2 logit, per row (0 on ties)."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise check.InvalidArgument(f"logits must have shape (N, C) with C >= 2 classes; got {tuple(logits.shape)}")
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def input_margin(model: nn.Module, x: torch.Tensor, norm: str = "Linf", cache: bool = True,
                 **fab_options) -> MinimumNorm:
    """Estimate the input margin of the model's own prediction with FAB (:data:`MARGIN_FAB` by default).

    Returns distances with a success mask (failed points: NaN distance, and ``.margin`` at the
    search's bound). FAB is the most expensive step of the book, so results are cached under
    ``cache_dir()/margins``, keyed by the model (its layers and every weight and buffer), the
    inputs, the norm, the FAB options and the code of the attack.
    """
    check.batch("x", x)
    check_norm(norm)
    options = {**MARGIN_FAB, **fab_options}
    if not cache:
        return fab(model, x, None, norm=norm, **options)
    key = stable_hash([model_fingerprint(model), tensor_fingerprint(x), norm, options,
                       code_hash("attacks", "margins")])
    path = cache_dir() / "margins" / f"{key}.pt"

    def valid(p):
        if p["distance"].shape != (len(x),) or p["x_adv"].shape != x.shape:
            raise ValueError(f"holds margins of shape {tuple(p['distance'].shape)}, expected ({len(x)},)")

    stored = cache_load(path, "input_margin", key, validate=valid)
    if stored is not None:
        return MinimumNorm(stored["x_adv"].to(x.device), stored["distance"].to(x.device),
                           stored["success"].to(x.device), float(stored["bound"]))
    result = fab(model, x, None, norm=norm, **options)
    cache_save(path, {"x_adv": result.x_adv.cpu(), "distance": result.distance.cpu(),
                      "success": result.success.cpu(), "bound": torch.tensor(result.bound)},
               "input_margin", key, {"norm": norm, "points": len(x), "options": options}, allow_nonfinite=True)
    return result


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
    sorting the c_k (:func:`robustbook.attacks.linear_boundary_distance`, which FAB also uses to rank
    its targets). Without the box, t = g / ||v||_1. The margin is the minimum over j; inf when no class
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


def linear_head(model: nn.Module):
    """``(features, weight, bias)`` when ``model`` is a Sequential ending in a Linear layer, else None."""
    if isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear):
        return model[:-1], model[-1].weight, model[-1].bias
    return None
