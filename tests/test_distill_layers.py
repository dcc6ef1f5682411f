"""kdlib.distill is layered one way: config -> losses -> targets -> distill -> feedback -> run.

Each module imports only the modules before it, at the top of the file (no import inside a
function to dodge a cycle), and the configuration module needs no torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kdlib
from kdlib import models
from kdlib.distill import config, losses

PKG = Path(kdlib.__file__).parent
LAYERS = ["config", "losses", "targets", "distill", "feedback", "run"]  # cka: a leaf that imports nothing of kdlib


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level imports, imports inside functions) of a module: kdlib module names, relative resolved."""
    tree = ast.parse(path.read_text())
    top, inner = set(), set()

    def names(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative to kdlib/distill
                return [f"kdlib.distill.{node.module}" if node.module else f"kdlib.distill.{a.name}"
                        for a in node.names] if not node.module else [f"kdlib.distill.{node.module}"]
            return [node.module]
        return []
    for node in tree.body:
        top.update(names(node))
        if isinstance(node, ast.If):  # e.g. TYPE_CHECKING blocks count as top level
            for sub in ast.walk(node):
                top.update(names(sub))
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for sub in ast.walk(fn):
            inner.update(names(sub))
    return top, inner


@pytest.mark.parametrize("name", LAYERS + ["cka"])
def test_each_module_imports_only_the_layers_before_it(name):
    top, inner = imports(PKG / "distill" / f"{name}.py")
    siblings = {m.removeprefix("kdlib.distill.") for m in top | inner if m.startswith("kdlib.distill.")}
    allowed = set(LAYERS[:LAYERS.index(name)]) | {"cka"} if name in LAYERS else set()
    assert siblings <= allowed, f"{name} imports {siblings - allowed}"
    lazy = {m for m in inner if m.startswith("kdlib")}
    assert not lazy, f"{name} imports kdlib modules inside functions: {lazy}"


def test_batched_does_not_import_distill_and_imports_train_at_the_top():
    top, inner = imports(PKG / "batched.py")
    assert not {m for m in top | inner if m.startswith("kdlib.distill")}
    assert not {m for m in inner if m.startswith("kdlib")}
    top, inner = imports(PKG / "train.py")
    assert not {m for m in top | inner if m.startswith(("kdlib.distill", "kdlib.batched"))}


def test_config_needs_no_torch():
    top, inner = imports(PKG / "distill" / "config.py")
    assert not {m for m in top | inner if m.split(".")[0] in ("torch", "numpy")}


def test_config_names_agree_with_the_modules_that_implement_them():
    assert tuple(losses.FEATURE_LOSSES) == config.FEATURE_LOSS_NAMES
    assert losses.FEATURE_NORMS == config.FEATURE_NORMS
    assert config.ADAPTERS == models.ADAPTERS


def test_the_frozen_teacher_trainer_refuses_feedback_and_the_package_entry_dispatches():
    import kdlib.distill as kd
    from kdlib.distill.distill import distill as distill_frozen
    with pytest.raises(ValueError, match="kdlib.distill.distill"):
        distill_frozen(None, None, None, "valence", kd.PRESETS["v3"])
    with pytest.raises(ValueError, match="quiz"):  # reached distill_feedback's checks
        kd.distill(object(), None, None, "valence", kd.PRESETS["v3"])
