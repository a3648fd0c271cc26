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
    return f'''# On Colab: install this book's library and its Colab extras; Colab's torch and torchvision stay as they are.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get("ROBUSTBOOK_INSTALL_SOURCE", "git+{url}@{branch}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"robustbook[colab] @ {{source}}"], check=True)'''


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
    """Render ``_build/html`` from the executed notebooks (Jupyter Book 1, offline).

    ``edition="student"`` leaves every exercise solution out of the HTML (not just folded).
    """
    from .status import write_status_page

    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}; valid choices: {', '.join(EDITIONS)}")
    root = project_root()
    missing = [n for n in chapters() if not executed_path(n).is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)} (run `python -m robustbook build`)")
    if not (root / "book" / "status.md").is_file():
        write_status_page()
    out = Path(output) if output else root
    # the student edition uses sphinx-exercise's option that leaves solution directives out entirely
    config = _student_config(root) if edition == "student" else root / "_config.yml"
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root / "book"), "--config",
           str(config), "--toc", str(root / "_toc.yml"), "--path-output", str(out), "--all"]
    if strict:
        cmd += ["-W", "--keep-going"]
    subprocess.run(cmd, check=True)
    return out / "_build" / "html"


def _student_config(root: Path) -> Path:
    """``_config.yml`` with sphinx-exercise's ``hide_solutions`` switched on, written beside the build."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    path = root / "_build" / "_config.student.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
    return path


def build(profile: str = "cpu", names: list[str] | None = None, strict: bool = True,
          edition: str = "instructor") -> Path:
    """Execute the chapters (all by default) with ``profile``, then render the book."""
    from .status import write_status_page

    names = names or list(chapters())
    for name in names:
        resolve(name, profile)                  # validate every chapter before running any
    for name in names:
        record = run_chapter(name, profile)
        print(f"{name}: {record['seconds']} s ({profile})", flush=True)
    write_status_page()
    return render(strict, edition)
