"""``fastlb run | routes | check | demo`` (also ``python -m fastlb``).

The flag names are marathon-lb's where one exists (docs/config.md lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import msgspec

from fastlb import __version__, config, limits, logs, spec
from fastlb.marathon.args import MarathonArgs, framework_name_from

_MARATHON = MarathonArgs(urls=())  # every Marathon flag's default is its field's here


def _provider_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("providers")
    g.add_argument("--config", metavar="FILE", help="static TOML file (docs/config.md)")
    g.add_argument(
        "--marathon", "-m", metavar="URL", nargs="+", action="extend", default=[],
        help="Marathon endpoint(s) of one cluster: several after one flag (marathon-lb's -m URL1 URL2), "
        "comma-separated, or the flag repeated",
    )
    m = p.add_argument_group("Marathon (marathon-lb's flags)")
    m.add_argument(
        "--group", action="append", default=[],
        help=f"LB group to serve (repeatable; '*' = every app; default {','.join(_MARATHON.groups)})",
    )
    mode = m.add_mutually_exclusive_group()
    mode.add_argument("--sse", "-s", action="store_true", help="follow Marathon's event stream (the default)")
    mode.add_argument("--poll", metavar="SECONDS", type=float, help="poll /v2/apps every SECONDS instead of --sse")
    m.add_argument("--health-check", "-H", action="store_true", help="a task needs Marathon's health checks alive")
    m.add_argument("--strict-mode", action="store_true", help="only apps with HAPROXY_{n}_ENABLED=true")
    m.add_argument("--auth-credentials", metavar="USER:PASS", help="HTTP basic auth for Marathon")
    m.add_argument("--marathon-auth-credential-file", metavar="FILE", help="file holding user:pass for Marathon")
    m.add_argument(
        "--dcos-auth-credentials", metavar="JSON", default=os.environ.get("DCOS_SERVICE_ACCOUNT_CREDENTIAL") or None,
        help="DC/OS service account (uid, private_key, login_endpoint); env DCOS_SERVICE_ACCOUNT_CREDENTIAL",
    )
    m.add_argument("--marathon-ca-cert", metavar="FILE", help="CA bundle to verify Marathon's TLS with")
    m.add_argument("--min-serv-port-ip-per-task", type=int, default=_MARATHON.min_serv_port_ip_per_task, metavar="N")
    m.add_argument("--max-serv-port-ip-per-task", type=int, default=_MARATHON.max_serv_port_ip_per_task, metavar="N")
    m.add_argument(
        "--max-backoff", type=float, default=_MARATHON.max_backoff, metavar="SECONDS",
        help="cap of the reconnect backoff",
    )
    _mlb_ignored_options(p)
    ls = p.add_argument_group("listeners")
    ls.add_argument("--bind-addr", default=_MARATHON.bind_addr, metavar="ADDR", help="where service ports are bound")
    ls.add_argument(
        "--http-port", type=int, default=_MARATHON.http_port, metavar="PORT", help="shared vhost listener (0: none)"
    )
    ls.add_argument(
        "--https-port", type=int, default=_MARATHON.https_port, metavar="PORT", help="shared TLS listener (0: none)"
    )
    ls.add_argument(
        "--group-https-by-vhost", action="store_true",
        help="marathon-lb's flag, accepted: fastlb always does so (SNI picks an app's HAPROXY_{n}_SSL_CERT for its "
        "vhosts, its TLS bind options hold for them, Host routes; docs/tls.md)",
    )
    ls.add_argument(
        "--appid-port", type=int, default=_MARATHON.appid_port, metavar="PORT",
        help="X-Marathon-App-Id listener (0: none)",
    )
    ls.add_argument("--dont-bind-http-https", action="store_true", help="no shared http/https listeners")


# marathon-lb's flags that shape its HAProxy config file and reloads: fastlb has neither, so they are
# taken (an argument list written for marathon-lb runs unchanged) and each one given logs one warning.
MLB_IGNORED: dict[str, str] = {
    "--haproxy-map": "vhosts and app ids are always a hash lookup",
    "--haproxy-config": "there is no HAProxy config file",
    "--command": "there is no reload command: tables are swapped in place",
    "--reload-interval": "there are no reloads to retry",
    "--max-reload-retries": "there are no reloads to retry",
    "--skip-validation": "every app is validated on its own, always",
    "--skip-config-cleanup": "a bad app is left out on its own, always",
    "--archive-versions": "there are no config files to archive",
    "--lru-cache-capacity": "the health and host name caches are sized by the apps",
}
_MLB_FLAGS = {"--haproxy-map", "--skip-validation", "--skip-config-cleanup"}  # the others take a value


def _mlb_ignored_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("marathon-lb's HAProxy flags, taken and ignored with a warning (docs/config.md)")
    for flag in MLB_IGNORED:
        names = [flag, "-c"] if flag == "--command" else [flag]
        dest = "ignored_" + flag[2:].replace("-", "_")
        if flag in _MLB_FLAGS:
            g.add_argument(*names, dest=dest, action="store_true", help=argparse.SUPPRESS)
        else:
            g.add_argument(*names, dest=dest, metavar="X", help=argparse.SUPPRESS)


def warn_ignored(args: argparse.Namespace) -> list[str]:
    """Logs one warning per marathon-lb flag of <args> that has no meaning in fastlb; returns the flags."""
    given = []
    for flag, reason in MLB_IGNORED.items():
        value = getattr(args, "ignored_" + flag[2:].replace("-", "_"), None)
        if value not in (None, False):
            given.append(flag)
            logs.event(logging.WARNING, logs.FLAG_IGNORED, flag=flag, reason=f"no meaning in fastlb: {reason}")
    return given


def _log_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, default_level: str) -> None:
    p.add_argument(
        "--log-level", default=default_level, type=_log_level, metavar="LEVEL",
        help="debug, info, warning, error or critical, in any case (marathon-lb's DEBUG, WARN... too)",
    )
    p.add_argument(
        "--log-format", metavar="FORMAT",
        help=f"Python logging format of each line (default {logs.DEFAULT_FORMAT.replace('%', '%%')!r})",
    )
    p.add_argument(
        "--syslog-socket", metavar="PATH",
        help="also send the log lines to syslog at this Unix socket (/dev/log); /dev/null: off (the default)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastlb", description="A load balancer for Marathon apps and static services.")
    p.add_argument("--version", action="version", version=f"fastlb {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,routes,check,demo}")

    run = sub.add_parser("run", help="serve")
    _provider_options(run)
    e = run.add_argument_group("engine and admin")
    e.add_argument("--workers", type=int, metavar="N", help="worker threads (default: the file's, else one per CPU)")
    e.add_argument("--admin", metavar="HOST:PORT", help="admin API address (default 127.0.0.1:9090)")
    e.add_argument(
        "--admin-token", metavar="TOKEN", help="token changing admin endpoints demand (env FASTLB_ADMIN_TOKEN)"
    )
    e.add_argument(
        "--drain-timeout", type=float, default=30.0, metavar="SECONDS",
        help="SIGTERM: longest wait for open connections",
    )
    e.add_argument(
        "--drain-delay", type=float, default=0.0, metavar="SECONDS",
        help="SIGTERM: /_health answers 503 at once, listeners close SECONDS later (health checks withdraw "
        "the node first), then connections drain (default 0)",
    )
    _log_options(e, "info")
    e.add_argument("--longhelp", action="help", help="the same as --help (marathon-lb's flag; docs/config.md)")
    e.add_argument(
        "--dry", "-d", action="store_true",
        help="print the routing table as JSON and exit, as `fastlb routes` (marathon-lb's --dry)",
    )
    e.add_argument(
        "--access-log", metavar="PATH",
        help="one JSON line per HTTP request, appended to PATH ('-': stdout); reopened on SIGHUP/SIGUSR1 "
        "(docs/logging.md). Overrides the static file's [log] access",
    )
    e.add_argument(
        "--cookie-secret-file", metavar="PATH",
        help="secret that keys sticky cookie values (env FASTLB_COOKIE_SECRET); give a fleet the same one. "
        "Without it a fixed key is used: values are still the same on every fastlb and across restarts "
        "and upgrades, but can be computed by anyone who knows a backend's identity",
    )
    e.add_argument(
        "--ssl-certs", metavar="P1,P2", action="append", default=[],
        help="TLS certificates of the https listener: PEM files (certificate, chain and key) or directories of "
        "*.pem; the first is the default one, SNI picks among them (docs/tls.md). Also HAPROXY_SSL_CERT, "
        "HAPROXY_SSL_CERT0..100 (PEM text). None at all: a self-signed one",
    )
    e.add_argument(
        "--tls-ticket-keys", metavar="FILE",
        help="session ticket keys shared with other fastlb nodes (HAProxy's tls-ticket-keys: base64 of 80 bytes "
        "per line; the last 3 open tickets, the one before the last seals); read again on SIGHUP. Default: "
        "random keys of this process, rotated hourly (docs/tls.md)",
    )
    u = run.add_argument_group("hot upgrade (docs/upgrade.md)")
    u.add_argument(
        "--upgrade-socket", metavar="PATH",
        help="Unix socket where a new fastlb may take the listening sockets over (off unless given)",
    )
    u.add_argument(
        "--takeover", metavar="PATH",
        help="take the listening sockets over from the fastlb whose --upgrade-socket is PATH; it then drains and exits",
    )

    routes = sub.add_parser("routes", help="print the routing table fastlb would serve, as JSON, and exit")
    _provider_options(routes)
    routes.add_argument("--pretty", action="store_true", help="indented JSON (still deterministic)")
    routes.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="longest wait for Marathon")
    _log_options(routes, "warning")

    check = sub.add_parser("check", help="validate a static file: exit 0, or 1 with one line per problem")
    check.add_argument("--config", required=True, metavar="FILE")

    sub.add_parser("demo", help="start the Marathon emulator, sample apps and fastlb, and say what to try")
    return p


class UsageError(Exception):
    pass


def _log_level(text: str) -> str:
    try:
        return logs.level_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def marathon_urls(values: Sequence[str]) -> tuple[str, ...]:
    """--marathon's URLs, in order: given after one flag, with the flag repeated, or comma-separated."""
    urls = [u.strip() for value in values for u in value.split(",")]
    return tuple(u for u in urls if u)


