"""pyproject.toml, constraints.txt, environment.yml and binder/environment.yml stay in step.

pyproject.toml declares compatible ranges (never an exact torch pin), constraints.txt the exact
tested set that the Makefile installs with: every dependency of pyproject has a pin there, inside
its range. A real ``pip install --dry-run`` into an environment that already has another
compatible torch (a fake one: metadata only, offline) must not touch it.

The conda files must list exactly pyproject's ``dependencies`` plus its ``notebooks`` extra
(plus ``python`` and ``pip``), under conda-forge names, with pyproject's version ranges (ranges,
not pins). Adding a package to one file only fails here, naming the package and the file.
"""

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.markers import default_environment
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_FILES = ["environment.yml", "binder/environment.yml"]
CONSTRAINTS = ROOT / "constraints.txt"

# conda-forge name -> PyPI name, where they differ. Each file may use any of these.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",  # conda-forge metapackage pinning the CPU build
    "mne-base": "mne",  # mne without the 3-D/Qt GUI stack
    "matplotlib-base": "matplotlib",  # without Qt
    "seaborn-base": "seaborn",  # without statsmodels
}
CONDA_ONLY = {"pip"}  # tools of the environment itself, not kdlib dependencies


def pyproject():
    """The parsed pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_requirements():
    """PyPI name -> SpecifierSet for dependencies + the notebooks extra (+ python)."""
    project = pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["notebooks"]]
    specs = {}
    for req in reqs:
        name = canonicalize_name(req.name)
        specs[name] = specs.get(name, SpecifierSet()) & req.specifier
    specs["python"] = SpecifierSet(project["requires-python"])
    return specs


def conda_spec_to_pep440(spec):
    """A conda MatchSpec version (``>=1.2,<2``, ``=2.13.0``, ``==2.13.0``, ``1.2.*``) as PEP 440.

    Conda's ``=V`` and a bare ``V`` are fuzzy (``V.*``); ``==V`` is exact. OR (``|``) and build
    strings are not used in the kit's files and are rejected so that they get a look.
    """
    spec = spec.strip()
    if not spec or spec == "*":
        return SpecifierSet()
    if "|" in spec or " " in spec:
        raise ValueError(f"unsupported conda version spec {spec!r} (no '|' or build strings)")
    parts = []
    for part in spec.split(","):
        op, version = re.fullmatch(r"(==|!=|>=|<=|>|<|=|~=)?\s*([0-9][0-9A-Za-z.*+!-]*)", part.strip()).groups()
        if op in (None, "=") or version.endswith("*"):
            parts.append(f"=={version.rstrip('.*')}.*")
        else:
            parts.append(f"{op}{version}")
    return SpecifierSet(",".join(parts))


def conda_requirements(relpath):
    """PyPI name -> (conda name, SpecifierSet) for the conda file ``relpath``."""
    env = yaml.safe_load((ROOT / relpath).read_text())
    assert env["channels"] == ["conda-forge"], f"{relpath}: use conda-forge only"
    specs = {}
    for entry in env["dependencies"]:
        assert isinstance(entry, str), f"{relpath}: {entry!r}: list conda packages only (pip: sections are not checked)"
        conda_name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", entry.strip()).groups()
        if conda_name in CONDA_ONLY:
            continue
        name = canonicalize_name(CONDA_TO_PYPI.get(conda_name, conda_name))
        assert name not in specs, f"{relpath}: {name} listed twice ({specs.get(name, ('?',))[0]} and {conda_name})"
        specs[name] = (conda_name, conda_spec_to_pep440(version))
    return specs


def intersects(a, b):
    """Whether two specifier sets admit a common final release.

    The lower end of an intersection is the highest lower bound of the two sets (or nothing),
    so it is enough to try every version they name, a point just above each, and 0.
    """
    named = [Version(s.version.removesuffix(".*")) for s in (*a, *b)]
    candidates = {Version("0"), *named, *(Version(f"{v.public}.0.0.1") for v in named)}
    return any(a.contains(v) and b.contains(v) for v in candidates)


@pytest.mark.parametrize("relpath", CONDA_FILES)
def test_same_packages(relpath):
    expected, found = set(pyproject_requirements()), set(conda_requirements(relpath))
    assert not expected - found, f"in pyproject.toml but not in {relpath}: {sorted(expected - found)}"
    assert not found - expected, f"in {relpath} but not in pyproject.toml (dependencies/notebooks): {sorted(found - expected)}"


@pytest.mark.parametrize("relpath", CONDA_FILES)
def test_versions_compatible(relpath):
    wanted = pyproject_requirements()
    clashes = [
        f"{conda_name} {spec} vs pyproject {name} {wanted[name]}"
        for name, (conda_name, spec) in conda_requirements(relpath).items()
        if name in wanted and not intersects(spec, wanted[name])
    ]
    assert not clashes, f"{relpath}: version ranges that do not intersect: {clashes}"


@pytest.mark.parametrize("relpath", CONDA_FILES)
def test_versions_agree(relpath):
    """The same range as pyproject for every package (python may be narrower: Binder's is 3.11)."""
    wanted = pyproject_requirements()
    differ = [
        f"{conda_name} {spec} vs pyproject {name} {wanted[name]}"
        for name, (conda_name, spec) in conda_requirements(relpath).items()
        if name != "python" and name in wanted and spec != wanted[name]
    ]
    assert not differ, f"{relpath}: version ranges that differ from pyproject.toml: {differ}"


@pytest.mark.parametrize("relpath", CONDA_FILES)
def test_conda_files_use_ranges(relpath):
    """No exact pin (``==V``, ``=V``, ``V``) but python's: a version the channel lacks fails the solve."""
    pinned = [
        f"{conda_name} {spec}"
        for name, (conda_name, spec) in conda_requirements(relpath).items()
        if name != "python" and any(s.operator in ("==", "===") for s in spec)
    ]
    assert not pinned, f"{relpath}: exact pins (use a range): {pinned}"


def test_binder_is_cpu_only():
    names = {conda for conda, _ in conda_requirements("binder/environment.yml").values()}
    assert "pytorch-cpu" in names and "pytorch" not in names


def test_binder_post_build_executable():
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    text = post_build.read_text()
    assert text.startswith("#!/bin/bash\n") and "\nset -e\n" in text
    assert "pip install --no-deps -e ." in text


@pytest.mark.parametrize(
    ("conda", "pep440", "inside", "outside"),
    [
        (">=2.0,<3", ">=2.0,<3", "2.4.6", "3.0"),
        ("=2.13.0", "==2.13.0.*", "2.13.0", "2.13.1"),
        ("==2.13.0", "==2.13.0", "2.13.0", "2.13.0.1"),
        ("3.11", "==3.11.*", "3.11.7", "3.12"),
        ("", "", "1.0", None),
    ],
)
def test_conda_spec_conversion(conda, pep440, inside, outside):
    spec = conda_spec_to_pep440(conda)
    assert spec == SpecifierSet(pep440)
    assert spec.contains(inside)
    assert outside is None or not spec.contains(outside)


def test_conda_spec_rejects_or():
    with pytest.raises(ValueError, match="unsupported"):
        conda_spec_to_pep440("1.2|1.4")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (">=2.0,<3", ">=2.4", True),
        (">=2.0,<3", ">=3", False),
        ("==2.13.0", "==2.13.0.*", True),
        ("==2.13.0", "==2.12.*", False),
        ("<2", "<3", True),
        (">2.0", "<2.0.1", True),
        (">=1.8,<2", ">=2,<3", False),
    ],
)
def test_intersects(a, b, expected):
    assert intersects(SpecifierSet(a), SpecifierSet(b)) is expected


