"""Weighted leastconn: the fewest active connections relative to weight, equal loads taking turns."""

import errno
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from .conftest import backend_ids


def lc(weights, nworkers=1):
    return _testhooks._test_balancer("leastconn", backend_ids(len(weights)), weights, nworkers)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 256), st.integers(0, 10_000)), min_size=1, max_size=16),
    st.integers(0, 40),
)
def test_pick_has_the_least_load(backends, warmup):
    """The pick minimises (active + 1) / weight, the load the backend would carry with this connection;
    among equal loads, the first at or after the worker's rotation offset."""
    weights = [w for w, _ in backends]
    b = lc(weights)
    for _ in range(warmup):  # move the rotation offset somewhere
        b.pick()
    for i, (_, active) in enumerate(backends):
        b.set(i, active=active)
    got = b.pick()
    load = [Fraction(a + 1, w) for w, a in backends]
    assert load[got] == min(load)


def test_equal_loads_take_turns():
    b = lc([1, 1, 1, 1])
    assert [b.pick() for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    b.set(1, active=5)
    b.set(3, active=5)
    assert [b.pick() for _ in range(4)] == [0, 2, 0, 2]


def test_connections_spread_by_weight():
    """Opening connections one after another, counting each as the engine does, fills backends in
    proportion to weight: each within one connection of its share."""
    weights = [1, 2, 3, 10]
    b = lc(weights)
    active = [0] * 4
    for _ in range(1600):
        i = b.pick()
        active[i] += 1
        b.set(i, active=active[i])
    assert all(abs(active[i] - 100 * weights[i]) <= 1 for i in range(4))


def test_churn_keeps_equal_backends_level():
    """With connections opening and closing at random, every new connection goes to a backend with the
    fewest open connections."""
    rng = random.Random(11)
    b = lc([1] * 5)
    active = [0] * 5
    for _ in range(2000):
        if rng.random() < 0.45 and sum(active):
            i = rng.choice([j for j in range(5) if active[j]])
            active[i] -= 1
        else:
            i = b.pick()
            assert active[i] == min(active)
            active[i] += 1
        b.set(i, active=active[i])


def test_negative_count_reads_as_idle():
    b = lc([1, 1])
    b.set(0, active=-3)
    b.set(1, active=0)
    assert b.pick() == 0
    assert b.pick() == 1  # equal loads (both idle): the rotation moves on


@pytest.mark.parametrize(
    "change", [dict(health="down"), dict(admin="drain"), dict(admin="maint"), dict(weight=0)]
)
def test_unavailable_backend_is_skipped(change):
    b = lc([1, 1, 1])
    b.set(0, **change)
    assert {b.pick() for _ in range(10)} == {1, 2}


def test_excluded_and_nothing_left():
    b = lc([1, 1, 1])
    b.set(0, active=0)
    b.set(1, active=9)
    b.set(2, active=9)
    assert b.pick(exclude=[0]) in (1, 2)
    with pytest.raises(OSError) as e:
        b.pick(exclude=[0, 1, 2])
    assert e.value.errno == errno.EHOSTUNREACH
    b.set(1, health="down")
    b.set(2, admin="drain")
    with pytest.raises(OSError) as e:
        b.pick(exclude=[0])
    assert e.value.errno == errno.EHOSTUNREACH


def test_workers_rotate_independently():
    b = lc([1, 1, 1], nworkers=3)
    assert [b.pick(worker=0) for _ in range(2)] == [0, 1]
    assert b.pick(worker=2) == 0
    assert b.pick(worker=0) == 2
    with pytest.raises(OSError) as e:
        b.pick(worker=3)
    assert e.value.errno == errno.EINVAL
