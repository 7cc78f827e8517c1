"""Publishing large tables: state keyed by name and id survives, services handed over again unchanged
are not checked again yet still set their backends' state, and checks across services still run."""

from __future__ import annotations

import pytest

from fastlb import spec
from fastlb.emulator.backends import WhoAmI

from .conftest import connect, recv_line, service, table

N = 3000


def _services(n: int, weight: int = 1) -> list[spec.Service]:
    return [
        spec.Service(
            name=f"app{i}",
            backends=tuple(
                spec.Backend(id=f"app{i}.t{j}", address=f"10.1.{i % 250}.{j + 1}:{8000 + i}", weight=weight)
                for j in range(3)
            ),
        )
        for i in range(n)
    ]


def test_a_large_table_keeps_counters_by_name_across_swaps(dataplane, ports):
    with WhoAmI("last") as be:
        dp = dataplane(workers=1)
        front = ports()
        last = service(f"app{N}", [be.address])
        dp.publish(table([*_services(N), last], {front: f"app{N}"}))
        for _ in range(3):
            with connect(front) as c:
                assert recv_line(c) == b"last\n"
        # A table rebuilt from scratch (new objects, same names and ids) keeps every counter.
        dp.publish(table([*_services(N, weight=2), service(f"app{N}", [be.address])], {front: f"app{N}"}))
        st = dp.stats()
        assert len(st["services"]) == N + 1
        assert len(st["backends"]) == 3 * N + 1
        assert st["services"][f"app{N}"]["total"] == 3
        assert st["backends"][be.address]["total"] == 3
        assert st["backends"]["app7.t2"]["weight"] == 2
        assert st["backends"]["app7.t2"]["address"] == "10.1.7.3:8007"


def test_republishing_the_same_objects_sets_backend_state_again(dataplane):
    dp = dataplane(workers=1)
    services = _services(50)
    t = table(services, {})
    dp.publish(t)
    assert dp.set_backend_weight("app3.t1", 200)
    assert dp.set_backend_state("app4.t0", "drain")
    dp.publish(t)  # the very same Service objects: the table's state wins again
    st = dp.stats()["backends"]
    assert st["app3.t1"]["weight"] == 1
    assert st["app4.t0"]["state"] == "ready"
    assert dp.stats()["generation"] == 2


def test_checks_across_services_run_for_services_seen_before(dataplane):
    dp = dataplane(workers=1)
    a = service("a", [spec.Backend(id="shared", address="10.0.0.1:80")])
    b = service("b", [spec.Backend(id="shared", address="10.0.0.2:80")])
    dp.publish(table([a], {}))
    dp.publish(table([b], {}))
    with pytest.raises(ValueError, match="'shared' names two addresses"):
        dp.publish(table([a, b], {}))
    with pytest.raises(ValueError, match="service 'a' is defined twice"):
        dp.publish(table([a, a], {}))
    # Nothing was published by the refused tables.
    assert dp.stats()["generation"] == 2
    assert dp.stats()["backends"]["shared"]["address"] == "10.0.0.2:80"


def test_a_bad_backend_is_named_with_its_service(dataplane):
    dp = dataplane(workers=1)
    bad = service("s", [spec.Backend(id="x", address="nowhere:80")])
    with pytest.raises(ValueError, match="service 's' backend 'x' address 'nowhere:80'"):
        dp.publish(table([bad], {}))
    heavy = service("s", [spec.Backend(id="x", address="10.0.0.1:80", weight=257)])
    with pytest.raises(ValueError, match="weight 257 is not in 0..256"):
        dp.publish(table([heavy], {}))
    assert dp.stats()["generation"] == 0
