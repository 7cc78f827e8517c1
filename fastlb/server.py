"""``fastlb run`` assembled: the providers and the data plane made from the options (``build``), then
served on one uvloop loop (``serve``, ``run``): the controller, the admin API, SIGHUP (re-read the
static file, resync Marathon), SIGTERM/SIGINT (stop accepting, drain up to a deadline, close what is
left, exit 0), the hot upgrade. The one module that wires the admin API to the controller, and the
only one of the load balancer's that imports the admin API, the hot upgrade and uvloop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

import msgspec

from fastlb import accesslog, certs, config, limits, logs, sdnotify, tickets
from fastlb.controller import Controller
from fastlb.marathon.args import MarathonArgs, marathon_provider
from fastlb.provider import Provider
from fastlb.static_provider import StaticProvider


class RunOptions(msgspec.Struct, frozen=True):
    config_path: str | None = None
    marathon: MarathonArgs | None = None
    workers: int | None = None  # None: the file's [engine] workers, else one per CPU
    admin: str | None = None  # None: the file's [admin] listen, else 127.0.0.1:9090
    admin_token: str | None = None
    drain_timeout: float = 30.0
    upgrade_socket: str | None = None  # hand the listening sockets to a new fastlb that asks here
    takeover: str | None = None  # take the listening sockets over from the fastlb serving here
    cookie_secret_file: str | None = None  # keys sticky cookie values; else $FASTLB_COOKIE_SECRET, else fixed
    access_log: str | None = None  # a file (appended to) or "-" (stdout); None: the file's [log] access, else off
    ssl_certs: tuple[str, ...] = ()  # --ssl-certs: PEM files or directories of *.pem, the first the default
    tls_ticket_keys: str | None = None  # --tls-ticket-keys: the session ticket key file; None: the file's, else random
    drain_delay: float = 0.0  # SIGTERM: /_health 503 this long before the listeners close


DEFAULT_ADMIN = "127.0.0.1:9090"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_dataplane_class() -> Any:
    from fastlb import _core  # noqa: PLC0415 (the extension is optional for `fastlb check`)

    cls = getattr(_core, "DataPlane", None)
    if cls is None:
        raise ImportError("this build of fastlb._core has no DataPlane")
    return cls


class StartError(Exception):
    """``fastlb run`` cannot start; the message says why (one line per problem)."""


COOKIE_SECRET_ENV = "FASTLB_COOKIE_SECRET"


def cookie_secret(path: str | None, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The key of the sticky cookie values: the bytes of <path> (whitespace around them cut), else
    $FASTLB_COOKIE_SECRET, else None (the data plane's fixed default key). Every fastlb given the same
    key gives a backend the same value. Raises StartError for an unreadable or empty secret."""
    if path is not None:
        try:
            with open(path, "rb") as f:
                secret = f.read().strip()
        except OSError as e:
            raise StartError(f"--cookie-secret-file: {path}: {e.strerror}") from None
        if not secret:
            raise StartError(f"--cookie-secret-file: {path} is empty")
        return secret
    value = environ.get(COOKIE_SECRET_ENV)
    if value is None:
        return None
    if not value.strip():
        raise StartError(f"{COOKIE_SECRET_ENV} is set but empty")
    return value.strip().encode()


