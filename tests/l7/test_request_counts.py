"""DataPlane.request_counts(), what the request-rate sampler reads once a second instead of a whole
stats() snapshot: the same numbers as stats.request_counts(stats()) for every service (0 for a
tcp-mode one) and backend (a backend two services share, once), with real traffic."""

from __future__ import annotations

from fastlb import spec
from fastlb.emulator.http_backends import HttpBackend
from fastlb.stats import request_counts

from .conftest import Reader, connect, get, http_service


def test_request_counts_agree_with_the_snapshot(dataplane, ports) -> None:
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane(workers=2)
        web, api, raw = ports(), ports(), ports()
        shared = spec.Backend(id="shared", address=b.address)
        table = spec.RouteTable(
            services=(
                http_service("web", [a.address]),
                spec.Service(name="api", mode="http", backends=(shared,)),
                spec.Service(name="raw", mode="tcp", backends=(shared,)),
            ),
            listeners=(spec.Listener(address=web, service="web"), spec.Listener(address=api, service="api"),
                       spec.Listener(address=raw, service="raw")),
        )
        dp.publish(table)
        for address, n in ((web, 3), (api, 2)):
            with connect(address) as s:
                for _ in range(n):
                    s.sendall(get())
                    assert Reader(s).response().status == 200
        counts = dp.request_counts()
        assert counts == request_counts(dp.stats())
        assert counts["s:web"] == 3 and counts["s:api"] == 2 and counts["s:raw"] == 0
        assert counts[f"b:{a.address}"] == 3 and counts["b:shared"] == 2
