"""Headline numbers of a chapter: glued into its prose AND written to ``_build/results/<chapter>.json``,
and the chapter's claims, judged on the numbers over seeds.

``res = Results(chapter); res.glue("eps", 0.1); ...; res.save()`` — one call records a
number for both, so the prose and the JSON can never disagree.

A **claim** is a finding our numbers could contradict (``res.claim``): a quantity measured once per
seed, an expected relation to a threshold, and the source of the expectation. Its verdict uses the
spread over seeds, so a claim near its threshold is never decided by float noise:

* ``holds``: the mean is on the expected side of the threshold by more than one standard deviation
  over seeds (a gain must exceed its spread to be called a gain);
* ``does not hold``: the mean is on the wrong side by more than one standard deviation;
* ``within noise``: anything in between.

An *enforced* claim whose verdict is ``does not hold`` fails the build (:meth:`Results.enforce`).
A *reported* claim (``enforce=False``) is a finding of a paper that may honestly not survive our
scale: it is shown with its verdict ("does not reproduce here" and the reason given), never enforced.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..data import LABELS
from ..runtime import build_dir, results_dir, save_json, timings
from ..stats import OverSeeds, plus_minus

# The profile whose claims every other profile's claims are compared with: the smoke profile runs the same
# chapters on scikit-learn's 8x8 digits (tiny models, a few epochs), so a verdict that changes between the
# two shows what the data change did. ``robustbook build`` runs it first, as a side run.
COMPARED_PROFILE = "smoke"
_DATASET_NAMES = re.compile("|".join(re.escape(label) for label in sorted(LABELS.values(), key=len, reverse=True)))


def claim_key(text: str) -> str:
    """A claim's text with dataset names replaced, so that the same claim matches across datasets."""
    return _DATASET_NAMES.sub("<data>", text)

RELATIONS = (">", ">=", "<", "<=", "==")
HOLDS, FAILS, NOISE = "holds", "does not hold", "within noise"


def _plain(value: Any) -> Any:
    if isinstance(value, OverSeeds):
        return _plain(value.as_dict())
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ClaimFailed(AssertionError):
    """An enforced claim of a chapter is contradicted by its numbers."""


def judge(values, relation: str, threshold: float) -> tuple[str, float, float]:
    """The verdict of "mean(values) <relation> threshold" given the spread of the values over seeds.

    Returns ``(verdict, mean, spread)`` with the spread the sample standard deviation (0 for one value).
    ``==`` asks every value to equal the threshold (for counts, e.g. soundness violations).
    """
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; valid choices: {', '.join(RELATIONS)}")
    v = np.asarray(list(values), dtype=float)
    if v.size == 0 or not np.isfinite(v).all() or not math.isfinite(threshold):
        raise ValueError(f"a claim needs finite values and threshold; got {v.tolist()} and {threshold}")
    mean = float(v.mean())
    spread = float(v.std(ddof=1)) if v.size > 1 else 0.0
    if relation == "==":
        return (HOLDS if bool((v == threshold).all()) else FAILS), mean, spread
    margin = mean - threshold if relation in (">", ">=") else threshold - mean
    strict = relation in (">", "<")
    if spread == 0.0:
        ok = margin > 0 or (margin == 0 and not strict)
        return (HOLDS if ok else FAILS), mean, spread
    if margin > spread:
        return HOLDS, mean, spread
    if margin < -spread:
        return FAILS, mean, spread
    return NOISE, mean, spread


@dataclass
class Claim:
    claim: str
    source: str
    relation: str
    threshold: float
    per_seed: dict
    mean: float
    spread: float
    verdict: str
    enforced: bool
    reason: str = ""
    fmt: str = ".3f"
    compared: dict | None = None     # the same claim in the compared profile's run (smoke: the digits)

    @property
    def failed(self) -> bool:
        return self.enforced and self.verdict == FAILS

    @property
    def measured(self) -> str:
        n = len(self.per_seed)
        values = ", ".join(f"{v:{self.fmt}}" for v in self.per_seed.values())
        return f"{plus_minus(self.mean, self.spread, self.fmt, n)} over {n} seed{'s' if n > 1 else ''} ({values})"

    @property
    def shown(self) -> str:
        """The verdict as the page says it."""
        if self.enforced:
            return {HOLDS: "holds", FAILS: "**does not hold**", NOISE: "within noise"}[self.verdict]
        return {HOLDS: "reproduces", FAILS: "does not reproduce here", NOISE: "within noise"}[self.verdict]


    @property
    def changed(self) -> str:
        """One sentence when the compared profile's verdict differs from this one ('' otherwise)."""
        c = self.compared
        if not c or c["verdict"] == self.verdict:
            return ""
        return (f"On {c['data'] or 'its data'} ({c['profile']} profile) this was {c['mean']:{self.fmt}} ({c['verdict']}); "
                f"here {self.mean:{self.fmt}} ({self.verdict}).")


