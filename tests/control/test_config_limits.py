"""Values the static file reader must refuse with one clean line before anything runs: every numeric
key of the file with a value too large for any engine field and with a value of the wrong type, and
nesting deeper than the TOML reader can follow. ``fastlb check`` prints one line and exits 1;
``fastlb run`` logs it and exits 1, never with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import msgspec
import pytest

from fastlb import config
from fastlb.emulator.demo import free_port

from .test_cli import ROOT

HUGE = 1 << 64  # beyond every count, size and duration the engine keeps (and a power of two)


def _args(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def numeric_keys(tp: Any = config.FileEntry, path: str = "") -> Iterator[tuple[str, bool]]:
    """(path, whether a string is a valid value there: a duration) of every number the file holds;
    the first item of each array stands for all."""
    for f in msgspec.structs.fields(tp):
        p = f"{path}.{f.encode_name}" if path else f.encode_name
        args = _args(f.type)
        if int in args:
            yield p, str in args
        for a in args:
            if isinstance(a, type) and issubclass(a, msgspec.Struct):
                yield from numeric_keys(a, p)
            elif typing.get_origin(a) is tuple:
                for item in _args(typing.get_args(a)[0]):
                    if item is int:
                        yield f"{p}[1]", False
                    elif isinstance(item, type) and issubclass(item, msgspec.Struct):
                        yield from numeric_keys(item, f"{p}[0]")


def base() -> dict[str, Any]:
    """A valid file with every section, so that each numeric key has a place."""
    return {
        "engine": {},
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "services": [
            {
                "name": "web",
                "listen": f"127.0.0.1:{free_port()}",
                "mode": "http",
                "vhosts": ["a.example.com"],
                "backends": [{"address": "127.0.0.1:1"}],
                "timeouts": {},
                "health": {"kind": "http", "path": "/", "expect_status": [200, 399]},
                "http": {"redirect_root": "/x"},
            }
        ],
    }


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.replace("[", ".").replace("]", "").split(".")
    node: Any = doc
    for key in parts[:-1]:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def dump(doc: dict[str, Any]) -> str:
    """TOML for the shapes above: [section] tables, [[services]] with their sub-tables."""

    def table(header: str, t: dict[str, Any]) -> list[str]:
        lines = [header]
        lines += [f"{k} = {_value(v)}" for k, v in t.items() if not isinstance(v, dict)]
        name = header.strip("[]")
        for k, v in t.items():
            if isinstance(v, dict):
                lines += table(f"[{name}.{k}]", v)
        return lines

    lines: list[str] = []
    for key, value in doc.items():
        if key == "services":
            for s in value:
                lines += table("[[services]]", s)
        else:
            lines += table(f"[{key}]", value)
    return "\n".join(lines) + "\n"


def _names(problem: str, path: str) -> bool:
    """Whether <problem> starts with <path>, or with the array <path> is an item of."""
    return problem.startswith((f"{path}: ", f"{path.removesuffix('[1]')}: "))


def cases() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for path, duration in numeric_keys():
        out.append((path, HUGE))
        out.append((path, True if duration else "12"))  # the wrong type
    return out


def test_the_walk_finds_the_numeric_keys() -> None:
    keys = {p for p, _ in numeric_keys()}
    assert {"engine.workers", "engine.pool_idle", "http.maxconn", "services[0].drain_timeout",
            "services[0].backends[0].weight", "services[0].timeouts.queue", "services[0].health.expect_status[1]",
            "services[0].http.redirect_root_code"} <= keys
    assert len(keys) >= 29
    assert config.parse(dump(base()))  # the file each case changes is good


@pytest.mark.parametrize("path,value", cases(), ids=lambda v: str(v)[:24])
def test_check_gives_one_line_for_a_huge_or_mistyped_number(path: str, value: Any) -> None:
    doc = base()
    _set(doc, path, value)
    try:
        config.parse(dump(doc))
    except config.ConfigError as e:
        assert len(e.problems) == 1 and _names(e.problems[0], path), e.problems
    else:
        raise AssertionError(f"{path} = {value!r} was taken")


def _run(text: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    tmp.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "fastlb", "run", "--config", str(tmp), "--admin", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_run_refuses_each_of_them_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    files = []
    for i, (path, value) in enumerate(cases()):
        doc = base()
        _set(doc, path, value)
        files.append((path, dump(doc), tmp_path / f"{i}.toml"))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: (c[0], _run(c[1], c[2])), files))
    for path, r in results:
        assert r.returncode == 1 and "Traceback" not in r.stderr, (path, r.stderr[-2000:])
        lines = [line.split("problem=", 1)[1].strip('"') for line in r.stderr.splitlines() if "problem=" in line]
        assert len(lines) == 1 and _names(lines[0], path), (path, r.stderr[-2000:])


def test_nesting_too_deep_for_the_toml_reader_is_one_line(tmp_path: Path) -> None:
    deep = "x = " + "[" * 50000 + "]" * 50000 + "\n"
    f = tmp_path / "deep.toml"
    f.write_text(deep)
    assert config.check(str(f)) == ["toml: arrays or tables nested too deeply"]
    r = subprocess.run(
        [sys.executable, "-m", "fastlb", "check", "--config", str(f)], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout, r.stderr) == (1, "toml: arrays or tables nested too deeply\n", "")
    r = _run("[engine]\n" + "y = " + "{ a = " * 50000 + "1" + " }" * 50000 + "\n", tmp_path / "deep2.toml")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "nested too deeply" in r.stderr
