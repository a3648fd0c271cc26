"""Rank statistics shared by the chapters: Kendall's tau with a bootstrap interval, granulated Kendall."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Sequence

import numpy as np
import torch
from scipy.stats import kendalltau


def valid(*arrays):
    """The arrays as numpy float arrays of equal length, all values finite (else a clear error).

    Nothing is dropped silently: a statistic over points that lack a value is refused.
    """
    from .validate import InvalidArgument

    arrays = [np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=float) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise InvalidArgument(f"arrays of different lengths: {[len(a) for a in arrays]}")
    for i, a in enumerate(arrays):
        bad = int((~np.isfinite(a)).sum())
        if bad:
            raise InvalidArgument(f"argument {i + 1} holds {bad} non-finite values of {n}; every point must have one")
    return arrays


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's tau-b; NaN (without a warning) when either side is constant and tau is undefined."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


@dataclass
class Tau:
    tau: float
    low: float
    high: float
    points: int


def kendall_tau(a, b, n_boot: int = 200, level: float = 0.95, seed: int = 0) -> Tau:
    """Kendall's tau-b (scipy) between two scores, with a percentile bootstrap interval."""
    a, b = valid(a, b)
    if len(a) < 2:
        from .validate import InvalidArgument

        raise InvalidArgument(f"Kendall's tau needs at least two points; got {len(a)}")
    tau = _tau(a, b)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        boots.append(_tau(a[idx], b[idx]))
    lo, hi = np.nanpercentile(boots, [100 * (1 - level) / 2, 100 * (1 + level) / 2]) if n_boot else (np.nan, np.nan)
    return Tau(float(tau), float(lo), float(hi), len(a))


@dataclass
class OverSeeds:
    """One number measured once per seed: its mean and spread.

    ``std`` is the sample standard deviation over seeds (0 for a single seed); ``as_dict`` is
    what the chapters glue and store in their results JSON (mean, std, min, max, n, per_seed);
    ``f"{v:.1%}"`` writes it as ``mean ± std``.
    """

    per_seed: dict

    def __post_init__(self):
        if not self.per_seed:
            raise ValueError("OverSeeds needs at least one seed")
        self.per_seed = {int(s): float(v) for s, v in self.per_seed.items()}

    @property
    def values(self) -> np.ndarray:
        return np.array(list(self.per_seed.values()), dtype=float)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        v = self.values
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    def __sub__(self, other: "OverSeeds") -> "OverSeeds":
        """The paired difference, seed by seed (both must have the same seeds)."""
        if set(self.per_seed) != set(other.per_seed):
            raise ValueError(f"paired difference needs the same seeds: {sorted(self.per_seed)} vs {sorted(other.per_seed)}")
        return OverSeeds({s: self.per_seed[s] - other.per_seed[s] for s in self.per_seed})

    def __rmul__(self, other: float) -> "OverSeeds":
        """``c * values``, seed by seed."""
        return OverSeeds({s: float(other) * v for s, v in self.per_seed.items()})

    def __rsub__(self, other: float) -> "OverSeeds":
        """``c - values``, seed by seed (e.g. a miss rate from an agreement)."""
        return OverSeeds({s: float(other) - v for s, v in self.per_seed.items()})

    def as_dict(self) -> dict:
        v = self.values
        return {"mean": self.mean, "std": self.std, "min": float(v.min()), "max": float(v.max()), "n": len(v),
                "per_seed": {str(s): x for s, x in self.per_seed.items()}}

    def __format__(self, fmt: str) -> str:
        """``f"{v:.1%}"`` gives ``mean ± std`` (the mean alone for one seed): see :func:`plus_minus`."""
        return plus_minus(self.mean, self.std, fmt or ".3f", len(self.values))


def plus_minus(mean: float, std: float, fmt: str = ".3f", n: int = 2, std_fmt: str | None = None) -> str:
    """The book's one way to write a number over seeds: ``mean ± std`` (the mean alone when ``n`` is 1).

    >>> plus_minus(0.8512, 0.0123, ".1%", 3)
    '85.1% ± 1.2%'
    """
    if n <= 1:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {std:{std_fmt or fmt}}"


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
                t = _tau(measure[members], quantity[members])
                if np.isfinite(t):
                    taus.append(t)
        out[axis] = float(np.mean(taus)) if taus else float("nan")
    out["average"] = float(np.nanmean([out[a] for a in axes]))
    return out
