"""Source: HAProxy's map-based hash of the client address over weighted slots."""

import errno
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from .conftest import backend_ids


def source(weights):
    return _testhooks._test_balancer("source", backend_ids(len(weights)), weights)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 256), min_size=1, max_size=40))
def test_map_holds_each_backend_by_weight(weights):
    """Backend i appears w'_i = w_i / g times (g: the weights' gcd), its copies evenly spread: copy j sits
    at (2j + 1) / 2w'_i of the way through, so two neighbours (also across the end of the map) are
    len / w'_i slots apart, give or take one slot per backend."""
    b = source(weights)
    m = b.map
    nonzero = [w for w in weights if w]
    if not nonzero:
        assert m == []
        return
    g = 0
    for w in nonzero:
        a, c = g, w
        while c:
            a, c = c, a % c
        g = a
    assert [m.count(i) for i in range(len(weights))] == [w // g for w in weights]
    n = sum(1 for w in weights if w)
    for i, w in enumerate(weights):
        where = [s for s, owner in enumerate(m) if owner == i]
        for a, c in zip(where, where[1:] + [where[0] + len(m)] if where else []):
            assert abs((c - a) - len(m) / (w // g)) <= n


def test_picks_follow_weights():
    weights = [1, 2, 3, 4]
    b = source(weights)
    keys = [_testhooks._test_balance_hash64(b"10.1.%d.%d" % (i >> 8, i & 255), 0) for i in range(40000)]
    picks = b.picks(keys)
    for i, w in enumerate(weights):
        assert abs(picks.count(i) - 4000 * w) <= 300
    assert picks == [b.map[k % len(b.map)] for k in keys]


def test_deterministic_and_scale_free():
    assert source([3, 1, 2]).map == source([3, 1, 2]).map
    assert source([30, 10, 20]).map == source([3, 1, 2]).map
    assert source([5, 5, 5]).map == [0, 1, 2]


def test_down_backend_moves_only_its_keys():
    b = source([1, 1, 1, 1, 1])
    rng = random.Random(3)
    keys = [rng.getrandbits(64) for _ in range(5000)]
    before = b.picks(keys)
    b.set(1, admin="maint")
    after = b.picks(keys)
    for k0, k1 in zip(before, after):
        assert k1 == k0 if k0 != 1 else k1 != 1
    spread = [after[j] for j in range(len(keys)) if before[j] == 1]
    assert all(spread.count(i) > len(spread) / 8 for i in (0, 2, 3, 4))


def test_excluded_then_nothing_left():
    b = source([1, 2])
    first = b.pick(99)
    assert b.pick(99, exclude=[first]) == 1 - first
    with pytest.raises(OSError) as e:
        b.pick(99, exclude=[0, 1])
    assert e.value.errno == errno.EHOSTUNREACH
