"""The ``kdlib`` command line: subcommands, summaries, and one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pandas as pd
import yaml

import _custom_set as cs
from kdlib import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *parts):
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for part in parts:
        assert part in err


def test_every_option_has_help():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) >= {"synth", "prepare", "validate-manifest"}
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"kdlib {name} {action.option_strings or action.dest}: no help text"


def test_synth_then_prepare_prints_summary_and_class_balance(capsys, tmp_path):
    out_dir, cache_dir = tmp_path / "synth", tmp_path / "cache"
    code, _, err = run(capsys, "synth", "--out", str(out_dir), "--subjects", "2", "--trials", "4", "--quiet")
    assert code == 0 and err == "" and len(list(out_dir.glob("s0?.dat"))) == 2
    code, out, err = run(capsys, "prepare", "--data-dir", str(out_dir), "--cache-dir", str(cache_dir),
                         "--subjects", "s02", "--window-s", "6", "--quiet")
    assert code == 0, err
    assert "40 windows of 768 samples at 128 Hz from 1 subject(s), 4 trials" in out
    assert "class balance" in out and "majority_acc" in out and "valence" in out and "arousal" in out
    assert len(list(cache_dir.glob("s02-*"))) == 1


def test_prepare_custom_and_validate_manifest(capsys, tmp_path):
    manifest = cs.small_set(tmp_path / "set")
    code, out, _ = run(capsys, "validate-manifest", str(manifest))
    assert code == 0 and "OK (2 subject(s), 3 recording(s))" in out
    code, out, err = run(capsys, "prepare", "--dataset", "custom", "--manifest", str(manifest), "--window-s", "2",
                         "--cache-dir", str(tmp_path / "cache"), "--quiet")
    assert code == 0, err
    assert "36 windows of 256 samples at 128 Hz from 2 subject(s), 12 trials" in out and "hEOG, vEOG" in out


def test_prepare_with_two_threads(capsys, tmp_path):
    out_dir, cache_dir = tmp_path / "synth", tmp_path / "cache"
    assert run(capsys, "synth", "--out", str(out_dir), "--subjects", "2", "--trials", "4", "--quiet")[0] == 0
    code, out, err = run(capsys, "prepare", "--data-dir", str(out_dir), "--cache-dir", str(cache_dir),
                         "--jobs", "2", "--quiet")
    assert code == 0, err
    assert "120 windows of 512 samples at 128 Hz from 2 subject(s), 8 trials" in out
    assert sorted(p.name[:3] for p in cache_dir.glob("s0?-*")) == ["s01", "s02"]


def test_missing_data_dir(capsys, tmp_path):
    code, _, err = run(capsys, "prepare", "--dataset", "deap", "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(code, err, "kdlib prepare: error:", "nowhere", "not found")


def test_bad_manifest(capsys, tmp_path):
    manifest = cs.small_set(tmp_path / "set")
    doc = yaml.safe_load(manifest.read_text())
    doc["channels"]["eeg"] = ["Fz", "Nope"]
    manifest.write_text(yaml.safe_dump(doc))
    (tmp_path / "set" / "raw" / "p02_run1_raw.fif").unlink()
    code, out, err = run(capsys, "validate-manifest", str(manifest))
    assert code == 1 and "3 problem(s)" in err  # p02 missing, and Nope in p01's two recordings
    lines = out.strip().splitlines()
    assert len(lines) == 3 and sum("'Nope'" in line for line in lines) == 2 and "[missing-file]" in out
    code, _, err = run(capsys, "prepare", "--dataset", "custom", "--manifest", str(manifest), "--no-cache")
    assert_one_line_error(code, err, "3 problem(s)", "first:")
    (tmp_path / "bad.toml").write_text("trials = \n")
    code, out, err = run(capsys, "validate-manifest", str(tmp_path / "bad.toml"))
    assert code == 1 and "not valid TOML" in out
    code, _, err = run(capsys, "prepare", "--dataset", "custom")
    assert_one_line_error(code, err, "needs a manifest")


def test_empty_subject_list_and_bad_options(capsys, tmp_path):
    code, _, err = run(capsys, "prepare", "--data-dir", str(tmp_path), "--subjects", " , ")
    assert_one_line_error(code, err, "--subjects is empty")
    code, _, err = run(capsys, "prepare", "--window-s", "-1")
    assert_one_line_error(code, err, "--window-s")
    assert code == 2  # a bad option value: usage
    code, _, err = run(capsys, "prepare", "--frobnicate")
    assert code == 2 and "unrecognized arguments: --frobnicate" in err
    code, _, err = run(capsys)
    assert code == 2 and "choose a command" in err
    code, _, err = run(capsys, "synth", "--subjects", "0", "--out", str(tmp_path / "s"))
    assert_one_line_error(code, err, "n_subjects")


def test_python_dash_m_kdlib():
    proc = subprocess.run([sys.executable, "-m", "kdlib", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "validate-manifest" in proc.stdout and proc.stderr == ""


def _options(command: str) -> dict[str, argparse.Action]:
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {flag: action for action in sub.choices[command]._actions for flag in action.option_strings}


def test_reproduce_offers_the_registry_s_methods_and_protocols():
    from kdlib import evaluate, registry

    options = _options("reproduce")
    assert tuple(options["--protocol"].choices) == tuple(registry.PROTOCOLS) == evaluate._PROTOCOLS
    assert options["--protocol"].default == registry.DEFAULT_PROTOCOL
    assert evaluate.METHODS == registry.METHODS == tuple(registry.BASELINES) + tuple(registry.STUDENTS)
    for name, text in {**registry.BASELINES, **registry.STUDENTS, **registry.PROTOCOLS}.items():
        assert f"{name}: {text}" in options["--methods"].help + options["--protocol"].help


def test_synth_is_a_command_of_its_own_with_the_generator_s_presets():
    from kdlib.data import synthetic

    assert set(_options("synth")["--preset"].choices) == set(synthetic.PRESETS)
    proc = subprocess.run([sys.executable, "-m", "kdlib", "synth", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: kdlib synth") and "--eeg-to-eog" in proc.stdout


def test_reproduce_errors_are_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path / "data"))
    code, _, err = run(capsys, "reproduce", "--dataset", "deap", "--data-dir", str(tmp_path / "nowhere"), "--quiet")
    assert_one_line_error(code, err, "nowhere", "not found")
    code, _, err = run(capsys, "reproduce", "--methods", "majority,v9", "--quiet")
    assert_one_line_error(code, err, "unknown method", "v9")
    code, _, err = run(capsys, "reproduce", "--subjects", ",", "--quiet")
    assert_one_line_error(code, err, "--subjects is empty")
    code, _, err = run(capsys, "reproduce", "--dataset", "custom", "--quiet")
    assert_one_line_error(code, err, "--manifest")
    code, _, err = run(capsys, "report", str(tmp_path / "no-run"))
    assert_one_line_error(code, err, "no-run", "config.json")
    for seeds in ("0,x", "-1", "1,1", ""):
        code, _, err = run(capsys, "reproduce", "--seeds", seeds, "--quiet")
        assert_one_line_error(code, err, "--seeds")
        assert code == 2, "a bad option value is a usage error"
    code, _, err = run(capsys, "reproduce", "--quiz-size", "0", "--quiet")
    assert_one_line_error(code, err, "quiz")


def test_reproduce_then_report(capsys, tmp_path):
    data, out = tmp_path / "synth", tmp_path / "run"
    cache = tmp_path / "cache"
    assert run(capsys, "synth", "--out", str(data), "--subjects", "2", "--trials", "10", "--quiet")[0] == 0
    code, stdout, err = run(capsys, "reproduce", "--data-dir", str(data), "--methods", "majority,eog_only",
                            "--tasks", "valence", "--folds", "2", "--preset", "smoke", "--epochs", "1",
                            "--seeds", "0,4", "--cache-dir", str(cache), "--out", str(out), "--quiet")
    assert code == 0, err
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["seed"].unique()) == [0, 4] and len(list((out / "folds").glob("*__seed4.csv"))) == 4
    assert len(list(cache.glob("s0?-*"))) == 2
    assert "wrote" in stdout and (out / "report" / "summary.md").is_file()
    summary = (out / "report" / "summary.md").read_text()
    assert "SYNTHETIC DATA" in summary and "majority class" in summary and "EOG-only net" in summary
    assert (out / "report" / "ablation_valence.png").stat().st_size > 10_000
    code, stdout, _ = run(capsys, "report", str(out), "--out", str(tmp_path / "again"))
    assert code == 0 and (tmp_path / "again" / "summary.csv").is_file()


def test_reproduce_device_and_trainer(capsys, tmp_path, monkeypatch):
    import json

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "reproduce", "--device", "cuda", "--out", str(tmp_path / "gpu"), "--quiet")
    assert_one_line_error(code, err, "--device cuda", "CUDA was requested but is not available")
    assert not (tmp_path / "gpu").exists()  # refused before the run folder or any data
    data = tmp_path / "synth"
    assert run(capsys, "synth", "--out", str(data), "--subjects", "1", "--trials", "8", "--quiet")[0] == 0
    for trainer in ("batched", "sequential", "auto"):
        out = tmp_path / trainer
        code, _, err = run(capsys, "reproduce", "--data-dir", str(data), "--methods", "majority,eog_only",
                           "--tasks", "valence", "--folds", "2", "--preset", "smoke", "--epochs", "1",
                           "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--device", "cpu",
                           "--trainer", trainer, "--no-report", "--quiet")
        assert code == 0, err
        recorded = json.loads((out / "config.json").read_text())["protocol"]["trainer"]
        assert recorded == {"auto": "sequential"}.get(trainer, trainer)  # auto: sequential on the CPU
    assert list(pd.read_csv(tmp_path / "batched" / "results.csv").columns) == \
        list(pd.read_csv(tmp_path / "sequential" / "results.csv").columns)
