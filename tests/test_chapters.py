"""Chapters as data: parameters validated before any work; notebook structure; every chapter runs (smoke)."""
import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from conftest import ROOT
from robustbook.book import PROFILES, chapters, resolve
from robustbook.book.render import colab_cell
from robustbook.book.specs import parse_value

CH1 = "01_local_robustness"


def test_parse_value():
    assert parse_value("0.2") == 0.2 and parse_value("[0, 0.1]") == [0, 0.1] and parse_value("digits") == "digits"


def test_every_profile_of_every_chapter_is_valid():
    for name in chapters():
        for profile in PROFILES:
            assert resolve(name, profile)["profile"] == profile


def test_the_cpu_book_runs_on_fashion_mnist_and_the_smoke_profile_on_the_digits():
    for name in chapters():
        assert resolve(name, "cpu")["dataset"] == "fashion_mnist", name
        assert resolve(name, "smoke")["dataset"] == "digits", name
    assert resolve("03_certified_relaxed", "cpu")["groups"] == "fashion_mnist"     # the natural groups


def test_chapters_that_share_models_train_them_the_same_way():
    """Chapters 1, 2, 4 and 6 reuse each other's cached CNNs: same data subset and training settings."""
    shared = ("data_points", "width", "epochs", "train_steps", "eps")
    for profile in PROFILES:
        values = {name: {k: resolve(name, profile)[k] for k in shared}
                  for name in ("01_local_robustness", "02_margin_consistency", "04_avoid_robust_inaccuracy",
                               "06_free_selectors")}
        if profile in ("smoke", "cpu"):
            assert len({repr(v) for v in values.values()}) == 1, (profile, values)


def test_every_chapter_declares_its_work_and_units():
    """The colab estimates and the README's paper-scale table come from each registration's work and units."""
    from robustbook.book import estimate

    for name in chapters():
        for profile in PROFILES:
            p = resolve(name, profile)
            assert estimate.minutes(name, p)["minutes"] > 0 and estimate.units(name, p) >= 0, (name, profile)


def test_autoattack_work_counts_each_stage_of_the_setting():
    """Forward-pass equivalents per point: a gradient step is 3 passes, a FAB step 5, a Square query 1; fewer
    iterations (the shrunk runs) count less."""
    from robustbook.attacks import AUTOATTACK_SETTINGS, autoattack_setting
    from robustbook.book.estimate import aa_passes

    assert aa_passes(AUTOATTACK_SETTINGS["standard"]) == 100 * 3 + 9 * 100 * 3 + 9 * 100 * 5 + 5000
    assert aa_passes(AUTOATTACK_SETTINGS["cpu"]) == 100 * 3 + 3 * 100 * 3
    assert aa_passes(AUTOATTACK_SETTINGS["smoke"]) == 10 * 3
    assert aa_passes(autoattack_setting("standard", 2)) == 2 * 3 + 9 * 2 * 3 + 9 * 2 * 5 + 100


def test_cpu_profiles_have_at_least_three_seeds():
    for name in chapters():
        assert len(resolve(name, "cpu")["seeds"]) >= 3, name


@pytest.mark.parametrize("name", list(chapters()))
def test_notebook_structure(name):
    """The Colab cell first (tagged remove-cell and generated from _config.yml), then papermill's parameters cell
    with ``profile`` and None for every parameter (the runner removes it from the page), then ``rb.start``."""
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.strip() == colab_cell().strip()
    assert "remove-cell" in code[0].metadata.get("tags", [])
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].metadata["tags"] == ["parameters"]
    namespace = {}
    exec(params[0].source, namespace)
    assert namespace["profile"] == "cpu"
    assert {k for k in namespace if not k.startswith("__")} == {"profile", *chapters()[name].params}
    assert all(namespace[k] is None for k in chapters()[name].params)
    assert f'rb.start("{name}", globals())' in nb.cells[nb.cells.index(params[0]) + 1].source


