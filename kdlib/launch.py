"""Where the notebooks run (Binder, Colab, a local machine) and what that changes.

Every notebook starts the same way, and this module is what those first cells call:

* a markdown cell with the **launch badges** (Open in Colab, Binder), made by :func:`badges_markdown`;
* a code cell that, **on Colab only**, installs kdlib from the repository without touching Colab's
  PyTorch and writes the 3-subject smoke data set (:func:`install_cell_source`, which ends in
  :func:`colab_setup`); anywhere else it prints one line and does nothing;
* the ``parameters`` cell, whose ``SMOKE`` default is :func:`smoke_default`: smoke mode on Binder, on
  Colab, wherever ``KDLIB_SMOKE=1``, and wherever a smoke data set was *baked* into the machine
  (``binder/postBuild``, :func:`colab_setup`), so that Run All there never replaces it unasked.
  Papermill's parameters (``python -m kdlib.notebooks --smoke|--full``, ``-p SMOKE False``) land in a
  cell after it and still override it.

The notebooks find their data with :func:`notebook_dataset` (``DATASET``, ``DATA_DIR``, ``SMOKE``), which
writes the synthetic data set with :func:`write_synthetic`: that says in one line what it writes and where
whenever that changes the folder (and above all when it replaces a baked set).

``python -m kdlib.launch add-cells NN ...`` inserts or updates the two launch cells and the ``SMOKE``
default in notebooks; ``python -m kdlib.launch bake`` writes and marks the smoke set (``binder/postBuild``).

The public repository is named once, in :data:`REPOSITORY`: badges, the Colab install cell and the book's
launch buttons are all made from it (tests check that the README and every notebook agree with it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from kdlib import paths

__all__ = [
    "REPOSITORY",
    "BRANCH",
    "BINDER_ENV_VARS",
    "SMOKE_ENV",
    "BAKED_MARKER",
    "COLAB_DIR",
    "LaunchError",
    "on_binder",
    "memory_limit_bytes",
    "default_jobs",
    "on_colab",
    "smoke_default",
    "current_preset",
    "baked_preset",
    "write_synthetic",
    "notebook_dataset",
    "bake",
    "missing_requirements",
    "colab_setup",
    "colab_url",
    "binder_url",
    "badges_markdown",
    "install_cell_source",
    "add_launch_cells",
    "main",
]

REPOSITORY = "kdlib/kdlib"  #: GitHub owner/name of the public repository (change here only, then `add-cells`)
BRANCH = "main"  #: the branch Colab opens the notebooks from
#: Set in every Binder session by BinderHub's spawner (``BinderSpawnerMixin.get_env`` in
#: jupyterhub/binderhub, ``binderhub/binderspawner_mixin.py``): the repository, the ref and the host.
BINDER_ENV_VARS = ("BINDER_REPO_URL", "BINDER_REF_URL", "BINDER_LAUNCH_HOST", "BINDER_PERSISTENT_REQUEST",
                   "BINDER_REQUEST")
SMOKE_ENV = "KDLIB_SMOKE"  #: "1" (or true/yes/on) forces smoke mode by default, "0" (false/no/off) full mode
BAKED_MARKER = ".baked"  #: in the synthetic folder: the preset baked into this machine (its name, one line)
COLAB_DIR = "/content/kdlib"  #: where the Colab install cell clones the repository
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_CELL_BADGES, _CELL_INSTALL = "launch-badges", "colab-setup"  # cell ids of the two launch cells
_SMOKE_IMPORT = "from kdlib.launch import smoke_default  # smoke on Binder, Colab, $KDLIB_SMOKE=1, a baked smoke set"
_SMOKE_LINE = re.compile(r"^SMOKE\s*(:\s*bool)?\s*=\s*[^#\n]*?(?P<comment>\s*#.*)?$", re.MULTILINE)


class LaunchError(RuntimeError):
    """A launch step cannot go on (a bad ``KDLIB_SMOKE``, a PyTorch kdlib cannot use, a bad notebook)."""


# --- where are we ------------------------------------------------------------------------------

def on_binder(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Binder session (any of :data:`BINDER_ENV_VARS` set).

    Parameters
    ----------
    environ : mapping, optional
        Environment to look at; default ``os.environ``.

    Returns
    -------
    bool
    """
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in BINDER_ENV_VARS)


