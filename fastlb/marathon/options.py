"""What a build of the Marathon table takes and gives: the provider's options (marathon-lb's flags; each
default declared here once),
the lookups a build may ask (``BuildContext``), its result (``BuildResult``), and which groups the
options select. Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from fastlb import spec
from fastlb.marathon.models import App, Task


class MarathonOptions(msgspec.Struct, frozen=True):
    """The Marathon provider's options, named after marathon-lb's flags."""

    groups: tuple[str, ...] = ("external",)  # "*" = every app, including apps without a group
    strict_mode: bool = False
    health_check: bool = False  # require an alive Marathon result (last result kept per task)
    bind_addr: str = "0.0.0.0"
    http_port: int = 80  # 0 = disabled
    https_port: int = 443  # 0 = disabled; the shared TLS vhost listener
    appid_port: int = 9091  # 0 = disabled
    dont_bind_http_https: bool = False
    min_serv_port_ip_per_task: int = 10050
    max_serv_port_ip_per_task: int = 10100
    framework_name: str = ""  # app "/<name>" is skipped (the LB does not proxy itself)
    respect_readiness: bool = True


class FollowOptions(msgspec.Struct, frozen=True):
    """How the provider follows Marathon (marathon-lb's --sse/--poll and backoff flags): the defaults of
    ``MarathonProvider``'s keywords of these names, and of the flags."""

    sse: bool = True  # the event stream; False: poll /v2/apps every poll_interval
    poll_interval: float = 60.0  # seconds
    max_backoff: float = 300.0  # seconds: cap of the reconnect backoff


@dataclass(frozen=True)
class BuildContext:
    options: MarathonOptions
    resolve: Callable[[str], str | None]  # host name -> IPv4, from a cache; None: not (yet) known
    alive: Mapping[str, bool] = field(default_factory=dict)  # task id -> last Marathon health
    ready: Callable[[App, Task], bool] = lambda app, task: True  # readiness, decided by the state
    # False when ``ready(app, task)`` is True for every task of <app>, whatever else the state
    # holds: the answer must depend on the app object alone. Such an app's tasks skip ``ready``,
    # and a build that reuses the app need not ask again.
    gated: Callable[[App], bool] = lambda app: True


@dataclass(frozen=True)
class BuildResult:
    table: spec.RouteTable
    errors: dict[str, str]  # app id -> why it is not served
    warnings: dict[str, tuple[str, ...]]  # app id -> labels accepted but not (fully) honoured
    backends_by_task: Mapping[str, tuple[str, ...]]  # task id -> its backend ids in the table, sorted
    lookups: dict[str, str | None]  # every host name the build resolved, and the answer it used


def _selected(groups: tuple[str, ...], options: MarathonOptions) -> bool:
    return "*" in options.groups or not _group_set(options.groups).isdisjoint(groups)


@functools.lru_cache(maxsize=64)
def _group_set(groups: tuple[str, ...]) -> frozenset[str]:
    return frozenset(groups)
