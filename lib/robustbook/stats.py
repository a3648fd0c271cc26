"""Rank statistics shared by the chapters: Kendall's tau with a bootstrap interval, granulated Kendall."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Sequence

import numpy as np
import torch
from scipy.stats import kendalltau


def valid(*arrays, success=None):
    """numpy float arrays restricted to the points where every array is finite (and ``success`` holds)."""
    arrays = [np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=float) for a in arrays]
    keep = np.ones(len(arrays[0]), bool) if success is None else np.asarray(success, bool)
    for a in arrays:
        keep &= np.isfinite(a)
    return [a[keep] for a in arrays]


@dataclass
class Tau:
    tau: float
    low: float
    high: float
    points: int


def kendall_tau(a, b, success=None, n_boot: int = 200, level: float = 0.95, seed: int = 0) -> Tau:
    """Kendall's tau-b (scipy) between two scores, with a percentile bootstrap interval."""
    a, b = valid(a, b, success=success)
    tau = kendalltau(a, b).statistic
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        boots.append(kendalltau(a[idx], b[idx]).statistic)
    lo, hi = np.nanpercentile(boots, [100 * (1 - level) / 2, 100 * (1 + level) / 2]) if n_boot else (np.nan, np.nan)
    return Tau(float(tau), float(lo), float(hi), len(a))


def granulated_kendall(configs: Sequence[dict], measure, quantity, axes: Sequence[str]) -> dict:
    """Granulated Kendall coefficient (Jiang et al., 2020).

    For each hyperparameter axis, models are grouped by the values of all *other* axes; Kendall's
    tau between measure and quantity is computed inside each group (models that differ in that axis
    only) and averaged over groups.  Returns {axis: psi_axis, "average": mean over axes}.
    """
    measure, quantity = np.asarray(measure, float), np.asarray(quantity, float)
    out = {}
    for axis in axes:
        key = lambda i: tuple((k, configs[i][k]) for k in axes if k != axis)  # noqa: E731
        taus = []
        for _, members in groupby(sorted(range(len(configs)), key=key), key=key):
            members = list(members)
            if len(members) >= 2:
                t = kendalltau(measure[members], quantity[members]).statistic
                if np.isfinite(t):
                    taus.append(t)
        out[axis] = float(np.mean(taus)) if taus else float("nan")
    out["average"] = float(np.nanmean([out[a] for a in axes]))
    return out
