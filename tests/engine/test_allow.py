"""The tcp-mode source allow-list: a client from outside the service's allow_cidrs is closed at
accept, never reaches a backend, and is counted."""

from __future__ import annotations

import socket

import pytest

from fastlb import spec
from fastlb.emulator.backends import WhoAmI, wait_until

from .conftest import TIMEOUT, connect, recv_line, service, table
from .test_backends import _closed_by_proxy


def _only(*cidrs: str) -> spec.HttpOptions:
    return spec.HttpOptions(allow_cidrs=cidrs)


@pytest.mark.parametrize("cidrs", [("127.0.0.0/8",), ("10.0.0.0/8", "127.0.0.1/32"), ("127.1.2.3/1",)])
def test_a_client_in_the_list_is_served(dataplane, ports, cidrs):
    with WhoAmI("b") as be:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(table([service("s", [be.address], http=_only(*cidrs))], {front: "s"}))
        with connect(front) as c:
            assert recv_line(c) == b"b\n"
        assert dp.stats()["services"]["s"]["denied"] == 0


def test_a_client_outside_the_list_is_closed_and_counted(dataplane, ports):
    with WhoAmI("b") as be:
        dp = dataplane(workers=1)
        front, other = ports(), ports()
        services = [
            service("s", [be.address], http=_only("10.0.0.0/8", "::1/128")),
            service("open", [be.address]),
        ]
        dp.publish(table(services, {front: "s", other: "open"}))
        for _ in range(3):
            with connect(front) as c:
                assert _closed_by_proxy(c)
        with connect(other) as c:  # the list is the service's, not the listener's neighbours'
            assert recv_line(c) == b"b\n"
        st = dp.stats()
        assert st["services"]["s"]["denied"] == 3
        assert st["services"]["s"]["no_backend"] == 0
        assert st["listeners"][front]["refused"] == 3 and st["listeners"][front]["total"] == 3
        assert wait_until(lambda: be.accepted == 1)
        assert wait_until(lambda: dp.active_connections() == 0)


def test_ipv6_clients_match_ipv6_networks(dataplane):
    with WhoAmI("b") as be:
        dp = dataplane(workers=1)
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        front = f"[::1]:{probe.getsockname()[1]}"
        probe.close()
        dp.publish(table([service("s", [be.address], http=_only("::1/128"))], {front: "s"}))
        with socket.create_connection(("::1", int(front.rsplit(":", 1)[1])), timeout=TIMEOUT) as c:
            assert recv_line(c) == b"b\n"
        dp.publish(table([service("s", [be.address], http=_only("127.0.0.0/8", "fe80::/10"))], {front: "s"}))
        with socket.create_connection(("::1", int(front.rsplit(":", 1)[1])), timeout=TIMEOUT) as c:
            assert _closed_by_proxy(c)
        assert dp.stats()["services"]["s"]["denied"] == 1


def test_a_bad_network_is_refused_with_its_service(dataplane):
    dp = dataplane(workers=1)
    with pytest.raises(ValueError, match=r"service 's': allow_cidrs\[1\] 'nowhere'"):
        dp.publish(table([service("s", ["10.0.0.1:80"], http=_only("10.0.0.0/8", "nowhere"))], {}))
    assert dp.generation == 0
