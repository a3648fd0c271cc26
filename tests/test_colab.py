"""Colab, simulated: a fresh venv holding only torch and torchvision (and the kernel), a stand-in google.colab
module, the install pointed at this checkout, the network off. The generated notebook of chapter 1 runs in the
smoke profile, its first cell installs the library, and torch is left as it was."""
import json
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

WHEELHOUSE = ROOT / ".venv" / "wheelhouse"


def _link_distributions(names, site: Path) -> None:
    """Make the installed distributions ``names`` (and what they need) visible in another venv, by symlinks."""
    sys.path.insert(0, str(ROOT / "tests"))
    from colab_wheelhouse import closure

    source = Path(sysconfig.get_paths()["purelib"])
    for name in sorted(closure(names)):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = site / top
            if (source / top).exists() and not target.exists():
                target.symlink_to(source / top)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    if not (WHEELHOUSE / "requirements.txt").is_file():
        pytest.fail(f"{WHEELHOUSE} is missing: `make venv` builds it (tests/colab_wheelhouse.py)")
    root = tmp_path_factory.mktemp("colab")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    _link_distributions(["torch", "torchvision", "ipykernel"], site)
    stand_in = site / "google" / "colab"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab module (tests only)."""\n')
    (site / "sitecustomize.py").write_text("import google.colab  # Colab's kernel imports it at start-up\n")
    kernels = root / "jupyter" / "kernels" / "colab-sim"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)", "language": "python"}))
    return root, python


def _torch_version(python):
    return subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_colab_notebook_installs_the_library_and_runs_offline(colab, monkeypatch):
    import papermill

    root, python = colab
    before = _torch_version(python)
    assert subprocess.run([str(python), "-c", "import robustbook"], capture_output=True).returncode != 0
    work = root / "work"
    work.mkdir()
    # pip builds a local source in place (a build/ folder): give it a copy of the checkout, not the checkout
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "_build", "build", "book-student",
                                                                "*.egg-info", "__pycache__", "notebooks"))
    shutil.copytree(ROOT / "notebooks", source / "notebooks")
    for key, value in {"JUPYTER_PATH": str(root / "jupyter"), "ROBUSTBOOK_INSTALL_SOURCE": source.as_uri(),
                       "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE),
                       "ROBUSTBOOK_CACHE": str(root / "cache"), "ROBUSTBOOK_RESULTS": str(work / "results"),
                       "PIP_DISABLE_PIP_VERSION_CHECK": "1", "http_proxy": "http://127.0.0.1:9",
                       "https_proxy": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ROBUSTBOOK_ROOT", raising=False)
    out = work / "executed.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "01_local_robustness.ipynb"), str(out),
                               parameters={"profile": "smoke"}, kernel_name="colab-sim", cwd=str(work),
                               progress_bar=False)
    assert _torch_version(python) == before, "the Colab cell replaced torch"
    show = subprocess.run([str(python), "-m", "pip", "show", "robustbook", "robustbench"], capture_output=True,
                          text=True).stdout
    assert "Name: robustbook" in show and "Name: robustbench" in show
    results = json.loads((work / "results" / "01_local_robustness.json").read_text())
    assert results["standard_clean_accuracy"]["n"] == 2
