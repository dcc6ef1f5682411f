"""Build and check the course website: ``make book`` and ``make book-check`` call this.

Commands::

    .venv/bin/python book/build.py build [--notebooks build/book/executed] [--out build/book]
    .venv/bin/python book/build.py check [--out build/book]

``build`` stages the sources in ``OUT/src`` (the README as the home page, its local images, the
executed notebooks, an API reference page), runs Sphinx (``book/conf.py``) into ``OUT/html`` with every
warning an error, then checks that every internal link and image of the site resolves (a file, and
the ``#anchor`` in it). ``check`` opens the home page and one notebook page in headless Chromium,
asserts that their figures loaded (``img.complete`` and a natural width, read in the page), and keeps
a screenshot of each in ``OUT/``. ``OUT/html`` is a plain static site: copy it to any web server, or
publish it on GitHub Pages (push the folder to a ``gh-pages`` branch, e.g.
``git subtree push --prefix build/book/html origin gh-pages`` after committing it on a throw-away
branch, or ``ghp-import -n -p build/book/html``).
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdlib import notebooks as nb_runner  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHECK_PAGES = ("index.html", "notebooks/02_fusion_teacher.html")  # the home page and one notebook page
_LOCAL_IMAGE = re.compile(r"!\[[^\]]*\]\((?!https?://)([^)\s]+)\)")


class BookError(RuntimeError):
    """The site cannot be built, or it is broken; the message names the file."""


# --- staging ---------------------------------------------------------------------------------

def notebook_mode(path: Path) -> str:
    """``"smoke"`` or ``"full"``: the SMOKE value papermill injected into an executed notebook."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    injected = [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    found = re.findall(r"^SMOKE = (True|False)$", "\n".join(injected), flags=re.MULTILINE)
    if not found:
        raise BookError(f"{path}: not a notebook executed by `python -m kdlib.notebooks` (no injected SMOKE)")
    return "smoke" if found[-1] == "True" else "full"


def _home_page(readme: str, notebooks: list[Path], mode: str) -> str:
    """The README with a note on the mode of the executed notebooks and the site's table of contents."""
    note = ("smoke mode: tiny models on 3 synthetic subjects; their numbers say nothing about the method"
            if mode == "smoke" else "full mode (`make run`), on the synthetic data set unless stated")
    toc = "\n".join(f"notebooks/{p.stem}" for p in notebooks)
    return (f"{readme.rstrip()}\n\n## This site\n\nThe notebook pages show a run in {note}. "
            "Each has launch buttons (Binder, Colab) at the top.\n\n"
            f"```{{toctree}}\n:caption: Notebooks\n:maxdepth: 1\n\n{toc}\n```\n\n"
            "```{toctree}\n:caption: Reference\n:maxdepth: 1\n\napi\n```\n")


API_PAGE = """# API reference

Generated from kdlib's numpydoc docstrings: every module and its public names (`__all__`). The
packages `kdlib.data`, `kdlib.models` and `kdlib.distill` re-export the names of their modules.

```{{eval-rst}}
.. autosummary::
   :toctree: generated

{modules}
```
"""


def api_modules() -> list[str]:
    """Every kdlib module that is not a package (packages re-export their modules' names, which would be
    documented twice), without ``kdlib.__main__`` (the command line's entry point)."""
    import pkgutil

    import kdlib

    return sorted(m.name for m in pkgutil.walk_packages(kdlib.__path__, "kdlib.")
                  if not m.ispkg and not m.name.endswith("__main__"))


def stage(executed: Path, src: Path) -> str:
    """Write the Sphinx sources into ``src``; return the mode of the executed notebooks.

    Parameters
    ----------
    executed : Path
        Folder of executed notebooks (``python -m kdlib.notebooks --smoke|--full --out ...``).
    src : Path
        The staging folder (emptied first).

    Returns
    -------
    str
        ``"smoke"`` or ``"full"``.
    """
    sources = nb_runner.discover_notebooks()
    missing = [p.name for p in sources if not (executed / p.name).is_file()]
    if missing:
        raise BookError(f"{executed}: no executed copy of {missing}; run `python -m kdlib.notebooks --smoke --out {executed}`")
    modes = {p.name: notebook_mode(executed / p.name) for p in sources}
    if len(set(modes.values())) != 1:
        raise BookError(f"{executed}: notebooks executed in different modes: {modes}")
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    for p in sources:
        shutil.copy2(executed / p.name, src / "notebooks" / p.name)
    readme = (ROOT / "README.md").read_text()
    for rel in _LOCAL_IMAGE.findall(readme):
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    mode = next(iter(modes.values()))
    (src / "index.md").write_text(_home_page(readme, sources, mode))
    (src / "api.md").write_text(API_PAGE.format(modules="\n".join(f"   {m}" for m in api_modules())))
    return mode


