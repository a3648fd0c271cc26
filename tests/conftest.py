import os
import shutil
import socket
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Tests share the machine's cores with nothing else; papermill kernels started by the
# chapter tests run while this process waits, so they never compete for threads.
torch.set_num_threads(int(os.environ.get("ROBUSTBOOK_THREADS", "2")))
os.environ.setdefault("ROBUSTBOOK_PROGRESS", "0")


def pytest_collection_modifyitems(config, items):
    """GPU tests need CUDA; without it they are skipped, and the reason is printed (``-ra``)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device here: torch.cuda.is_available() is False "
                                   "(run on a GPU machine to compare CUDA with CPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture
def no_network(monkeypatch):
    """Simulate a machine without internet: every outgoing connection is refused at once.

    Tests that need to know what happens offline use this instead of assuming the machine is offline,
    so the suite gives the same result with or without a network.
    """
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("network blocked by the test (no_network fixture)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(
        socket.gaierror("network blocked by the test (no_network fixture)")))
    yield


@pytest.fixture(scope="session")
def digits():
    from robustbook.data import load_digits

    return load_digits()


def make_project(root: Path) -> Path:
    """A scratch copy of the book's sources (library linked, not copied) to execute and build in."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("notebooks", "status.md"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    (root / "lib").mkdir()
    (root / "lib" / "robustbook").symlink_to(ROOT / "lib" / "robustbook")
    return root


@pytest.fixture(scope="session")
def book_project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def smoke_runs(book_project):
    """Execute every chapter with the smoke profile in the scratch project (once per session)."""
    from robustbook.book import chapters
    from robustbook.book.runner import run_chapter

    old = os.environ.get("ROBUSTBOOK_ROOT")
    os.environ["ROBUSTBOOK_ROOT"] = str(book_project)
    runs = {}
    try:
        for name in chapters():
            try:
                runs[name] = run_chapter(name, "smoke", progress=False, into_book=True)
            except Exception as err:  # reported per chapter by the tests
                runs[name] = err
        yield runs
    finally:
        if old is None:
            os.environ.pop("ROBUSTBOOK_ROOT", None)
        else:
            os.environ["ROBUSTBOOK_ROOT"] = old


@pytest.fixture(scope="session")
def built(smoke_runs, book_project):
    """The smoke-profile book rendered (instructor edition) in the scratch project."""
    from robustbook.book.render import render
    from robustbook.book.status import write_status_page

    os.environ["ROBUSTBOOK_ROOT"] = str(book_project)
    try:
        write_status_page()
        html = render(strict=True)
    finally:
        os.environ.pop("ROBUSTBOOK_ROOT", None)
    return html
