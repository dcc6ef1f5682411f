"""Tests of kdlib.launch: smoke defaults on Binder/Colab/KDLIB_SMOKE, the baked data set, the Colab
install cell (run here with a simulated Colab), and the launch cells of every notebook."""

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import papermill
import pytest

from kdlib import launch, notebooks, paths
from kdlib.data import synthetic

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob(notebooks.NOTEBOOK_GLOB))


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root of its own, and an environment without Binder, Colab or KDLIB_SMOKE."""
    monkeypatch.setenv("KDLIB_ROOT", str(tmp_path))
    monkeypatch.delenv("KDLIB_DATA_DIR", raising=False)
    for name in (*launch.BINDER_ENV_VARS, launch.SMOKE_ENV, "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    return tmp_path


@pytest.fixture
def fake_writer(monkeypatch):
    """synthetic.write_dataset replaced by one that only records the config (the real one writes 300 MB)."""
    calls = []

    def write_dataset(out_dir=None, config=synthetic.DEFAULT, overwrite=False, progress=True):
        folder = paths.resolve(out_dir, paths.synthetic_dir())
        folder.mkdir(parents=True, exist_ok=True)
        (folder / synthetic.CONFIG_FILE).write_text(json.dumps(config.to_json()))
        calls.append((folder, config.n_subjects, progress))
        return []

    monkeypatch.setattr(synthetic, "write_dataset", write_dataset)
    return calls


# --- smoke defaults ---------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),
    ({"KDLIB_SMOKE": "1"}, True),
    ({"KDLIB_SMOKE": "Yes"}, True),
    ({"KDLIB_SMOKE": "0"}, False),
    ({"KDLIB_SMOKE": ""}, False),
    ({"BINDER_REPO_URL": "https://github.com/kdlib/kdlib"}, True),
    ({"BINDER_LAUNCH_HOST": "https://mybinder.org/"}, True),
    ({"BINDER_LAUNCH_HOST": "https://mybinder.org/", "KDLIB_SMOKE": "off"}, False),  # asked explicitly
    ({"COLAB_RELEASE_TAG": "release-colab_20260101"}, True),
    ({"JUPYTERHUB_USER": "someone"}, False),  # a JupyterHub is not Binder
])
def test_smoke_default_from_environment(root, env, expected):
    assert launch.smoke_default(env) is expected


def test_smoke_default_bad_value_names_the_variable(root):
    with pytest.raises(launch.LaunchError, match=r"KDLIB_SMOKE='maybe': expected one of 1, true"):
        launch.smoke_default({"KDLIB_SMOKE": "maybe"})


def test_smoke_default_on_colab_module(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert launch.on_colab({}) and launch.smoke_default({})


def test_baked_smoke_set_makes_smoke_the_default(root, fake_writer):
    assert launch.baked_preset() is None and not launch.smoke_default({})
    folder = launch.bake("smoke")
    assert folder == paths.synthetic_dir() and (folder / ".preset-smoke").is_file()
    assert launch.current_preset() == "smoke" and launch.baked_preset() == "smoke"
    assert launch.smoke_default({})
    assert not launch.smoke_default({"KDLIB_SMOKE": "0"})
    with pytest.raises(launch.LaunchError, match="preset 'huge'"):
        launch.bake("huge")


# --- the data set the notebooks write ---------------------------------------------------------

def test_write_synthetic_keeps_a_matching_set_quietly(root, fake_writer, capsys):
    launch.bake("smoke")
    capsys.readouterr()
    assert launch.write_synthetic(None, smoke=True) == paths.synthetic_dir()
    assert capsys.readouterr().out == ""  # nothing to say: the baked set is the one asked for
    assert launch.baked_preset() == "smoke"
    assert fake_writer[-1][1:] == (3, False)


def test_write_synthetic_says_what_it_replaces(root, fake_writer, capsys):
    launch.bake("smoke")
    launch.write_synthetic("", smoke=False)
    out = capsys.readouterr().out
    assert out.startswith("SMOKE=False: writing the synthetic 'default' set (8 subjects, about 826 MB) into ")
    assert f"into {paths.synthetic_dir()}, replacing the 'smoke' set baked into this machine" in out
    assert launch.current_preset() == "default" and launch.baked_preset() is None
    assert not (paths.synthetic_dir() / ".preset-smoke").exists()  # the Makefile's stale stamp goes too
    assert fake_writer[-1][1:] == (8, True)  # a progress bar in full mode
    launch.write_synthetic(root / "elsewhere", smoke=True)
    assert f"'smoke' set (3 subjects, about 310 MB) into {root / 'elsewhere'}\n" in capsys.readouterr().out


def test_notebook_dataset_writes_the_synthetic_set_of_the_mode(root, fake_writer, capsys):
    assert launch.notebook_dataset("synthetic", "", smoke=True) == paths.synthetic_dir()
    assert launch.current_preset() == "smoke" and fake_writer[-1][1] == 3
    assert launch.notebook_dataset("synthetic", None, smoke=True) == paths.synthetic_dir()  # kept: nothing new
    assert len(fake_writer) == 2 and capsys.readouterr().out.count("writing the synthetic") == 1
    assert launch.notebook_dataset("synthetic", "elsewhere", smoke=False) == root / "elsewhere"
    assert launch.current_preset(root / "elsewhere") == "default"


def test_notebook_dataset_reads_deap_where_it_is_and_writes_nothing(root, fake_writer, monkeypatch):
    monkeypatch.delenv("KDLIB_DEAP_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="no DEAP folder given"):
        launch.notebook_dataset("deap", "", smoke=True)
    (root / "deap").mkdir()
    assert launch.notebook_dataset("deap", "deap", smoke=False) == root / "deap"
    monkeypatch.setenv("KDLIB_DEAP_DIR", str(root / "deap"))
    assert launch.notebook_dataset("deap", "", smoke=True) == root / "deap"
    assert fake_writer == []


# --- the Colab install cell -------------------------------------------------------------------

def run_install_cell(monkeypatch, colab: bool):
    """Execute the install cell's source here, with subprocess.run capturing every command."""
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check=False, **kw: commands.append(list(cmd)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(launch.install_cell_source(), "<colab-setup cell>", "exec"), {})
    return commands


