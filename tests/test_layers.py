"""Packages meet through public names only: no module of clipforge uses a leading-underscore name (or module) of
another top-level package. Modules named ``_something.py`` directly under ``clipforge/`` (``_io``, ``_fspath``,
``_dblocation``, ``_faults``, ...) are the base layer's shared helpers: importing those modules is allowed, the
private names inside them are not. Checked by reading the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
ROOT = SRC / "clipforge"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether ``name`` (dotted, ``clipforge...``) is a module or package of the source tree."""
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _top(name: str) -> str:
    """The top-level package (or base module) a dotted clipforge name belongs to: ``clipforge.index.api`` ->
    ``index``, ``clipforge._io`` -> ``_io``, ``clipforge`` -> ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _private_module_parts(name: str) -> list[str]:
    """Private components of a module path, except a base-layer module directly under ``clipforge``."""
    parts = name.split(".")[1:]
    return [p for i, p in enumerate(parts) if _private(p) and i > 0]


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations(path: Path, source: str | None = None) -> list[str]:
    """Every use in module ``path`` (its text, or ``source``) of another top-level package's private name or
    module, as ``line: what``."""
    importer = _module_name(path)
    mine, found = _top(importer), []
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    modules: dict[str, str] = {}  # local name -> clipforge module it is bound to

    def foreign(target: str) -> bool:
        return target.split(".")[0] == "clipforge" and _top(target) != mine

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("clipforge"):
                    continue
                if foreign(alias.name) and _private_module_parts(alias.name):
                    found.append(f"{node.lineno}: import {alias.name}")
                modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "clipforge"
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, importer, path.name == "__init__.py")
            if not source.startswith("clipforge"):
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                bound = target if _is_module(target) else source
                if not foreign(bound):
                    if _is_module(target):
                        modules[alias.asname or alias.name] = target
                    continue
                if _private_module_parts(source) or (_private(alias.name) and not _is_base_module(target)):
                    found.append(f"{node.lineno}: from {source} import {alias.name}")
                if _is_module(target):
                    modules[alias.asname or alias.name] = target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = _dotted(node.value)
            if owner is None or owner.split(".")[0] not in modules:
                continue
            head, *rest = owner.split(".")
            target = ".".join([modules[head], *rest])
            if foreign(target) or (target == "clipforge" and not _is_base_module(f"clipforge.{node.attr}")):
                found.append(f"{node.lineno}: {owner}.{node.attr}")
    return found


def _is_base_module(name: str) -> bool:
    """``clipforge._something``: a base-layer helper module directly under ``clipforge/``."""
    parts = name.split(".")
    return len(parts) == 2 and _private(parts[1]) and _is_module(name)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def test_no_package_uses_another_packages_private_names():
    found = {str(path.relative_to(SRC)): bad for path in sorted(ROOT.rglob("*.py")) if (bad := violations(path))}
    assert found == {}


@pytest.mark.parametrize(
    "source, bad",
    [
        ("from clipforge.runtime.images import _SINGLE\n", True),
        ("from clipforge.index.ingest import Counts, _store\n", True),
        ("import clipforge.runtime._private\n", True),
        ("from clipforge._io import _start_time\n", True),
        ("from clipforge import runtime\nruntime.images._SINGLE\n", True),
        ("import clipforge.runtime.images as im\nim._SINGLE\n", True),
        ("from clipforge import _io, _faults\nfrom clipforge._dblocation import redact\n", False),
        ("import clipforge._io\nfrom clipforge.index import Index\n", False),
        ("from clipforge.serve.service import _named\n", False),  # the same top-level package
        ("from clipforge import __version__\n", False),
    ],
)
def test_the_scan_tells_private_from_public(source, bad):
    """The scan itself, on small sources read as if they were a module of ``clipforge.serve``."""
    assert bool(violations(ROOT / "serve" / "routes" / "probe.py", source)) is bad


BACKEND_METHODS = {"search", "apply", "files", "vectors", "count", "path_of", "file_of", "info", "model_record"}


@pytest.mark.parametrize("package", ["serve", "distributed", "cli"])
def test_engines_reach_the_index_through_its_public_methods(package):
    """The server, the Ray engine and the CLI call ``Index``'s methods, never its back-end's
    (``index.backend.search(...)``)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            inner = node.value if isinstance(node, ast.Attribute) else None
            if isinstance(inner, ast.Attribute) and inner.attr == "backend" and node.attr in BACKEND_METHODS:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: .backend.{node.attr}")
    assert found == []


def test_the_architecture_page_quotes_the_layer_contract():
    """docs/architecture.md quotes the layer list; a layer added to the contract must show up there too."""
    contracts = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    quoted = "\n".join(f'"{layer}",' for layer in layers)
    assert quoted in page
