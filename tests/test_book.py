"""Tests of the course website (book/build.py): the link checker and the staging here, and, where a
site was built (`make book`) and Chromium is installed, the site itself in a headless browser
(`make book-check` builds the site, then runs this file)."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from kdlib import launch

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "book" / "html"
_spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    write(tmp_path / "index.html", '<a href="notebooks/a.html#sec-1">ok</a> <img src="_images/fig.png">'
          '<a href="https://example.org/x">external</a> <a href="#top" id="top">self</a>'
          '<a href="notebooks/a.html#nowhere">bad anchor</a> <img src="_images/missing.png">'
          '<a href="api/">folder</a> <a href="mailto:x@y">mail</a>')
    write(tmp_path / "notebooks" / "a.html", '<h2 id="sec-1">1</h2><a href="../index.html">up</a>')
    write(tmp_path / "_images" / "fig.png", "png")
    write(tmp_path / "api" / "index.html", "<p>api</p>")
    assert book.broken_links(tmp_path) == [
        "index.html: <a> notebooks/a.html#nowhere (no id 'nowhere' there)",
        "index.html: <img> _images/missing.png (no such file)",
    ]


def executed_notebook(path, smoke):
    cells = [nbformat.v4.new_code_cell("SMOKE: bool = False", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(f"# Parameters\nSMOKE = {smoke}\n", metadata={"tags": ["injected-parameters"]})]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_notebook_mode_reads_the_injected_parameter(tmp_path):
    assert book.notebook_mode(executed_notebook(tmp_path / "a.ipynb", True)) == "smoke"
    assert book.notebook_mode(executed_notebook(tmp_path / "b.ipynb", False)) == "full"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SMOKE = True")]), tmp_path / "c.ipynb")
    with pytest.raises(book.BookError, match="c.ipynb: not a notebook executed by"):
        book.notebook_mode(tmp_path / "c.ipynb")


def test_stage_needs_every_notebook_in_one_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        executed_notebook(tmp_path / "notebooks" / name, False)
    executed = tmp_path / "executed"
    executed.mkdir()
    executed_notebook(executed / "01_a.ipynb", True)
    with pytest.raises(book.BookError, match=r"no executed copy of \['02_b.ipynb'\]"):
        book.stage(executed, tmp_path / "src")
    executed_notebook(executed / "02_b.ipynb", False)
    with pytest.raises(book.BookError, match="different modes"):
        book.stage(executed, tmp_path / "src")
    executed_notebook(executed / "02_b.ipynb", True)
    assert book.stage(executed, tmp_path / "src") == "smoke"
    index = (tmp_path / "src" / "index.md").read_text()
    assert "smoke mode" in index and "notebooks/01_a\nnotebooks/02_b" in index
    assert sorted(p.name for p in (tmp_path / "src" / "notebooks").iterdir()) == ["01_a.ipynb", "02_b.ipynb"]
    for rel in book._LOCAL_IMAGE.findall((ROOT / "README.md").read_text()):
        assert (tmp_path / "src" / rel).is_file()  # the README's figures go with it


def built_site():
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site in {SITE}: run `make book` (or `make book-check`)")
    return SITE


def test_built_site_links_resolve():
    assert book.broken_links(built_site()) == []


def test_built_notebook_pages_have_launch_buttons():
    site = built_site()
    for page in sorted((site / "notebooks").glob("[0-9][0-9]_*.html")):
        text = page.read_text()
        name = page.stem + ".ipynb"
        assert launch.colab_url(name) in text, f"{page.name}: no Colab launch button"
        assert re.search(rf"https://mybinder.org/v2/gh/{launch.REPOSITORY}/[^?\"]+\?urlpath=lab/tree/notebooks/{name}",
                         text), f"{page.name}: no Binder launch button"
        assert "Open In Colab" not in text  # the notebook's own badge cell is left out of the site


def test_built_site_in_a_headless_browser():
    site = built_site()
    if not book.CHROMIUM.is_file():
        pytest.skip(f"{book.CHROMIUM} not found: install the system package (apt-get install chromium)")
    results = book.browser_check(site, site.parent)
    for page in book.CHECK_PAGES:
        local = [img for img in results[page]["images"] if img["local"]]
        figures = [img for img in local if "/_images/" in img["src"]]  # not the theme's logos
        assert figures, f"{page}: no figure on the page"
        assert all(img["loaded"] and img["width"] > 0 for img in local), f"{page}: {local}"
        shot = Path(results[page]["screenshot"])
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    notebook_figures = [i for i in results[book.CHECK_PAGES[1]]["images"] if "/_images/" in i["src"]]
    assert len(notebook_figures) >= 3  # notebook 02 draws several figures