def marathon_args(args: argparse.Namespace) -> MarathonArgs | None:
    urls = marathon_urls(args.marathon)
    if not urls:
        if args.marathon:
            raise UsageError("--marathon: no URL given")
        return None
    for flag in ("http_port", "https_port", "appid_port"):
        value = getattr(args, flag)
        if not 0 <= value <= 65535:
            raise UsageError(f"--{flag.replace('_', '-')}: {value} is not a port (0 disables)")
    if config.parse_address(f"{args.bind_addr}:1") is None and config.parse_address(f"[{args.bind_addr}]:1") is None:
        raise UsageError(f"--bind-addr: {args.bind_addr!r} is not an IP address")
    if (args.min_serv_port_ip_per_task == 0) != (args.max_serv_port_ip_per_task == 0):
        raise UsageError("--min-serv-port-ip-per-task and --max-serv-port-ip-per-task are 0 together or not at all")
    if args.poll is not None and args.poll <= 0:
        raise UsageError("--poll: SECONDS must be above zero")
    return MarathonArgs(
        urls=urls,
        groups=tuple(args.group) or _MARATHON.groups,
        sse=args.poll is None,
        poll_interval=args.poll if args.poll is not None else _MARATHON.poll_interval,
        health_check=args.health_check,
        strict_mode=args.strict_mode,
        auth_credentials=args.auth_credentials,
        auth_credential_file=args.marathon_auth_credential_file,
        dcos_auth_credentials=args.dcos_auth_credentials,
        ca_cert=args.marathon_ca_cert,
        min_serv_port_ip_per_task=args.min_serv_port_ip_per_task,
        max_serv_port_ip_per_task=args.max_serv_port_ip_per_task,
        bind_addr=args.bind_addr,
        http_port=0 if args.dont_bind_http_https else args.http_port,
        https_port=0 if args.dont_bind_http_https else args.https_port,
        appid_port=args.appid_port,
        dont_bind_http_https=args.dont_bind_http_https,
        max_backoff=args.max_backoff,
        framework_name=framework_name_from(os.environ),
    )


