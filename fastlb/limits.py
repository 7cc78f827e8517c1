"""File descriptors: the open-files limit raised at start, the engine sized to fit it, and a line in
the log while the process runs out of them.

A proxied connection holds two descriptors (the client's socket and the backend's), a splice pipe
two more, an idle pooled HTTP backend connection one. The rest of the process needs some too: the
listeners (one socket per worker each), health checks, the Marathon stream, the admin API's clients,
the access log. ``fit_engine`` keeps a reserve for those and sizes the data plane to the remainder,
and the data plane never holds more than its share (``fd_max``): at it, its listeners wait unpolled
(clients stay in the kernel's backlog), so the admin API can still answer and no client is accepted
only to be closed for want of a backend socket.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import msgspec

from fastlb import config, logs, spec

DEFAULT_MAXCONN = spec.DEFAULT_MAXCONN  # the engine's maxconn when the file gives none and the limit allows it
RESERVE = 64  # descriptors kept for Python's side (health checks, Marathon, admin, logs) ...
RESERVE_SHARE = 32  # ... plus 1/32 of the limit
PER_WORKER = 10  # epoll, eventfd and room for eight listeners per worker thread
FD_LOG_INTERVAL_S = 10.0  # at most one fd_exhausted line per interval

NR_OPEN = "/proc/sys/fs/nr_open"


def nofile() -> int:
    """The soft open-files limit now."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_nofile() -> int:
    """Raises the soft open-files limit to the hard one (systemd's default soft limit is 1,024 under a
    hard one of 524,288), with a line in the log. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # Linux refuses a soft limit above fs.nr_open
        try:
            with open(NR_OPEN) as f:
                target = int(f.read())
        except (OSError, ValueError):
            return soft
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        logs.event(logging.WARNING, logs.NOFILE_RAISED, soft=soft, hard=hard, error=e)
        return soft
    logs.event(logging.INFO, logs.NOFILE_RAISED, soft=target, was=soft)
    return target


class Budget(msgspec.Struct, frozen=True):
    """How <nofile> descriptors are shared out (see the module's docstring)."""

    nofile: int
    fd_max: int  # the data plane's share
    pipe_max: int
    pool_max: int
    maxconn: int  # proxied connections that fit beside the pipes and the pool


def budget(limit: int, workers: int, pipe_max: int, pool_max: int) -> Budget:
    """The share-out of <limit> descriptors for an engine of <workers>: pipes and idle pooled
    connections are cut to an eighth of the data plane's share each, so that connections keep at
    least half of it."""
    fd_max = max(limit - RESERVE - limit // RESERVE_SHARE, limit // 2)
    room = max(fd_max - PER_WORKER * workers, fd_max // 2)
    pipes = min(pipe_max, room // 8)
    pool = min(pool_max, room // 8)
    maxconn = max((room - 2 * pipes - pool) // 2, 1)
    return Budget(nofile=limit, fd_max=fd_max, pipe_max=pipes, pool_max=pool, maxconn=maxconn)


def fit_engine(engine: config.EngineSettings, workers: int, limit: int | None = None) -> dict[str, Any]:
    """The DataPlane keyword arguments of <engine> fitted to the open-files limit (<limit>, else the
    soft limit now): maxconn 0 (the file gives none) becomes what fits, at most DEFAULT_MAXCONN; an
    explicit one above what fits is kept with a warning (past what fits, clients wait in the backlog).
    ``workers`` is left out."""
    b = budget(nofile() if limit is None else limit, workers, engine.pipe_max, engine.pool_max)
    settings = msgspec.structs.asdict(engine)
    settings.pop("workers")
    settings.update(pipe_max=b.pipe_max, pool_max=b.pool_max, fd_max=b.fd_max)
    if engine.maxconn == 0:
        settings["maxconn"] = min(DEFAULT_MAXCONN, b.maxconn)
    elif engine.maxconn > b.maxconn:
        logs.event(
            logging.WARNING, logs.MAXCONN_OVER_LIMIT, maxconn=engine.maxconn, fits=b.maxconn, nofile=b.nofile,
            hint="raise the open-files limit (LimitNOFILE=) or lower engine.maxconn",
        )
    logs.event(
        logging.INFO, logs.ENGINE_SIZED, nofile=b.nofile, maxconn=settings["maxconn"], fd_max=b.fd_max,
        pipe_max=b.pipe_max, pool_max=b.pool_max,
    )
    return settings


async def watch_fds(dataplane: Any, interval: float = FD_LOG_INTERVAL_S, poll: float = 1.0) -> None:
    """One ``fd_exhausted`` line as soon as the data plane meets the end of its descriptors (accepts
    that failed EMFILE/ENFILE, listeners held back at fd_max), then at most one per <interval>, each
    with the counts since the line before."""
    last = (0, 0)
    logged_at = -interval
    # The engine's counters only: a whole stats() snapshot walks every listener, service and backend
    # (tens of milliseconds at 10,000 apps, the control loop held meanwhile).
    read = getattr(dataplane, "engine_counters", dataplane.stats)
    while True:
        await asyncio.sleep(poll)
        stats = read()
        now = (int(stats.get("accept_emfile", 0)), int(stats.get("accepts_held", {}).get("fds", 0)))
        if now != last and time.monotonic() - logged_at >= interval:
            logs.event(
                logging.ERROR, logs.FD_EXHAUSTED, accept_emfile=now[0] - last[0], held=now[1] - last[1],
                active=stats.get("active"), fd_max=stats.get("fd_max"), nofile=nofile(),
                hint="clients wait in the listen backlog",
            )
            last, logged_at = now, time.monotonic()
