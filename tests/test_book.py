"""The book built from the smoke-profile chapters: no error outputs, working Colab links, glued numbers."""
import json
import re

import nbformat
import pytest

from conftest import ROOT
from robustbook.chapters import chapters


@pytest.fixture(scope="module")
def built(smoke_runs, book_project):
    import os

    from robustbook import book

    os.environ["ROBUSTBOOK_ROOT"] = str(book_project)
    try:
        book.write_status_page()
        html = book.render(strict=True)
    finally:
        os.environ.pop("ROBUSTBOOK_ROOT", None)
    return html


@pytest.mark.parametrize("name", list(chapters()))
def test_executed_chapter_has_no_error_output(smoke_runs, book_project, name):
    nb = nbformat.read(book_project / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""


@pytest.mark.parametrize("name", list(chapters()))
def test_page_has_colab_link_to_a_file_in_the_repository(built, name):
    page = (built / "notebooks" / f"{name}.html").read_text()
    links = re.findall(r'https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^"]+)', page)
    assert links, "no Colab button"
    for path in links:
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("name", list(chapters()))
def test_glued_numbers_appear_in_the_page(built, book_project, name):
    page = (built / "notebooks" / f"{name}.html").read_text()
    assert "pasted-text" in page                      # glue roles were resolved
    assert "Traceback" not in page
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    assert results


def test_status_page_lists_every_chapter_with_run_time(built):
    page = (built / "status.html").read_text()
    for chapter in chapters().values():
        assert chapter.title in page
    assert "smoke" in page
