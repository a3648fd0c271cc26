"""Executing chapters with papermill.

``run_chapter(name, profile, overrides)`` validates the parameters, then executes
``notebooks/<name>.py`` into ``book/notebooks/<name>.ipynb`` (where the book build picks it up).

* The book holds one profile: the one it was built with (``book_profile``, read from its run records;
  ``cpu`` before any build). A run of another profile, or with overrides, is a side run: its executed
  notebook and results go to ``_build/runs/<profile>[-custom]/`` and the book's are left as they were,
  byte for byte (``into_book=True``, the CLI's ``--into-book``, replaces them on purpose).

* Progress bars of the chapter go to the terminal and the log, never into the page
  (``ROBUSTBOOK_BUILD`` tells the kernel; see :func:`robustbook.runtime.progress`).
* The chapter writes its results into a staging folder; they replace ``_build/results/<name>*``
  only when the whole chapter succeeded, so a failed run leaves the results as they were.
* An exception inside a chapter becomes one :class:`ChapterFailed` message — chapter, cell, the
  library's error — and the full traceback goes to ``_build/logs/<name>.log``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..runtime import atomic_write, build_dir, project_root, results_dir, save_json
from .specs import get, resolve

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ChapterFailed(RuntimeError):
    """A chapter stopped with an error; the message says where and why, the log has the traceback."""


def executed_path(name: str) -> Path:
    return project_root() / "book" / "notebooks" / f"{name}.ipynb"


def runs_path(folder: Path | None = None) -> Path:
    return (folder or results_dir()) / "_runs.json"


def book_profile() -> str:
    """The profile the book's executed chapters and results come from (``cpu`` before any build)."""
    path = runs_path()
    records = json.loads(path.read_text()) if path.is_file() else {}
    profiles = {r.get("profile") for r in records.values() if isinstance(r, dict)}
    return profiles.pop() if len(profiles) == 1 else "cpu"


def side_folder(profile: str, custom: bool = False) -> Path:
    """Where a side run (another profile than the book's, or overridden parameters) writes everything."""
    return build_dir() / "runs" / (f"{profile}-custom" if custom else profile)


def log_path(name: str) -> Path:
    path = build_dir() / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def read_notebook(name: str):
    """The chapter's jupytext source as a notebook object with a python3 kernelspec."""
    import jupytext

    nb = jupytext.read(project_root() / get(name).notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):   # stable ids keep the Colab notebooks diff-free
        cell.id = f"cell-{i}"
    return nb


