"""Structured logging: one line per event, ``<time> <LEVEL> <event> key=value ...``.

Events that operators grep for have fixed names (``BACKEND_UP``, ``BACKEND_DOWN``, ``SWAP``,
``MARATHON_RECONNECT``, ``APP_DISABLED`` ...); their fields are ``key=value`` pairs, values quoted
when they hold a space, a quote or an equals sign, so a line splits back into its fields.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import stat
import sys
from typing import Any

LOGGER = logging.getLogger("fastlb")

LEVELS = ("debug", "info", "warning", "error", "critical")
# Python's other names for them, which marathon-lb's --log-level takes (getattr(logging, level.upper())).
_ALIASES = {"warn": "warning", "fatal": "critical"}


def level_name(text: str) -> str:
    """A --log-level value in any case (``DEBUG``, ``debug``), Python's aliases ``WARN`` and ``FATAL``
    included, as one of LEVELS. Raises ValueError."""
    name = text.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in LEVELS:
        raise ValueError(f"{text!r} is not a log level ({', '.join(LEVELS)}, in any case)")
    return name

# The events this project logs, by name.
BACKEND_UP = "backend_up"
BACKEND_DOWN = "backend_down"
BACKEND_STATE = "backend_state"
BACKEND_WEIGHT = "backend_weight"
SWAP = "swap"
SWAP_FAILED = "swap_failed"
CONFIG_RELOAD = "config_reload"
CONFIG_REJECTED = "config_rejected"
TLS_SELF_SIGNED = "tls_self_signed"
TLS_REJECTED = "tls_rejected"
TLS_TICKET_KEYS = "tls_ticket_keys"  # the key file read (again): how many keys open tickets
MARATHON_RECONNECT = "marathon_reconnect"
APP_DISABLED = "app_disabled"
APP_ENABLED = "app_enabled"
ROUTE_CONFLICT = "route_conflict"
LISTENER_SKIPPED = "listener_skipped"
LISTENER_BOUND = "listener_bound"
SERVING = "serving"
WITHDRAWING = "withdrawing"
DRAINING = "draining"
STOPPED = "stopped"
NOFILE_RAISED = "nofile_raised"
ENGINE_SIZED = "engine_sized"
MAXCONN_OVER_LIMIT = "maxconn_over_limit"
FD_EXHAUSTED = "fd_exhausted"
FLAG_IGNORED = "flag_ignored"
NOTIFY_FAILED = "notify_failed"  # a datagram to systemd ($NOTIFY_SOCKET) could not go
PUBLISH_FAILED = "publish_failed"
PROVIDER_STOPPED = "provider_stopped"
RESYNC_FAILED = "resync_failed"
ACCESS_LOG_REOPEN_FAILED = "access_log_reopen_failed"
ADMIN_FAILED = "admin_failed"
START_FAILED = "start_failed"
UPGRADE_SOCKET = "upgrade_socket"
UPGRADE_SOCKET_FAILED = "upgrade_socket_failed"
UPGRADE_HANDED_OVER = "upgrade_handed_over"
UPGRADE_TAKEN_OVER = "upgrade_taken_over"
UPGRADE_ABANDONED = "upgrade_abandoned"
CALLBACK_FAILED = "callback_failed"
DNS_FAILED = "dns_failed"
APP_NOT_SERVED = "app_not_served"  # the Marathon build's own line, once per app and reason
APP_WARNING = "app_warning"  # a label accepted but not (fully) honoured, once per app and label
MARATHON_STREAM_OPEN = "marathon_stream_open"
MARATHON_STREAM_FAILED = "marathon_stream_failed"
MARATHON_EVENT_SKIPPED = "marathon_event_skipped"
MARATHON_BUILD_FAILED = "marathon_build_failed"
MARATHON_APP_REFETCH_FAILED = "marathon_app_refetch_failed"
MARATHON_DEPLOYMENTS_FAILED = "marathon_deployments_failed"


def _value(v: Any) -> str:
    text = str(v)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_fields(event: str, fields: dict[str, Any]) -> str:
    return " ".join([event] + [f"{k}={_value(v)}" for k, v in fields.items()])


def event(level: int, name: str, *, logger: logging.Logger = LOGGER, exc_info: bool = False, **fields: Any) -> None:
    """Logs one event line at <level> (a ``logging`` level) on <logger> (``fastlb``, or one of its
    children such as ``fastlb.marathon``), with the exception being handled when <exc_info>. Every log
    line of fastlb goes through here; <name> is one of the names above (tests/test_source.py holds it)."""
    if logger.isEnabledFor(level):
        logger.log(level, format_fields(name, fields), exc_info=exc_info)


DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# marathon-lb's --syslog-socket value that means "no syslog"
SYSLOG_OFF = "/dev/null"


def formatter(fmt: str | None) -> logging.Formatter:
    """A Formatter for <fmt> (a %-style logging format; None: DEFAULT_FORMAT). Raises ValueError when
    <fmt> names no field or formats no record."""
    record = logging.LogRecord("fastlb", logging.INFO, __file__, 0, "check", None, None)
    try:
        f = logging.Formatter(fmt or DEFAULT_FORMAT)
        f.format(record)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{fmt!r} does not format a log record ({e})") from None
    return f


def setup(
    level: str = "info", stream: Any = None, *, fmt: str | None = None, syslog_socket: str | None = None
) -> None:
    """Sends fastlb's log lines to <stream> (stderr) at <level> and above, formatted by <fmt>, and also
    to syslog at the Unix socket <syslog_socket> (None or SYSLOG_OFF: no syslog). Idempotent. Raises
    ValueError for a format that does not work, OSError for a syslog socket that does not answer."""
    form = formatter(fmt)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    handlers[0].setFormatter(form)
    if syslog_socket is not None and syslog_socket != SYSLOG_OFF:
        if not stat.S_ISSOCK(os.stat(syslog_socket).st_mode):
            raise OSError(errno.ENOTSOCK, "not a Unix socket")
        syslog = logging.handlers.SysLogHandler(address=syslog_socket)
        # syslog stamps its own time; the program name is the tag
        syslog.setFormatter(logging.Formatter("fastlb[%(process)d]: %(levelname)s %(message)s"))
        handlers.append(syslog)
    LOGGER.setLevel(getattr(logging, level_name(level).upper()))
    for h in list(LOGGER.handlers):
        LOGGER.removeHandler(h)
        h.close()
    for h in handlers:
        LOGGER.addHandler(h)
    LOGGER.propagate = False
