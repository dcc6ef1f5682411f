"""Tests of kdlib.notebooks (the papermill runner) and of tests/nbval_sanitize.cfg."""

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbval.plugin import get_sanitize_patterns

from kdlib import notebooks
from kdlib.notebooks import NotebookRunError

SANITIZE_CFG = Path(__file__).with_name("nbval_sanitize.cfg")


def write_notebook(folder, name, *sources, parameters="SMOKE: bool = False  # tiny run"):
    """A notebook whose first cell is tagged ``parameters`` (unless ``parameters`` is None)."""
    cells = [new_code_cell(source) for source in sources]
    if parameters is not None:
        cells.insert(0, new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root of its own, so that notebooks/ and build/ are the test's."""
    monkeypatch.setenv("KDLIB_ROOT", str(tmp_path))
    return tmp_path


def outputs_text(path):
    """All stream text of an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")


def test_discover_in_numbered_order(root):
    for name in ["02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "1_x.ipynb"]:
        write_notebook(root / "notebooks", name)
    assert [p.name for p in notebooks.discover_notebooks()] == ["01_a.ipynb", "02_b.ipynb"]
    chosen = notebooks.discover_notebooks(["02_b.ipynb", "01"])
    assert [p.name for p in chosen] == ["01_a.ipynb", "02_b.ipynb"]


def test_discover_errors(root):
    with pytest.raises(NotebookRunError, match="no notebooks found"):
        notebooks.discover_notebooks()
    write_notebook(root / "notebooks", "01_a.ipynb")
    with pytest.raises(NotebookRunError, match="'07'.*available: 01_a"):
        notebooks.discover_notebooks(["07"])


def test_parameters_cell_required(root):
    path = write_notebook(root / "notebooks", "01_a.ipynb", "x = 1", parameters=None)
    with pytest.raises(NotebookRunError, match="01_a.ipynb: no cell tagged 'parameters'"):
        notebooks.notebook_parameters(path)
    cell = 'SMOKE = True\nSEED: int = 1  # seed (= "0" in the paper)\nRULE: str = ">"  # ">": a 5 is low\nimport os'
    declared = notebooks.notebook_parameters(write_notebook(root, "02_b.ipynb", parameters=cell))
    assert declared == {"SMOKE": "True", "SEED": "1", "RULE": '">"'}
    with pytest.raises(NotebookRunError, match="not valid Python"):
        notebooks.notebook_parameters(write_notebook(root, "03_c.ipynb", parameters="SMOKE = = 1"))


def test_run_injects_parameters_in_output_folder(root):
    write_notebook(root / "notebooks", "01_a.ipynb", "print('smoke', SMOKE)", "open('marker.txt', 'w').close()")
    write_notebook(root / "notebooks", "02_b.ipynb", "print('seed', SEED)", parameters="SMOKE = False\nSEED = 0")
    written = notebooks.run_notebooks(smoke=True, kernel="python3", extra_parameters={"SEED": 5})
    out = root / "build" / "notebooks"
    assert written == [out / "01_a.ipynb", out / "02_b.ipynb"]
    assert "smoke True" in outputs_text(written[0])
    assert "seed 5" in outputs_text(written[1])
    assert (out / "marker.txt").is_file()  # the kernel ran in the output folder
    assert (out / "01_a.kernel.log").is_file()  # the kernel process's own stderr


def test_run_takes_another_source_folder(root):
    """``src_dir`` (``--src``): make test runs the course's instructor edition, not notebooks/."""
    write_notebook(root / "notebooks", "01_a.ipynb", "print('from notebooks')")
    write_notebook(root / "build" / "course" / "instructor", "01_a.ipynb", "print('from the edition')")
    written = notebooks.run_notebooks(smoke=True, kernel="python3", src_dir="build/course/instructor")
    assert written == [root / "build" / "notebooks" / "01_a.ipynb"]
    assert "from the edition" in outputs_text(written[0]) and "from notebooks" not in outputs_text(written[0])
    with pytest.raises(NotebookRunError, match="no notebooks found"):
        notebooks.run_notebooks(smoke=True, kernel="python3", src_dir="elsewhere")


def test_failing_cell_names_notebook(root, tmp_path):
    write_notebook(root / "notebooks", "01_a.ipynb", "x = 1", "raise ValueError('broken on purpose')")
    with pytest.raises(NotebookRunError, match=r"01_a.ipynb failed in cell 3 .*ValueError: broken on purpose"):
        notebooks.run_notebooks(smoke=False, out_dir=tmp_path / "elsewhere", kernel="python3")
    assert (tmp_path / "elsewhere" / "01_a.ipynb").is_file()  # kept for inspection


def test_stderr_is_an_error_in_smoke_runs_only(root):
    write_notebook(root / "notebooks", "01_a.ipynb", "import warnings; warnings.warn('careless')")
    with pytest.raises(NotebookRunError, match="(?s)01_a.ipynb wrote to stderr .*careless"):
        notebooks.run_notebooks(smoke=True, kernel="python3")
    written = notebooks.run_notebooks(smoke=False, kernel="python3")
    assert notebooks.stderr_outputs(written[0])[0][0] == 2  # after the injected-parameters cell


def test_jobs_run_notebooks_at_once_start_the_next_in_a_free_slot_and_give_the_same_outputs(root, tmp_path):
    """``jobs=2`` over three notebooks: 01 and 02 run at the same time (02 waits for 01's marker);
    03 starts as soon as 02 ends, while 01 still runs (01 waits for 03's marker: starting them in
    pairs would leave it waiting for a notebook not yet begun); every executed copy holds what a
    one-at-a-time run gives, and they are returned in numbered order."""
    meet = tmp_path / "meet"
    meet.mkdir()
    touch = "import pathlib; pathlib.Path({0!r}).touch()"
    wait_for = ("import pathlib, time\n"
                "deadline = time.monotonic() + 30\n"
                "while not pathlib.Path({0!r}).exists() and time.monotonic() < deadline:\n"
                "    time.sleep(0.05)\n"
                "print('met', pathlib.Path({0!r}).exists())")
    a, c = str(meet / "a"), str(meet / "c")
    write_notebook(root / "notebooks", "01_a.ipynb", touch.format(a), wait_for.format(c),
                   "import random; random.seed(SEED); print(random.random())", parameters="SMOKE = False\nSEED = 0")
    write_notebook(root / "notebooks", "02_b.ipynb", wait_for.format(a))
    write_notebook(root / "notebooks", "03_c.ipynb", touch.format(c))
    together = notebooks.run_notebooks(smoke=True, kernel="python3", out_dir=tmp_path / "two", jobs=2,
                                       extra_parameters={"SEED": 3})
    assert [p.name for p in together] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    assert "met True" in outputs_text(together[1])  # 02 saw 01 begin: they ran at once
    assert "met True" in outputs_text(together[0])  # 03 began while 01 ran: a free slot starts the next
    alone = notebooks.run_notebooks(smoke=True, kernel="python3", out_dir=tmp_path / "one", names=["01"],
                                    extra_parameters={"SEED": 3})  # c exists: 01 does not wait
    assert outputs_text(alone[0]) == outputs_text(together[0])


def test_jobs_failure_names_the_notebook_and_skips_the_rest(root, tmp_path):
    write_notebook(root / "notebooks", "01_a.ipynb", "raise ValueError('broken on purpose')")
    write_notebook(root / "notebooks", "02_b.ipynb", "import time; time.sleep(5)")
    write_notebook(root / "notebooks", "03_c.ipynb", "open('ran.txt', 'w').close()")
    with pytest.raises(NotebookRunError, match="01_a.ipynb failed in cell .*broken on purpose"):
        notebooks.run_notebooks(smoke=True, kernel="python3", jobs=2)
    out = root / "build" / "notebooks"
    assert (out / "02_b.ipynb").is_file()  # the one running was let finish
    assert not (out / "ran.txt").exists()  # the one not started was cancelled
    with pytest.raises(NotebookRunError, match="jobs must be at least 1, got 0"):
        notebooks.run_notebooks(smoke=True, kernel="python3", jobs=0)


def test_smoke_must_be_declared_and_extras_known(root):
    write_notebook(root / "notebooks", "01_a.ipynb", "open('ran.txt', 'w').close()")
    write_notebook(root / "notebooks", "02_b.ipynb", parameters="SMOKE = False\nSEED = 0")
    with pytest.raises(NotebookRunError, match=r"\['SEED_TYPO'\] declared by none"):
        notebooks.run_notebooks(smoke=True, kernel="python3", extra_parameters={"SEED_TYPO": 1})
    write_notebook(root / "notebooks", "02_b.ipynb", parameters="SEED = 0")
    with pytest.raises(NotebookRunError, match=r"\['02_b.ipynb'\] does not declare SMOKE"):
        notebooks.run_notebooks(smoke=True, kernel="python3")
    assert not (root / "build" / "notebooks" / "ran.txt").exists()  # checked before running


def test_missing_kernel(root):
    write_notebook(root / "notebooks", "01_a.ipynb")
    with pytest.raises(NotebookRunError, match="kernel 'no-such-kernel' not found.*make venv"):
        notebooks.run_notebooks(smoke=True, kernel="no-such-kernel")


def test_main_exit_status(root, capsys):
    assert notebooks.main(["--smoke", "--kernel", "python3"]) == 1
    assert "no notebooks found" in capsys.readouterr().err
    write_notebook(root / "notebooks", "01_a.ipynb", "print(N)", parameters="SMOKE = False\nN = 0")
    assert notebooks.main(["--full", "--kernel", "python3", "-p", "N", "41"]) == 0
    assert "41" in outputs_text(root / "build" / "notebooks" / "01_a.ipynb")
    with pytest.raises(SystemExit):
        notebooks.main(["--smoke", "--full"])
    with pytest.raises(SystemExit):
        notebooks.main(["--smoke", "--jobs", "0"])
    assert "--jobs: expected a whole number >= 1, got '0'" in capsys.readouterr().err


SANITIZE_EXAMPLES = [
    ("train:  40%|████      | 4/10 [00:01<00:02,  2.95it/s]", "train:  TQDM-BAR"),
    ("100%|##########| 10/10 [00:03<00:00]", "TQDM-BAR"),
    ("<Figure object at 0x7f3a2c1b9d50>", "<Figure object at 0xADDRESS>"),
    ("written 2025-07-01 12:30:05.123 to disk", "written DATE-TIME to disk"),
    ("started at 09:15:02", "started at CLOCK-TIME"),
    ("epoch took 1.23 s, total 45ms", "epoch took DURATION, total DURATION"),
    ("throughput 512.5 windows/s", "throughput RATE"),
    ("cache in /tmp/tmpab12_x/cache.npz.", "cache in TEMP-PATH"),
    ("accuracy 0.6125 (n=320), shape (8, 2, 512)", "accuracy 0.6125 (n=320), shape (8, 2, 512)"),
]


def sanitize(text):
    """Apply the sanitize file the way nbval does (same parser, same order)."""
    for regex, replace in get_sanitize_patterns(SANITIZE_CFG.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_sanitize_file_parses_every_section():
    sections = re.findall(r"^\[", SANITIZE_CFG.read_text(), flags=re.MULTILINE)
    assert len(get_sanitize_patterns(SANITIZE_CFG.read_text())) == len(sections) >= 8


@pytest.mark.parametrize(("raw", "expected"), SANITIZE_EXAMPLES)
def test_sanitize_examples(raw, expected):
    assert sanitize(raw) == expected


def test_run_is_quiet_on_stderr(root, capfd):
    cell = 'SMOKE: bool = False  # tiny run\nRULE: str = ">"  # ">": a rating of exactly 5 counts as low'
    write_notebook(root / "notebooks", "01_a.ipynb", "print(RULE)", parameters=cell)
    notebooks.run_notebooks(smoke=True, kernel="python3", extra_parameters={"RULE": ">="})
    captured = capfd.readouterr()
    assert captured.err == ""  # no papermill parser chatter, no kernel start-up warnings
    assert ">=" in outputs_text(root / "build" / "notebooks" / "01_a.ipynb")


def test_execute_one_takes_a_kernel_manager_factory(root):
    """The hook benchmarks/bench_notebook_memory.py measures the kernel's memory with."""
    path = write_notebook(root / "notebooks", "01_a.ipynb", "import os; print(os.getpid())")
    seen = {}

    def factory(log_path):
        base = notebooks._logging_kernel_manager(log_path)

        class Recording(base):
            async def shutdown_kernel(self, now=False, restart=False):
                seen["pid"] = self.provisioner.pid  # the kernel is still alive here
                seen["status"] = Path(f"/proc/{self.provisioner.pid}/status").read_text()
                await super().shutdown_kernel(now=now, restart=restart)

        seen["log"] = log_path
        return Recording

    out = root / "out" / "01_a.ipynb"
    out.parent.mkdir()
    notebooks._execute_one(path, out, {"SMOKE": True}, "python3", kernel_manager=factory)
    assert str(seen["pid"]) in outputs_text(out)  # the manager's process is the kernel that ran the cells
    assert "VmHWM:" in seen["status"] and seen["log"] == out.with_suffix(".kernel.log")