# -- pyproject ranges vs the pins of constraints.txt ---------------------------------------------

# torch releases an environment may already have, all of which pyproject's range must keep:
# the oldest admitted, a CUDA build with a local label (as Colab's), the pinned one, a newer one.
COMPATIBLE_TORCH = ["2.6.0", "2.9.1+cu128", "2.13.0+cpu", "2.14.1"]
TOO_OLD_TORCH = "2.5.1"  # below the lower bound: pip must replace it (the negative control)


def all_pyproject_requirements():
    """Every requirement of pyproject: dependencies and each extra's (kdlib[...] self-references
    excluded), as (group, Requirement)."""
    project = pyproject()["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    return [
        (group, Requirement(r))
        for group, reqs in groups.items()
        for r in reqs
        if canonicalize_name(Requirement(r).name) != "kdlib"
    ]


def read_constraints(path=CONSTRAINTS):
    """constraints.txt: canonical name -> pinned Version; every line must be ``name==version``."""
    pins = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec, *more) = list(req.specifier) or [None]
        assert spec is not None and not more and spec.operator == "==" and not req.extras and not req.marker, (
            f"{path.name}:{lineno}: {line!r} is not an exact pin name==version"
        )
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}:{lineno}: {name} pinned twice"
        pins[name] = Version(spec.version)
    return pins


