"""Execute the numbered notebooks headless, in order (or a few at a time), with papermill.

``make run`` calls ``python -m kdlib.notebooks --full`` and ``make test`` calls
``python -m kdlib.notebooks --smoke``; the executed copies land in ``build/notebooks/``, where
``pytest --nbval`` re-executes them as a determinism check.

Every notebook follows the template of the design: one cell tagged ``parameters`` that declares
``SMOKE`` (and whatever else the notebook takes). Papermill injects the values given here in a
cell right after it. A notebook without such a cell would silently ignore ``SMOKE`` (papermill
would inject it *before* the notebook's own default), so that is an error here, not a warning.

Examples
--------
>>> from kdlib.notebooks import run_notebooks
>>> run_notebooks(smoke=True, names=["01"])  # doctest: +SKIP
[PosixPath('.../build/notebooks/01_data_preparation.ipynb')]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kdlib import paths

__all__ = [
    "NotebookRunError",
    "discover_notebooks",
    "notebook_parameters",
    "stderr_outputs",
    "run_notebooks",
    "main",
]

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


class NotebookRunError(RuntimeError):
    """A notebook could not be run, or ran and failed; the message names the notebook."""


def discover_notebooks(names: Iterable[str] | None = None, src_dir: Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``src_dir``, sorted by name.

    Parameters
    ----------
    names : iterable of str, optional
        Restrict to these notebooks. Each name is a two-digit number (``"01"``), a stem
        (``"01_data_preparation"``) or a file name (``"01_data_preparation.ipynb"``).
        The result stays in numbered order whatever the order of ``names``.
    src_dir : Path, optional
        Folder to search; default ``kdlib.paths.notebooks_dir()``.

    Returns
    -------
    list of Path
        The notebooks in execution order.

    Raises
    ------
    NotebookRunError
        When the folder holds no numbered notebook, or a requested name matches none.
    """
    src_dir = Path(src_dir) if src_dir is not None else paths.notebooks_dir()
    found = sorted(src_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise NotebookRunError(f"no notebooks found: nothing matches {src_dir / NOTEBOOK_GLOB}")
    if names is None:
        return found
    return sorted({_match_one(str(name), found) for name in names})


def _match_one(name: str, found: list[Path]) -> Path:
    """The single notebook of ``found`` that ``name`` designates (number, stem or file name)."""
    stem = name.removesuffix(".ipynb")
    hits = [p for p in found if p.stem == stem or p.stem.split("_", 1)[0] == stem]
    if len(hits) != 1:
        available = ", ".join(p.stem for p in found)
        raise NotebookRunError(f"notebook {name!r} matches {len(hits)} notebooks; available: {available}")
    return hits[0]


def notebook_parameters(path: Path) -> dict[str, str]:
    """The parameters that the ``parameters``-tagged cell of a notebook declares.

    Parameters
    ----------
    path : Path
        A notebook file.

    Returns
    -------
    dict
        Parameter name to the source text of its default value, in the cell's order.

    Raises
    ------
    NotebookRunError
        When the notebook has no cell tagged ``parameters``, or that cell is not valid Python.

    Notes
    -----
    The cell is read with :mod:`ast` (every top-level assignment, annotated or not), not with
    papermill's line parser, which gives up on comments that hold quotes or ``=`` signs.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise NotebookRunError(f"{path.name}: no cell tagged 'parameters' (see the notebook template)")
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise NotebookRunError(f"{path.name}: the parameters cell is not valid Python: {err}") from None
    return {
        target.id: ast.get_source_segment(source, node.value) or ""
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


def stderr_outputs(path: Path) -> list[tuple[int, str]]:
    """The stderr stream outputs of an executed notebook.

    Parameters
    ----------
    path : Path
        An executed notebook.

    Returns
    -------
    list of (int, str)
        Cell index and the text written to stderr, one entry per stderr output.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [
        (index, "".join(output.get("text", "")))
        for index, cell in enumerate(nb.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    ]


def _check_kernel(kernel: str) -> None:
    """Raise a clear error when the Jupyter kernel ``kernel`` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    available = KernelSpecManager().find_kernel_specs()
    if kernel not in available:
        raise NotebookRunError(
            f"Jupyter kernel {kernel!r} not found (available: {', '.join(sorted(available))}); "
            "`make venv` registers the 'kdlib' kernel, or pass kernel='python3'"
        )


def _plan(notebooks: list[Path], smoke: bool, extra: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """Each notebook with the parameters to inject: checked before anything runs.

    Every notebook must declare ``SMOKE``; each parameter of ``extra`` goes to the notebooks that
    declare it, and one that none of them declares is an error (a typo).
    """
    declared = {path: notebook_parameters(path) for path in notebooks}
    missing = [path.name for path, names in declared.items() if "SMOKE" not in names]
    if missing:
        raise NotebookRunError(f"the parameters cell of {missing} does not declare SMOKE")
    unknown = sorted(set(extra) - set().union(*declared.values()))
    if unknown:
        raise NotebookRunError(f"parameter(s) {unknown} declared by none of {[p.name for p in notebooks]}")
    return [
        (path, {"SMOKE": smoke, **{k: v for k, v in extra.items() if k in names}})
        for path, names in declared.items()
    ]


def _logging_kernel_manager(log_path: Path) -> type:
    """A kernel manager whose kernel process writes its own stderr to ``log_path``.

    The kernel process (not the notebook code: that output goes into the notebook) logs
    start-up messages such as ipykernel's "running over TCP without encryption" on stderr.
    nbval sends them to /dev/null; here they are kept in a log beside the executed notebook.
    """
    from jupyter_client import AsyncKernelManager

    class LoggingKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            with open(log_path, "ab") as log:
                kw.setdefault("stderr", log)
                await super().start_kernel(**kw)

    return LoggingKernelManager


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a logger below ERROR for the duration of the block.

    papermill logs a warning for every parameters-cell line its own parser cannot read (valid
    Python with quotes in a comment, say) and for parameters it thinks unknown; kdlib checks
    the parameters itself with :func:`notebook_parameters`, so these would be stderr noise.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _execute_one(path: Path, out_path: Path, parameters: dict[str, Any], kernel: str,
                 kernel_manager: Any = None) -> None:
    """Run one notebook with papermill in the output folder; wrap failures with its name.

    ``kernel_manager(log_path)``, when given, makes the kernel manager class instead of
    :func:`_logging_kernel_manager` (e.g. a subclass of it that measures the kernel's memory:
    ``benchmarks/bench_notebook_memory.py``).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    log_path = out_path.with_suffix(".kernel.log")
    log_path.unlink(missing_ok=True)
    try:
        with _quiet_logger("papermill"):
            papermill.execute_notebook(
                str(path),
                str(out_path),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(out_path.parent),
                progress_bar=False,
                kernel_manager_class=(kernel_manager or _logging_kernel_manager)(log_path),
            )
    except PapermillExecutionError as err:
        raise NotebookRunError(
            f"{path.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  executed copy with the traceback: {out_path}"
            f"\n  kernel log: {log_path}"
        ) from None


def _check_stderr(out_path: Path) -> None:
    """Raise when an executed notebook wrote to stderr (warnings are bugs in smoke runs)."""
    found = stderr_outputs(out_path)
    if found:
        index, text = found[0]
        raise NotebookRunError(
            f"{out_path.name} wrote to stderr in {len(found)} output(s); first, cell {index}:\n"
            f"{text.strip()[:2000]}\n  (warnings are bugs in smoke runs; see {out_path})"
        )


def run_notebooks(
    smoke: bool,
    out_dir: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    kernel: str = "kdlib",
    extra_parameters: Mapping[str, Any] | None = None,
    *,
    allow_stderr: bool | None = None,
    src_dir: str | os.PathLike | None = None,
    jobs: int = 1,
) -> list[Path]:
    """Execute the numbered notebooks in order with papermill.

    Parameters
    ----------
    smoke : bool
        Value of the ``SMOKE`` parameter: True for the tiny CI/Binder run, False for the full one.
    out_dir : str or path-like, optional
        Where the executed copies are written and the kernels run (their working directory);
        a relative path is taken from the project root. Default ``build/notebooks``
        (``kdlib.paths.built_notebooks_dir()``). Each kernel's own stderr (start-up messages,
        not the notebook's output) goes to ``NN_name.kernel.log`` beside the executed copy.
    names : iterable of str, optional
        Only these notebooks (``"01"``, ``"01_data_preparation"`` …), run in numbered order;
        default all of ``notebooks/NN_*.ipynb``.
    kernel : str
        Jupyter kernel to run them with; ``make venv`` registers ``kdlib`` (the project venv).
    extra_parameters : mapping, optional
        More parameters (e.g. ``{"DATA_DIR": "/path/to/deap"}``); each is passed to the notebooks
        that declare it, and one declared by none of them is an error.
    allow_stderr : bool, optional
        Accept output on stderr. Default: accepted in full runs, an error in smoke runs.
    src_dir : str or path-like, optional
        Folder of the notebooks to run; default ``notebooks/``. ``make test`` runs the course's
        instructor edition, ``build/course/instructor`` (:mod:`kdlib.course.editions`).
    jobs : int
        Notebooks run at once, each in its own kernel (default 1: one after the other). The
        notebooks are independent (each prepares its own data; caches are written atomically)
        and each sets its own torch threads, so their outputs are the same for any ``jobs``;
        ``make run`` and ``make test`` run two at a time on two cores.

    Returns
    -------
    list of Path
        The executed notebooks, in execution order.

    Raises
    ------
    NotebookRunError
        Naming the notebook: no notebooks, missing kernel, no ``parameters`` cell or no
        ``SMOKE`` in it, ``jobs`` below 1 (all checked before the first notebook runs), an
        exception in a cell, or stderr output in a smoke run.
    """
    if jobs < 1:
        raise NotebookRunError(f"jobs must be at least 1, got {jobs}")
    src = paths.resolve(src_dir, paths.notebooks_dir())
    plan = _plan(discover_notebooks(names, src), smoke, dict(extra_parameters or {}))
    _check_kernel(kernel)
    allow_stderr = (not smoke) if allow_stderr is None else allow_stderr
    out = paths.resolve(out_dir, paths.built_notebooks_dir())
    out.mkdir(parents=True, exist_ok=True)
    runs = [(path, out / path.name, parameters, kernel, allow_stderr) for path, parameters in plan]
    bar = tqdm(total=len(runs), desc="smoke" if smoke else "full", unit="notebook", file=sys.stdout)
    with bar:
        if jobs <= 1 or len(runs) == 1:
            for run in runs:
                bar.set_postfix_str(run[0].stem)
                _run_one(*run)
                bar.update()
        else:
            _run_parallel(runs, jobs, bar)
    return [run[1] for run in runs]


def _run_one(path: Path, out_path: Path, parameters: dict[str, Any], kernel: str, allow_stderr: bool) -> Path:
    """Execute one notebook of the plan and check its stderr; the executed copy's path."""
    _execute_one(path, out_path, parameters, kernel)
    if not allow_stderr:
        _check_stderr(out_path)
    return out_path


def _run_parallel(runs: list[tuple], jobs: int, bar: tqdm) -> None:
    """Execute the runs of the plan ``jobs`` at a time, in numbered order of start.

    Each notebook runs in its own kernel either way, with its own thread settings, so its
    outputs do not depend on ``jobs``. After the first failure no other notebook starts; it is
    raised once the running ones have finished (their copies are kept).
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the parent holds threads (tqdm's monitor, papermill's loggers)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue, running = list(runs), set()
        while queue or running:
            while queue and len(running) < jobs:  # submitted one by one: the pool would queue ahead
                running.add(pool.submit(_run_one, *queue.pop(0)))
            done, running = wait(running, return_when=FIRST_COMPLETED)  # a free slot starts the next
            bar.update(len(done))
            failed = [future for future in done if future.exception() is not None]
            if failed:
                wait(running)
                raise failed[0].exception()


def _literal(text: str) -> Any:
    """A command-line value as a Python literal when it is one (``3``, ``True``), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m kdlib.notebooks``."""
    parser = argparse.ArgumentParser(prog="python -m kdlib.notebooks", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="SMOKE=True: the tiny run of CI and Binder")
    mode.add_argument("--full", action="store_true", help="SMOKE=False: the full run")
    parser.add_argument("--src", default=None, help="folder of the notebooks to run (default notebooks/)")
    parser.add_argument("--out", default=None, help="output folder (default build/notebooks)")
    parser.add_argument("--kernel", default="kdlib", help="Jupyter kernel (default kdlib)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks (01, 02_fusion_teacher …)")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="extra notebook parameter; VALUE is read as a Python literal when it is one",
    )
    parser.add_argument("--allow-stderr", action="store_true", help="accept stderr output in smoke runs")
    parser.add_argument("--jobs", type=_positive_int, default=1,
                        help="notebooks run at once, each in its own kernel (default 1)")
    return parser


def _positive_int(text: str) -> int:
    """``--jobs``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m kdlib.notebooks``; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a notebook could not be run or failed (the message names it).
    """
    args = _parser().parse_args(argv)
    extra = {name: _literal(value) for name, value in args.parameter}
    try:
        written = run_notebooks(
            smoke=args.smoke, out_dir=args.out, names=args.only, kernel=args.kernel,
            extra_parameters=extra, allow_stderr=True if args.allow_stderr else None, src_dir=args.src,
            jobs=args.jobs,
        )
    except NotebookRunError as err:
        print(f"kdlib.notebooks: error: {err}", file=sys.stderr)
        return 1
    print(f"executed {len(written)} notebook(s) into {written[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
