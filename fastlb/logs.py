"""Structured logging: one line per event, ``<time> <LEVEL> <event> key=value ...``.

Events that operators grep for have fixed names (``BACKEND_UP``, ``BACKEND_DOWN``, ``SWAP``,
``MARATHON_RECONNECT``, ``APP_DISABLED`` ...); their fields are ``key=value`` pairs, values quoted
when they hold a space, a quote or an equals sign, so a line splits back into its fields.
"""

from __future__ import annotations

import logging
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
MARATHON_RECONNECT = "marathon_reconnect"
APP_DISABLED = "app_disabled"
APP_ENABLED = "app_enabled"
ROUTE_CONFLICT = "route_conflict"
LISTENER_SKIPPED = "listener_skipped"
LISTENER_BOUND = "listener_bound"
SERVING = "serving"
DRAINING = "draining"
STOPPED = "stopped"
NOFILE_RAISED = "nofile_raised"
ENGINE_SIZED = "engine_sized"
MAXCONN_OVER_LIMIT = "maxconn_over_limit"
FD_EXHAUSTED = "fd_exhausted"


def _value(v: Any) -> str:
    text = str(v)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_fields(event: str, fields: dict[str, Any]) -> str:
    return " ".join([event] + [f"{k}={_value(v)}" for k, v in fields.items()])


def event(level: int, name: str, **fields: Any) -> None:
    """Logs one event line at <level> (a ``logging`` level)."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, format_fields(name, fields))


def setup(level: str = "info", stream: Any = None) -> None:
    """Sends fastlb's log lines to <stream> (stderr) at <level> and above. Idempotent."""
    LOGGER.setLevel(getattr(logging, level_name(level).upper()))
    for h in list(LOGGER.handlers):
        LOGGER.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.propagate = False
