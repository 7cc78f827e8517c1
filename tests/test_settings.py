"""Every setting is declared once and every layer agrees with the declaration: the engine's
(``spec.ENGINE_SETTINGS``: the static file, its checks, ``fastlb._core.DataPlane``, its stub and
docs/config.md) and Marathon's (``MarathonOptions`` and ``FollowOptions``: ``MarathonArgs``, the
command line's flags, the provider)."""

from __future__ import annotations

import ast
import inspect
import pathlib

import msgspec
import pytest

from fastlb import _core, cli, config, limits, spec
from fastlb.marathon.args import BUILD_FIELDS, MarathonArgs, marathon_provider
from fastlb.marathon.options import FollowOptions, MarathonOptions
from fastlb.marathon.provider import MarathonProvider

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENGINE = spec.ENGINE_SETTINGS
FILE_KEY = {"pool_idle_ms": "pool_idle"}  # the file's name where it differs (a duration there)


def _defaults(struct: type[msgspec.Struct]) -> dict[str, object]:
    return {f.name: f.default for f in msgspec.structs.fields(struct)}


def test_the_file_and_what_it_gives_default_to_the_declaration() -> None:
    assert _defaults(config.EngineSettings) == {name: s.default for name, s in ENGINE.items()}
    assert _defaults(config.EngineEntry) == {FILE_KEY.get(name, name): s.default for name, s in ENGINE.items()}
    assert config.parse("").engine == config.EngineSettings()
    assert limits.DEFAULT_MAXCONN == spec.DEFAULT_MAXCONN


def _file_problems(name: str, value: int) -> list[str]:
    text = f"[engine]\n{FILE_KEY.get(name, name)} = {value}\n"
    try:
        config.parse(text)
    except config.ConfigError as e:
        return e.problems
    return []


def _refused(name: str) -> list[int]:
    s = ENGINE[name]
    values = [s.low - 1] + ([s.high + 1] if s.high is not None else [])
    return values + ([s.low + 1] if s.power_of_two else [])


def _accepted(name: str) -> list[int]:
    s = ENGINE[name]
    return [s.low, s.default] + ([s.high] if s.high is not None else [])


@pytest.mark.parametrize("name", ENGINE)
def test_the_file_takes_the_declared_range_and_nothing_else(name: str) -> None:
    key = FILE_KEY.get(name, name)
    for value in _accepted(name):
        assert _file_problems(name, value) == [], (name, value)
    for value in _refused(name):
        problems = _file_problems(name, value)
        assert len(problems) == 1 and problems[0].startswith(f"engine.{key}: "), (name, value, problems)


@pytest.mark.parametrize("name", ENGINE)
def test_the_data_plane_takes_the_declared_range_and_nothing_else(name: str) -> None:
    """The data plane holds its keywords to the same ranges (workers: 1.., the file's 0 is resolved
    before), so a value the file passes is never refused at start, nor one it refuses taken."""
    for value in _accepted(name):
        if name == "workers":
            if value >= 1:
                _core.DataPlane(value)
        else:
            _core.DataPlane(1, **{name: value})
    for value in _refused(name) + ([0] if name == "workers" else []):
        with pytest.raises(ValueError, match=f"^{name}: "):
            if name == "workers":
                _core.DataPlane(value)
            else:
                _core.DataPlane(1, **{name: value})


def test_the_stub_declares_every_setting_and_no_default_of_its_own() -> None:
    tree = ast.parse((ROOT / "fastlb" / "_core.pyi").read_text())
    init = next(
        node for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name == "DataPlane"
        for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    keywords = {a.arg: d for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True)}
    assert init.args.args[1].arg == "workers"
    for name in set(ENGINE) - {"workers"}:
        default = keywords[name]
        assert isinstance(default, ast.Constant) and default.value is Ellipsis, name


def test_docs_config_says_each_default_and_range() -> None:
    rows: dict[str, tuple[str, str]] = {}
    section = ""
    for line in (ROOT / "docs" / "config.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 4:
            continue
        section = cells[0] or section  # a row with an empty first cell is its section's
        if section == "`[engine]`":
            rows[cells[1].strip("`")] = (cells[2], cells[3].strip("`"))
    for name, s in ENGINE.items():
        if name in FILE_KEY:
            assert rows[FILE_KEY[name]] == ("duration", f'"{s.default // 1000}s"'), name
        else:
            kind = s.range() if s.power_of_two else f"int {s.range()}"
            assert rows[name] == (kind, str(s.default)), name


# --- Marathon ------------------------------------------------------------------------------------

CREDENTIALS = {"auth_credentials", "auth_credential_file", "dcos_auth_credentials", "ca_cert"}


def test_every_marathon_option_is_the_builds_or_the_providers_with_its_default() -> None:
    args = _defaults(MarathonArgs)
    build, follow = _defaults(MarathonOptions), _defaults(FollowOptions)
    assert set(BUILD_FIELDS) == set(args) & set(build)
    assert set(args) == {"urls"} | CREDENTIALS | set(BUILD_FIELDS) | set(follow)
    for name in BUILD_FIELDS:
        assert args[name] == build[name], name
    provider = inspect.signature(MarathonProvider).parameters
    for name, default in follow.items():
        assert args[name] == default == provider[name].default, name
    assert all(args[name] is None for name in CREDENTIALS)


@pytest.mark.parametrize("command", ["run", "routes"])
def test_the_flags_default_to_the_declaration(command: str) -> None:
    parsed = cli.parser().parse_args([command, "--marathon", "http://127.0.0.1:8080"])
    assert cli.marathon_args(parsed) == MarathonArgs(urls=("http://127.0.0.1:8080",))


def test_every_marathon_option_reaches_the_provider() -> None:
    given = {
        "groups": ("a", "b"), "strict_mode": True, "health_check": True, "bind_addr": "127.0.0.2", "http_port": 81,
        "https_port": 0, "appid_port": 0, "dont_bind_http_https": True, "min_serv_port_ip_per_task": 2000,
        "max_serv_port_ip_per_task": 2010, "sse": False, "poll_interval": 5.0, "max_backoff": 7.0,
        "framework_name": "lb",
    }
    assert set(given) == set(BUILD_FIELDS) | set(_defaults(FollowOptions))
    for name, value in given.items():  # none is the default, or the check below could not fail
        assert value != _defaults(MarathonArgs)[name], name
    p = marathon_provider(MarathonArgs(urls=("http://127.0.0.1:1",), **given))  # type: ignore[arg-type]
    assert p.options == MarathonOptions(**{name: given[name] for name in BUILD_FIELDS})  # type: ignore[attr-defined]
    assert {name: getattr(p, name) for name in _defaults(FollowOptions)} == {
        name: given[name] for name in _defaults(FollowOptions)
    }
