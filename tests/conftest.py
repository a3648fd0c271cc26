import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Tests share the machine's cores with nothing else; papermill kernels started by the
# chapter tests run while this process waits, so they never compete for threads.
torch.set_num_threads(int(os.environ.get("ROBUSTBOOK_THREADS", "2")))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Checkpoints trained by tests go to a temporary cache, not the book's."""
    old = os.environ.get("ROBUSTBOOK_CACHE")
    os.environ["ROBUSTBOOK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("ROBUSTBOOK_CACHE", None)
    else:
        os.environ["ROBUSTBOOK_CACHE"] = old


@pytest.fixture(scope="session")
def digits():
    from robustbook.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def book_project(tmp_path_factory):
    """A scratch copy of the book's sources (library linked, not copied) to execute and build in."""
    root = tmp_path_factory.mktemp("project")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("notebooks", "status.md"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    (root / "lib").mkdir()
    (root / "lib" / "robustbook").symlink_to(ROOT / "lib" / "robustbook")
    return root


@pytest.fixture(scope="session")
def smoke_runs(book_project):
    """Execute every chapter with the smoke profile in the scratch project (once per session)."""
    from robustbook import book
    from robustbook.chapters import chapters

    old = os.environ.get("ROBUSTBOOK_ROOT")
    os.environ["ROBUSTBOOK_ROOT"] = str(book_project)
    runs = {}
    try:
        for name in chapters():
            try:
                runs[name] = book.run_chapter(name, "smoke", progress=False)
            except Exception as err:  # reported per chapter by the tests
                runs[name] = err
        yield runs
    finally:
        if old is None:
            os.environ.pop("ROBUSTBOOK_ROOT", None)
        else:
            os.environ["ROBUSTBOOK_ROOT"] = old
