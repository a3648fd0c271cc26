"""The install files agree with each other, declare what the code imports, and match what the book links to."""
import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import yaml

from conftest import ROOT


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_repeats_the_constraints():
    pins = {_norm(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_norm(r) for r in pip if not r.startswith("-e")} == pins
    assert any(r.startswith("-e .[") for r in pip)


def test_required_pins():
    pins = {_norm(line) for line in (ROOT / "constraints.txt").read_text().splitlines() if not line.startswith("#")}
    for pin in ("torch==2.14.1", "torchvision==0.29.1", "robustbench==1.1.1", "setuptools<81"):
        assert pin in pins
    assert any(p.startswith("jupyter-book==1.") for p in pins)


def test_library_dependencies_are_ranges_colab_s_torch_satisfies():
    deps = {_norm(d) for d in _project()["dependencies"]}
    assert "torch>=2.2" in deps and "torchvision>=0.17" in deps
    assert not any(d.startswith(("torch==", "torchvision==")) for d in deps)


def test_requires_python_matches_what_the_code_uses():
    assert _project()["requires-python"] == ">=3.11"            # tomllib (tests), typing in the library
    assert sys.version_info >= (3, 11)


def test_license_file_and_a_backend_that_understands_it():
    project = _project()
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"][0]
    assert backend.startswith("setuptools>=77")                 # SPDX license strings need setuptools >= 77


def _third_party_imports(folder):
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    local = {p.stem for p in folder.glob("*.py")}
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("robustbook", *local)}


def test_every_import_of_the_library_and_tests_is_declared():
    project = _project()
    declared = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {re.split(r"[<>=\[ ]", d)[0].lower() for d in extra}
    dists = packages_distributions()
    # installed with --no-deps by the Makefile, imported only where they are needed
    by_makefile = {"imagecorruptions", "torchattacks"}
    missing = {}
    for name in _third_party_imports(ROOT / "lib") | _third_party_imports(ROOT / "tests"):
        providers = {d.lower() for d in dists.get(name, [name])}
        if name not in by_makefile and not providers & declared and not _transitive(providers, declared):
            missing[name] = sorted(providers)
    assert not missing, f"imported but not declared: {missing}"


def _transitive(providers, declared):
    """A package another declared dependency brings (e.g. nbformat with jupytext) counts only if declared directly."""
    return False


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make book" in ci and "set -euo pipefail" in ci
    assert "make test" in readme and "make book" in readme


def test_book_config_and_colab_source():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["branch"] == "main" and config["repository"]["url"].startswith("https://github.com/")
    assert config["execute"]["execute_notebooks"] == "off"
    assert "colab" in config["launch_buttons"]["colab_url"]
    assert {"sphinx_exercise", "sphinx_proof", "sphinx-mathjax-offline"} <= set(config["sphinx"]["extra_extensions"])


def test_the_repository_url_is_written_in_one_place():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    hits = [p for p in list((ROOT / "lib").rglob("*.py")) + [ROOT / "Makefile"] if url in p.read_text()]
    assert not hits, f"the repository URL is typed into {hits}; read it from _config.yml"


def test_toc_lists_every_registered_chapter_in_order():
    from robustbook.book import chapters

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    listed = [f.split("/")[-1] for f in files if f.startswith("notebooks/")]
    assert listed == list(chapters())
    for name in chapters():
        assert (ROOT / "notebooks" / f"{name}.py").is_file()


def test_github_workflow_runs_test_and_book_and_caches_safely():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = flow["jobs"]["build"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "make test" in runs and "make book" in runs
    cache = [s for s in steps if s.get("uses", "").startswith("actions/cache")]
    assert cache and "_build/cache" in cache[0]["with"]["path"]
    key = cache[0]["with"]["key"]
    assert "hashFiles" in key and "lib/**" in key and "constraints.txt" in key
