"""Executing chapters with papermill and rendering the Jupyter Book.

* ``run_chapter(name, profile, overrides)``: validate, then execute ``notebooks/<name>.py``
  into ``book/notebooks/<name>.ipynb`` (where the book build picks it up).
* ``build(profile)``: run every chapter, write the status page, render ``_build/html``
  with Jupyter Book 1 (``execute_notebooks: off``: the book shows what papermill ran).
* ``sync_colab()``: write ``notebooks/<name>.ipynb`` (unexecuted) from each ``.py`` for
  the "Open in Colab" buttons; a test checks they are in sync.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .chapters import chapters, get, resolve
from .runtime import atomic_write, project_root, results_dir, save_json

REPOSITORY = "https://github.com/robustbook/robustbook"
# The first code cell of every chapter: installs the library when the notebook runs on Colab.
COLAB_CELL = f'''import sys

if "google.colab" in sys.modules:  # only on Colab: install the book's library (torch is already there)
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "robustbook @ git+{REPOSITORY}@main"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustbench==1.1.1",
                    "pyautoattack==0.2.0", "setuptools<81", "myst-nb"], check=True)'''


def executed_path(name: str) -> Path:
    return project_root() / "book" / "notebooks" / f"{name}.ipynb"


def runs_path() -> Path:
    return results_dir() / "_runs.json"


def read_notebook(name: str):
    """The chapter's jupytext source as a notebook object with a python3 kernelspec."""
    import jupytext

    nb = jupytext.read(project_root() / get(name).notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):   # stable ids keep the Colab notebooks diff-free
        cell.id = f"cell-{i}"
    return nb


def run_chapter(name: str, profile: str = "cpu", overrides: Mapping[str, Any] | None = None,
                output: Path | None = None, progress: bool = True) -> dict:
    """Validate the parameters, then execute the chapter with papermill; returns the run record."""
    import papermill

    params = resolve(name, profile, overrides)          # fails before any work on bad input
    output = Path(output) if output else executed_path(name)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = output.with_name(f".{output.stem}.running.ipynb")
    try:
        papermill.execute_notebook(read_notebook(name), str(tmp), parameters=params, kernel_name="python3",
                                   cwd=str(project_root()), progress_bar=progress, log_output=False)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    record = {"chapter": name, "profile": profile, "seconds": round(seconds, 1),
              "parameters": params, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    runs = json.loads(runs_path().read_text()) if runs_path().is_file() else {}
    runs[name] = record
    save_json(runs, runs_path())
    return record


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def write_status_page() -> Path:
    """``book/status.md``: each chapter's profile, run time and headline numbers from its results JSON."""
    runs = json.loads(runs_path().read_text()) if runs_path().is_file() else {}
    lines = ["# Status", "",
             "Every chapter of this build was executed by papermill; the numbers below are read from",
             "`_build/results/<chapter>.json`, which each chapter writes beside the numbers it prints.", "",
             "| chapter | profile | run time (s) | finished (UTC) | budget (s) |", "|---|---|---|---|---|"]
    for name, chapter in chapters().items():
        run = runs.get(name)
        if run:
            lines.append(f"| {chapter.title} | {run['profile']} | {run['seconds']} | {run['finished']} | {chapter.budget_seconds:.0f} |")
        else:
            lines.append(f"| {chapter.title} | not run | | | {chapter.budget_seconds:.0f} |")
    for name, chapter in chapters().items():
        path = results_dir() / f"{name}.json"
        if not path.is_file():
            continue
        lines += ["", f"## {chapter.title}", "", "| result | value |", "|---|---|"]
        for key, value in json.loads(path.read_text()).items():
            lines.append(f"| `{key}` | {_fmt(value)} |")
        claims_path = path.with_suffix(".claims.json")
        claims = json.loads(claims_path.read_text()) if claims_path.is_file() else []
        if claims:
            lines += ["", "| expected | measured | holds |", "|---|---|---|"]
            lines += [f"| {c['claim']} | {c['measured']} | {'yes' if c['holds'] else '**no**'} |" for c in claims]
    lines += ["", f"Python {sys.version.split()[0]}; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    path = project_root() / "book" / "status.md"
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines)))
    return path


def render(strict: bool = True) -> Path:
    """Render ``_build/html`` from the executed notebooks (Jupyter Book 1, offline)."""
    root = project_root()
    missing = [n for n in chapters() if not executed_path(n).is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)} (run `python -m robustbook build`)")
    if not (root / "book" / "status.md").is_file():
        write_status_page()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root / "book"), "--config", str(root / "_config.yml"),
           "--toc", str(root / "_toc.yml"), "--path-output", str(root), "--all"]
    if strict:
        cmd += ["-W", "--keep-going"]
    subprocess.run(cmd, check=True)
    return root / "_build" / "html"


def build(profile: str = "cpu", chapters_: list[str] | None = None, strict: bool = True) -> Path:
    """Execute the chapters (all by default) with ``profile``, then render the book."""
    names = chapters_ or list(chapters())
    for name in names:
        resolve(name, profile)                  # validate every chapter before running any
    for name in names:
        record = run_chapter(name, profile)
        print(f"{name}: {record['seconds']} s ({profile})", flush=True)
    write_status_page()
    return render(strict)


def sync_colab(check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) ``notebooks/<name>.ipynb`` from each jupytext source.

    Returns the names whose notebook was (or would be) changed.
    """
    import nbformat

    changed = []
    for name, chapter in chapters().items():
        nb = read_notebook(name)
        target = project_root() / "notebooks" / f"{name}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if not target.is_file() or target.read_text() != text:
            changed.append(name)
            if not check:
                atomic_write(target, lambda tmp: tmp.write_text(text))
    return changed