def constraints_python():
    """The Python version the pins were tested with, from the header of constraints.txt."""
    match = re.search(r"^# Tested with: CPython (\d+\.\d+)\.(\d+)", CONSTRAINTS.read_text(), re.MULTILINE)
    assert match, "constraints.txt: the header must say 'Tested with: CPython X.Y.Z'"
    return match.group(1), f"{match.group(1)}.{match.group(2)}"


def applies_to_tested_python(req, extra):
    if req.marker is None:
        return True
    version, full = constraints_python()
    env = default_environment() | {"python_version": version, "python_full_version": full, "extra": extra}
    return req.marker.evaluate(env)


def torch_requirement():
    (req,) = [r for group, r in all_pyproject_requirements() if group == "dependencies" and r.name == "torch"]
    return req


def test_no_exact_pins_in_metadata():
    """Package metadata declares ranges: an exact pin replaces the user's own build."""
    pinned = [f"{group}: {req}" for group, req in all_pyproject_requirements()
              if any(s.operator in ("==", "===") for s in req.specifier)]
    assert not pinned, f"pyproject.toml: exact pins (they belong in constraints.txt): {pinned}"


@pytest.mark.parametrize("version", COMPATIBLE_TORCH)
def test_torch_range_admits(version):
    spec = torch_requirement().specifier
    assert spec.contains(version), f"pyproject.toml: torch {spec} would replace an installed torch {version}"


def test_torch_range_has_a_lower_bound():
    spec = torch_requirement().specifier
    assert not spec.contains(TOO_OLD_TORCH), f"torch {spec}: kdlib's lower bound is 2.6"


def test_constraints_pin_every_dependency():
    pins = read_constraints()
    missing = [f"{group}: {req}" for group, req in all_pyproject_requirements()
               if applies_to_tested_python(req, group) and canonicalize_name(req.name) not in pins]
    assert not missing, f"constraints.txt has no pin for: {missing}"


def test_constraints_inside_the_ranges():
    pins = read_constraints()
    outside = [
        f"{group}: {req} vs pinned {pins[canonicalize_name(req.name)]}"
        for group, req in all_pyproject_requirements()
        if canonicalize_name(req.name) in pins and not req.specifier.contains(pins[canonicalize_name(req.name)])
    ]
    assert not outside, f"constraints.txt pins outside pyproject's ranges: {outside}"


def test_constraints_pin_the_cpu_torch_release():
    """torch 2.13.0 exactly, without a local label so that pip takes the local +cpu wheel."""
    assert read_constraints()["torch"] == Version("2.13.0")


def test_makefile_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule, "Makefile: no $(STAMP) rule"
    assert re.search(r"^CONSTRAINTS := constraints\.txt$", makefile, re.MULTILINE), "no CONSTRAINTS := constraints.txt"
    assert "$(CONSTRAINTS)" in rule.group(1).split(), "the venv stamp must depend on constraints.txt"
    installs = [line for line in rule.group(2).splitlines() if " install " in line and "ipykernel" not in line]
    assert installs and all("-c $(CONSTRAINTS)" in line for line in installs), installs