def cmd_check(args: argparse.Namespace) -> int:
    problems = config.check(args.config)
    for line in problems:
        print(line)
    return 1 if problems else 0


async def _routes_table(args: argparse.Namespace) -> tuple[spec.RouteTable, list[str]]:
    from fastlb import merge  # noqa: PLC0415
    from fastlb.marathon.args import marathon_provider  # noqa: PLC0415

    parts: list[tuple[str, spec.RouteTable]] = []
    if args.config is not None or not args.marathon:
        loaded = config.load(args.config) if args.config is not None else config.load_default()
        parts.append(("static", loaded.table))
    m = marathon_args(args)
    if m is not None:
        try:
            provider = marathon_provider(m)
        except ImportError as e:
            raise UsageError(f"--marathon: this build has no Marathon provider ({e})") from None
        except ValueError as e:
            raise UsageError(f"--marathon: {e}") from None
        parts.append(("marathon", await _first_table(provider, args.timeout)))
    return merge.merge_tables(parts)


async def _first_table(provider, timeout: float) -> spec.RouteTable:  # type: ignore[no-untyped-def]
    """Follows <provider> until it hands over its first table (Marathon: after a full resync)."""
    tables: list[spec.RouteTable] = []
    got = asyncio.Event()

    def on_change(table: spec.RouteTable) -> None:
        tables.append(table)
        got.set()

    task = asyncio.create_task(provider.run(on_change, lambda backend_id, state: None))
    try:
        await asyncio.wait_for(got.wait(), timeout)
    except TimeoutError:
        raise UsageError(f"--marathon: no table within {timeout:g} s (is Marathon reachable?)") from None
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    return tables[0]


