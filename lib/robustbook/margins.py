"""Margins: the logit margin (free), the input margin (estimated), and exact margins of linear models.

* ``logit_margin(logits)``: top-1 minus top-2 logit, one forward pass.
* ``input_margin(model, x, norm)``: distance to the nearest decision boundary, estimated
  with the minimum-norm attack FAB (an upper bound: FAB returns a real adversarial point).
* ``linear_input_margin(weight, bias, x)``: the exact Linf input margin of a linear
  classifier inside the data box [0, 1]^d, the yardstick for FAB.
"""
from __future__ import annotations

import torch
from torch import nn

from .attacks import MinimumNorm, fab


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 logit minus top-2 logit, per row (0 on ties)."""
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def input_margin(model: nn.Module, x: torch.Tensor, norm: str = "Linf", cache: bool = True,
                 **fab_options) -> MinimumNorm:
    """Estimate the input margin of the model's own prediction with FAB.

    Returns distances with a success mask; failed points carry NaN, not 0.  FAB is by far the most
    expensive step of the book, so results are cached under ``cache_dir()/margins``, keyed by the
    model (its layers and every weight and buffer), the inputs, the norm and the FAB options.
    """
    from .runtime import cache_dir, load_torch, save_torch, stable_hash, tensor_fingerprint

    if not cache:
        return fab(model, x, None, norm=norm, **fab_options)
    key = stable_hash([repr(model), {k: tensor_fingerprint(v) for k, v in model.state_dict().items()},
                       tensor_fingerprint(x), norm, fab_options])
    path = cache_dir() / "margins" / f"{key}.pt"
    if path.is_file():
        stored = load_torch(path)
        return MinimumNorm(stored["x_adv"], stored["distance"], stored["success"])
    result = fab(model, x, None, norm=norm, **fab_options)
    save_torch({"x_adv": result.x_adv, "distance": result.distance, "success": result.success}, path)
    return result


def _pair_gaps(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor):
    """Predicted class, logit gaps g_j = f_i - f_j >= 0 and directions v_j = w_i - w_j."""
    x = x.flatten(1).double()
    w, b = weight.detach().double(), bias.detach().double()
    logits = x @ w.T + b
    pred = logits.argmax(1)
    gap = logits.gather(1, pred[:, None]) - logits            # (n, C)
    v = w[pred][:, None, :] - w[None, :, :]                     # (n, C, d)
    return x, pred, gap, v


def linear_input_margin(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
                        box: bool = True) -> torch.Tensor:
    """Exact Linf input margin of ``x -> weight @ x + bias`` (float64).

    For the predicted class i and another class j, moving x by delta with
    ||delta||_inf <= t lowers the gap g = (w_i - w_j).x + b_i - b_j by at most
    D(t) = sum_k |v_k| min(t, c_k), where v = w_i - w_j and c_k is the room left in the
    box in the helpful direction (x_k when v_k > 0, 1 - x_k when v_k < 0).  D is
    piecewise linear, concave and increasing, so the smallest t with D(t) >= g is found by
    sorting the c_k.  Without the box, D(t) = t ||v||_1 and t = g / ||v||_1.  The margin
    is the minimum over j; inf when no class can be reached inside the box.
    """
    x, pred, gap, v = _pair_gaps(weight, bias, x)
    a = v.abs()
    if not box:
        t = gap / a.sum(-1)
    else:
        room = torch.where(v > 0, x[:, None, :], 1.0 - x[:, None, :])
        room = torch.where(v == 0, torch.zeros_like(room), room)
        room, order = room.sort(-1)
        a = a.gather(-1, order)
        before = torch.cumsum(a * room, -1) - a * room           # sum_{k<m} a_k c_k
        after = torch.flip(torch.cumsum(torch.flip(a, [-1]), -1), [-1])   # sum_{k>=m} a_k
        reach = before + room * after                              # D at each breakpoint
        ok = reach >= gap[..., None]
        m = ok.float().argmax(-1, keepdim=True)
        t = ((gap[..., None] - before.gather(-1, m)) / after.gather(-1, m).clamp_min(1e-300)).squeeze(-1)
        t = torch.where(ok.any(-1), t.clamp_min(0), torch.full_like(t, float("inf")))
    t[torch.arange(len(x)), pred] = float("inf")
    return t.min(1).values


def compare_to_exact(estimate: torch.Tensor, exact: torch.Tensor, tol: float = 1e-3) -> dict:
    """How an (upper-bound) margin estimate compares with the exact margin, on the finite exact values.

    ``below_exact`` counts points where the estimate is below the exact value by more than
    1e-6: for a real adversarial point that is impossible, so it must be 0.
    """
    estimate, exact = estimate.double(), exact.double()
    keep = torch.isfinite(exact) & torch.isfinite(estimate)
    est, ex = estimate[keep], exact[keep]
    rel = (est - ex) / ex.clamp_min(1e-12)
    return {
        "points": int(keep.sum()),
        "agreement": float(((est - ex).abs() <= tol).double().mean()),
        "median_relative_gap": float(rel.median()),
        "max_gap": float((est - ex).max()),
        "below_exact": int((est < ex - 1e-6).sum()),
    }


def feature_margin(weight: torch.Tensor, bias: torch.Tensor, z: torch.Tensor, norm: str = "Linf") -> torch.Tensor:
    """Exact margin of a linear head in its own input (feature) space.

    min_{j != i} (f_i - f_j) / ||w_i - w_j||_q with q the dual norm (l1 for an Linf threat
    model, l2 for L2).  Equals the logit margin up to a constant when all ||w_i - w_j||_q are
    equal ("equidistance").
    """
    q = {"Linf": 1, "L2": 2}[norm]
    z, w, b = z.double(), weight.detach().double(), bias.detach().double()
    logits = z @ w.T + b
    pred = logits.argmax(1)
    gap = logits.gather(1, pred[:, None]) - logits
    dist = torch.cdist(w[None], w[None], p=q)[0][pred]          # ||w_i - w_j||_q per point and class
    ratio = gap / dist
    ratio[torch.arange(len(z)), pred] = float("inf")
    return ratio.min(1).values


def linear_head(model: nn.Module):
    """``(features, weight, bias)`` when ``model`` is a Sequential ending in a Linear layer, else None."""
    if isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear):
        return model[:-1], model[-1].weight, model[-1].bias
    return None
