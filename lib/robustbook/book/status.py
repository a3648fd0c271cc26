"""``book/status.md``: how each chapter of this build ran, and its headline numbers and claims.

Run times are split into training, attacks and the rest (from ``<chapter>.timing.json``), and the
machine's speed is measured with a small fixed workload, so that times from different machines
can be compared.
"""
from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..runtime import atomic_write, project_root, reference_workload, results_dir
from ..stats import plus_minus
from .runner import runs_path
from .specs import chapters


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value).replace("|", "\\|")


def _flatten(value, prefix: str = "") -> dict:
    """Nested results as ``{dotted.key: leaf}``, except a mean/std block, which stays one entry."""
    if isinstance(value, dict) and not {"mean", "std", "per_seed"} <= set(value):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _leaf(value) -> str:
    if isinstance(value, dict) and "mean" in value:
        return f"{plus_minus(value['mean'], value['std'], '.4g', value['n'], std_fmt='.2g')} ({value['n']} seeds)"
    return _fmt(value)


def results_tables(results: dict) -> list[str]:
    """Markdown: the scalar results in one table, each nested group (e.g. per model) in its own table."""
    scalars = {k: v for k, v in results.items() if not isinstance(v, dict) or {"mean", "per_seed"} <= set(v)}
    lines = ["| result | value |", "|---|---|"] + [f"| `{k}` | {_leaf(v)} |" for k, v in scalars.items()]
    for key, value in results.items():
        if key in scalars:
            continue
        rows = {k: _flatten(v) if isinstance(v, dict) else {"value": v} for k, v in value.items()}
        columns = sorted({c for r in rows.values() for c in r}, key=lambda c: list(
            dict.fromkeys(c2 for r in rows.values() for c2 in r)).index(c))
        lines += ["", f"**`{key}`**", "", "| | " + " | ".join(f"`{c}`" for c in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        lines += [f"| {name} | " + " | ".join(_leaf(r.get(c, "")) for c in columns) + " |" for name, r in rows.items()]
    return lines


def write_status_page() -> Path:
    """Write ``book/status.md`` from ``_build/results``."""
    runs = json.loads(runs_path().read_text()) if runs_path().is_file() else {}
    speed = reference_workload()
    lines = ["# Status", "",
             "Every chapter of this build was executed by papermill; the numbers below are read from",
             "`_build/results/<chapter>.json`, which each chapter writes beside the numbers it glues into its prose.", "",
             f"Machine: {platform.machine()}, Python {sys.version.split()[0]}. Reference workload (a fixed set of "
             f"matrix products and a small convolution step, one thread): **{speed:.3f} s** — run times scale "
             "roughly with this figure across machines.", "",
             "| chapter | profile | run time (s) | training (s) | attacks (s) | rest (s) | budget (s) | finished (UTC) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, chapter in chapters().items():
        run = runs.get(name)
        if not run:
            lines.append(f"| {chapter.title} | not run | | | | | {chapter.budget_seconds:.0f} | |")
            continue
        timing_path = results_dir() / f"{name}.timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        train, attacks = timing.get("training", 0.0), timing.get("attacks", 0.0)
        rest = max(0.0, run["seconds"] - train - attacks)
        lines.append(f"| {chapter.title} | {run['profile']} | {run['seconds']:.0f} | {train:.0f} | {attacks:.0f} | "
                     f"{rest:.0f} | {chapter.budget_seconds:.0f} | {run['finished']} |")
    for name, chapter in chapters().items():
        path = results_dir() / f"{name}.json"
        if not path.is_file():
            continue
        lines += ["", f"## {chapter.title}", ""] + results_tables(json.loads(path.read_text()))
        claims_path = path.with_suffix(".claims.json")
        claims = json.loads(claims_path.read_text()) if claims_path.is_file() else []
        if claims:
            lines += ["", "| claim | expected | measured | verdict | enforced |", "|---|---|---|---|---|"]
            lines += [f"| {_fmt(c['claim'])} | {c['relation']} {c['threshold']:.4g} | {_fmt(c['measured'])} | "
                      f"{c['shown']} | {'yes' if c['enforced'] else 'no'} |" for c in claims]
    lines += ["", f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    out = project_root() / "book" / "status.md"
    atomic_write(out, lambda tmp: tmp.write_text("\n".join(lines)))
    write_teaching_times(runs, speed)
    return out


def write_teaching_times(runs: dict, speed: float) -> Path:
    """``book/teaching_times.md`` (included by the teaching page): each chapter's time per profile — measured for
    the profiles this build ran, estimated from counted work for colab."""
    from .estimate import minutes
    from .specs import resolve

    lines = ["| chapter | measured here | profile measured | colab (T4, estimated) |", "|---|---|---|---|"]
    for name, chapter in chapters().items():
        run = runs.get(name)
        measured = f"{run['seconds'] / 60:.1f} min" if run else "not run in this build"
        colab = minutes(name, resolve(name, "colab"))["minutes"]
        lines.append(f"| {chapter.title} | {measured} | {run['profile'] if run else ''} | about {colab:.0f} min |")
    lines += ["", f"Measured on the machine that built this page (reference workload {speed:.3f} s; see the "
              "status page). The colab column is an estimate from the work each chapter's parameters imply "
              "(robustbook.book.estimate); the paper profiles need hours on a GPU."]
    out = project_root() / "book" / "teaching_times.md"
    atomic_write(out, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return out