def on_colab(environ: Mapping[str, str] | None = None, modules: Mapping[str, object] | None = None) -> bool:
    """True inside a Google Colab runtime (``google.colab`` imported, or ``COLAB_RELEASE_TAG`` set).

    Parameters
    ----------
    environ : mapping, optional
        Environment to look at; default ``os.environ``.
    modules : mapping, optional
        Imported modules; default ``sys.modules`` (Colab's kernel imports ``google.colab`` at start).

    Returns
    -------
    bool
    """
    env = os.environ if environ is None else environ
    mods = sys.modules if modules is None else modules
    return "google.colab" in mods or bool(env.get("COLAB_RELEASE_TAG"))


def smoke_default(environ: Mapping[str, str] | None = None, folder: str | os.PathLike | None = None) -> bool:
    """The notebooks' default ``SMOKE``: True where the machine is small or a smoke set is baked.

    Parameters
    ----------
    environ : mapping, optional
        Environment to look at; default ``os.environ``.
    folder : path-like, optional
        The synthetic data folder; default ``kdlib.paths.synthetic_dir()``.

    Returns
    -------
    bool
        ``$KDLIB_SMOKE`` when it is set (``1/true/yes/on`` or ``0/false/no/off``); else True on Binder
        (1-2 GB of RAM), on Colab, and where :func:`bake` baked the smoke set into ``folder``; else False.

    Raises
    ------
    LaunchError
        When ``KDLIB_SMOKE`` holds anything else.
    """
    env = os.environ if environ is None else environ
    value = env.get(SMOKE_ENV, "").strip().lower()
    if value:
        if value not in _TRUE + _FALSE:
            raise LaunchError(f"{SMOKE_ENV}={env[SMOKE_ENV]!r}: expected one of {', '.join(_TRUE + _FALSE)}")
        return value in _TRUE
    return on_binder(env) or on_colab(env) or baked_preset(folder) == "smoke"


SMALL_MACHINE_BYTES = 4 * 1024**3  #: below this memory limit the notebooks train one fold at a time
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit_bytes(limit_files: Sequence[str] = _CGROUP_LIMITS) -> int | None:
    """The memory this process may use: the container's cgroup limit, else the machine's RAM.

    Parameters
    ----------
    limit_files : sequence of str
        cgroup v2 and v1 limit files, read in order; ``max`` or an unreadable file means no limit.

    Returns
    -------
    int or None
        Bytes, or None when neither a limit nor the RAM can be read.
    """
    for name in limit_files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # cgroup v1 writes a huge number for "no limit"
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_jobs(environ: Mapping[str, str] | None = None, limit: int | None = -1) -> int:
    """The notebooks' default ``JOBS`` (folds trained in parallel processes): 1 or 2.

    Each worker process holds its own PyTorch (about 0.6 GB at the smoke sizes,
    ``benchmarks/results/notebook_memory_05_jobs1.md``: notebook 05 on Binder peaked at 1.6 GB with
    two workers and 0.7 GB with one). So one worker on Binder, on Colab's free tier and wherever
    the memory limit is under :data:`SMALL_MACHINE_BYTES`; two elsewhere (the CI machines have 2 cores).

    Parameters
    ----------
    environ : mapping, optional
        Environment to look at; default ``os.environ``.
    limit : int or None, optional
        Memory limit in bytes; default (-1) reads it with :func:`memory_limit_bytes`.

    Returns
    -------
    int
    """
    env = os.environ if environ is None else environ
    limit = memory_limit_bytes() if limit == -1 else limit
    small = on_binder(env) or on_colab(env) or (limit is not None and limit < SMALL_MACHINE_BYTES)
    return 1 if small else 2


# --- the synthetic data set --------------------------------------------------------------------

def _folder(folder: str | os.PathLike | None) -> Path:
    return paths.resolve(folder, paths.synthetic_dir())


