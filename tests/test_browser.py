"""The smoke-profile book, read in headless Chromium with the network off, as a reader would.

Every page loads without a console error; images decode; no raw TeX is left; no output holds a progress
bar, a warning or an absolute path; every glued number equals the value in the chapter's results JSON;
exercise solutions are folded and unfold on click; each chapter's Colab link points at its notebook;
internal links resolve. Screenshots of every page go to ``_build/screenshots/``.

Needs Debian's ``chromium`` (``make test`` installs it; ``make browser`` alone does too).
"""
import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT
from robustbook.book import chapters

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
GLUE = re.compile(r"\{glue:text\}`([^`:]+)(?::([^`]*))?`")


@pytest.fixture(scope="module")
def site(built):
    """The built HTML served on localhost (Chromium blocks some file:// behaviour)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", built
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run `make browser` (Debian's chromium package) or `make test`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _pages(built: Path) -> list[str]:
    """Every page a reader can open (the redirect index.html, search and the generated indices left out)."""
    return sorted(str(p.relative_to(built)) for p in built.rglob("*.html")
                  if not p.name.startswith(("genindex", "search", "prf-")) and "_static" not in p.parts
                  and 'http-equiv="Refresh"' not in p.read_text() and 'http-equiv="refresh"' not in p.read_text())


def _open(browser, url: str):
    """A page with the network off: every request that is not to this machine is refused."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).hostname == "127.0.0.1"
               else route.abort())
    page.goto(url, wait_until="load")
    page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) ? "
                  "MathJax.startup.promise.then(() => true) : true")
    page.wait_for_timeout(600)
    return page, errors


def test_every_page_loads_cleanly_and_reads_like_a_book(site, browser):
    url, built = site
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    problems = {}
    for rel in _pages(built):
        page, errors = _open(browser, f"{url}/{rel}")
        found = list(errors)
        broken_images = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                                      ".map(i => i.src)")
        if broken_images:
            found.append(f"images that do not decode: {broken_images}")
        # the prose as a reader sees it: code blocks may hold TeX on purpose (axis labels), so they are left out
        text = page.evaluate("() => { const root = (document.querySelector('main') || document.body).cloneNode(true);"
                             " root.querySelectorAll('pre, .highlight').forEach(e => e.remove());"
                             " return root.innerText; }")
        raw_tex = re.findall(r"\\\(|\\\[|\$\$|\\frac|\\varepsilon|\\mathbb", text)
        if raw_tex:
            found.append(f"raw TeX left unrendered: {raw_tex[:3]}")
        outputs = " ".join(page.eval_on_selector_all(".cell_output, .output", "els => els.map(e => e.innerText)"))
        for label, pattern in (("a progress bar", r"\d+%\|.{0,40}\||it/s\]|█"), ("a warning", r"\w*Warning\b"),
                               ("an absolute path", r"(/home/|/tmp/|/work/|/root/|site-packages)")):
            if re.search(pattern, outputs):
                found.append(f"an output holds {label}: {re.search(pattern, outputs).group(0)!r}")
        page.screenshot(path=str(shots / (rel.replace("/", "_").removesuffix(".html") + ".png")), full_page=True)
        page.close()
        if found:
            problems[rel] = found
    assert not problems, problems


def _lookup(results: dict, key: str):
    value = results
    for part in key.split("."):
        value = value[part]
    return value


def _format(value, fmt: str) -> str:
    if not fmt:
        return str(value)
    if fmt.endswith("%"):
        return format(value, fmt)
    return format(value, fmt)


@pytest.mark.parametrize("name", list(chapters()))
def test_every_glued_number_on_the_page_equals_the_results_json(site, browser, book_project, name):
    url, _ = site
    source = (ROOT / "notebooks" / f"{name}.py").read_text()
    roles = GLUE.findall(source)
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    page, _ = _open(browser, f"{url}/notebooks/{name}.html")
    shown = page.eval_on_selector_all("span.pasted-text", "els => els.map(e => e.innerText.trim())")
    page.close()
    assert len(shown) == len(roles), f"{len(shown)} glued values on the page, {len(roles)} in the source"
    for (key, fmt), text in zip(roles, shown):
        assert text == _format(_lookup(results, key), fmt), f"{key}: page shows {text!r}"


def test_solutions_are_folded_and_unfold_on_click(site, browser):
    url, _ = site
    page, _ = _open(browser, f"{url}/notebooks/01_local_robustness.html")
    solutions = page.query_selector_all(".solution")
    assert solutions, "no solution on the page"
    body = solutions[0].query_selector("section")
    assert body is not None and not body.is_visible(), "the first solution is not folded"
    toggle = solutions[0].query_selector("button.toggle-button, .toggle-button, summary") or solutions[0]
    toggle.click()
    page.wait_for_timeout(400)
    assert body.is_visible(), "the solution did not unfold on click"
    page.close()


@pytest.mark.parametrize("name", list(chapters()))
def test_colab_link_points_at_the_chapter_s_notebook(site, browser, name):
    url, _ = site
    page, _ = _open(browser, f"{url}/notebooks/{name}.html")
    hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    page.close()
    assert hrefs and all(h.endswith(f"/notebooks/{name}.ipynb") for h in hrefs), hrefs


def test_internal_links_resolve(site):
    url, built = site
    broken = []
    for rel in _pages(built):
        html = (built / rel).read_text()
        for href in re.findall(r'href="([^"#?]+)(?:#[^"]*)?"', html):
            if href.startswith(("http:", "https:", "mailto:", "data:", "javascript:")) or not href:
                continue
            target = (built / rel).parent / href
            if not target.exists():
                broken.append(f"{rel} -> {href}")
    assert not broken, broken[:10]