@contextmanager
def _environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _notices(path: Path) -> list[str]:
    """The library's one-line notices printed inside the chapter (e.g. a damaged cache entry moved aside), so
    that the person who ran the build sees them in the terminal too, not only on the rendered page."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                lines += [ln for ln in str(out.get("text", "")).splitlines() if ln.startswith("robustbook: ")]
    return lines


def _hide_parameters(path: Path) -> None:
    """Tag the parameters cell (``x = None`` defaults) and papermill's injected-parameters cell ``remove-cell``:
    the page shows the parameters table instead. The sources keep papermill's plain ``parameters`` tag, so the
    Colab notebook shows the cell a reader edits."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def _failure(name: str, err: Exception, log: Path) -> ChapterFailed:
    """One clear message from a papermill error: the chapter, the cell, the library's own error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        traceback = ANSI.sub("", "\n".join(err.traceback))
        atomic_write(log, lambda tmp: tmp.write_text(f"{name}: cell {err.exec_count} failed\n\n{traceback}\n"))
        first_line = ANSI.sub("", str(err.evalue)).strip()
        return ChapterFailed(f"chapter {name} stopped in cell {err.exec_count}: {err.ename}: {first_line}\n"
                             f"(full traceback: {log})")
    atomic_write(log, lambda tmp: tmp.write_text(f"{name}: {type(err).__name__}: {err}\n"))
    return ChapterFailed(f"chapter {name} could not run: {type(err).__name__}: {err} (log: {log})")


def _can_download(url: str, timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443 if url.startswith("https") else 80), timeout=timeout).close()
        return True
    except OSError:
        return False


def preflight(params: Mapping[str, Any], output: Path | None) -> None:
    """What can be known before the first cell: the output path, the environment, the data on disk.

    Raises :class:`~robustbook.validate.InvalidArgument` naming the culprit; nothing has been written.
    """
    from ..data import _TORCHVISION, DataNotAvailable, load_dataset
    from ..runtime import set_threads
    from ..validate import InvalidArgument

    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise InvalidArgument(f"--output {output} is an existing folder; give the path of the notebook to write "
                                  f"(e.g. {output / 'chapter.ipynb'})")
        for parent in output.parents:
            if parent.exists() and not parent.is_dir():
                raise InvalidArgument(f"--output {output}: {parent} is a file, not a folder")
    cache = os.environ.get("ROBUSTBOOK_CACHE")
    if cache and Path(cache).exists() and not Path(cache).is_dir():
        raise InvalidArgument(f"ROBUSTBOOK_CACHE={cache} is a file; it must be a folder (or not exist yet)")
    try:
        set_threads()
    except ValueError as err:
        raise InvalidArgument(str(err)) from None
    dataset = params.get("dataset")
    if dataset in _TORCHVISION:
        try:
            load_dataset(dataset, download=False)
        except DataNotAvailable as err:
            if not _can_download(_TORCHVISION[dataset].url):
                raise DataNotAvailable(f"{err}\n(checked before running: this machine cannot reach the "
                                       "download either)") from None


def run_chapter(name: str, profile: str = "cpu", overrides: Mapping[str, Any] | None = None,
                output: Path | None = None, progress: bool = True, into_book: bool | None = None) -> dict:
    """Validate the parameters, then execute the chapter with papermill; returns the run record.

    ``into_book`` (default: the profile is the book's and nothing is overridden) decides whether the executed
    notebook and results replace the book's; otherwise they go to :func:`side_folder`. The record says where
    (``notebook``, ``results``).
    """
    import papermill

    params = resolve(name, profile, overrides)          # fails before any work on bad input
    preflight(params, output)
    custom = any(v is not None for v in (overrides or {}).values())
    if into_book is None:
        into_book = profile == book_profile() and not custom
    side = None if into_book else side_folder(profile, custom)
    output = Path(output) if output else (executed_path(name) if into_book else side / f"{name}.ipynb")
    output.parent.mkdir(parents=True, exist_ok=True)
    final = results_dir() if into_book else side / "results"
    final.mkdir(parents=True, exist_ok=True)
    staging = final / ".staging" / name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tmp = output.with_name(f".{output.stem}.running.ipynb")
    log = log_path(name)
    start = time.perf_counter()
    try:
        with _environment(ROBUSTBOOK_BUILD="1", ROBUSTBOOK_RESULTS=str(staging),
                          ROBUSTBOOK_PROGRESS_LOG=str(log.with_suffix(".progress"))):
            papermill.execute_notebook(read_notebook(name), str(tmp), parameters=params, kernel_name="python3",
                                       cwd=str(project_root()), progress_bar=progress, log_output=False)
        _hide_parameters(tmp)
        for line in _notices(tmp):
            print(f"{name}: {line}", file=sys.stderr, flush=True)
        tmp.replace(output)
        for f in staging.iterdir():
            if f.name != "_runs.json":
                os.replace(f, final / f.name)
    except Exception as err:  # noqa: BLE001 - every failure becomes one message, the traceback goes to the log
        raise _failure(name, err, log) from None
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - start
    record = {"chapter": name, "profile": profile, "seconds": round(seconds, 1), "into_book": into_book,
              "notebook": str(output), "results": str(final),
              "parameters": params, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    runs = json.loads(runs_path(final).read_text()) if runs_path(final).is_file() else {}
    if into_book:       # the book holds one profile: records of another one are stale now
        runs = {k: v for k, v in runs.items() if v.get("profile") == profile}
    runs[name] = record
    save_json(runs, runs_path(final))
    return record
