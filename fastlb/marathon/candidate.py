"""A service as one of the two models (marathon-lb's, Traefik's) proposes it, before the build settles
conflicts and drops empty services; and ``_AppError``, which leaves an app out whole. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from fastlb import spec
from fastlb.marathon.tasks import join_address

# How vhost routes sort: (-route weight, the candidate's order, the host's index in its candidate).
_RouteKey = tuple[int, tuple, int]


@dataclass(slots=True)
class _Candidate:
    """A service before conflicts are resolved and empty services dropped."""

    owner: str  # the app id errors are reported under
    members: tuple[str, ...]
    order: tuple  # sort key: (app id, port) or (app id, segment)
    service: spec.Service
    listen: str | None  # address of its own listener, if any
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    route_weight: int = 0
    sni_hosts: tuple[str, ...] = ()  # passthrough vhosts (FASTLB_{n}_TLS=passthrough): routed by SNI
    # What the table takes from this candidate, made on first use: a candidate the memo hands to
    # the next build brings them along, so an unchanged app costs that build no new objects.
    _listener: spec.Listener | None = None
    _with_app_id: spec.Service | None = None
    _routes: list[tuple[_RouteKey, spec.HttpRoute]] | None = None
    _group_tasks: dict[str, tuple[str, ...]] | None = None  # on a group's first candidate

    def listener(self) -> spec.Listener:
        if self._listener is None:
            assert self.listen is not None
            self._listener = spec.Listener(
                address=self.listen, kind="service", service=self.service.name, tls=self.service.tls is not None
            )
        return self._listener

    def with_app_id(self) -> spec.Service:
        """The service carrying the app-id rule (marathon-lb §3.12)."""
        if self._with_app_id is None:
            self._with_app_id = msgspec.structs.replace(self.service, app_id=self.order[0])
        return self._with_app_id

    def routes(self) -> list[tuple[_RouteKey, spec.HttpRoute]]:
        """(sort key, route) per vhost: by weight, descending, then as candidates sort."""
        if self._routes is None:
            name, weight, paths = self.service.name, self.route_weight, self.paths
            self._routes = [
                ((-weight, self.order, i), spec.HttpRoute(host=h, service=name, paths=paths, weight=weight))
                for i, h in enumerate(self.hosts)
            ]
        return self._routes


    def sni_routes(self) -> list[spec.SniRoute]:
        return [spec.SniRoute(host=h, service=self.service.name) for h in self.sni_hosts]


class _AppError(Exception):
    pass


def _bind(addr: str, port: int) -> str:
    return join_address(addr, port)
