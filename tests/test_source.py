"""Text-level checks on the sources: the rules of the architecture that a reader relies on."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "fastlb"
C_FILES = sorted(p for p in PKG.glob("_*.[ch]") if p.name != "_core.c")

# Modules that must stay pure: no I/O, no event loop, no data plane (tested in microseconds).
PURE = ["spec.py", "config.py", "marathon/models.py", "marathon/labels.py", "marathon/build.py",
        "marathon/state.py", "marathon/sse.py"]
IMPURE_IMPORTS = {"asyncio", "socket", "selectors", "aiohttp", "uvloop", "fastlb._core", "threading"}


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("name", [p for p in PURE if (PKG / p).exists()])
def test_pure_modules_do_no_io(name: str) -> None:
    bad = {i for i in _imports(PKG / name) if i in IMPURE_IMPORTS or i.split(".")[0] in IMPURE_IMPORTS}
    assert not bad, f"{name} imports {sorted(bad)}"


def test_spec_imports_nothing_from_fastlb() -> None:
    assert not {i for i in _imports(PKG / "spec.py") if i.startswith("fastlb")}


@pytest.mark.parametrize("path", C_FILES, ids=lambda p: p.name)
def test_c_core_never_sees_python(path: pathlib.Path) -> None:
    assert not re.search(r'#\s*include\s*[<"]Python\.h[>"]', path.read_text())


@pytest.mark.parametrize("path", [p for p in C_FILES if p.suffix == ".c"], ids=lambda p: p.name)
def test_api_h_comes_first(path: pathlib.Path) -> None:
    first = re.search(r'^#include\s+[<"]([^>"]+)[>"]', path.read_text(), re.M)
    assert first is not None and first.group(1) == "_api.h", f"{path.name}: _api.h is not included first"


def test_splice_is_called_only_in_the_splice_unit() -> None:
    callers = [p.name for p in C_FILES if re.search(r"\bsplice\s*\(", p.read_text()) and p.suffix == ".c"]
    assert callers in ([], ["_splice.c"]), callers


def test_exported_c_functions_are_prefixed() -> None:
    """Every non-static function defined in the C core is named flb_<concept>_<verb>."""
    bad = []
    definition = re.compile(r"^(?!static\b)(?:[a-z_][\w \*]*?)\b([a-z_]\w*)\s*\([^;]*\)\s*\{", re.M)
    for path in (p for p in C_FILES if p.suffix == ".c"):
        for name in definition.findall(path.read_text()):
            if not name.startswith("flb_"):
                bad.append(f"{path.name}: {name}")
    assert not bad, bad


def test_stubs_name_what_core_exports() -> None:
    """_core.pyi names exactly the public and test names fastlb._core exports."""
    import types

    import fastlb._core as core

    exported = {
        n
        for n in dir(core)
        if (not n.startswith("_") or n.startswith(("_test_", "_http1_")))
        and not isinstance(getattr(core, n), types.ModuleType)
    }
    tree = ast.parse((PKG / "_core.pyi").read_text())
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    assert stubbed <= exported, f"stubbed but not exported: {sorted(stubbed - exported)}"
    assert exported <= stubbed, f"exported but not stubbed: {sorted(exported - stubbed)}"