def current_preset(folder: str | os.PathLike | None = None) -> str | None:
    """The name of the synthetic preset that ``folder`` holds, or None (empty, another config, not ours).

    Parameters
    ----------
    folder : path-like, optional
        Default ``kdlib.paths.synthetic_dir()``.

    Returns
    -------
    str or None
    """
    from kdlib.data import synthetic

    path = _folder(folder) / synthetic.CONFIG_FILE
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return next((name for name, config in synthetic.PRESETS.items() if config.to_json() == stored), None)


def baked_preset(folder: str | os.PathLike | None = None) -> str | None:
    """The preset baked into this machine (``BAKED_MARKER`` names it) when the folder still holds it.

    Parameters
    ----------
    folder : path-like, optional
        Default ``kdlib.paths.synthetic_dir()``.

    Returns
    -------
    str or None
    """
    marker = _folder(folder) / BAKED_MARKER
    try:
        name = marker.read_text().strip()
    except OSError:
        return None
    return name if name == current_preset(folder) else None


def _size_mb(config) -> int:
    from kdlib.data import synthetic

    return round(config.n_subjects * config.n_trials * 40 * synthetic.N_SAMPLES * 8 / 1e6)  # float64 sNN.dat


def write_synthetic(folder: str | os.PathLike | None, smoke: bool, *, progress: bool | None = None) -> Path:
    """Make ``folder`` hold the synthetic preset of the mode (``smoke`` or ``default``); what the notebooks call.

    Parameters
    ----------
    folder : path-like or None
        The data folder; None or "" means ``kdlib.paths.synthetic_dir()``.
    smoke : bool
        True: the 3-subject ``smoke`` preset; False: the 8-subject ``default`` one.
    progress : bool, optional
        A progress bar over subjects; default only in full mode.

    Returns
    -------
    Path
        The folder.

    Notes
    -----
    When the folder already holds the preset nothing is written and nothing printed. Otherwise one line
    says which preset is written, its size and where, and what it replaces (a set baked into the machine
    by ``binder/postBuild`` or :func:`colab_setup` is named as such; its marker is then removed, since
    the folder no longer holds it). Only :func:`smoke_default` keeps Run All from getting here unasked.
    """
    from kdlib.data import synthetic

    target = _folder(folder)
    preset = "smoke" if smoke else "default"
    config = synthetic.PRESETS[preset]
    have, baked = current_preset(target), baked_preset(target)
    if have != preset:
        replaced = f", replacing the {baked!r} set baked into this machine" if baked else (
            f", replacing the {have!r} set" if have else "")
        print(f"SMOKE={smoke}: writing the synthetic {preset!r} set ({config.n_subjects} subjects, "
              f"about {_size_mb(config)} MB) into {target}{replaced}")
    synthetic.write_dataset(target, config, progress=(not smoke) if progress is None else progress)
    if have != preset:
        (target / BAKED_MARKER).unlink(missing_ok=True)
        for stamp in target.glob(".preset-*"):  # the Makefile's stamps of another preset
            if stamp.name != f".preset-{preset}":
                stamp.unlink()
    return target


def notebook_dataset(dataset: str, data_dir: str | os.PathLike | None, smoke: bool) -> Path:
    """The folder of subject files a notebook reads: its ``DATASET`` / ``DATA_DIR`` / ``SMOKE`` parameters.

    Parameters
    ----------
    dataset : {'synthetic', 'deap'}
        The notebook's ``DATASET``.
    data_dir : path-like or None
        The notebook's ``DATA_DIR``; None or "" means the data set's default folder
        (``data/synthetic``; for ``deap``, ``$KDLIB_DEAP_DIR``).
    smoke : bool
        The notebook's ``SMOKE``: which synthetic preset the folder must hold (:func:`write_synthetic`).

    Returns
    -------
    Path
        ``kdlib.data.dataset_dir(dataset, data_dir)``, after :func:`write_synthetic` made a synthetic
        folder hold the mode's preset (nothing is written for ``deap``).

    Raises
    ------
    FileNotFoundError
        When a ``deap`` folder is not there (one line saying how to point at it).
    """
    from kdlib.data import dataset_dir

    if dataset == "synthetic":
        write_synthetic(data_dir or None, smoke)
    return dataset_dir(dataset, data_dir or None)


