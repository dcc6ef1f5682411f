"""benchmarks/compare_reports.py: two report folders compared on what they share."""

import importlib.util
from pathlib import Path

import pandas as pd

SPEC = importlib.util.spec_from_file_location(
    "compare_reports", Path(__file__).resolve().parent.parent / "benchmarks" / "compare_reports.py")
compare_reports = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare_reports)


def write_report(folder, methods, acc=0.556, label="55.6 [50.0, 61.3]"):
    folder.mkdir()
    rows = [dict(task="valence", method=m, subject="s01", acc_trial=acc, n_trials=8) for m in methods]
    pd.DataFrame(rows).to_csv(folder / "per_subject.csv", index=False)
    pd.DataFrame([dict(task="valence", method=m, **{"accuracy (trial, %) [95 % CI]": label}) for m in methods]
                 ).to_csv(folder / "ablation.csv", index=False)
    return folder


def test_a_method_left_out_is_listed_and_the_rest_compared(tmp_path, capsys):
    new = write_report(tmp_path / "new", ["teacher", "v1"])
    old = write_report(tmp_path / "old", ["teacher", "late_fusion", "v1"])
    assert compare_reports.main([str(new), str(old)]) == 0
    out = capsys.readouterr().out
    assert "per_subject.csv: 2 shared rows of 2 / 3, largest difference 0" in out
    assert "('valence', 'late_fusion')" in out and "identical on every shared number" in out
    assert "contrasts.csv: not compared, missing" in out  # tables neither holds are said so


def test_a_changed_number_or_label_fails(tmp_path, capsys):
    old = write_report(tmp_path / "old", ["teacher"])
    assert compare_reports.main([str(write_report(tmp_path / "n1", ["teacher"], acc=0.557)), str(old)]) == 1
    assert "DIFFERENT: up to 0.001" in capsys.readouterr().out
    assert compare_reports.main([str(write_report(tmp_path / "n2", ["teacher"], label="55.7 [50.0, 61.3]")),
                                 str(old)]) == 1
    assert "1 text cells" in capsys.readouterr().out
    assert compare_reports.main([str(write_report(tmp_path / "n3", ["teacher"], acc=0.557)), str(old),
                                 "--tolerance", "0.01"]) == 0
