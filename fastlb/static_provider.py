"""The static file as a provider of routes (``fastlb.provider.Provider``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastlb import config, logs, spec
from fastlb.provider import OnBackendState, OnChange


class StaticProvider:
    """The static file (or the embedded default when <path> is None). The file is read once here, so
    that a bad file stops ``fastlb run`` before anything listens; ``resync`` (SIGHUP) re-reads it and
    keeps the last good table when the new one is wrong."""

    ready_at_start = True  # its table is published before anything starts (a bind error is fatal)

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.loaded = config.load(path) if path is not None else config.load_default()
        self.reloads = 0
        self.rejected = 0
        self.last_problems: list[str] = []
        self._on_change: OnChange | None = None

    def table(self) -> spec.RouteTable:
        return self.loaded.table

    def app_errors(self) -> list[str]:
        return []

    def status(self) -> dict[str, Any]:
        return {
            "file": self.path or "(embedded default)",
            "services": len(self.loaded.table.services),
            "reloads": self.reloads,
            "rejected": self.rejected,
            "last_problems": self.last_problems,
        }

    async def run(self, on_change: OnChange, on_backend_state: OnBackendState) -> None:
        self._on_change = on_change
        on_change(self.loaded.table)
        await asyncio.Event().wait()

    async def resync(self) -> bool:
        return self.reload()

    def reload(self) -> bool:
        """Re-reads the file; True when it was good (and handed on if it changed)."""
        if self.path is None:
            return True
        try:
            loaded = config.load(self.path)
        except config.ConfigError as e:
            self.rejected += 1
            self.last_problems = e.problems
            for problem in e.problems:
                logs.event(logging.ERROR, logs.CONFIG_REJECTED, file=self.path, problem=problem)
            logs.event(logging.WARNING, logs.CONFIG_REJECTED, file=self.path, keeping="last good table")
            return False
        self.reloads += 1
        self.last_problems = []
        if (
            loaded.engine != self.loaded.engine
            or loaded.admin_listen != self.loaded.admin_listen
            or loaded.access_log != self.loaded.access_log
        ):
            logs.event(
                logging.WARNING, logs.CONFIG_RELOAD, file=self.path,
                note="[engine], [admin] and [log] apply at start only",
            )
        self.loaded = config.StaticConfig(
            table=loaded.table, engine=self.loaded.engine, admin_listen=self.loaded.admin_listen,
            access_log=self.loaded.access_log, certs=loaded.certs, handshake_timeout_ms=loaded.handshake_timeout_ms,
        )
        logs.event(logging.INFO, logs.CONFIG_RELOAD, file=self.path, services=len(loaded.table.services))
        if self._on_change is not None:
            self._on_change(loaded.table)
        return True