def build(
    options: RunOptions, dataplane_class: Any = None, inherit: dict[str, list[int]] | None = None
) -> tuple[Controller, str, str | None]:
    """The controller for <options> (providers loaded, data plane made, nothing started), the admin
    address and token. <inherit>: listening sockets taken over from a running fastlb, by address.
    Raises StartError."""
    providers: dict[str, Provider] = {}
    static: StaticProvider | None = None
    if options.config_path is not None or options.marathon is None:
        try:
            static = StaticProvider(options.config_path)
        except config.ConfigError as e:
            raise StartError("\n".join(e.problems)) from None
        providers["static"] = static
    if options.marathon is not None:
        try:
            providers["marathon"] = marathon_provider(options.marathon)
        except ImportError as e:
            raise StartError(f"--marathon: this build has no Marathon provider ({e})") from None
        except ValueError as e:
            raise StartError(f"--marathon: {e}") from None

    engine = static.loaded.engine if static is not None else config.EngineSettings()
    workers = options.workers or engine.workers or cpu_count()
    admin = options.admin or (static.loaded.admin_listen if static is not None else None) or DEFAULT_ADMIN
    token = options.admin_token or os.environ.get("FASTLB_ADMIN_TOKEN") or None
    parsed = config.parse_address(admin)
    if parsed is None:
        raise StartError(f"--admin: {admin!r} is not ip:port")
    if not 1 <= parsed[1] <= 65535:
        raise StartError(f"--admin: port {parsed[1]} is not in 1..65535")
    if not parsed[0].is_loopback and token is None:
        raise StartError(
            f"--admin: {admin} is not a loopback address; give --admin-token or FASTLB_ADMIN_TOKEN "
            "so that nobody else can change routes"
        )
    if dataplane_class is None:
        try:
            dataplane_class = load_dataplane_class()
        except ImportError as e:
            raise StartError(f"the data plane is not available: {e}") from None
    settings = limits.fit_engine(engine, workers)
    if inherit:
        settings["inherit"] = inherit
    secret = cookie_secret(options.cookie_secret_file)
    try:
        given = certs.from_paths(options.ssl_certs, "--ssl-certs") + certs.from_environ(os.environ)
    except certs.CertError as e:
        raise StartError("\n".join(e.problems)) from None
    ticket_keys = options.tls_ticket_keys or (static.loaded.ticket_keys if static is not None else None)
    if options.tls_ticket_keys is not None:
        try:
            tickets.read_key_file(options.tls_ticket_keys)
        except tickets.KeyFileError as e:
            raise StartError(f"--tls-ticket-keys: {e}") from None
    if secret is not None:
        settings["cookie_key"] = secret
    log = _access_log(options, static)
    if log is not None:
        settings["access_log_fd"] = log.fd
    try:
        dataplane = dataplane_class(workers, **settings)
    except BaseException:
        if log is not None:
            log.close()
        raise
    controller = Controller(
        dataplane, providers, drain_timeout=options.drain_timeout, access_log=log, certificates=given,
        certificate_paths=options.ssl_certs, ticket_keys=ticket_keys,
    )
    return controller, admin, token


def _access_log(options: RunOptions, static: StaticProvider | None) -> accesslog.AccessLog | None:
    """The access log --access-log names, else the static file's [log] access; None: off."""
    flag = options.access_log is not None
    path = options.access_log if flag else static.loaded.access_log if static is not None else None
    if path is None:
        return None
    try:
        return accesslog.AccessLog(path)
    except OSError as e:
        raise StartError(f"{'--access-log' if flag else 'log.access'}: {path}: {e.strerror}") from None


async def serve(
    controller: Controller, admin_address: str, token: str | None, *, takeover: Any = None,
    upgrade_socket: str | None = None, drain_delay: float = 0.0,
) -> int:
    """Runs until SIGTERM/SIGINT (or until a new fastlb has taken the listeners over), then drains.
    Returns the exit status. <takeover>: a fastlb.upgrade.Takeover whose sockets the data plane was
    made with; the old process is told once this one serves."""
    from fastlb import admin as admin_api  # noqa: PLC0415 (aiohttp only where it serves)
    from fastlb import upgrade  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    try:
        controller.start()
    except OSError as e:
        logs.event(logging.ERROR, logs.SWAP_FAILED, error=e, at="start")
        controller.dataplane.stop()
        if takeover is not None:
            takeover.abandon()
        return 1
    if takeover is not None:
        while controller.serving is None:  # a Marathon-only start serves once its first table is in
            await asyncio.sleep(0.05)
        takeover.ready()
    ip, port = config.parse_address(admin_address) or (None, 0)
    try:
        # After a takeover the old process frees the admin address as it starts draining.
        attempts = 100 if takeover is not None else 1
        for attempt in range(attempts):
            try:
                runner = await admin_api.start(controller, str(ip), port, token)
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)
    except OSError as e:
        logs.event(logging.ERROR, logs.ADMIN_FAILED, address=admin_address, error=e)
        controller.request_stop()
        await controller.drain()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.request_stop)
    # SIGHUP, and SIGUSR1 as marathon-lb (its "reload"): reopen the access log, re-read, resync
    notifier = sdnotify.Notifier.from_environ()
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(_reload(controller, notifier)))
    server = None
    if upgrade_socket is not None:
        server = upgrade.UpgradeServer(upgrade_socket, controller.dataplane.listener_fds, controller.request_stop)
        try:
            await server.start()
        except OSError as e:
            logs.event(logging.ERROR, logs.UPGRADE_SOCKET_FAILED, path=upgrade_socket, error=e)
            server = None
    logs.event(
        logging.INFO, logs.SERVING, pid=os.getpid(), admin=admin_address, generation=controller.dataplane.generation,
        providers=",".join(controller.providers),
    )
    notifying = None
    if notifier is not None:
        notifying = asyncio.create_task(_notify(controller, notifier, takeover is not None), name="notify")
    await controller.wait_stop_requested()
    if notifier is not None and notifying is not None:
        notifying.cancel()
        notifier.stopping(f"draining, {controller.dataplane.active_connections()} connections open")
    loop.remove_signal_handler(signal.SIGHUP)
    loop.remove_signal_handler(signal.SIGUSR1)
    if server is not None:
        await server.close()
        if server.handed_over:
            await runner.cleanup()  # the new process takes the admin address over
    if server is None or not server.handed_over:  # else the new process holds the listeners: nothing to withdraw
        await _withdraw(controller, drain_delay)
    await controller.drain()
    await runner.cleanup()
    if notifier is not None:
        notifier.close()
    return 0


