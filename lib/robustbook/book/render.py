"""Rendering the book with Jupyter Book 1, and the Colab notebooks.

* ``build(profile)``: run every chapter, write the status page, render ``_build/html``
  (``execute_notebooks: off``: the book shows what papermill ran).
* ``render()``: only the rendering step, from already executed chapters.
* ``colab_cell()`` / ``sync_colab()``: the install cell every chapter starts with, generated from
  the repository URL and branch in ``_config.yml`` (the one place they are written), and the
  unexecuted ``notebooks/<name>.ipynb`` the "Open in Colab" buttons open.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..runtime import atomic_write, project_root
from .runner import executed_path, read_notebook, run_chapter
from .specs import chapters, resolve

EDITIONS = ("instructor", "student")


def repository() -> tuple[str, str]:
    """The repository URL and branch the book is published from (``_config.yml``, ``repository``)."""
    config = yaml.safe_load((project_root() / "_config.yml").read_text())
    repo = config.get("repository") or {}
    if not repo.get("url") or not repo.get("branch"):
        raise ValueError("_config.yml must set repository.url and repository.branch")
    return repo["url"].rstrip("/"), repo["branch"]


def colab_cell() -> str:
    """The first code cell of every chapter: on Colab only, install the library and its Colab extras.

    Colab's own torch and torchvision are kept (the library asks for ranges they satisfy).
    ``ROBUSTBOOK_INSTALL_SOURCE`` replaces the repository (e.g. ``file:///path/to/checkout`` in the
    test that simulates Colab).
    """
    url, branch = repository()
    # formatted as the notebooks are (ruff format, 80 columns: notebooks/ruff.toml)
    return f'''# On Colab: install this book's library and its Colab extras;
# Colab's torch and torchvision stay as they are.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get(
        "ROBUSTBOOK_INSTALL_SOURCE",
        "git+{url}@{branch}",
    )
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"robustbook[colab] @ {{source}}"], check=True)'''


_FIRST_CELL = re.compile(r"# %% tags=\[\"remove-cell\"\]\n# On Colab:.*?(?=\n\n# %%)", re.S)


def sync_colab(check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) each chapter's install cell and its ``notebooks/<name>.ipynb``.

    Returns the names whose source or notebook was (or would be) changed.
    """
    import nbformat

    changed = []
    cell = colab_cell()
    for name, chapter in chapters().items():
        source = project_root() / chapter.notebook
        text = source.read_text()
        wanted = _FIRST_CELL.sub(lambda m: f'# %% tags=["remove-cell"]\n{cell}', text, count=1)
        if not _FIRST_CELL.search(text):
            raise ValueError(f"{source}: the first cell must be the Colab install cell tagged remove-cell")
        if wanted != text:
            changed.append(name)
            if not check:
                atomic_write(source, lambda tmp: tmp.write_text(wanted))
        nb = read_notebook(name)
        target = project_root() / "notebooks" / f"{name}.ipynb"
        out = nbformat.writes(nb) + "\n"
        if not target.is_file() or target.read_text() != out:
            if name not in changed:
                changed.append(name)
            if not check:
                atomic_write(target, lambda tmp: tmp.write_text(out))
    return changed


def render(strict: bool = True, edition: str = "instructor", output: Path | None = None) -> Path:
    """Render the book's HTML from the executed notebooks (Jupyter Book 1, offline); returns the html folder.

    ``edition="student"`` leaves every exercise solution — its text and its code cells — out of the HTML
    entirely (not just folded): it renders a copy of the sources with the solutions removed, into
    ``_build/student`` unless ``output`` says otherwise.
    """
    from .status import write_status_page

    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}; valid choices: {', '.join(EDITIONS)}")
    root = project_root()
    missing = [n for n in chapters() if not executed_path(n).is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)} (run `python -m robustbook build`)")
    if not (root / "book" / "status.md").is_file() or not (root / "book" / "teaching_times.md").is_file():
        write_status_page()
    source = root / "book"
    if edition == "student":
        source = _student_source(root)
        output = Path(output) if output else root / "_build" / "student"
    out = Path(output) if output else root
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--config",
           str(root / "_config.yml"), "--toc", str(root / "_toc.yml"), "--path-output", str(out), "--all"]
    if strict:
        cmd += ["-W", "--keep-going"]
    try:
        subprocess.run(cmd, check=True)
    finally:
        if edition == "student":
            shutil.rmtree(source, ignore_errors=True)
    return out / "_build" / "html"


def strip_solutions(lines: list[str], inside: bool = False) -> tuple[list[str], bool]:
    """Markdown lines without the solution blocks (from ``{solution-start}`` to the end of ``{solution-end}``)."""
    kept, skip_fence = [], False
    for line in lines:
        if skip_fence:                       # the closing fence of a solution-end directive
            skip_fence = False
            if line.strip().startswith("```"):
                continue
        if line.strip().startswith("```{solution-start}"):
            inside = True
            continue
        if line.strip().startswith("```{solution-end}"):
            inside, skip_fence = False, True
            continue
        if not inside:
            kept.append(line)
    return kept, inside


def _student_source(root: Path) -> Path:
    """A copy of ``book/`` beside it (so relative includes still resolve) with every solution removed."""
    import nbformat

    target = root / "book-student"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "book", target)
    for path in sorted((target / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells, inside = [], False
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                kept, inside = strip_solutions(cell.source.splitlines(), inside)
                if "".join(kept).strip():
                    cell.source = "\n".join(kept)
                    cells.append(cell)
            elif not inside:
                cells.append(cell)
        nb.cells = cells
        nbformat.write(nb, path)
    return target


def build(profile: str = "cpu", names: list[str] | None = None, strict: bool = True,
          edition: str = "instructor", compare: bool = True) -> Path:
    """Execute the chapters (all by default) with ``profile``, then render the book.

    With ``compare`` each chapter first runs in the smoke profile (the 8x8 digits, seconds) as a side run, so
    that the book's claims tables say where a verdict differs from the digits.
    """
    from .status import write_status_page

    from .results import COMPARED_PROFILE

    names = names or list(chapters())
    for name in names:
        resolve(name, profile)                  # validate every chapter before running any
    if profile != COMPARED_PROFILE and compare:  # the digits side runs whose verdicts each chapter's claims show
        for name in names:
            record = run_chapter(name, COMPARED_PROFILE, into_book=False, progress=False)
            print(f"{name}: {record['seconds']} s ({COMPARED_PROFILE}, side run for the comparison)", flush=True)
    for name in names:
        record = run_chapter(name, profile, into_book=True)
        print(f"{name}: {record['seconds']} s ({profile})", flush=True)
    write_status_page()
    return render(strict, edition)