def test_install_cell_does_nothing_outside_colab(root, monkeypatch, capsys, fake_writer):
    assert run_install_cell(monkeypatch, colab=False) == []
    assert capsys.readouterr().out == "not on Colab: nothing to install\n"
    assert fake_writer == []


def pyproject_requirements(distribution="kdlib"):
    """kdlib's requirements as a fresh install on Colab records them (.venv's metadata may be older)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from packaging.requirements import Requirement

    return [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


def test_install_cell_on_colab_keeps_torch(root, monkeypatch, capsys, fake_writer):
    import torch

    monkeypatch.setattr(launch, "_requirements", pyproject_requirements)
    real = launch._installed
    versions = {"torch": "2.7.1+cu126", "mne": None, "edfio": None}  # Colab's own torch; two packages missing
    monkeypatch.setattr(launch, "_installed", lambda name: versions[name] if name in versions else real(name))
    if Path(launch.COLAB_DIR).exists():
        pytest.skip(f"{launch.COLAB_DIR} exists on this machine: the cell would not clone")
    commands = run_install_cell(monkeypatch, colab=True)
    clone, install_kdlib, install_deps = commands
    assert clone[:2] == ["git", "clone"] and clone[-2:] == [f"https://github.com/{launch.REPOSITORY}", launch.COLAB_DIR]
    assert install_kdlib[1:] == ["-m", "pip", "install", "-q", "--no-deps", "-e", launch.COLAB_DIR]
    assert install_deps[:4] == [sys.executable, "-m", "pip", "install"]
    missing = install_deps[install_deps.index("-c") + 2:]
    assert sorted(a.split(">")[0].split("<")[0] for a in missing) == ["edfio", "mne"]
    assert not [a for c in commands for a in c if "torch" in a.lower()], commands  # torch never installed
    pins = Path(install_deps[install_deps.index("-c") + 1]).read_text().splitlines()
    assert "torch==2.7.1+cu126" in pins and f"numpy=={real('numpy')}" in pins  # kept as they are
    assert launch.COLAB_DIR in sys.path  # the kernel imports the fresh clone
    assert launch.baked_preset() == "smoke" and launch.smoke_default()  # the notebook then runs smoke
    out = capsys.readouterr().out
    assert f"kdlib ready on Colab: PyTorch {torch.__version__} kept, 2 package(s) installed" in out


def test_colab_setup_refuses_a_torch_out_of_range(root, monkeypatch, fake_writer):
    monkeypatch.setattr(launch, "_requirements", pyproject_requirements)
    monkeypatch.setattr(launch, "_installed", lambda name: "2.1.0+cu118" if name == "torch" else "0")
    with pytest.raises(launch.LaunchError, match=r"PyTorch 2.1.0\+cu118: kdlib needs torch<3,>=2.6"):
        launch.colab_setup(run=lambda cmd: pytest.fail(f"ran {cmd}"))


# --- papermill still overrides the default ----------------------------------------------------

def test_papermill_parameters_override_the_smoke_default(root, monkeypatch):
    cell = "from kdlib.launch import smoke_default\nSMOKE: bool = smoke_default()  # tiny run"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(cell, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("print('SMOKE', SMOKE)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    src, out = root / "nb.ipynb", root / "out.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setenv("BINDER_REPO_URL", "https://github.com/kdlib/kdlib")
    printed = []
    for parameters in ({}, {"SMOKE": False}):
        papermill.execute_notebook(str(src), str(out), parameters=parameters, kernel_name="python3", progress_bar=False)
        printed.append(nbformat.read(out, 4).cells[-1].outputs[0].text.strip())
    assert printed == ["SMOKE True", "SMOKE False"]  # Binder's default, then the injected parameter


# --- every notebook ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_the_launch_cells(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    fix = f"run `python -m kdlib.launch add-cells {path.stem[:2]}`"
    assert "launch-badges" in ids and "colab-setup" in ids, fix
    assert nb.cells[0].source == launch.badges_markdown(path.name), fix
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert nb.cells[params - 1].get("id") == "colab-setup", fix
    assert nb.cells[params - 1].source == launch.install_cell_source(), fix
    assert [c.cell_type for c in nb.cells[:params]].count("code") == 1  # the install cell is the only one before
    assert notebooks.notebook_parameters(path)["SMOKE"] == "smoke_default()", fix
    assert nb.cells[params].source.startswith("from kdlib.launch import smoke_default"), fix
    copy = shutil.copy(path, tmp_path / path.name)
    assert launch.add_launch_cells(copy) is False, fix  # up to date: the tool would change nothing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_write_the_data_set_through_launch(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    if "DATASET" in notebooks.notebook_parameters(path):  # 01-05: synthetic or DEAP, smoke or not
        assert "launch.notebook_dataset(DATASET, DATA_DIR, SMOKE)" in code and "write_synthetic(" not in code, (
            f"{path.name}: find the data set with launch.notebook_dataset(DATASET, DATA_DIR, SMOKE)")
    assert "synthetic.write_dataset(" not in code, (
        f"{path.name}: find the data with launch.notebook_dataset(DATASET, DATA_DIR, SMOKE), which writes the "
        "synthetic set through launch.write_synthetic: it says what it replaces (a set baked into Binder or Colab above all)")


def test_add_launch_cells_inserts_and_updates(tmp_path):
    cells = [nbformat.v4.new_markdown_cell("# 09 · title"),
             nbformat.v4.new_code_cell("SEED = 0\nSMOKE: bool = False  # tiny run", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("print(SMOKE)")]
    path = tmp_path / "09_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert launch.add_launch_cells(path) is True
    nb = nbformat.read(path, 4)
    assert [c.get("id") for c in nb.cells[:1] + nb.cells[2:3]] == ["launch-badges", "colab-setup"]
    assert nb.cells[3].source.splitlines()[1:] == ["SEED = 0", "SMOKE: bool = smoke_default()  # tiny run"]
    assert nb.cells[4].source == "print(SMOKE)" and "09_x.ipynb" in nb.cells[0].source
    nb.cells[0].source = "an old badge"
    nbformat.write(nb, path)
    assert launch.add_launch_cells(path) is True and launch.add_launch_cells(path) is False
    assert len(nbformat.read(path, 4).cells) == 5  # updated in place, not inserted twice
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    with pytest.raises(launch.LaunchError, match="09_x.ipynb: no cell tagged 'parameters'"):
        launch.add_launch_cells(path)


def test_readme_badges_use_the_repository():
    readme = (ROOT / "README.md").read_text()
    first = NOTEBOOKS[0].name
    assert f"]({launch.colab_url(first)})" in readme
    assert f"]({launch.binder_url(first)})" in readme


def test_binder_bakes_the_smoke_set_and_defaults_to_smoke():
    post_build, start = ROOT / "binder" / "postBuild", ROOT / "binder" / "start"
    assert "python -m kdlib.launch bake --preset smoke" in post_build.read_text()
    assert "python -m kdlib course" in post_build.read_text().splitlines()  # students open build/course/student
    assert start.stat().st_mode & 0o111, "binder/start must be executable"
    lines = start.read_text().splitlines()
    assert "export KDLIB_SMOKE=1" in lines and lines[-1] == 'exec "$@"'


def test_launch_main(root, fake_writer, capsys, tmp_path):
    assert launch.main(["bake"]) == 0 and launch.baked_preset() == "smoke"
    assert "baked the synthetic 'smoke' set into" in capsys.readouterr().out
    assert launch.main(["add-cells", "01"]) == 1  # the test's root has no notebooks
    assert "kdlib.launch: error: no notebooks found" in capsys.readouterr().err


@pytest.mark.parametrize("env, limit, expected", [
    ({}, 16 * 1024**3, 2),  # a workstation
    ({}, 2 * 1024**3, 1),  # a 2 GB container (Binder's size) without Binder's variables
    ({"BINDER_REPO_URL": "https://github.com/kdlib/kdlib"}, 16 * 1024**3, 1),
    ({"COLAB_RELEASE_TAG": "release-colab"}, 16 * 1024**3, 1),
    ({}, None, 2),  # the limit cannot be read: the 2-core default
])
def test_default_jobs_is_one_where_memory_is_small(env, limit, expected):
    assert launch.default_jobs(env, limit=limit) == expected


def test_memory_limit_reads_the_cgroup_limit_and_ignores_no_limit(tmp_path):
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("max\n")
    v1.write_text(f"{2 * 1024**3}\n")
    assert launch.memory_limit_bytes([str(v2), str(v1)]) == 2 * 1024**3
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit": fall back to the RAM
    ram = launch.memory_limit_bytes([str(v2), str(v1)])
    assert ram is not None and 0 < ram < 2**60


@pytest.mark.parametrize("name", ["05_evaluation", "07_when_does_distillation_help"])
def test_notebooks_that_start_workers_take_jobs_from_the_machine(name):
    nb = nbformat.read(paths.notebooks_dir() / f"{name}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "JOBS: int = default_jobs()" in params.source
