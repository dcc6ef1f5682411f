"""A manifest file read safely into a dict: YAML (PyYAML's SafeLoader, bounded) or TOML (tomllib).

Part of :mod:`kdlib.data.custom`. A manifest is text of a few kilobytes: a file that is too large,
not UTF-8, nested too deeply, or whose YAML aliases expand out of proportion to its size (a
"billion laughs" document) is refused with one :class:`~kdlib.data.custom.problems.ManifestError`
before anything is built. :func:`kdlib.data.custom.manifest.load_manifest` parses the dict.
"""

from __future__ import annotations

from pathlib import Path

from .problems import ManifestError, Problem

__all__ = ["MAX_MANIFEST_BYTES", "MAX_NODES", "MAX_NESTING", "MAX_KEYS"]

MAX_MANIFEST_BYTES = 4 << 20  #: a manifest is text of a few kilobytes; larger files are refused
MAX_NODES = 200_000  #: values in a manifest once YAML aliases are expanded
MAX_NESTING = 64  #: nesting of YAML collections
MAX_KEYS = 1000  #: keys of one YAML mapping


class _Refused(Exception):
    """A manifest whose cost would be out of proportion to its size (see :func:`_yaml_loader`)."""


def _read_document(path: Path) -> dict:
    """The manifest file as a dict (YAML by PyYAML, TOML by tomllib); ManifestError otherwise."""
    suffix = path.suffix.lower()
    fail = lambda message: ManifestError(path, [Problem("manifest", str(path), message)])  # noqa: E731
    if suffix not in (".yaml", ".yml", ".toml"):
        raise fail(f"unknown manifest format {suffix!r}: use .yaml, .yml or .toml")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise fail(f"{size} bytes is too large for a manifest (at most {MAX_MANIFEST_BYTES}); "
                   "list the trials in the trials table")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}): "
                   "save the manifest as UTF-8") from None
    try:
        doc = _yaml().load(text, Loader=_yaml_loader()) if suffix != ".toml" else _tomllib().loads(text)
    except ManifestError:
        raise
    except _Refused as exc:
        raise fail(f"refused: {exc}") from None
    except RecursionError:
        raise fail(f"not valid {suffix[1:].upper()}: nested too deeply") from None
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"not valid {suffix[1:].upper()}: {first}") from None
    if not isinstance(doc, dict):
        raise fail("the manifest must be a mapping of keys")
    return doc


def _expanded_size(root) -> int:
    """Nodes of a composed YAML graph with every alias expanded; :class:`_Refused` on a cycle or
    beyond :data:`MAX_NODES` (iterative: the graph may be deep once aliases are followed)."""
    sizes: dict[int, int] = {}
    stack, open_ = [(root, False)], set()
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            open_.discard(id(node))
            sizes[id(node)] = total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                raise _Refused(f"its aliases expand to more than {MAX_NODES} values (a 'billion laughs' document?)")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_:
            raise _Refused("an alias refers to a collection that contains it")
        open_.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _Refused("an alias refers to a collection that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node) -> list:
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return []
    if value and isinstance(value[0], tuple):
        if len(value) > MAX_KEYS:  # keys are hashed into a dict: numbers chosen to collide cost n^2
            raise _Refused(f"a mapping with more than {MAX_KEYS} keys")
        return [x for pair in value for x in pair]
    return list(value)


def _yaml_loader():
    """PyYAML's SafeLoader, bounded: collections nested at most :data:`MAX_NESTING` deep, and at
    most :data:`MAX_NODES` values once aliases are expanded (refused before anything is built)."""
    yaml = _yaml()

    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise _Refused(f"collections nested deeper than {MAX_NESTING} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def compose_document(self):
            node = super().compose_document()
            if node is not None:
                _expanded_size(node)
            return node

    return BoundedLoader


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the notebooks and test extras
        raise ManifestError("manifest", [Problem("manifest", "PyYAML", "YAML manifests need PyYAML "
                                                 "(pip install pyyaml); or write the manifest in TOML")]) from None
    return yaml


def _tomllib():
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ManifestError("manifest", [Problem("manifest", "tomli", "TOML manifests need "
                                                     "Python >= 3.11 or tomli (pip install tomli)")]) from None
    return tomllib
