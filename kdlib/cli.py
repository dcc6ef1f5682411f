"""The ``kdlib`` command line (``kdlib …`` or ``python -m kdlib …``).

Subcommands::

    kdlib synth [--preset smoke] [--out DIR] ...     write the synthetic DEAP-format data set
    kdlib prepare --dataset synthetic|deap|custom    prepare (and cache) windows, print a summary
    kdlib validate-manifest FILE                     list every problem of a custom data set
    kdlib reproduce [--protocol trial_kfold] ...     the evaluation protocol, results/<run>/
    kdlib report RESULTS_DIR                         summary tables (Markdown, CSV) and figures
    kdlib sweep --grid smoke|full [--out DIR]        when does distillation help: a sweep over data knobs
    kdlib notebooks --smoke|--full                   execute the notebook sequence (papermill)
    kdlib course [--out DIR] [--verify]              the course's student and instructor editions

Adding a subcommand is one function decorated with :func:`command` (its name, help and
arguments); :func:`main` builds the parser from the registry. Errors are one line on stderr
and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .data import DATASETS
from .data.synthetic import PRESETS as SYNTH_PRESETS
from .registry import BASELINES, DEFAULT_PROTOCOL, METHODS, PROTOCOLS, STUDENTS

__all__ = ["main", "command", "arg", "COMMANDS", "CliError", "OptionError"]

PROG = "kdlib"


class CliError(Exception):
    """A user error: printed as one line ``kdlib CMD: error: message``, exit status 1."""


class OptionError(CliError):
    """A bad option value (names the option): one line, exit status 2 like argparse's errors."""


