"""Tables for the page, built from what the method modules return (numbers, dicts, OverSeeds)."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from ..stats import OverSeeds


def cell(value, fmt: str = ".3f") -> str:
    """``mean ± std`` for an :class:`OverSeeds` (the mean alone for one seed), else the formatted number."""
    if isinstance(value, (OverSeeds, float)):
        return f"{value:{fmt}}"
    return str(value)


def mean_std(rows: Mapping[str, Mapping[str, object]], fmt: str = ".3f", index: str | None = None) -> pd.DataFrame:
    """A table of ``mean ± std`` over seeds: ``rows[row][column]`` holds an OverSeeds (or a plain value)."""
    frame = pd.DataFrame({r: {c: cell(v, fmt) for c, v in cols.items()} for r, cols in rows.items()}).T
    if index:
        frame.index.name = index
    return frame


def per_seed(values: Mapping[str, OverSeeds], fmt: str = ".3f") -> pd.DataFrame:
    """One row per quantity, one column per seed, then mean and std."""
    rows = {}
    for name, v in values.items():
        rows[name] = {**{f"seed {s}": f"{x:{fmt}}" for s, x in v.per_seed.items()},
                      "mean": f"{v.mean:{fmt}}", "std": f"{v.std:{fmt}}"}
    return pd.DataFrame(rows).T


def collect(per_seed_records: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, OverSeeds]]:
    """``{seed: {row: {column: value}}}`` -> ``{row: {column: OverSeeds}}``."""
    seeds = list(per_seed_records)
    first = per_seed_records[seeds[0]]
    return {row: {col: OverSeeds({s: per_seed_records[s][row][col] for s in seeds}) for col in cols}
            for row, cols in first.items()}