async def _withdraw(controller: Controller, delay: float) -> None:
    """--drain-delay: /_health answers 503 at once, so that health checks (Marathon's, an ECMP router's
    BGP speaker) take the node out, while the listeners still accept for <delay> seconds; then the
    drain starts. Another SIGTERM or SIGINT ends the wait."""
    if delay <= 0:
        return
    controller.draining = True
    logs.event(logging.INFO, logs.WITHDRAWING, health=503, listeners_close_in_s=delay)
    loop = asyncio.get_running_loop()
    again = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, again.set)
    try:
        await asyncio.wait_for(again.wait(), delay)
    except TimeoutError:
        pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.request_stop)


def _status(controller: Controller) -> str:
    raw = controller.dataplane.stats()
    return sdnotify.status_line(int(raw.get("generation", 0)), int(raw.get("active", 0)), int(raw.get("total", 0)))


async def _notify(controller: Controller, notifier: sdnotify.Notifier, took_over: bool) -> None:
    """The service manager's view: READY=1 once the first table serves (with MAINPID= after a hot
    upgrade, so that it follows this process), then STATUS= and WATCHDOG=1 every interval."""
    while controller.serving is None:
        await asyncio.sleep(0.05)
    notifier.ready(_status(controller), mainpid=os.getpid() if took_over else None)
    while True:
        await asyncio.sleep(notifier.interval)
        notifier.status(_status(controller))
        if notifier.watchdog_s:
            notifier.watchdog()


async def _reload(controller: Controller, notifier: sdnotify.Notifier | None) -> None:
    """SIGHUP and SIGUSR1: the resync, inside RELOADING=1 ... READY=1 for the service manager."""
    if notifier is not None:
        notifier.reloading()
    try:
        await controller.resync()
    finally:
        if notifier is not None and controller.serving is not None:  # else _notify says READY=1 later
            notifier.ready(_status(controller))


def run(options: RunOptions) -> int:
    """``fastlb run``: builds everything, serves on uvloop, returns the exit status."""
    from fastlb import upgrade  # noqa: PLC0415

    takeover = None
    inherit = None
    try:
        if options.takeover is not None:
            takeover = upgrade.Takeover(options.takeover)
            try:
                inherit = takeover.receive()
            except upgrade.UpgradeError as e:
                raise StartError(str(e)) from None
        controller_args = build(options, inherit=inherit)
    except StartError as e:
        for line in str(e).splitlines():
            logs.event(logging.ERROR, logs.START_FAILED, problem=line)
        if takeover is not None:
            takeover.abandon()
        for fds in (inherit or {}).values():
            for fd in fds:
                os.close(fd)
        return 1
    main = serve(
        *controller_args, takeover=takeover, upgrade_socket=options.upgrade_socket, drain_delay=options.drain_delay
    )
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