def test_venv_matches_constraints():
    """The environment `make` built holds exactly the pinned set (run where .venv is this one)."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in {ROOT / '.venv'} (the environment make installs from constraints.txt)")
    pins = read_constraints()
    installed = {
        canonicalize_name(d.metadata["Name"]): Version(d.version)
        for d in importlib.metadata.distributions()
        if canonicalize_name(d.metadata["Name"]) != "kdlib"
    }
    # ==2.13.0 admits the installed 2.13.0+cpu (a pin without local label matches every build)
    wrong = {
        name: (str(version), str(pins.get(name)))
        for name, version in installed.items()
        if name not in pins or not SpecifierSet(f"=={pins[name]}").contains(version)
    }
    absent = sorted(set(pins) - set(installed))
    assert not wrong, f"installed (version, pinned) that differ or are unpinned; regenerate constraints.txt: {wrong}"
    assert not absent, f"pinned but not installed: {absent}"


# -- a real pip dry-run into an environment that already has another compatible torch ------------


def fake_distribution(site, name, version):
    """Metadata of an installed ``name`` ``version`` (no code) under ``site``."""
    info = site / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("kdlib-test\n")
    (info / "RECORD").write_text("")


def fake_wheel(folder, name, version):
    """A code-less wheel of ``name`` ``version``: the pinned torch, on offer in --find-links."""
    folder.mkdir(exist_ok=True)
    stem = f"{name}-{version}"
    files = {
        f"{stem}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{stem}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: kdlib-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    def digest(text):
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = [f"{path},sha256={digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{stem}.dist-info/RECORD"] = "\n".join([*record, f"{stem}.dist-info/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)


def pip_dry_run(tmp_path, torch_version, args):
    """``pip install --dry-run --report -`` offline, in the running interpreter, with every
    dependency of pyproject (+ notebooks extra) "installed" at its pin and torch at
    ``torch_version`` (fake metadata first on sys.path shadows the real packages), and the pinned
    torch 2.13.0 on offer. Returns (returncode, names pip would install, stderr)."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed in this environment")
    if Version(importlib.metadata.version("pip")) < Version("23.0"):
        pytest.skip("pip < 23.0 has no stable --dry-run --report")
    pins = read_constraints()
    site, wheels = tmp_path / "site", tmp_path / "wheels"
    names = {canonicalize_name(req.name) for group, req in all_pyproject_requirements()
             if group in ("dependencies", "notebooks")} - {"torch"}
    assert names <= set(pins), f"constraints.txt has no pin for {sorted(names - set(pins))}"
    for name in sorted(names):
        fake_distribution(site, name, pins[name])
    fake_distribution(site, "torch", torch_version)
    fake_wheel(wheels, "torch", "2.13.0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--report", "-", "--quiet",
         "--disable-pip-version-check", "--no-cache-dir", "--no-index", "--find-links", str(wheels), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    names = set()
    if result.returncode == 0:
        names = {canonicalize_name(item["metadata"]["name"]) for item in json.loads(result.stdout)["install"]}
    return result.returncode, names, result.stderr


def metadata_requirements():
    """The requirement strings `pip install kdlib[notebooks]` resolves (pyproject's, verbatim)."""
    return [str(req) for group, req in all_pyproject_requirements() if group in ("dependencies", "notebooks")]


@pytest.mark.parametrize("torch_version", ["2.6.0", "2.9.1+cu128", "2.14.1"])
def test_pip_keeps_a_compatible_torch(tmp_path, torch_version):
    returncode, names, stderr = pip_dry_run(tmp_path, torch_version, metadata_requirements())
    assert returncode == 0, stderr
    assert "torch" not in names, f"pip would replace torch {torch_version}: {sorted(names)}"
    assert not names, f"pip would install {sorted(names)} into a complete environment"


def test_pip_replaces_a_too_old_torch(tmp_path):
    """The negative control: the same dry-run does report a torch change when one is needed."""
    returncode, names, stderr = pip_dry_run(tmp_path, TOO_OLD_TORCH, metadata_requirements())
    assert returncode == 0, stderr
    assert names == {"torch"}


def test_pip_with_the_constraints_installs_the_pinned_torch(tmp_path):
    """`make`'s install (-c constraints.txt) does move another torch to the tested 2.13.0."""
    returncode, names, stderr = pip_dry_run(tmp_path, "2.9.1+cu128", ["-c", str(CONSTRAINTS), *metadata_requirements()])
    assert returncode == 0, stderr
    assert names == {"torch"}


def test_pip_install_editable_keeps_a_compatible_torch(tmp_path):
    """`pip install -e .` itself: kdlib's metadata built by setuptools from a copy of the sources."""
    try:
        setuptools_version = Version(importlib.metadata.version("setuptools"))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("setuptools is not installed (needed for --no-build-isolation)")
    if setuptools_version < Version("77"):
        pytest.skip(f"setuptools {setuptools_version} < 77 cannot read pyproject's license field")
    source = tmp_path / "kdlib-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "kdlib", source / "kdlib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    returncode, names, stderr = pip_dry_run(tmp_path, "2.9.1+cu128", ["--no-build-isolation", "-e", str(source)])
    assert returncode == 0, stderr
    assert names == {"kdlib"}, f"pip would install {sorted(names)}, not kdlib alone"
