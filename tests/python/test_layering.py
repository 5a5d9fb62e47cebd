"""The house rules the imports must keep: engines never import the public face (``attnscope.api``), no module
imports another module's underscore names, and head statistics reach the capture engine only through its consumer
interface."""

from __future__ import annotations

import ast
from pathlib import Path

import attnscope

PACKAGE = Path(attnscope.__file__).resolve().parent
ENGINES = ("attribution", "analysis", "capturing", "lens", "activations", "interventions", "quality")
# The extension loader is the package's own plumbing: `_C` is the compiled module's name, `_extension` loads it after
# the torch version check (`_version_check`, `_build_info`).
PLUMBING = {"_extension", "_version_check", "_build_info", "_C"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE), ast.parse(path.read_text())


def imported(rel: Path, node: ast.ImportFrom) -> str:
    """The absolute dotted name an ImportFrom reads from."""
    if node.level == 0:
        return node.module or ""
    parts = ["attnscope", *rel.parent.parts][: len(rel.parent.parts) + 2 - node.level]
    return ".".join([*parts, *([node.module] if node.module else [])])


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PLUMBING


def test_the_scan_sees_the_package():
    names = {str(rel) for rel, _ in modules()}
    assert {"api.py", "capturing/session.py", "analysis/head_stats.py", "ops/attention.py"} <= names


def test_engines_never_import_the_public_face():
    offenders = []
    for rel, tree in modules():
        if rel.parts[0] not in ENGINES:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = imported(rel, node)
                if source == "attnscope.api" or (source == "attnscope" and any(a.name == "api" for a in node.names)):
                    offenders.append(f"{rel}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name == "attnscope.api" for a in node.names):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_no_module_imports_another_modules_underscore_names():
    offenders = []
    for rel, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            source = imported(rel, node)
            if not source.startswith("attnscope"):
                continue
            private_parts = [p for p in source.split(".") if is_private(p)]
            private_names = [a.name for a in node.names if is_private(a.name)]
            if private_parts or private_names:
                offenders.append(f"{rel}:{node.lineno} from {source} import {[a.name for a in node.names]}")
    assert offenders == []


def test_head_stats_use_the_consumer_interface_only():
    source = (PACKAGE / "analysis" / "head_stats.py").read_text()
    assert "consumers=[" in source
    assert ".options" not in source and "CaptureOptions" not in source
    from attnscope.capturing.function import CaptureOptions

    assert "stats" not in CaptureOptions.__dataclass_fields__
