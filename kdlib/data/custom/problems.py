"""What can be wrong with a custom data set, and how it is said: :class:`Problem`, :class:`ManifestError`.

Part of :mod:`kdlib.data.custom`. Every check of :mod:`~kdlib.data.custom.manifest` and
:mod:`~kdlib.data.custom.validation` reports problems of the kinds in :data:`PROBLEM_KINDS`, each
naming the file, the table row or the channel, and reports all of them at once.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROBLEM_KINDS", "Problem", "ManifestError"]

#: Every kind of problem :func:`validate_manifest` and :func:`load_manifest` report.
PROBLEM_KINDS: tuple[str, ...] = (
    "manifest",  # structure or values of the manifest itself
    "missing-file",  # a file the manifest names does not exist
    "unreadable-file",  # it exists but MNE or pandas cannot read it
    "missing-column",  # the trials table lacks a required column
    "unknown-channel",  # a channel of the channel map is not in a recording
    "unknown-recording",  # a trial names a subject/recording the manifest does not list
    "bad-trial",  # non-numeric, non-positive or unequal durations, non-integer trial id
    "trial-outside-recording",  # a trial (or its baseline) extends beyond its recording
    "rating-out-of-range",  # a rating outside the scale, or a missing valence/arousal
    "duplicate-trial",  # the same trial id twice for one subject
    "no-trials",  # a subject with recordings but no trial
    "overlapping-trials",  # two trials of one recording share samples (they would leak across folds)
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, its files or its trials table.

    Attributes
    ----------
    kind : str
        One of :data:`PROBLEM_KINDS`.
    where : str
        The file, ``file:line`` of the trials table, or ``file: channel 'X'``.
    message : str
    """

    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.kind}]"


class ManifestError(ValueError):
    """A manifest with problems; ``problems`` lists all of them, the message shows each."""

    def __init__(self, source: str | os.PathLike, problems):
        self.source = str(source)
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.source}: {len(self.problems)} problem(s):\n{lines}")

    def summary(self) -> str:
        """One line: the count and the first problem."""
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.source}: {len(self.problems)} problem(s); first: {self.problems[0]}{more}"


# --- collecting problems; values in messages --------------------------------------------------

class _Collector:
    """Collects problems of one manifest file while it is parsed."""

    def __init__(self, path: Path):
        self.where = str(path)
        self.problems: list[Problem] = []

    def add(self, message: str, kind: str = "manifest", where: str | None = None) -> None:
        self.problems.append(Problem(kind, where or self.where, message))


def _short(value, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for messages about values of any size."""
    import reprlib

    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _repeated(items) -> list:
    """The items that occur more than once, sorted (linear time: lists may be long)."""
    return sorted(x for x, n in Counter(items).items() if n > 1)