def bake(preset: str = "smoke", folder: str | os.PathLike | None = None) -> Path:
    """Write a synthetic preset and mark it as baked into this machine (Binder's image, a Colab runtime).

    Parameters
    ----------
    preset : str
        A name of ``kdlib.data.synthetic.PRESETS``.
    folder : path-like, optional
        Default ``kdlib.paths.synthetic_dir()``.

    Returns
    -------
    Path
        The folder.
    """
    from kdlib.data import synthetic

    if preset not in synthetic.PRESETS:
        raise LaunchError(f"preset {preset!r}: expected one of {', '.join(synthetic.PRESETS)}")
    target = _folder(folder)
    synthetic.write_dataset(target, synthetic.PRESETS[preset], progress=False)
    (target / f".preset-{preset}").touch()  # the Makefile's stamp: `make` keeps the set too
    (target / BAKED_MARKER).write_text(preset + "\n")
    return target


# --- Colab -------------------------------------------------------------------------------------

def _requirements(distribution: str = "kdlib") -> list:
    """The base requirements of an installed distribution (extras left out), as ``packaging`` objects."""
    from packaging.requirements import Requirement

    reqs = [Requirement(text) for text in importlib.metadata.requires(distribution) or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(distribution: str = "kdlib") -> tuple[list[str], list[str]]:
    """What pip must install for ``distribution``, and what it must keep.

    Parameters
    ----------
    distribution : str
        An installed distribution (kdlib, installed with ``--no-deps``).

    Returns
    -------
    missing : list of str
        Requirements not installed or installed at a version out of range (never torch).
    keep : list of str
        ``name==version`` of every requirement already satisfied: the constraints pip installs with.

    Raises
    ------
    LaunchError
        When the installed PyTorch is missing or out of kdlib's range: kdlib never installs PyTorch
        itself (Colab's build matches its CUDA driver).
    """
    missing, keep = [], []
    for req in _requirements(distribution):
        version = _installed(req.name)
        ok = version is not None and req.specifier.contains(version, prereleases=True)
        if req.name == "torch" and not ok:
            raise LaunchError(f"PyTorch {version or 'is not installed'}: kdlib needs {req}; install a "
                              "matching build first (kdlib does not replace the runtime's PyTorch)")
        (keep if ok else missing).append(f"{req.name}=={version}" if ok else str(req))
    return missing, keep


def _run(command: Sequence[str]) -> None:
    subprocess.run(list(command), check=True)


def colab_setup(*, run: Callable[[Sequence[str]], object] = _run) -> Path:
    """The part of the Colab install cell that needs kdlib: dependencies, the smoke set, the device.

    Parameters
    ----------
    run : callable
        Runs one command (a list of str); default ``subprocess.run(..., check=True)``.

    Returns
    -------
    Path
        The synthetic data folder (the smoke set, baked: notebooks default to smoke mode).

    Notes
    -----
    pip installs only the requirements that are missing, with every satisfied one (PyTorch above all)
    pinned at its present version by a constraints file, so Colab's PyTorch and numpy stay as they are.
    """
    missing, keep = missing_requirements()
    if missing:
        constraints = paths.build_dir() / "colab-constraints.txt"  # build/ of the clone
        constraints.parent.mkdir(parents=True, exist_ok=True)
        constraints.write_text("".join(line + "\n" for line in keep))
        run([sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), *missing])
    folder = bake("smoke")
    import torch

    device = f"GPU ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU (no GPU in this runtime)"
    print(f"kdlib ready on Colab: PyTorch {torch.__version__} kept, {len(missing)} package(s) installed, "
          f"smoke data set in {folder}, device {device}")
    return folder


# --- launch links and cells --------------------------------------------------------------------

def colab_url(notebook: str) -> str:
    """The Colab link of ``notebooks/<notebook>`` (a file name such as ``01_data_preparation.ipynb``).

    Parameters
    ----------
    notebook : str

    Returns
    -------
    str
    """
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(notebook: str | None = None) -> str:
    """The mybinder.org link that opens JupyterLab on ``notebooks/<notebook>`` (or the first one).

    Parameters
    ----------
    notebook : str, optional

    Returns
    -------
    str
    """
    return f"https://mybinder.org/v2/gh/{REPOSITORY}/HEAD?urlpath=lab/tree/notebooks/{notebook or '01_data_preparation.ipynb'}"