def test_notebook_code_is_formatted_to_the_page_width():
    """``ruff format`` (80 columns, notebooks/ruff.toml) leaves every chapter as it is, and no code line of a cell
    the page shows is wider than 80 columns (long strings, which a formatter cannot split, included)."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    files = sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9]*.py"))
    done = subprocess.run([ruff, "format", "--check", "--config", str(ROOT / "notebooks" / "ruff.toml"), *files],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"run `make format`:\n{done.stdout}{done.stderr}"
    wide = []
    for path in files:
        for cell in jupytext.read(path).cells:
            hidden = {"remove-cell", "remove-input"} & set(cell.metadata.get("tags", []))
            if cell.cell_type == "code" and not hidden:
                wide += [f"{Path(path).name}: {line[:60]}" for line in cell.source.splitlines() if len(line) > 80]
    assert not wide, "code wider than the page:\n" + "\n".join(wide)


@pytest.mark.parametrize("name", list(chapters()))
def test_notebook_title_comes_first_on_the_page(name):
    """After the removed cells (and the parameters cell, which the runner removes), the page opens with the title."""
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    shown = [c for c in nb.cells if not {"remove-cell", "parameters"} & set(c.metadata.get("tags", []))]
    assert shown[0].cell_type == "markdown" and shown[0].source.startswith(f"# {chapters()[name].title}")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(chapters()))
def test_chapter_executes_under_smoke_profile(smoke_runs, book_project, name):
    record = smoke_runs[name]
    if isinstance(record, Exception):
        raise record
    assert record["profile"] == "smoke"
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    assert results, "the chapter wrote no results"
    claims = json.loads((book_project / "_build" / "results" / f"{name}.claims.json").read_text())
    assert claims, "the chapter checked no claims"
    assert any(c["enforced"] for c in claims), "a chapter must enforce at least one claim"
    executed = nbformat.read(book_project / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
    hidden = [c for c in executed.cells if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    assert len(hidden) == 2 and all("remove-cell" in c.metadata["tags"] for c in hidden), \
        "the parameters and injected-parameters cells must be removed from the page"


def _null_paths(value, key=""):
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _null_paths(v, f"{key}.{k}" if key else k)]
    return [key] if value is None else []


@pytest.mark.slow
@pytest.mark.parametrize("name", list(chapters()))
def test_results_hold_no_null_except_declared(smoke_runs, book_project, name):
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    holes = [p for p in _null_paths(results) if not p.endswith("robust_accuracy_certified")]
    assert not holes, holes


@pytest.mark.slow
def test_headline_numbers_carry_their_seeds(smoke_runs, book_project):
    results = json.loads((book_project / "_build" / "results" / f"{CH1}.json").read_text())
    for key in ("standard_clean_accuracy", "standard_robust_accuracy", "adversarial_clean_accuracy",
                "adversarial_robust_accuracy", "linear_margin_agreement", "fab_default_agreement"):
        entry = results[key]
        assert set(entry) >= {"mean", "std", "per_seed", "n"} and entry["n"] == len(entry["per_seed"]) == 2
    assert results["linear_margin_below_exact"] == 0


@pytest.mark.slow
def test_chapter_6_results_have_the_issue_s_shape(smoke_runs, book_project):
    results = json.loads((book_project / "_build" / "results" / "06_free_selectors.json").read_text())
    assert {"eps", "pairs", "consistency", "certificate_violations"} <= set(results)
    assert results["certificate_violations"] == 0
    for pair, values in results["pairs"].items():
        robust, selector = pair.split("/")
        assert {"selected", "cost_over_forward", "natural_accuracy", "robust_accuracy_formula",
                "robust_accuracy_attack", "robust_accuracy_certified", "r_rob_inacc"} <= set(values)
        assert (values["robust_accuracy_certified"] is None) == (selector != "certified")
    assert set(results["consistency"]) == {"era", "gloro_local"}


@pytest.mark.parametrize("name", list(chapters()))
def test_no_paper_number_is_typed_into_a_notebook(name):
    """The papers' numbers live in data files; a notebook that types one in is caught here."""
    from robustbook.book import papers

    text = (ROOT / "notebooks" / f"{name}.py").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for chapter in chapters():
        try:
            entries = papers.numbers(chapter)
        except FileNotFoundError:
            continue
        for entry in entries:
            for key, value in entry.items():
                # numbers with at least two decimals: short ones (0.7, 2.0) also occur as settings
                if isinstance(value, float) and len(repr(value).split(".")[-1]) >= 2:
                    for text_form in {f"{value}", f"{value:.3f}", f"{100 * value:.1f}"}:
                        assert not re.search(rf"(?<![\d.]){re.escape(text_form)}(?![\d])", code), \
                            f"{name} types the paper number {text_form} ({entry['key']}.{key})"


def test_every_chapter_has_a_paper_numbers_file_with_sources():
    from robustbook.book import papers

    for name in chapters():
        entries = papers.numbers(name)
        assert entries and all(e.get("source") for e in entries), name


def test_colab_notebooks_are_in_step_with_their_sources():
    """notebooks/*.ipynb (what the Colab button opens) are generated from the .py sources: a chapter edited
    without `python -m robustbook sync` would send Colab readers an older chapter."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "robustbook", "sync", "--check"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "ROBUSTBOOK_ROOT": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_gpu_section_is_written_in_one_place_and_says_what_was_measured(tmp_path, monkeypatch):
    """Every chapter's "On a GPU" section comes from ``estimate.gpu_section``: an estimate until a kept
    ``make gpu-check`` run (benchmarks/results/gpu-check.json) measured the chapter, then the measured minutes and
    the device."""
    from robustbook.book import estimate

    for name in chapters():
        nb = (ROOT / "notebooks" / f"{name}.py").read_text()
        assert "## On a GPU\n#\n# ```{glue:md} gpu_section" in nb, name
    monkeypatch.setenv("ROBUSTBOOK_ROOT", str(tmp_path))
    assert estimate.gpu_section(CH1).startswith("No GPU run of this chapter is kept yet")
    assert "an estimate, not a measurement" in estimate.gpu_section(CH1)
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "gpu-check.json").write_text(json.dumps(
        {"device": "NVIDIA H200", "chapters": {CH1: {"seconds": 150.0, "dataset": "fashion_mnist"}}}))
    text = estimate.gpu_section(CH1)
    assert text.startswith("Measured: the colab profile ran in 2.5 minutes on an NVIDIA H200")
    assert estimate.gpu_section("03_certified_relaxed").startswith("No GPU run")
