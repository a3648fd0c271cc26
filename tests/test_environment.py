"""The install files agree with each other and the repository has what the book links to."""
import re
import tomllib

import yaml

from conftest import ROOT


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_repeats_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_norm(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted


def test_required_pins():
    deps = {_norm(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for pin in ("torch==2.14.1", "torchvision==0.29.1", "robustbench==1.1.1", "setuptools<81",
                "jupyter-book>=1.0.4.post1,<2"):
        assert pin in deps


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make book" in ci and "set -euo pipefail" in ci
    assert "make test" in readme and "make book" in readme


def test_book_config_points_colab_at_main():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["branch"] == "main"
    assert config["execute"]["execute_notebooks"] == "off"
    assert "colab" in config["launch_buttons"]["colab_url"]


def test_toc_lists_every_registered_chapter_in_order():
    from robustbook.chapters import chapters

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    listed = [f.split("/")[-1] for f in files if f.startswith("notebooks/")]
    assert listed == list(chapters())
    for name in chapters():
        assert (ROOT / "notebooks" / f"{name}.py").is_file()