def setup_logs(args: argparse.Namespace) -> None:
    """Logging as --log-level, --log-format and --syslog-socket say; then the warnings of the flags ignored."""
    try:
        logs.setup(args.log_level, fmt=args.log_format, syslog_socket=args.syslog_socket)
    except ValueError as e:
        raise UsageError(f"--log-format: {e}") from None
    except OSError as e:
        raise UsageError(f"--syslog-socket: {args.syslog_socket}: {e.strerror or e}") from None
    warn_ignored(args)


def cmd_routes(args: argparse.Namespace) -> int:
    setup_logs(args)
    return print_routes(args, pretty=args.pretty, timeout=args.timeout)


def print_routes(args: argparse.Namespace, *, pretty: bool, timeout: float) -> int:
    """The table the providers of <args> give, printed as JSON (`fastlb routes`, `fastlb run --dry`)."""
    args.timeout = timeout
    try:
        table, conflicts = asyncio.run(_routes_table(args))
    except config.ConfigError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        return 1
    for line in conflicts:
        print(f"conflict: {line}", file=sys.stderr)
    data = spec.encode(table)
    if pretty:
        data = msgspec.json.format(data, indent=2)
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from fastlb import server  # noqa: PLC0415

    setup_logs(args)
    if args.dry:
        return print_routes(args, pretty=False, timeout=30.0)
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise UsageError("--workers: N must be within 1..1024")
    if args.drain_timeout < 0:
        raise UsageError("--drain-timeout: SECONDS must not be negative")
    if not 0 <= args.drain_delay <= 3600:
        raise UsageError("--drain-delay: SECONDS must be within 0..3600")
    if args.access_log is not None and not args.access_log.strip():
        raise UsageError("--access-log: give a file, or - for stdout")
    options = server.RunOptions(
        config_path=args.config,
        marathon=marathon_args(args),
        workers=args.workers,
        admin=args.admin,
        admin_token=args.admin_token,
        drain_timeout=args.drain_timeout,
        upgrade_socket=args.upgrade_socket,
        takeover=args.takeover,
        cookie_secret_file=args.cookie_secret_file,
        access_log=args.access_log,
        drain_delay=args.drain_delay,
        ssl_certs=tuple(p.strip() for value in args.ssl_certs for p in value.split(",") if p.strip()),
        tls_ticket_keys=args.tls_ticket_keys,
    )
    limits.raise_nofile()
    return server.run(options)


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo (the Marathon emulator, sample apps, fastlb) lives in fastlb.emulator.demo.
    if importlib.util.find_spec("fastlb.emulator.demo") is None:
        print("fastlb demo: this build has no demo (fastlb.emulator.demo is missing)", file=sys.stderr)
        return 2
    demo = importlib.import_module("fastlb.emulator.demo")
    return int(demo.main() or 0)


IMAGE_MODES = ("sse", "poll")


def image_argv(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """marathon-lb's image is started as ``sse [flags]`` or ``poll [flags]`` (poll every $POLL_INTERVAL
    seconds, 60 by default): the same words start ``fastlb run``. Any other argument list is unchanged."""
    argv = list(argv)
    if not argv or argv[0] not in IMAGE_MODES:
        return argv
    if argv[0] == "sse":
        return ["run", "--sse", *argv[1:]]
    return ["run", "--poll", environ.get("POLL_INTERVAL") or "60", *argv[1:]]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(image_argv(sys.argv[1:] if argv is None else argv))
    commands = {"run": cmd_run, "routes": cmd_routes, "check": cmd_check, "demo": cmd_demo}
    try:
        return commands[args.command](args)
    except UsageError as e:
        print(f"fastlb {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
