"""Compare two `kdlib report` folders number by number, on what they share.

Used to check that the reproduce step of ``make run`` gives the recorded ablation run's numbers:

    .venv/bin/python benchmarks/compare_reports.py results/synthetic/report benchmarks/results/ablation_run

For each table both reports hold, the rows are matched on their keys (methods found in only one
report, e.g. ``late_fusion`` when ``make run`` leaves it out, are listed, not compared), and the
largest absolute difference over every numeric column is printed, with the number of text cells
that differ (e.g. ``"55.6 [50.0, 61.3]"``). Exit status 1 when any shared number differs by more
than ``--tolerance`` (default 0: identical as written to CSV) or any shared text cell differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

#: The report's tables and the columns that identify a row.
TABLES = {
    "per_subject.csv": ["task", "method", "subject"],
    "per_seed.csv": ["task", "method", "subject", "seed"],
    "ablation.csv": ["task", "method"],
    "contrasts.csv": ["task", "metric", "contrast"],
    "ceilings.csv": ["task", "subject", "fold", "seed"],
    "chance.csv": ["task"],
    "steps.csv": ["task", "method"],
}


def compare_table(new: pd.DataFrame, old: pd.DataFrame, keys: list[str]) -> dict:
    """Rows of ``new`` and ``old`` matched on ``keys``: counts, rows in one only, largest difference."""
    merged = new.merge(old, on=keys, suffixes=("_new", "_old"), how="outer", indicator=True)
    numeric = [c for c in new.columns if c not in keys and c in old.columns and pd.api.types.is_numeric_dtype(new[c])]
    both = merged[merged["_merge"] == "both"]
    diffs = [(both[f"{c}_new"].astype(float) - both[f"{c}_old"].astype(float)).abs().max() for c in numeric]
    text = [c for c in new.columns if c not in keys and c in old.columns and c not in numeric]
    text_diffs = sum(int((both[f"{c}_new"].fillna("") != both[f"{c}_old"].fillna("")).sum()) for c in text)
    only = lambda side: sorted({tuple(r) for r in merged.loc[merged["_merge"] == side, keys[:2]].itertuples(index=False)})  # noqa: E731
    return dict(rows_new=len(new), rows_old=len(old), shared=len(both), only_new=only("left_only"),
                only_old=only("right_only"), text_cells_differing=text_diffs, largest_difference=max([d for d in diffs if pd.notna(d)], default=0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("new", type=Path, help="a report folder (e.g. results/synthetic/report)")
    parser.add_argument("old", type=Path, help="the report to compare with (e.g. benchmarks/results/ablation_run)")
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest accepted difference (default 0)")
    args = parser.parse_args(argv)
    worst, text_diffs = 0.0, 0
    for name, keys in TABLES.items():
        paths = [args.new / name, args.old / name]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"{name}: not compared, missing {', '.join(missing)}")
            continue
        result = compare_table(*(pd.read_csv(p) for p in paths), keys)
        worst = max(worst, result["largest_difference"])
        text_diffs += result["text_cells_differing"]
        print(f"{name}: {result['shared']} shared rows of {result['rows_new']} / {result['rows_old']}, "
              f"largest difference {result['largest_difference']:g}, text cells differing {result['text_cells_differing']}"
              + (f"; only in {args.new}: {result['only_new']}" if result["only_new"] else "")
              + (f"; only in {args.old}: {result['only_old'][:4]}{' …' if len(result['only_old']) > 4 else ''}"
                 if result["only_old"] else ""))
    same = worst <= args.tolerance and text_diffs == 0
    print("identical on every shared number" if same else f"DIFFERENT: up to {worst:g}, {text_diffs} text cells")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
