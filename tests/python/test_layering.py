"""The house rules that imports can show: engines never import the public face (attnscope.api), and no module
imports another module's underscore names."""

from __future__ import annotations

import ast
from pathlib import Path

import attnscope

PACKAGE = Path(attnscope.__file__).parent
ENGINES = ("attribution", "analysis", "capturing", "lens", "activations", "interventions", "quality")
# Underscore names that are module names, not private names: the compiled extension and the build stamp.
MODULE_NAMES = {"_C", "_build_info"}


def _imports(path: Path):
    """(module the import names, resolved against the file's package; the names it imports) per import."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_engines_never_import_the_public_face():
    found = []
    for area in ENGINES:
        for path in (PACKAGE / area).rglob("*.py") if (PACKAGE / area).is_dir() else ():
            for module, names in _imports(path):
                if module == "attnscope.api" or (module == "attnscope" and "api" in names):
                    found.append(str(path.relative_to(PACKAGE)))
    assert not found, f"engines importing attnscope.api: {found}"


def test_no_module_imports_another_modules_underscore_names():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for module, names in _imports(path):
            if not module.startswith("attnscope"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__") and n not in MODULE_NAMES]
            if private:
                found.append(f"{path.relative_to(PACKAGE)}: from {module} import {', '.join(private)}")
    assert not found, "private names imported across modules:\n" + "\n".join(found)
