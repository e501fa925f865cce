"""Clean rooms: which top-level packages may import which, read from every module's source (ast), imports inside
functions included. The gateway talks to the services only by RPC and shares with them only what is in shared/;
shared/ is the common floor and knows nothing above it; runtime/ wires everything and nothing in the running system
imports it; tests/ and tools/ are never part of the running system."""
import ast
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "gateway": {"services", "runtime", "tests", "tools"},
    "shared": {"gateway", "services", "runtime", "tests", "tools"},
    "services": {"gateway", "runtime", "tests", "tools"},
    "runtime": {"tests", "tools"},
}


def _module_parts(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_packages(source, parts, is_package=False):
    """{top-level package: first line importing it} for one module's source; `parts` is its dotted name, split."""
    found = {}
    package = parts if is_package else parts[:-1]
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__"):
                names = [node.args[0].value]
        for name in names:
            if name:
                found.setdefault(name.split(".")[0], node.lineno)
    return found


def _modules(package):
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_room(package):
    modules = _modules(package)
    assert modules, f"no modules found under {package}/"
    breaches = []
    for path in modules:
        imports = imported_packages(path.read_text(encoding="utf-8"), _module_parts(path), path.name == "__init__.py")
        breaches += [f"{path.relative_to(ROOT)}:{line} imports {top}"
                     for top, line in sorted(imports.items()) if top in FORBIDDEN[package]]
    assert not breaches, "\n".join(breaches)


def test_the_import_reader_sees_every_form():
    source = """
import services.files.domain
from gateway import links
from . import sibling
from ..tools import thing
def later():
    from runtime.topology import load
    importlib.import_module("tests.kit.apps")
"""
    found = imported_packages(source, ["shared", "sub", "module"])
    assert set(found) == {"services", "gateway", "shared", "runtime", "tests"}
    assert "tools" not in found  # `..tools` from shared.sub.module is shared.tools
    assert set(imported_packages("from . import x", ["gateway"], is_package=True)) == {"gateway"}


def test_the_gateway_s_upload_table_is_the_files_service_s():
    """shared.uploads is the one table; until services/files/domain.py imports it, its copy must say the same."""
    from services.files import domain
    from shared import uploads

    assert {name: asdict(p) for name, p in domain.PROFILES.items()} == {
        name: asdict(p) for name, p in uploads.PROFILES.items()}
