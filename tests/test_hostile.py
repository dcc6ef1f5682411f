"""Hostile and damaged inputs (issue 13): resource bombs, crashes, resumes that know their data,
options honoured, values that are not data, one-line errors, leftovers of killed writers."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

import _custom_set as cs
import _hostile as h
from conftest import random_subject
from kdlib import cli, evaluate
from kdlib.data import cache, custom, deap, synthetic
from kdlib.data.custom import ManifestError
from kdlib.data.deap import DeapFormatError
from kdlib.evaluate import DataSpec, ProtocolConfig, run_protocol

MAJORITY = dict(methods=("majority",), tasks=("valence",), n_folds=2)


def one_line_error(capsys, *argv) -> tuple[int, str]:
    """Run the CLI; return its exit status and its stderr, checked to be one line, no traceback."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return code, err


def peak_bytes(fn) -> int:
    """Peak memory traced while ``fn()`` runs (numpy registers its buffers with tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
    except (DeapFormatError, ManifestError):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> DataSpec:
    """Two synthetic subjects with 10 trials each, their own cache."""
    root = tmp_path_factory.mktemp("synth")
    synthetic.write_dataset(root / "data", synthetic.SynthConfig(n_subjects=2, n_trials=10), progress=False)
    return DataSpec(dataset="synthetic", data_dir=str(root / "data"), cache_dir=str(root / "cache"))


def _subject_folder(tmp_path: Path, name: str = "data", n: int = 2) -> Path:
    folder = tmp_path / name
    for i in range(1, n + 1):
        arrays = random_subject(i, n_trials=2)
        deap.save_dat(folder / f"s{i:02d}.dat", arrays["data"], arrays["labels"])
    return folder


# --- 1. resource bombs --------------------------------------------------------------------------

@pytest.mark.parametrize("reader", [deap.load_dat, deap.map_dat, deap.load_subject])
def test_tiny_file_declaring_2000_trials_is_refused_in_bounded_memory(tmp_path, reader):
    path = tmp_path / "s01.dat"
    path.write_bytes(h.strided_bomb(2000))
    assert path.stat().st_size < 2000
    with pytest.raises(DeapFormatError, match=r"s01\.dat: refused to load: numpy\.ndarray\(\.\.\.\) called directly"):
        reader(path)
    assert peak_bytes(lambda: reader(path)) < 4 << 20  # the declared array: 5 GB (the 1 MiB read buffer is traced)


@pytest.mark.parametrize("shape, raw, match", [
    ((2000, 40, 8064), b"\0" * 64, "64 bytes for an array of shape"),
    ((2**40, 2**40, 2**40), b"", "0 bytes for an array of shape"),  # its product overflows int64
    ((-1, 40, 8064), b"", "non-negative integers"),
])
def test_declared_shapes_must_match_the_bytes_behind_them(tmp_path, shape, raw, match):
    path = tmp_path / "s01.dat"
    path.write_bytes(h.dict_pickle(data=h.op_reconstructed(shape, raw), labels=h.valid_labels(2)))
    for reader in (deap.load_dat, deap.map_dat):
        with pytest.raises(DeapFormatError, match=r"s01\.dat: not a readable DEAP pickle.*" + match):
            reader(path)
    path.write_bytes(h.dict_pickle(data=h.op_reconstructed((2,), b"\0" * 16, first_shape=(10**12,)),
                                   labels=h.valid_labels(2)))  # _reconstruct's own shape is never allocated
    assert peak_bytes(lambda: deap.load_dat(path, validate=False)) < 4 << 20


def test_byte_strings_declaring_more_than_the_file_holds_are_refused_before_reading(tmp_path):
    path = tmp_path / "s01.dat"
    path.write_bytes(h.PROTO2 + h.EMPTY_DICT + h.op_text("data") + b"\x8e" + (2**60).to_bytes(8, "little") + b"xy")
    for reader in (deap.load_dat, deap.map_dat):
        with pytest.raises(DeapFormatError, match=r"s01\.dat.*BINBYTES8 declares 1152921504606846976 bytes"):
            reader(path)
    path.write_bytes(h.PROTO2 + h.NONE + b"r" + (2**32 - 1).to_bytes(4, "little") + b".")  # a 4e9-slot memo
    with pytest.raises(DeapFormatError, match="memo index 4294967295"):
        deap.load_dat(path)


def test_prepare_of_a_bomb_exits_1_in_one_line_with_small_peak_memory(tmp_path):
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "s01.dat").write_bytes(h.strided_bomb(20000))
    script = ("import sys\nfrom kdlib import cli\nrc = cli.main(sys.argv[1:])\n"  # the child reports its own peak:
              "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
              "sys.exit(rc)")  # (rusage of a forked child starts from the parent's peak on Linux)
    proc = subprocess.run([sys.executable, "-c", script, "prepare", "--data-dir", str(folder), "--no-cache",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "s01.dat: refused to load" in proc.stderr and "Traceback" not in proc.stderr
    peak_kib = int(proc.stdout.split()[-1])
    assert peak_kib < 400 * 1024  # before: 4.45 GB at 2000 trials, an _ArrayMemoryError at 20000


def test_yaml_billion_laughs_is_refused_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(h.billion_laughs_yaml())
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    manifest, problems = custom.check_manifest_file(path)
    assert time.perf_counter() - start < 5 and manifest is None
    assert len(problems) == 1 and "refused: its aliases expand to more than" in str(problems[0])
    assert peak_bytes(lambda: custom.load_manifest(path)) < 20 << 20
    path.write_text("a: &a [x, *a]\ntrials: t.csv\n")  # an alias inside its own anchor
    with pytest.raises(ManifestError, match="alias refers to a collection that contains it"):
        custom.load_manifest(path)


def test_deeply_nested_manifests_are_refused(tmp_path):
    (tmp_path / "deep.yaml").write_text("trials: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (tmp_path / "deep.toml").write_text("trials = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ManifestError, match=r"deep\.yaml.*nested deeper than 64 levels"):
        custom.load_manifest(tmp_path / "deep.yaml")
    with pytest.raises(ManifestError, match=r"deep\.toml.*not valid TOML: nested too deeply"):
        custom.load_manifest(tmp_path / "deep.toml")


# --- 2. a crash ---------------------------------------------------------------------------------

def test_a_1mb_nested_tuple_key_exits_1_with_one_line_not_a_segfault(tmp_path):
    folder = tmp_path / "nested"
    folder.mkdir()
    (folder / "s01.dat").write_bytes(h.nested_tuple_key(1_000_000))
    assert (folder / "s01.dat").stat().st_size > 1_000_000
    for argv in (["prepare", "--data-dir", str(folder), "--no-cache", "--quiet"],
                 ["prepare", "--data-dir", str(folder), "--cache-dir", str(tmp_path / "cache"), "--quiet"]):
        proc = subprocess.run([sys.executable, "-m", "kdlib", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])  # not 139 (SIGSEGV)
        assert len(proc.stderr.strip().splitlines()) == 1 and "nested deeper than 32 levels" in proc.stderr
    code = ("import sys; from kdlib.data import deap\ntry:\n    deap.{}(sys.argv[1])\n"
            "except deap.DeapFormatError:\n    sys.exit(7)")
    for reader in ("load_dat", "map_dat"):
        proc = subprocess.run([sys.executable, "-c", code.format(reader), str(folder / "s01.dat")], timeout=120)
        assert proc.returncode == 7


@pytest.mark.parametrize("depth", [33, 2000])
def test_nested_tuples_below_the_crash_depth_are_refused_too(tmp_path, depth):
    path = tmp_path / "s01.dat"
    path.write_bytes(h.nested_tuple_key(depth))
    with pytest.raises(DeapFormatError, match="nested deeper than 32"):
        deap.load_dat(path)
    path.write_bytes(h.nested_tuple_key(8))  # shallow: read, then refused for its keys (no RecursionError)
    with pytest.raises(DeapFormatError, match=r"missing key\(s\) \['data', 'labels'\]; found \[\(\("):
        deap.load_dat(path)


# --- 3. a resume that knows its data ------------------------------------------------------------

def test_resume_with_changed_data_is_refused_naming_what_changed(synth, tmp_path):
    config = ProtocolConfig(**MAJORITY)
    spec = DataSpec(dataset="synthetic", data_dir=str(tmp_path / "data"), cache_dir=synth.cache_dir)
    synthetic.write_dataset(tmp_path / "data", synthetic.SynthConfig(n_subjects=2, n_trials=10), progress=False)
    run_protocol(spec, config, out=tmp_path / "run", progress=False)
    folds = sorted((tmp_path / "run" / "folds").glob("*.csv"))
    record = (tmp_path / "run" / "config.json").read_text()
    assert '"fingerprint"' in record and '"s02"' in record
    arrays = random_subject(9, n_trials=10)
    deap.save_dat(tmp_path / "data" / "s02.dat", arrays["data"], arrays["labels"])  # regenerated data
    with pytest.raises(ValueError, match=r"run: the data changed since the run started \(rewritten: s02\)"):
        run_protocol(spec, config, out=tmp_path / "run", progress=False)
    arrays = random_subject(3, n_trials=10)
    deap.save_dat(tmp_path / "data" / "s03.dat", arrays["data"], arrays["labels"])
    with pytest.raises(ValueError, match=r"rewritten: s02; added: s03"):
        run_protocol(spec, config, out=tmp_path / "run", progress=False)
    assert sorted((tmp_path / "run" / "folds").glob("*.csv")) == folds  # nothing lost
    assert (tmp_path / "run" / "config.json").read_text() == record


def test_folds_without_config_json_are_refused_and_a_failed_start_does_not_block(synth, tmp_path):
    config = ProtocolConfig(**MAJORITY)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"protocol": {"seeds": [-1]}}')  # a start that failed before any fold
    first = run_protocol(synth, config, out=out, progress=False)
    assert len(first) == 4
    (out / "config.json").unlink()
    with pytest.raises(ValueError, match=r"run: holds 4 finished fold\(s\) but no config.json"):
        run_protocol(synth, ProtocolConfig(**{**MAJORITY, "n_folds": 3}), out=out, progress=False)
    (out / "config.json").write_text("{\n")
    with pytest.raises(ValueError, match=r"config\.json: not a readable run record \(JSONDecodeError"):
        run_protocol(synth, config, out=out, progress=False)
    assert len(list((out / "folds").glob("*.csv"))) == 4
    for fold in (out / "folds").glob("*.csv"):
        fold.unlink()
    again = run_protocol(synth, config, out=out, progress=False)  # nothing to lose: the record is replaced
    assert len(again) == 4 and '"fingerprint"' in (out / "config.json").read_text()


def test_unreachable_dask_scheduler_fails_fast_in_one_line(synth, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(evaluate, "DASK_CONNECT_S", 1.0)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"Dask scheduler 'tcp://127\.0\.0\.1:9': not reachable within 1 s"):
        run_protocol(synth, ProtocolConfig(**MAJORITY), out=tmp_path / "run", backend="dask",
                     scheduler="tcp://127.0.0.1:9", progress=False)
    assert time.perf_counter() - start < 20
    code, err = one_line_error(capsys, "reproduce", "--data-dir", synth.data_dir, "--cache-dir", synth.cache_dir,
                               "--methods", "majority", "--tasks", "valence", "--folds", "2", "--backend", "dask",
                               "--scheduler", "tcp://127.0.0.1:9", "--out", tmp_path / "cli", "--no-report", "--quiet")
    assert code == 1 and "not reachable" in err


# --- 4. options honoured ------------------------------------------------------------------------

def test_loso_with_a_subset_uses_only_that_subset(tmp_path, monkeypatch):
    synthetic.write_dataset(tmp_path / "data", synthetic.SynthConfig(n_subjects=3, n_trials=10), progress=False)
    spec = DataSpec(dataset="synthetic", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    loaded, real = [], DataSpec.load
    monkeypatch.setattr(DataSpec, "load", lambda self, subjects=None: loaded.append(subjects) or real(self, subjects))
    config = ProtocolConfig(**{**MAJORITY, "protocol": "loso", "subjects": ("s01", "s03")})
    results = run_protocol(spec, config, out=tmp_path / "loso", backend="sequential", progress=False)
    assert sorted(results["subject"]) == ["s01", "s03"]
    assert loaded and all(s is not None and sorted(s) == ["s01", "s03"] for s in loaded), loaded
    with pytest.raises(ValueError, match="at least 2 subjects"):
        ProtocolConfig(**{**MAJORITY, "protocol": "loso", "subjects": ("s01",)})


def test_repeated_and_ambiguous_subjects_are_refused(tmp_path, capsys):
    folder = _subject_folder(tmp_path)
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--subjects", "s01,s01", "--no-cache")
    assert code == 2 and "--subjects names s01 more than once" in err
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--subjects", "1,01", "--no-cache")
    assert code == 2 and "--subjects names 1 more than once" in err
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--subjects", "1,s01", "--no-cache")
    assert code == 1 and "subject(s) ['s01'] named more than once" in err
    with pytest.raises(DeapFormatError, match=r"subject\(s\) \['s02'\] named more than once"):
        deap.subject_files(folder, [2, "s2"])
    (folder / "s1.dat").write_bytes((folder / "s01.dat").read_bytes())
    with pytest.raises(DeapFormatError, match=r"data: s01\.dat and s1\.dat are both subject s01"):
        deap.subject_files(folder)
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--no-cache", "--quiet")
    assert code == 1 and "s01.dat and s1.dat are both subject s01" in err


# --- 5. values that pass validation but are not data --------------------------------------------

@pytest.mark.parametrize("channel, name", [(4, "FC5"), (33, "vEOG")])
def test_values_beyond_float32_are_refused(tmp_path, channel, name):
    arrays = random_subject(0, n_trials=3)
    arrays["data"][1, channel, 500] = 1e39  # finite in float64, inf in float32
    path = tmp_path / "data" / "s01.dat"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(arrays, protocol=4))
    deap.load_dat(path)  # valid as a float64 file
    with pytest.raises(DeapFormatError, match=rf"s01\.dat: 'data' holds a value beyond float32's range .* "
                                              rf"trial 1, channel {name}"):
        deap.load_subject(path)
    with pytest.raises(DeapFormatError, match="beyond float32's range"):
        cache.prepare_dataset(path.parent, cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("s01-*"))  # no entry of inf windows


def test_overlapping_and_identical_onset_trials_are_reported(tmp_path):
    manifest = cs.small_set(tmp_path / "set")
    table = (tmp_path / "set" / "trials.csv").read_text().splitlines()
    rows = [r.split(",") for r in table]
    rows[2][3] = rows[1][3]  # line 3: the onset of line 2 (same subject, same recording)
    rows[4][3] = str(float(rows[3][3]) + 2.0)  # line 5 starts 2 s into the 6 s trial of line 4
    (tmp_path / "set" / "trials.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    problems = [p for p in custom.validate_manifest(manifest) if p.kind == "overlapping-trials"]
    assert [p.where.rsplit(":", 1)[1] for p in problems] == ["3", "5"]
    assert "starts before the trial of line 2 ends" in problems[0].message


def test_manifest_sampling_rate_out_of_range_fails_validation(tmp_path):
    manifest = cs.small_set(tmp_path / "set")
    doc = yaml.safe_load(manifest.read_text())
    doc["preprocessing"]["fs"] = 1e-9
    manifest.write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError, match=r"'preprocessing.fs' must be between 32 and 100000 Hz, got 1e-09"):
        custom.load_manifest(manifest)


@pytest.mark.parametrize("option, value", [("--threshold", "nan"), ("--threshold", "inf"), ("--window-s", "nan"),
                                           ("--window-s", "inf"), ("--window-s", "0.001"), ("--stride-s", "0"),
                                           ("--jobs", "0"), ("--jobs", "-2")])
def test_option_values_are_checked_naming_the_option(capsys, tmp_path, option, value):
    for command in ("prepare", "reproduce"):
        code, err = one_line_error(capsys, command, "--data-dir", tmp_path, option, value, "--quiet")
        assert code == 2 and f"kdlib {command}: error: {option} must be" in err and value in err


def test_a_bad_epochs_value_writes_nothing(tmp_path, capsys, synth):
    code, err = one_line_error(capsys, "reproduce", "--data-dir", synth.data_dir, "--epochs", "0",
                               "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "--epochs must be a whole number >= 1, got 0" in err and not (tmp_path / "run").exists()


# --- 6. one-line errors naming the file or option -----------------------------------------------

def test_a_folder_named_like_a_subject_file(tmp_path, capsys):
    folder = _subject_folder(tmp_path)
    (folder / "s03.dat").mkdir()
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--cache-dir", tmp_path / "cache", "--quiet")
    assert code == 1 and "s03.dat: not a regular file" in err


def test_out_pointing_at_a_file(tmp_path, capsys, synth):
    (tmp_path / "file").write_text("keep me")
    code, err = one_line_error(capsys, "reproduce", "--data-dir", synth.data_dir, "--out", tmp_path / "file", "--quiet")
    assert code == 2 and "--out" in err and "is not a folder" in err
    with pytest.raises(ValueError, match="file: exists and is not a folder"):
        run_protocol(synth, ProtocolConfig(**MAJORITY), out=tmp_path / "file", progress=False)
    assert (tmp_path / "file").read_text() == "keep me"


def test_non_utf8_manifest_names_the_file(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_bytes("name: caf\xe9\ntrials: t.csv\n".encode("latin-1"))
    code, err = one_line_error(capsys, "validate-manifest", path)
    out = capsys.readouterr().out
    assert code == 1 and "m.yaml: not UTF-8 text (byte 9" in str(custom.check_manifest_file(path)[1][0])
    code, err = one_line_error(capsys, "prepare", "--dataset", "custom", "--manifest", path, "--quiet")
    assert code == 1 and "m.yaml" in err and "UTF-8" in err and out == ""


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    folder = _subject_folder(tmp_path)

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 21.0 GiB for an array with shape (40, 7680, 34, 512)")

    monkeypatch.setattr(cache, "prepare_dataset", too_big)
    code, err = one_line_error(capsys, "prepare", "--data-dir", folder, "--quiet")
    assert code == 1 and "out of memory (Unable to allocate 21.0 GiB" in err


# --- 7. leftovers -------------------------------------------------------------------------------

def test_a_cache_write_killed_with_sigkill_leaves_nothing_after_the_next_start(tmp_path):
    folder, cdir = _subject_folder(tmp_path), tmp_path / "cache"
    writer = ("import sys, time\nfrom pathlib import Path\nfrom kdlib.io import atomic_dir\n"
              "with atomic_dir(Path(sys.argv[1]) / 's01-0123456789abcdef') as tmp:\n"
              "    (tmp / 'eeg.npy').write_bytes(b'x' * 1000)\n    print('writing', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", writer, str(cdir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()  # SIGKILL: no cleanup runs
    proc.wait(timeout=30)
    left = [p.name for p in cdir.iterdir()]
    assert len(left) == 1 and left[0].startswith(".s01-0123456789abcdef.") and left[0].endswith(".tmp")
    old_style = cdir / ".s02-0123456789abcdef.q1w2e3r4.tmp"  # an older kdlib's name: no writer in it
    old_style.mkdir()
    fresh = cdir / ".s02-fedcba9876543210.a1b2c3d4.tmp"
    fresh.mkdir()
    os.utime(old_style, (time.time() - 3 * 86400,) * 2)
    cache.prepare_dataset(folder, cache_dir=cdir, progress=False)
    names = sorted(p.name for p in cdir.iterdir())
    assert names[0] == fresh.name and [n[:3] for n in names[1:]] == ["s01", "s02"]  # the fresh one may be alive


def test_python3_pickles_of_every_protocol_are_accepted(tmp_path):
    arrays = random_subject(5, n_trials=2)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"s{protocol + 1:02d}.dat"
        path.write_bytes(pickle.dumps(arrays, protocol=protocol))
        for reader in (deap.load_dat, deap.map_dat):
            got = reader(path)
            np.testing.assert_array_equal(got["data"], arrays["data"])
            np.testing.assert_array_equal(got["labels"], arrays["labels"])
    empty = tmp_path / "s09.dat"  # b'' is written as bytes() at protocols 0-2
    empty.write_bytes(pickle.dumps({"data": np.zeros((0, 40, 8064)), "labels": np.zeros((0, 4))}, protocol=2))
    assert deap.load_dat(empty, validate=False)["data"].shape == (0, 40, 8064)


@pytest.mark.parametrize("call", [h.op_global("_codecs", "encode") + h.op_tuple(h.op_text("x"), h.op_text("rot13")),
                                  h.op_global("_codecs", "encode") + h.op_tuple(h.op_bytes(b"x"), h.op_text("latin1")),
                                  h.op_global("__builtin__", "bytes") + h.op_tuple(h.op_int(10**9))])
def test_only_the_harmless_bytes_reconstructions_are_accepted(tmp_path, call):
    path = tmp_path / "s01.dat"
    path.write_bytes(h.dict_pickle(data=call + h.REDUCE, labels=h.valid_labels(2)))
    with pytest.raises(DeapFormatError, match=r"refused to load: (_codecs\.encode|bytes).*only"):
        deap.load_dat(path)


def test_a_recording_header_declaring_more_samples_than_its_file_holds(tmp_path, monkeypatch):
    from types import SimpleNamespace

    manifest = cs.small_set(tmp_path / "set")
    real = custom.validation._read_raw

    def lying_header(path, manifest, preload):
        raw = real(path, manifest, preload)
        return SimpleNamespace(info=raw.info, ch_names=raw.ch_names, n_times=10**10) if "p02" in path.name else raw

    monkeypatch.setattr(custom.validation, "_read_raw", lying_header)  # the name validation reads headers with
    problems = [p for p in custom.validate_manifest(manifest) if p.kind == "unreadable-file"]
    assert len(problems) == 1 and "p02_run1_raw.fif" in problems[0].where
    assert "declares 10000000000 samples x 7 channels, more than its" in problems[0].message


def test_a_zlib_bomb_in_a_mat_file_is_refused_before_inflating(tmp_path):
    import struct
    import zlib

    from scipy.io import savemat

    pack, n_mib = zlib.compressobj(1), (deap.MAT_LIMIT >> 20) + 2
    element = struct.pack("<II", 14, n_mib << 20)  # a miMATRIX just above the limit, all zeros
    chunk = bytes(1 << 20)
    body = pack.compress(element) + b"".join(pack.compress(chunk) for _ in range(n_mib))
    body += pack.flush()
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    path = tmp_path / "s01.mat"
    path.write_bytes(header + struct.pack("<II", 15, len(body)) + body)
    assert path.stat().st_size < 1 << 20
    start = time.perf_counter()
    with pytest.raises(DeapFormatError, match=rf"s01\.mat: refused to load: it holds more than {deap.MAT_LIMIT} bytes"):
        deap.load_mat(path)
    assert time.perf_counter() - start < 10 and peak_bytes(lambda: deap.load_mat(path)) < 16 << 20
    arrays = random_subject(2, n_trials=2)
    savemat(tmp_path / "s02.mat", arrays, do_compression=True)  # a genuine compressed file still loads
    np.testing.assert_array_equal(deap.load_mat(tmp_path / "s02.mat")["data"], arrays["data"])


def test_report_of_a_run_with_a_corrupt_config_json_names_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "folds").mkdir(parents=True)
    (run / "config.json").write_text("{\n")
    code, err = one_line_error(capsys, "report", run)
    assert code == 1 and f"{run / 'config.json'}: not valid JSON (Expecting" in err


def test_colliding_keys_cost_bounded_time(tmp_path):
    p = 2**61 - 1  # hash(k * p) == 0 for every k: each new key probes past all the others
    path = tmp_path / "s01.dat"
    path.write_bytes(h.PROTO2 + h.EMPTY_DICT + h.MARK + b"".join(h.op_int(k * p) + b"K\x00" for k in range(1, 60_000))
                     + h.SETITEMS + h.STOP)
    start = time.perf_counter()
    with pytest.raises(DeapFormatError, match="more than 10000 pickle opcodes"):
        deap.load_dat(path)
    yaml_path = tmp_path / "keys.yaml"
    yaml_path.write_text("trials: t.csv\nname: {" + ", ".join(f"{k * p}: 0" for k in range(1, 1500)) + "}\n")
    with pytest.raises(ManifestError, match="a mapping with more than 1000 keys"):
        custom.load_manifest(yaml_path)
    assert time.perf_counter() - start < 10


def test_fingerprints_of_a_custom_set_follow_its_files_and_rows(tmp_path):
    manifest = cs.small_set(tmp_path / "set")
    before = custom.subject_fingerprints(manifest)
    assert sorted(before) == ["p01", "p02"] and custom.subject_fingerprints(manifest, ["p02"]) == {"p02": before["p02"]}
    table = tmp_path / "set" / "trials.csv"
    table.write_text(table.read_text().replace(",5.0,", ",5.5,", 1))  # one rating of p01 changed
    after = custom.subject_fingerprints(manifest)
    assert after["p01"] != before["p01"] and after["p02"] == before["p02"]
    (tmp_path / "set" / "raw" / "p02_run1_raw.fif").unlink()
    with pytest.raises(ManifestError, match=r"p02_run1_raw\.fif: recording 'run1' of subject 'p02' not found"):
        custom.subject_fingerprints(manifest)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5])
def test_run_protocol_refuses_a_meaningless_number_of_jobs(synth, tmp_path, n_jobs):
    with pytest.raises(ValueError, match=rf"n_jobs must be a whole number >= 1 \(or -1: every core\), got {n_jobs}"):
        run_protocol(synth, ProtocolConfig(**MAJORITY), out=tmp_path / "run", n_jobs=n_jobs, progress=False)


def test_resume_after_the_same_data_was_rewritten_is_allowed(tmp_path):
    """`make test` then `make run` rewrites the synthetic set with identical bytes: the run resumes."""
    config = ProtocolConfig(**MAJORITY)
    data = tmp_path / "data"
    spec = DataSpec(dataset="synthetic", data_dir=str(data), cache_dir=str(tmp_path / "cache"))
    synth_cfg = synthetic.SynthConfig(n_subjects=2, n_trials=10)
    synthetic.write_dataset(data, synth_cfg, progress=False)
    first = run_protocol(spec, config, out=tmp_path / "run", progress=False)
    shutil.rmtree(data)
    time.sleep(0.01)  # new modification times
    synthetic.write_dataset(data, synth_cfg, progress=False)
    again = run_protocol(spec, config, out=tmp_path / "run", progress=False)
    assert again.drop(columns="seconds").equals(first.drop(columns="seconds"))
