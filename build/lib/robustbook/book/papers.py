"""The papers' reported numbers, as data: ``robustbook/data_files/papers/<chapter>.json``.

Each entry carries its source (paper and table, figure or section); chapters and claims read them
from here, so no paper number is typed into a notebook.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def numbers(chapter: str) -> tuple[dict, ...]:
    """Every reported number of a chapter, as dicts with at least ``key`` and ``source``."""
    path = resources.files("robustbook").joinpath(f"data_files/papers/{chapter}.json")
    if not path.is_file():
        raise FileNotFoundError(f"no paper numbers for chapter {chapter!r} (expected {path})")
    data = json.loads(path.read_text())
    if data.get("chapter") != chapter:
        raise ValueError(f"{path} holds chapter {data.get('chapter')!r}, not {chapter!r}")
    return tuple(data["numbers"])


def number(chapter: str, key: str) -> dict:
    """One reported number (the whole entry, e.g. ``number(ch, "mma_tau")["value"]``)."""
    for entry in numbers(chapter):
        if entry["key"] == key:
            return entry
    raise KeyError(f"no paper number {key!r} for {chapter}; known: {', '.join(e['key'] for e in numbers(chapter))}")


def value(chapter: str, key: str) -> float:
    return number(chapter, key)["value"]


def table(chapter: str, prefix: str = ""):
    """The entries whose key starts with ``prefix``, as a DataFrame (for a "paper vs ours" table)."""
    import pandas as pd

    return pd.DataFrame([e for e in numbers(chapter) if e["key"].startswith(prefix)])
