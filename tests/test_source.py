"""Text-level checks on the sources: the rules of the architecture that a reader relies on."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "fastlb"
GENERATED = {"_core.c", "_testhooks.c"}  # Cython's output, not the C core
C_FILES = sorted(p for p in PKG.glob("_*.[ch]") if p.name not in GENERATED)

# Modules that must stay pure: no I/O, no event loop, no data plane (tested in microseconds).
PURE = ["spec.py", "config.py", "provider.py", "merge.py", "overrides.py", "stats.py", "marathon/models.py",
        "marathon/labels.py", "marathon/traefik_labels.py", "marathon/options.py", "marathon/tasks.py",
        "marathon/candidate.py", "marathon/mlb.py", "marathon/traefik.py", "marathon/incremental.py",
        "marathon/build.py", "marathon/state.py", "marathon/sse.py"]
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


def _module_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the modules of the package at <root> it imports, at any depth of its code (function-level
    imports count: they run too), less those under ``if TYPE_CHECKING:`` (never run)."""
    package = root.name
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # the bodies of `if TYPE_CHECKING:` go
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level - 1
                    up = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name and t.split(".")[0] == package)
        graph[name] = edges
    return graph


def _import_cycles(root: pathlib.Path) -> list[list[str]]:
    """Each import cycle among the modules of the package at <root>, as the modules around it."""
    graph = _module_graph(root)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other):] + [other])
            elif other not in state:
                walk(other)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return cycles


def test_no_import_cycle_between_fastlb_modules() -> None:
    """Imports go one way: the admin API and the controller meet only in fastlb.server."""
    cycles = _import_cycles(PKG)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)



def test_only_the_server_imports_the_admin_api_the_upgrade_and_uvloop() -> None:
    """The process is assembled in one place: fastlb.server. (The test tooling's demo runs its own.)"""
    modules = [*PKG.glob("*.py"), *(PKG / "marathon").glob("*.py")]
    importers = sorted(
        str(path.relative_to(PKG)) for path in modules if _imports(path) & {"fastlb.admin", "fastlb.upgrade", "uvloop"}
    )
    assert importers == ["server.py"]