# --- links -----------------------------------------------------------------------------------

class _Links(HTMLParser):
    """The ids, and the href/src targets, of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.targets, self.problematic, self._last = set(), [], set(), None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "problematic" in (attrs.get("class") or "").split() and self._last:
            self.problematic.add(self._last)  # docutils' link from a markup error to its (unrendered) message
        self._last = attrs.get("href") if tag == "a" else None
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.targets.append((tag, attrs[key]))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def broken_links(site: Path, markup_notes: list[str] | None = None) -> list[str]:
    """Every internal link or image of a static site that does not resolve.

    Parameters
    ----------
    site : Path
        The built site (``index.html`` at its top).
    markup_notes : list, optional
        Receives the links docutils makes from a markup error in a docstring to its message (the message
        is not rendered); they are not counted as broken.

    Returns
    -------
    list of str
        ``page: target (why)``, empty when every ``href``/``src`` that is not external resolves to a
        file of the site and, when it has one, to an ``id`` in that file. The theme's template files in
        ``_static/`` are not pages and are skipped.
    """
    pages = {p: _parse(p) for p in sorted(site.rglob("*.html")) if "_static" not in p.relative_to(site).parts}
    problems = []
    for page, links in pages.items():
        for tag, target in links.targets:
            parts = urllib.parse.urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("mailto:", "data:", "javascript:")):
                continue  # external: not checked offline
            path = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path)).resolve()
            if path.is_dir():
                path = path / "index.html"
            rel = page.relative_to(site)
            if target in links.problematic:
                if markup_notes is not None:
                    markup_notes.append(f"{rel}: <{tag}> {target} (a docstring markup error's link)")
            elif not path.is_file():
                problems.append(f"{rel}: <{tag}> {target} (no such file)")
            elif parts.fragment and path.suffix == ".html":
                ids = pages[path].ids if path in pages else _parse(path).ids
                if urllib.parse.unquote(parts.fragment) not in ids:
                    problems.append(f"{rel}: <{tag}> {target} (no id {parts.fragment!r} there)")
    return problems


# --- build -----------------------------------------------------------------------------------

_REFERENCE_OR_IMAGE = re.compile(r"target|label|reference|toctree|document|image|figure|not readable|xref", re.I)


def fatal_warnings(log_text: str) -> tuple[list[str], list[str]]:
    """Split Sphinx's warnings into fatal ones and docstring markup ones.

    Parameters
    ----------
    log_text : str
        The warnings file (``sphinx-build -w``).

    Returns
    -------
    fatal : list of str
        Every warning, except markup slips inside a kdlib docstring: those pages still build.
        Any warning about a missing reference, document, label or image is fatal wherever it is.
    docstring : list of str
        The docstring markup warnings (docutils' messages about a ``docstring of kdlib....``).
    """
    fatal, docstring = [], []
    for line in log_text.splitlines():
        if not re.search(r"\b(WARNING|ERROR|CRITICAL|SEVERE):", line):
            continue
        markup = "docstring of kdlib" in line and "[docutils]" in line and not _REFERENCE_OR_IMAGE.search(
            line.split(":", 3)[-1].replace("Undefined substitution referenced", "substitution"))
        (docstring if markup else fatal).append(line)
    return fatal, docstring


def build(executed: Path, out: Path) -> Path:
    """Stage the sources, run Sphinx, fail on its warnings, and check the site's links.

    Parameters
    ----------
    executed : Path
        Folder of executed notebooks.
    out : Path
        Output folder: ``src/`` (staged sources), ``html/`` (the site), ``sphinx-warnings.log``.

    Returns
    -------
    Path
        The site (``out / "html"``).

    Notes
    -----
    Every Sphinx warning fails the build (:func:`fatal_warnings`) except markup slips in kdlib's
    docstrings, which are listed: a reference or an image that does not resolve always fails it.
    """
    src, site, log = out / "src", out / "html", out / "sphinx-warnings.log"
    mode = stage(executed, src)
    if site.exists():
        shutil.rmtree(site)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(ROOT / "book"), "--keep-going",
           "-q", "-w", str(log), "-d", str(out / "doctrees"), str(src), str(site)]
    result = subprocess.run(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)  # the warnings are in the log
    fatal, docstring = fatal_warnings(log.read_text() if log.is_file() else "")
    if result.returncode != 0 or fatal:
        raise BookError(f"sphinx-build failed or warned ({len(fatal)} warning(s)); see {log}:\n  " + "\n  ".join(fatal[:30]))
    problems = broken_links(site, docstring)
    if problems:
        raise BookError(f"{len(problems)} broken internal link(s) in {site}:\n  " + "\n  ".join(problems[:30]))
    for line in docstring:
        print(f"note: docstring markup: {line}")
    print(f"built the course website ({mode} notebooks) into {site}: no warning about references or images, "
          f"every internal link resolves ({len(docstring)} docstring markup note(s))")
    return site


# --- the browser check -----------------------------------------------------------------------

CHECK_HTML = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="{page}" width="1280" height="2400"></iframe>
<script>
document.getElementById("page").addEventListener("load", async () => {{
  const doc = document.getElementById("page").contentDocument;
  const images = Array.from(doc.images);
  images.forEach(img => {{ img.loading = "eager"; img.scrollIntoView(); }});
  await Promise.all(images.map(img => img.complete ? null :
    new Promise(done => {{ img.onload = done; img.onerror = done; setTimeout(done, 10000); }})));
  document.getElementById("result").textContent = JSON.stringify({{
    title: doc.title,
    images: images.map(img => ({{src: img.src, local: img.src.startsWith(location.origin),
                                  loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth}}))
  }});
}});
</script></body></html>"""


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on a free local port, plus ``/_check.html?page=...`` (the page that inspects another)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            parts = urllib.parse.urlsplit(self.path)
            if parts.path != "/_check.html":
                return super().do_GET()
            page = urllib.parse.parse_qs(parts.query)["page"][0]
            body = CHECK_HTML.format(page=html.escape("/" + page)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _chromium(*args: str, timeout: float = 120) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--virtual-time-budget=30000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout


def browser_check(site: Path, out: Path, pages: tuple[str, ...] = CHECK_PAGES) -> dict[str, dict]:
    """Open pages of the site in headless Chromium; return what each page's images did.

    Parameters
    ----------
    site : Path
        The built site.
    out : Path
        Where the screenshots go (``screenshot-<page>.png``).
    pages : tuple of str
        Pages relative to the site.

    Returns
    -------
    dict
        Page to ``{"title": str, "images": [{"src", "local", "loaded", "width"}, ...], "screenshot": str}``.
    """
    if not CHROMIUM.is_file():
        raise BookError(f"{CHROMIUM} not found: install the system package (apt-get install chromium)")
    server, base = _serve(site)
    found = {}
    try:
        for page in pages:
            if not (site / page).is_file():
                raise BookError(f"{site / page}: no such page")
            dom = _chromium("--dump-dom", f"{base}/_check.html?page={urllib.parse.quote(page)}")
            match = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.DOTALL)
            if match is None or match.group(1) == "pending":
                raise BookError(f"{page}: the page did not finish loading in headless Chromium")
            found[page] = json.loads(html.unescape(match.group(1)))
            shot = out / f"screenshot-{Path(page).stem}.png"
            _chromium(f"--screenshot={shot}", "--window-size=1280,1800", f"{base}/{page}")
            found[page]["screenshot"] = str(shot)
    finally:
        server.shutdown()
    return found


def check(out: Path) -> None:
    """The browser check of ``make book-check``: every local image of the checked pages loaded."""
    site = out / "html"
    if not (site / "index.html").is_file():
        raise BookError(f"{site}/index.html: no built site; run `make book` first")
    for page, result in browser_check(site, out).items():
        local = [i for i in result["images"] if i["local"]]
        failed = [i["src"] for i in local if not i["loaded"]]
        if not any("/_images/" in i["src"] for i in local) or failed:
            raise BookError(f"{page}: {len(local)} local image(s) (figures in _images/ needed), not loaded: {failed}")
        print(f"{page}: {len(local)} local image(s) loaded ({len(result['images']) - len(local)} external "
              f"not checked offline); screenshot {result['screenshot']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 with one message on a :class:`BookError`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--notebooks", default=str(ROOT / "build" / "book" / "executed"),
                        help="executed notebooks (build)")
    parser.add_argument("--out", default=str(ROOT / "build" / "book"), help="output folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(Path(args.notebooks).resolve(), Path(args.out).resolve())
        else:
            check(Path(args.out).resolve())
    except BookError as err:
        print(f"book: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