def badges_markdown(notebook: str) -> str:
    """The two launch badges of one notebook, as markdown.

    Parameters
    ----------
    notebook : str
        The file name.

    Returns
    -------
    str
    """
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(notebook)})")


def install_cell_source() -> str:
    """The Colab install cell: a few lines of bootstrap (kdlib is not installed yet), then :func:`colab_setup`.

    Returns
    -------
    str
    """
    return f'''# Colab only (elsewhere this cell does nothing): install kdlib from GitHub, keeping Colab's PyTorch,
# and write the 3-subject smoke data set (about 1 min). Then run the notebook as it is (GPU if the runtime has one).
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("{COLAB_DIR}"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/{REPOSITORY}", "{COLAB_DIR}"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "{COLAB_DIR}"], check=True)
    sys.path.insert(0, "{COLAB_DIR}")  # this kernel started before the install
    from kdlib import launch
    launch.colab_setup()
else:
    print("not on Colab: nothing to install")'''


def _smoke_parameters(source: str) -> str:
    """The parameters cell with ``SMOKE`` defaulting to :func:`smoke_default` (and its import first)."""
    match = _SMOKE_LINE.search(source)
    if match is None:
        raise LaunchError("the parameters cell has no `SMOKE = ...` line")
    comment = match.group("comment") or "  # tiny run for CI, Binder and Colab"
    source = source[:match.start()] + f"SMOKE: bool = smoke_default(){comment}" + source[match.end():]
    lines = [line for line in source.splitlines() if not line.startswith("from kdlib.launch import smoke_default")]
    return "\n".join([_SMOKE_IMPORT, *lines])


def add_launch_cells(path: str | os.PathLike) -> bool:
    """Insert or update a notebook's launch cells and its ``SMOKE`` default; write it only if it changed.

    Parameters
    ----------
    path : path-like
        A notebook with a cell tagged ``parameters`` that declares ``SMOKE``.

    Returns
    -------
    bool
        True when the file was rewritten.

    Notes
    -----
    The badge cell (id ``launch-badges``) goes first and the install cell (id ``colab-setup``) right
    before the parameters cell; both are tagged ``remove-cell`` so that the book shows its own launch
    buttons instead. Other cells are left as they are; the file stays output-free.
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.cells = [c for c in nb.cells if c.get("id") not in (_CELL_BADGES, _CELL_INSTALL)]
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not params:
        raise LaunchError(f"{path.name}: no cell tagged 'parameters'")
    nb.cells[params[0]].source = _smoke_parameters(nb.cells[params[0]].source)
    install = new_code_cell(install_cell_source(), id=_CELL_INSTALL, metadata={"tags": ["remove-cell"]})
    nb.cells.insert(params[0], install)
    nb.cells.insert(0, new_markdown_cell(badges_markdown(path.name), id=_CELL_BADGES,
                                         metadata={"tags": ["remove-cell"]}))
    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdlib.launch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cells = sub.add_parser("add-cells", help="insert/update the launch badges, the Colab cell and the SMOKE default")
    cells.add_argument("names", nargs="*", metavar="NAME", help="notebooks (01, 02_fusion_teacher ...); default all")
    baked = sub.add_parser("bake", help="write the synthetic set and mark it baked (binder/postBuild)")
    baked.add_argument("--preset", default="smoke")
    baked.add_argument("--out", default=None, help="folder (default data/synthetic)")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Entry point of ``python -m kdlib.launch``; returns the exit status.

    Parameters
    ----------
    argv : iterable of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on a :class:`LaunchError` or a notebook error (one line on stderr).
    """
    from kdlib.notebooks import NotebookRunError, discover_notebooks

    args = _parser().parse_args(None if argv is None else list(argv))
    try:
        if args.command == "bake":
            print(f"baked the synthetic {args.preset!r} set into {bake(args.preset, args.out)}")
            return 0
        for path in discover_notebooks(args.names or None):
            print(f"{path.name}: {'updated' if add_launch_cells(path) else 'already up to date'}")
    except (LaunchError, NotebookRunError) as err:
        print(f"kdlib.launch: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
