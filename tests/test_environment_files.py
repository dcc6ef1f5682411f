"""pyproject.toml, environment.yml and binder/environment.yml name the same packages.

The conda files must list exactly pyproject's ``dependencies`` plus its ``notebooks`` extra
(plus ``python`` and ``pip``), under conda-forge names, with version ranges that intersect
pyproject's. Adding a package to one file only fails here, naming the package and the file.
"""

import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_FILES = ["environment.yml", "binder/environment.yml"]

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