class _UsageError(Exception):
    """A bad command line (argparse's complaint), exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message):
        raise _UsageError(message)


@dataclass(frozen=True)
class Command:
    """One subcommand: its handler, help text and arguments (``arg(...)`` tuples)."""

    name: str
    help: str
    arguments: tuple
    run: Callable[[argparse.Namespace, list[str]], int]
    passthrough: bool = False  # unknown options are handed to ``run`` (``notebooks``)


COMMANDS: dict[str, Command] = {}


def arg(*flags, **options):
    """An argument of a subcommand, as for :meth:`argparse.ArgumentParser.add_argument`.

    Parameters
    ----------
    *flags : str
        The option strings (``"--out"``), or the name of a positional argument.
    **options
        Keyword arguments of ``add_argument`` (``default``, ``choices``, ``help``, ...).

    Returns
    -------
    tuple
        ``(flags, options)``, one of the ``arguments`` of :func:`command`.
    """
    return flags, options


def command(name: str, help: str, *arguments, passthrough: bool = False):
    """Register the decorated function ``f(args, extra) -> int`` as the subcommand ``name``.

    Parameters
    ----------
    name : str
        The subcommand (``kdlib NAME``).
    help : str
        One line, shown by ``kdlib --help`` and as the subcommand's description.
    *arguments : tuple
        Its arguments, each made by :func:`arg`.
    passthrough : bool
        Hand options the parser does not know to the function as ``extra`` instead of refusing
        them (``notebooks``, which parses its own options).

    Returns
    -------
    callable
        The decorator; it registers the function in :data:`COMMANDS` and returns it unchanged.
    """

    def register(run):
        COMMANDS[name] = Command(name, help, arguments, run, passthrough)
        return run

    return register


# --- subcommands --------------------------------------------------------------------------------

@command(
    "synth", "write the synthetic DEAP-format data set (kdlib.data.synthetic): its emotion effects are built in",
    arg("--out", default=None, help="output folder; a relative path is taken from the project root "
        "(default: $KDLIB_DATA_DIR/synthetic, i.e. data/synthetic)"),
    arg("--preset", default="default", choices=sorted(SYNTH_PRESETS),
        help="preset: smoke (3 subjects), default (8), full (32, DEAP's size); regimes "
             "privileged (EEG effects 2.5x, EOG effects halved, no path) and no_path (no EEG in the EOG)"),
    arg("--subjects", type=int, default=None, help="number of subjects, overrides the preset (1-99)"),
    arg("--trials", type=int, default=None, help="trials per subject, overrides the preset (>= 2; DEAP has 40)"),
    arg("--seed", type=int, default=None, help="master random seed (default 0)"),
    arg("--eeg-to-eog", type=float, default=None, metavar="GAIN",
        help="gain of the frontal EEG in the EOG channels, overrides the preset (0 = none)"),
    arg("--rating-noise-sd", type=float, default=None, metavar="SD",
        help="SD of the self-report noise, overrides the preset (0 = ratings are the latent)"),
    arg("--overwrite", action="store_true", help="regenerate files even if the folder already matches the config"),
    arg("--quiet", action="store_true", help="no progress bar, no summary line"),
)
def _synth(args: argparse.Namespace, extra: list[str]) -> int:
    import time
    from dataclasses import replace

    from .data.synthetic import write_dataset

    changes = {k: v for k, v in (("n_subjects", args.subjects), ("n_trials", args.trials), ("seed", args.seed),
                                 ("eeg_to_eog", args.eeg_to_eog), ("rating_noise_sd", args.rating_noise_sd))
               if v is not None}
    config = replace(SYNTH_PRESETS[args.preset], **changes)  # a bad knob: SyntheticDataError, one line
    start = time.perf_counter()
    paths = write_dataset(args.out, config, overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"{len(paths)} subjects in {paths[0].parent} ({time.perf_counter() - start:.1f} s)")
    return 0


def _subject_list(text: str | None):
    """``'s01,s02'`` or ``'1 2'`` -> list (ints stay ints for DEAP's sNN ids); None -> None.

    A subject named twice (``s01,s01``, or ``1,01``) is refused: it would double its windows.
    """
    if text is None:
        return None
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise OptionError("--subjects is empty: name at least one subject (e.g. --subjects s01,s02)")
    subjects = [int(t) if t.isdigit() else t for t in items]
    twice = sorted(str(s) for s, n in Counter(subjects).items() if n > 1)
    if twice:
        raise OptionError(f"--subjects names {', '.join(twice)} more than once (got {text!r})")
    return subjects  # DEAP's spellings of one id (1, s1, s01) are refused by deap.subject_files


def _seed_list(text: str) -> tuple[int, ...]:
    """``'0,1,2'`` -> ``(0, 1, 2)``; a one-line error naming ``--seeds`` otherwise."""
    items = [t for t in text.replace(",", " ").split() if t]
    if not items or not all(t.isdigit() for t in items):
        raise OptionError(f"--seeds must be integers >= 0, comma-separated (e.g. --seeds 0,1,2), got {text!r}")
    seeds = tuple(int(t) for t in items)
    if len(set(seeds)) != len(seeds):
        raise OptionError(f"--seeds: each seed may be given once, got {text!r}")
    return seeds


def _prep_config(args: argparse.Namespace):
    from .data.windows import PrepConfig

    try:
        return PrepConfig(window_s=args.window_s, stride_s=args.stride_s if args.stride_s else args.window_s,
                          baseline=args.baseline, threshold=args.threshold, rule=args.rule)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _prepare_windows(args: argparse.Namespace, config, subjects):
    from .data import cache, dataset_dir, manifest_path

    if args.dataset == "custom":
        from .data.custom import prepare_custom

        if args.data_dir:
            raise CliError("--data-dir is not used with --dataset custom: pass --manifest FILE")
        return prepare_custom(manifest_path(args.manifest), config, subjects=subjects, cache_dir=args.cache_dir,
                              use_cache=not args.no_cache, progress=not args.quiet)
    if args.manifest:
        raise CliError(f"--manifest is only used with --dataset custom (got --dataset {args.dataset})")
    return cache.prepare_dataset(dataset_dir(args.dataset, args.data_dir), config, subjects=subjects,
                                 cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=not args.quiet,
                                 jobs=args.jobs)


PREP_ARGS = (  # how windows are made: shared by prepare and reproduce
    arg("--window-s", type=float, default=4.0, help="window length, s (default 4)"),
    arg("--stride-s", type=float, default=None, help="step between windows, s (default: the window length)"),
    arg("--baseline", choices=("mean", "none"), default="mean",
        help="subtract the pre-trial baseline mean per channel (default: mean)"),
    arg("--threshold", type=float, default=5.0, help="rating threshold between low and high (default 5)"),
    arg("--rule", choices=(">", ">="), default=">",
        help="'>': a rating equal to the threshold is low (default); '>=': it is high"),
)


@command(
    "prepare", "prepare (and cache) the windows of a data set; print a summary and the class balance",
    arg("--dataset", choices=DATASETS, default="synthetic",
        help="which data: the synthetic set, a DEAP copy, or your own recordings (default: synthetic)"),
    arg("--data-dir", default=None,
        help="folder of sNN.dat/sNN.mat files (synthetic: default data/synthetic; deap: default $KDLIB_DEAP_DIR)"),
    arg("--manifest", default=None, help="manifest file (YAML or TOML) of a custom data set"),
    arg("--subjects", default=None, help="subjects to prepare, comma-separated, e.g. s01,s02 or 1,2 (default: all)"),
    *PREP_ARGS,
    arg("--cache-dir", default=None, help="cache folder (default: $KDLIB_DATA_DIR/cache, i.e. data/cache)"),
    arg("--no-cache", action="store_true", help="recompute everything and write no cache entry"),
    arg("--jobs", type=int, default=1, help="subjects prepared at once, in threads (default 1; DEAP files only)"),
    arg("--quiet", action="store_true", help="no progress bar"),
)
def _prepare(args: argparse.Namespace, extra: list[str]) -> int:
    from .data.windows import class_balance

    ws = _prepare_windows(args, _prep_config(args), _subject_list(args.subjects))
    n_trials = len(ws.trial_table())
    print(f"{len(ws)} windows of {ws.n_samples} samples at {ws.fs:g} Hz from {len(ws.subjects())} subject(s), "
          f"{n_trials} trials; EEG {len(ws.eeg_channels)} channels, EOG {', '.join(ws.eog_channels)}")
    balance = class_balance(ws)
    overall = balance[balance["subject"] == "all"].drop(columns="subject")
    print(f"class balance (high = rating {ws.rule} {ws.threshold:g}), per trial:")
    print(overall.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


@command(
    "validate-manifest", "check a custom data set's manifest, files and trials; list every problem",
    arg("manifest", help="manifest file (YAML or TOML)"),
)
def _validate_manifest(args: argparse.Namespace, extra: list[str]) -> int:
    from .data.custom import check_manifest_file

    manifest, problems = check_manifest_file(args.manifest)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{PROG} validate-manifest: {args.manifest}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n_recordings = len(manifest.recordings)
    print(f"{manifest.path}: OK ({len(manifest.subjects)} subject(s), {n_recordings} recording(s))")
    return 0


@command(
    "reproduce", "run the evaluation protocol (teacher retrained in every fold, all methods); resumable",
    arg("--dataset", choices=DATASETS, default="synthetic",
        help="which data: the synthetic set, a DEAP copy, or your own recordings (default: synthetic)"),
    arg("--data-dir", default="", help="folder of sNN.dat/sNN.mat files (deap: default $KDLIB_DEAP_DIR)"),
    arg("--manifest", default="", help="manifest file (YAML or TOML) of a custom data set"),
    arg("--protocol", choices=tuple(PROTOCOLS), default=DEFAULT_PROTOCOL, help="; ".join(
        f"{name}: {text}" + (" (default)" if name == DEFAULT_PROTOCOL else "") for name, text in PROTOCOLS.items())),
    arg("--folds", type=int, default=5, help="folds per subject (default 5)"),
    arg("--tasks", default="valence,arousal", help="comma-separated tasks (default valence,arousal)"),
    arg("--methods", default="all", help="comma-separated methods (default all): " + "; ".join(
        f"{name}: {text}" for name, text in {**BASELINES, **STUDENTS}.items())),
    arg("--subjects", default=None, help="subjects, comma-separated, e.g. s01,s02 (default: all)"),
    *PREP_ARGS,
    arg("--preset", choices=("smoke", "default", "paper"), default="default",
        help="model and training sizes: smoke (tiny, minutes), default, paper (longest budget)"),
    arg("--epochs", type=int, default=None, help="override the preset's maximum epochs"),
    arg("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2: each seed changes the folds, the initial "
        "weights, the batch order and the label shuffle; results are keyed by seed (default 0)"),
    arg("--quiz-size", type=float, default=0.15,
        help="share of each fold's training trials held out as the quiz for V3's feedback batches; no model "
             "trains on them (default 0.15)"),
    arg("--shuffle-labels", action="store_true", help="control run: permute trial labels within subject (expect chance)"),
    arg("--checkpoints", action="store_true", help="save every fold's model state dicts under OUT/checkpoints/"),
    arg("--jobs", type=int, default=1, help="folds trained in parallel (processes, one torch thread each; default 1)"),
    arg("--trainer", choices=("auto", "batched", "sequential"), default="auto",
        help="batched: a subject's folds train as one stacked ensemble (kdlib.batched); sequential: one fold at "
             "a time; auto (default): batched on CUDA, sequential on the CPU (where stacking does not pay)"),
    arg("--device", default="auto", help="auto (CUDA if available, else CPU; default), cpu, cuda or cuda:N"),
    arg("--amp", action="store_true",
        help="mixed precision (bfloat16) on CUDA with --trainer batched; no effect on CPU"),
    arg("--backend", choices=("loky", "dask"), default="loky", help="local processes (loky) or a Dask cluster"),
    arg("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --backend dask)"),
    arg("--cache-dir", default="", help="cache folder (default: $KDLIB_DATA_DIR/cache, i.e. data/cache)"),
    arg("--out", default="results/run", help="run folder (default results/run); an existing run is resumed"),
    arg("--no-report", action="store_true", help="do not write the report at the end"),
    arg("--quiet", action="store_true", help="no progress bar"),
)
def _reproduce(args: argparse.Namespace, extra: list[str]) -> int:
    from .evaluate import DataSpec, ProtocolConfig, run_protocol

    subjects = _subject_list(args.subjects)
    methods = METHODS if args.methods == "all" else tuple(m for m in args.methods.replace(",", " ").split())
    if args.dataset == "custom" and not args.manifest:
        raise CliError("--dataset custom needs --manifest FILE")
    if args.folds < 2:
        raise CliError(f"--folds must be at least 2, got {args.folds}")
    spec = DataSpec(dataset=args.dataset, data_dir=args.data_dir, manifest=args.manifest, prep=_prep_config(args),
                    cache_dir=args.cache_dir)
    config = ProtocolConfig(protocol=args.protocol, n_folds=args.folds,
                            tasks=tuple(t for t in args.tasks.replace(",", " ").split()), methods=methods,
                            subjects=tuple(f"s{s:02d}" if isinstance(s, int) else s for s in subjects or ()),
                            seeds=_seed_list(args.seeds), quiz_size=args.quiz_size,
                            model_preset=args.preset, train_preset=args.preset, epochs=args.epochs,
                            shuffle_labels=args.shuffle_labels, save_checkpoints=args.checkpoints,
                            trainer=_trainer(args.trainer, args.device))
    results = run_protocol(spec, config, out=args.out, n_jobs=args.jobs, backend=args.backend,
                           scheduler=args.scheduler, progress=not args.quiet, device=args.device, amp=args.amp)
    print(f"{len(results)} result rows in {args.out}/results.csv")
    if not args.no_report:
        from .report import write_report

        for path in write_report(_resolved(args.out)):
            print(f"wrote {path}")
    return 0


def _trainer(trainer: str, device: str) -> str:
    """``--trainer`` resolved for ``--device`` (an unavailable device: one line, before any work)."""
    from .evaluate import resolve_trainer

    try:
        return resolve_trainer(trainer, device)
    except RuntimeError as exc:
        raise CliError(f"--device {device}: {exc}") from None


def _resolved(path: str):
    from . import paths

    return paths.resolve(path, paths.results_dir() / "run")


@command(
    "report", "write the summary tables (Markdown, CSV) and figures of a reproduce run",
    arg("results_dir", help="a run folder written by kdlib reproduce (e.g. results/run)"),
    arg("--out", default=None, help="where to write (default RESULTS_DIR/report)"),
)
def _report(args: argparse.Namespace, extra: list[str]) -> int:
    from .report import write_report

    written = write_report(_resolved(args.results_dir), args.out)  # a bad config.json: one line naming it
    for path in written:
        print(f"wrote {path}")
    return 0


@command(
    "sweep", "when does distillation help: the protocol on synthetic data sets along each knob; resumable",
    arg("--grid", choices=("smoke", "full"), default="full",
        help="grid preset of kdlib.sweep.SWEEP_PRESETS: smoke (seconds, for CI) or full (the recorded "
             "experiment, its run time recorded in benchmarks/results/sweep_distill/README.md; default)"),
    arg("--out", default="results/sweep", help="sweep folder (default results/sweep); an existing sweep is resumed"),
    arg("--jobs", type=int, default=1, help="folds trained in parallel (processes, one torch thread each; default 1)"),
    arg("--no-report", action="store_true", help="do not write the tables and figures at the end"),
    arg("--quiet", action="store_true", help="no progress bar"),
)
def _sweep(args: argparse.Namespace, extra: list[str]) -> int:
    from . import paths, sweep

    out = paths.resolve(args.out, paths.results_dir() / "sweep")
    results, _ = sweep.run_sweep(sweep.SWEEP_PRESETS[args.grid], out=out, n_jobs=args.jobs, progress=not args.quiet)
    print(f"{len(results)} result rows of {results['point'].nunique()} points in {out / 'sweep.csv'}")
    if not args.no_report:
        for path in sweep.write_sweep_report(out):
            print(f"wrote {path}")
    return 0


@command("notebooks", "execute the notebook sequence with papermill (options: kdlib notebooks --help)",
         passthrough=True)
def _notebooks(args: argparse.Namespace, extra: list[str]) -> int:
    from . import notebooks

    try:
        return notebooks.main(extra)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@command(
    "course", "write the course's student and instructor editions of the notebooks (build/course/)",
    arg("--src", default=None, help="folder of the source notebooks (default notebooks/)"),
    arg("--out", default=None, help="where to write (default build/course): student/, instructor/, EXERCISES.md"),
    arg("--verify", action="store_true",
        help="then run every exercise on its own: its check must pass on the solution and fail on the stub"),
)
def _course(args: argparse.Namespace, extra: list[str]) -> int:
    from .course import editions
    from .notebooks import NotebookRunError

    try:
        written = editions.build_editions(args.src, args.out)
    except NotebookRunError as exc:  # no notebooks in --src
        raise CliError(f"--src: {exc}") from None
    folder = written["student"][0].parent.parent
    count = sum(len(editions.exercises(p)) for p in written["instructor"])
    print(f"{len(written['student'])} notebooks, {count} exercises: {folder / 'student'} and {folder / 'instructor'}")
    if not args.verify:
        return 0
    problems = editions.verify_editions(folder)
    for line in problems:
        print(f"kdlib course: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"verified: each of the {count} checks passes on its solution and fails on its stub")
    return 0


# --- entry point ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered subcommand."""
    parser = _Parser(prog=PROG, description="kdlib: multimodal (EEG + EOG) knowledge distillation kit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help, add_help=not cmd.passthrough)
        for flags, options in cmd.arguments:
            sub.add_argument(*flags, **options)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's data, files or settings can cause: one line and exit status 1.

    ``OSError`` covers missing files, folders named like files, permissions, a full disk and an
    unreachable Dask scheduler (its message names the path or the address)."""
    from .data.custom import ManifestError
    from .data.deap import DeapFormatError

    return (CliError, ManifestError, DeapFormatError, OSError, ValueError, KeyError)


def _one_line(exc: BaseException) -> str:
    summary = getattr(exc, "summary", None)
    text = summary() if callable(summary) else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def _seconds(option: str, lo: float, hi: float, allow_none: bool = False):
    """A check of a duration option: a finite number of seconds in [lo, hi]."""
    def check(value):
        if value is None and allow_none:
            return None
        if not (value is not None and math.isfinite(value) and lo <= value <= hi):
            return f"{option} must be a number of seconds in [{lo:g}, {hi:g}], got {value!r}"
        return None
    return check


def _at_least(option: str, low: int, allow_none: bool = False):
    def check(value):
        if (value is None and allow_none) or (value is not None and value >= low):
            return None
        return f"{option} must be a whole number >= {low}, got {value!r}"
    return check


def _finite(option: str):
    def check(value):
        return None if math.isfinite(value) else f"{option} must be a finite number, got {value!r}"
    return check


def _folder(option: str):
    """A check of a folder option: it may be missing (it is made), not a file."""
    def check(value):
        from . import paths

        path = paths.resolve(value, Path()) if value else None  # as the commands resolve it
        if path is not None and path.exists() and not path.is_dir():
            return f"{option} {value}: exists and is not a folder"
        return None
    return check


#: Checks of option values by ``args`` attribute, run for every command that has the option:
#: each returns None or the one-line complaint (exit status 2).
OPTION_CHECKS = {
    "window_s": _seconds("--window-s", 0.05, 3600.0),
    "stride_s": _seconds("--stride-s", 0.01, 3600.0, allow_none=True),
    "threshold": _finite("--threshold"),
    "jobs": _at_least("--jobs", 1),
    "folds": _at_least("--folds", 2),
    "epochs": _at_least("--epochs", 1, allow_none=True),
    "out": _folder("--out"),
    "cache_dir": _folder("--cache-dir"),
    "data_dir": _folder("--data-dir"),
}


def _check_options(args: argparse.Namespace) -> None:
    for name, check in OPTION_CHECKS.items():
        if hasattr(args, name):
            problem = check(getattr(args, name))
            if problem:
                raise OptionError(problem)


def main(argv=None) -> int:
    """Run ``kdlib`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            raise _UsageError(f"choose a command: {', '.join(COMMANDS)}")
        cmd = COMMANDS[args.command]
        if extra and not cmd.passthrough:
            raise _UsageError(f"unrecognized arguments: {' '.join(extra)}")
    except _UsageError as exc:
        print(f"{PROG}: error: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        _check_options(args)
        return cmd.run(args, extra)
    except OptionError as exc:
        print(f"{PROG} {cmd.name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except _user_errors() as exc:
        print(f"{PROG} {cmd.name}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"{PROG} {cmd.name}: error: out of memory ({_one_line(exc)}): prepare fewer subjects at once "
              "(--subjects, --jobs 1) or use a larger --stride-s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {cmd.name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
