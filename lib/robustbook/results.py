"""Headline numbers of a chapter: glued into its prose AND written to ``_build/results/<chapter>.json``.

``res = Results(chapter); res.glue("eps", 0.1); ...; res.save()`` — one call records a
number for both, so the prose and the JSON can never disagree.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .runtime import results_dir, save_json


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ClaimFailed(AssertionError):
    """A chapter's expected qualitative result did not hold."""


class Results:
    def __init__(self, chapter: str):
        self.chapter = chapter
        self.values: dict[str, Any] = {}
        self.claims: list[dict] = []

    def expect(self, claim: str, passed: bool, measured: str, enforce: bool = True) -> bool:
        """Record an expected qualitative result (e.g. "tau >= 0.6 for robust models") and whether it held.

        ``enforce=False`` marks an expectation about the world (e.g. a finding of a paper) that may
        honestly fail at our scale: it is reported, but does not fail the build.
        """
        self.claims.append({"claim": claim, "measured": measured, "holds": bool(passed), "enforced": enforce})
        return bool(passed)

    def claims_table(self):
        import pandas as pd

        return pd.DataFrame(self.claims, columns=["claim", "measured", "holds", "enforced"])

    def enforce(self, active: bool = True) -> None:
        """Fail (and so fail the book build) when a recorded claim does not hold."""
        failed = [c for c in self.claims if c["enforced"] and not c["holds"]]
        if active and failed:
            raise ClaimFailed("; ".join(f"{c['claim']} (measured: {c['measured']})" for c in failed))

    def glue(self, key: str, value: Any, display: bool = False) -> Any:
        """Record ``value`` under ``key`` and glue it for the book (nested dicts are glued per leaf)."""
        value = _plain(value)
        self.values[key] = value
        self._glue(key, value, display)
        return value

    def _glue(self, key: str, value: Any, display: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self._glue(f"{key}.{k}", v, display)
            return
        try:
            from myst_nb import glue
        except ImportError:  # outside the book toolchain (e.g. a bare Colab runtime): nothing to glue into
            return
        glue(key, value, display=display)

    @property
    def path(self) -> Path:
        return results_dir() / f"{self.chapter}.json"

    def save(self) -> Path:
        """Write the glued numbers to ``<chapter>.json`` and the claims to ``<chapter>.claims.json``."""
        save_json(self.claims, self.path.with_suffix(".claims.json"))
        return save_json(self.values, self.path)
