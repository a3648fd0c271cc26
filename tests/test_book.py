"""The book built from the smoke-profile chapters: clean outputs, working links, exercises, editions, status page."""
import json
import re

import nbformat
import pytest

from conftest import ROOT
from robustbook.book import chapters

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(chapters()))
def test_executed_chapter_has_no_error_output(smoke_runs, book_project, name):
    nb = nbformat.read(book_project / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""


def _solutions(nb):
    """The code cells between each ``solution-start`` and ``solution-end`` marker, by exercise label."""
    out, current = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                start = re.match(r"```\{solution-start\}\s+(\S+)", line)
                if start:
                    current = start.group(1)
                    out[current] = []
                elif line.startswith("```{solution-end}"):
                    current = None
        elif current is not None:
            out[current].append(cell)
    return out


@pytest.mark.parametrize("name", list(chapters()))
def test_every_chapter_has_exercises_each_with_a_solution_whose_code_ran(smoke_runs, book_project, name):
    nb = nbformat.read(book_project / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)", text)
    assert 4 <= len(exercises) <= 6, f"{len(exercises)} exercises"
    solutions = _solutions(nb)
    assert set(exercises) == set(solutions), "an exercise without a solution (or the other way round)"
    for label, cells in solutions.items():
        for cell in cells:
            assert cell.execution_count is not None, f"solution of {label} did not run"
            assert not [o for o in cell.outputs if o.output_type == "error"], f"solution of {label} failed"
    assert any(cells for cells in solutions.values()), "no solution runs code"


@pytest.mark.parametrize("name", list(chapters()))
def test_page_has_a_colab_link_to_that_chapter_s_notebook(built, name):
    page = (built / "notebooks" / f"{name}.html").read_text()
    links = re.findall(r'https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^"]+)', page)
    assert links == [f"notebooks/{name}.ipynb"] * len(links) and links, links
    assert (ROOT / links[0]).is_file()


@pytest.mark.parametrize("name", list(chapters()))
def test_glued_numbers_and_library_code_appear_in_the_page(built, book_project, name):
    page = (built / "notebooks" / f"{name}.html").read_text()
    assert "pasted-text" in page and "Traceback" not in page
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    assert results
    if "literalinclude" in (ROOT / "notebooks" / f"{name}.py").read_text():
        assert re.search(r'<span class="k">def</span>(<span class="w"> </span>| )<span class="nf">', page), \
            "no library code on the page"


def test_definitions_and_theorems_are_numbered_blocks(built):
    page = (built / "notebooks" / "02_margin_consistency.html").read_text()
    assert "Definition" in page and "Theorem" in page and 'class="proof' in page


def test_math_is_rendered_from_the_book_s_own_mathjax(built):
    page = (built / "notebooks" / "01_local_robustness.html").read_text()
    scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', page, re.I)
    assert scripts and all(s.startswith("../_static/mathjax/") for s in scripts), scripts
    assert (built / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_status_page_shows_times_split_machine_speed_and_tables(built):
    page = (built / "status.html").read_text()
    for chapter in chapters().values():
        assert chapter.title in page
    assert "smoke" in page and "Reference workload" in page and "training (s)" in page and "attacks (s)" in page
    assert "<table" in page and "per_seed" not in page


def test_parameters_cells_and_the_colab_cell_are_not_on_the_page(built):
    page = (built / "notebooks" / "01_local_robustness.html").read_text()
    assert "google.colab" not in page and "eps_grid = None" not in page and "injected" not in page.lower()


def test_student_edition_leaves_solutions_out(smoke_runs, book_project, tmp_path):
    import os

    from robustbook.book.render import render

    os.environ["ROBUSTBOOK_ROOT"] = str(book_project)
    try:
        html = render(strict=True, edition="student", output=tmp_path)
    finally:
        os.environ.pop("ROBUSTBOOK_ROOT", None)
    page = (html / "notebooks" / "01_local_robustness.html").read_text()
    assert "Exercise" in page
    assert "solution" not in page.lower().replace("solutions", ""), "a solution is in the student edition"
    assert "robust accuracy at eps/2" not in page                     # the first solution's printed output