class Results:
    def __init__(self, chapter: str, profile: str | None = None):
        self.chapter = chapter
        self.profile = profile
        self.values: dict[str, Any] = {}
        self.claims: list[Claim] = []
        self.nullable: set[str] = set()

    def _compared_claims(self) -> dict[str, dict]:
        """The compared profile's claims of this chapter by key, from its side run (empty when there is none)."""
        if self.profile in (None, COMPARED_PROFILE):
            return {}
        path = build_dir() / "runs" / COMPARED_PROFILE / "results" / f"{self.chapter}.claims.json"
        runs = path.with_name("_runs.json")
        try:
            claims = json.loads(path.read_text())
            dataset = json.loads(runs.read_text())[self.chapter]["parameters"].get("dataset", "")
        except (OSError, ValueError, KeyError):
            return {}
        return {claim_key(c["claim"]): {"profile": COMPARED_PROFILE, "data": LABELS.get(dataset, dataset),
                                        "mean": c["mean"], "per_seed": c["per_seed"], "verdict": c["verdict"],
                                        "measured": c["measured"]} for c in claims}

    # ------------------------------------------------------------------ claims
    def claim(self, claim: str, values, relation: str, threshold: float, source: str, enforce: bool = True,
              reason: str = "", fmt: str = ".3f") -> Claim:
        """Judge a finding on a quantity measured once per seed.

        ``values``: an :class:`OverSeeds`, a ``{seed: value}`` mapping or a single number (one seed).
        ``reason`` explains, for a reported claim, why it may not reproduce at our scale.
        """
        if isinstance(values, OverSeeds):
            per_seed = dict(values.per_seed)
        elif isinstance(values, Mapping):
            per_seed = {int(k): float(v) for k, v in values.items()}
        else:
            per_seed = {0: float(values)}
        verdict, mean, spread = judge(per_seed.values(), relation, float(threshold))
        c = Claim(claim, source, relation, float(threshold), per_seed, mean, spread, verdict, bool(enforce),
                  reason, fmt, self._compared_claims().get(claim_key(claim)))
        self.claims.append(c)
        return c

    def claims_table(self):
        """The claims as a table; a claim whose verdict differs in the compared profile (the digits) says so."""
        import pandas as pd

        rows = [{"claim": c.claim, "expected": f"{c.relation} {c.threshold:{c.fmt}}", "measured": c.measured,
                 "verdict": c.shown, "enforced": "yes" if c.enforced else "no (reported)",
                 "source": c.source,
                 "note": " ".join(filter(None, (c.reason if c.verdict != HOLDS else "", c.changed)))}
                for c in self.claims]
        return pd.DataFrame(rows, columns=["claim", "expected", "measured", "verdict", "enforced", "source", "note"])

    def enforce(self, active: bool = True) -> None:
        """Fail (and so fail the book build) when an enforced claim does not hold."""
        failed = [c for c in self.claims if c.failed]
        if active and failed:
            raise ClaimFailed("; ".join(
                f"{c.claim} (expected {c.relation} {c.threshold:{c.fmt}}, measured {c.measured})" for c in failed))

    # ------------------------------------------------------------------ the end of a chapter
    def finish(self, enforce: bool = True):
        """A chapter's closing bookkeeping in one call: glue the "On a GPU" section (``gpu_section``, the same
        text for every chapter, from :func:`robustbook.book.estimate.gpu_section`), save the results and claims,
        fail the build when an enforced claim does not hold (if ``enforce``), and return the claims table."""
        from .estimate import gpu_section

        self.glue_markdown("gpu_section", gpu_section(self.chapter))
        self.save()
        self.enforce(enforce)
        return self.claims_table()

    # ------------------------------------------------------------------ glue
    def glue_markdown(self, key: str, text: str) -> None:
        """Glue Markdown for a ``{glue:md}`` directive (prose, not a number: not stored in the results JSON)."""
        try:
            from IPython.display import Markdown
            from myst_nb import glue
        except ImportError:
            return
        glue(key, Markdown(text), display=False)

    def glue(self, key: str, value: Any, display: bool = False, nullable: tuple[str, ...] = ()) -> Any:
        """Record ``value`` under ``key`` and glue it for the book (nested dicts are glued per leaf).

        An :class:`OverSeeds` is stored as mean, std, min, max, n and per-seed values. ``nullable`` names
        leaf keys that may hold None because the chapter does not promise them (e.g. a certificate that
        does not exist for a selector); any other missing or non-finite number stops :meth:`save`.
        """
        value = _plain(value)
        self.values[key] = value
        self.nullable.update(nullable)
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
        if value is not None:
            glue(key, value, display=display)

    @property
    def path(self) -> Path:
        return results_dir() / f"{self.chapter}.json"

    def save(self) -> Path:
        """Write the glued numbers to ``<chapter>.json``, the claims to ``<chapter>.claims.json`` and
        where the time went (training, attacks) to ``<chapter>.timing.json``.

        A number the chapter promises is never stored as null: a non-finite value stops the save
        with the keys that hold one.
        """
        holes = [h for h in _holes(self.values) if h.split(".")[-1] not in self.nullable]
        if holes:
            raise ValueError(f"{self.chapter}: results hold non-finite or missing numbers at {', '.join(holes[:8])}; "
                             "nothing was saved")
        claims = [{**asdict(c), "measured": c.measured, "shown": c.shown,
                   "per_seed": {str(s): v for s, v in c.per_seed.items()}} for c in self.claims]
        save_json(claims, self.path.with_suffix(".claims.json"))
        compared = {c.claim: c.compared for c in self.claims if c.compared}
        if compared:      # the compared profile's numbers, under their own key (read from its run, never typed)
            self.values[f"claims_on_{COMPARED_PROFILE}_profile"] = _plain(compared)
        save_json(timings(), self.path.with_suffix(".timing.json"))
        return save_json(self.values, self.path)


def _holes(value, key: str = "") -> list[str]:
    """Keys whose value is None or a non-finite float (nested keys joined with dots)."""
    if isinstance(value, dict):
        return [h for k, v in value.items() for h in _holes(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [h for i, v in enumerate(value) for h in _holes(v, f"{key}[{i}]")]
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return [key or "(value)"]
    return []