def test_import_cycles_are_found(tmp_path: pathlib.Path) -> None:
    """The check itself: a cycle closed by a function-level or relative import is one; one closed only
    under ``if TYPE_CHECKING:`` is not."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n")
    (pkg / "d.py").write_text("import pkg.c\n")
    assert _import_cycles(pkg) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    (pkg / "c.py").write_text("from pkg import d\n")
    assert ["pkg.c", "pkg.d", "pkg.c"] in _import_cycles(pkg)


def _extern_headers(text: str) -> list[str]:
    """The C headers a Cython source declares from (``cdef extern from "x.h"``)."""
    return re.findall(r'^\s*cdef\s+extern\s+from\s+"([^"]+)"', text, re.M)


def test_each_c_header_is_declared_in_one_pxd() -> None:
    """A C header's declarations live in one fastlb/includes/*.pxd, cimported wherever they are needed: two
    copies of a struct would drift apart, and would be two Cython types for one C type."""
    where: dict[str, list[str]] = {}
    for path in sorted([*PKG.rglob("*.pxd"), *PKG.rglob("*.pxi"), *PKG.rglob("*.pyx")]):
        for header in _extern_headers(path.read_text()):
            where.setdefault(header, []).append(str(path.relative_to(PKG)))
    twice = {h: paths for h, paths in where.items() if len(paths) > 1}
    outside = {h: paths for h, paths in where.items() if any(not p.startswith("includes/") for p in paths)}
    assert where and not twice, twice
    assert not outside, outside


def test_the_header_check_reads_cython() -> None:
    text = 'cdef extern from "_a.h" nogil:\n    pass\n\ncdef extern from *:\n    pass\n  cdef extern from "<b.h>":\n'
    assert _extern_headers(text) == ["_a.h", "<b.h>"]


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


def test_http_policy_never_calls_into_the_connection() -> None:
    """_h1policy decides and hands back a verdict: it neither answers, connects, pools nor closes."""
    text = "".join((PKG / name).read_text() for name in ("_h1policy.h", "_h1policy.c"))
    includes = set(re.findall(r'^#\s*include\s+"([^"]+)"', text, re.M))
    calls = sorted(set(re.findall(r"\b(flb_(?:h1conn|h1pool|h1srv|h1reply|engine|queue|evloop|timer)_\w+)\s*\(", text)))
    assert not includes & {"_h1conn.h", "_h1pool.h", "_h1reply.h", "_engine.h", "_queue.h", "_evloop.h"}, includes
    assert not calls, calls


def test_exported_c_functions_are_prefixed() -> None:
    """Every non-static function defined in the C core is named flb_<concept>_<verb>."""
    bad = []
    definition = re.compile(r"^(?!static\b)(?:[a-z_][\w \*]*?)\b([a-z_]\w*)\s*\([^;]*\)\s*\{", re.M)
    for path in (p for p in C_FILES if p.suffix == ".c"):
        for name in definition.findall(path.read_text()):
            if not name.startswith("flb_"):
                bad.append(f"{path.name}: {name}")
    assert not bad, bad


def _exported(module: object) -> set[str]:
    """What an extension module offers: its public names, and those of its test hooks."""
    import types

    return {
        n
        for n in dir(module)
        if (not n.startswith("_") or n.startswith(("_test_", "_http1_")))
        and not isinstance(getattr(module, n), types.ModuleType)
    }


def _stubbed(pyi: pathlib.Path) -> set[str]:
    stubbed = set()
    for node in ast.parse(pyi.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    return stubbed


@pytest.mark.parametrize("name", ["_core", "_testhooks"])
def test_stubs_name_what_each_extension_exports(name: str) -> None:
    """_core.pyi and _testhooks.pyi name exactly what fastlb._core and fastlb._testhooks export."""
    import importlib

    exported = _exported(importlib.import_module(f"fastlb.{name}"))
    stubbed = _stubbed(PKG / f"{name}.pyi")
    assert stubbed <= exported, f"stubbed but not exported: {sorted(stubbed - exported)}"
    assert exported <= stubbed, f"exported but not stubbed: {sorted(exported - stubbed)}"


def test_core_exports_its_api_alone() -> None:
    """The shipped extension carries no test hook, and nothing in fastlb imports the test extension."""
    import fastlb._core as core

    hooks = sorted(n for n in dir(core) if n.startswith(("_test", "_http1_", "HTTP1_")))
    assert not hooks, hooks
    importers = sorted(
        str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if any("_testhooks" in i for i in _imports(p))
    )
    assert not importers, importers


# The Marathon build's parts, each importing only those before it (mlb and traefik side by side); the
# label parsers come first (Traefik's reads marathon-lb's helpers and RESTRICTING_LABELS), below every part.
BUILD_LAYERS = [["labels"], ["traefik_labels"], ["options"], ["tasks"], ["candidate"], ["mlb", "traefik"],
                ["incremental"], ["build"]]


def test_marathon_build_parts_import_one_way() -> None:
    graph = _module_graph(PKG)
    bad = []
    for n, layer in enumerate(BUILD_LAYERS):
        below = {f"fastlb.marathon.{m}" for lower in BUILD_LAYERS[:n] for m in lower}
        parts = {f"fastlb.marathon.{m}" for part in BUILD_LAYERS for m in part}
        for module in layer:
            name = f"fastlb.marathon.{module}"
            bad += [f"{name} -> {other}" for other in sorted(graph[name] & parts - below)]
    assert not bad, bad


# --- one logging style: every line is ``event key=value ...`` with an event named in fastlb/logs.py

LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _event_names() -> set[str]:
    tree = ast.parse((PKG / "logs.py").read_text())
    return {
        target.id for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name) and target.id.isupper() and target.id != "LEVELS"
    }


def _log_problems(path: pathlib.Path, events: set[str], root: pathlib.Path = PKG) -> list[str]:
    """Each call in <path> that logs other than through ``logs.event(level, logs.<EVENT>, ...)``."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func, where = node.func, f"{path.relative_to(root)}:{node.lineno}"
        if isinstance(func.value, ast.Name) and func.value.id == "logs" and func.attr == "event":
            name = node.args[1] if len(node.args) > 1 else None
            names = [name.body, name.orelse] if isinstance(name, ast.IfExp) else [name]
            for n in names:
                if not (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "logs"
                        and n.attr in events):
                    problems.append(f"{where}: the event is not a name declared in logs.py")
        elif func.attr in LOG_METHODS and path.name != "logs.py":
            receiver = ast.unparse(func.value)
            if receiver in {"log", "logger", "LOGGER", "logging"} or "getLogger" in receiver:
                problems.append(f"{where}: {ast.unparse(func)}(...) logs free text; use logs.event")
    return problems


def test_every_log_line_is_an_event_declared_in_logs_py() -> None:
    """fastlb/emulator (the Marathon emulator, test tooling) logs as it likes."""
    events = _event_names()
    paths = [p for p in PKG.rglob("*.py") if "emulator" not in p.relative_to(PKG).parts]
    problems = [line for path in sorted(paths) for line in _log_problems(path, events)]
    assert not problems, "\n".join(problems)


def test_the_log_check_finds_free_text(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "sample.py"
    bad.write_text(
        'log.warning("cannot resolve %s", host)\nlogs.event(logging.INFO, "made_up", a=1)\n'
        "logs.event(logging.INFO, logs.SWAP if up else logs.NOT_AN_EVENT)\nlogs.event(logging.INFO, logs.SWAP)\n"
    )
    assert [line.split(":")[1] for line in _log_problems(bad, _event_names(), tmp_path)] == ["1", "2", "3"]
