"""Smooth weighted round-robin (nginx's), per worker, over the backends' live state."""

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from .conftest import backend_ids

weights_st = st.lists(st.integers(1, 256), min_size=1, max_size=12)


def rr(weights, nworkers=1):
    return _testhooks._test_balancer("roundrobin", backend_ids(len(weights)), weights, nworkers)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_equal_weights_rotate(n):
    b = rr([5] * n)
    seq = [b.pick() for _ in range(4 * n + 3)]
    assert seq == [i % n for i in range(4 * n + 3)]
    for start in range(len(seq) - 2 * n + 1):  # any window of k*n picks holds each backend k times
        window = seq[start : start + 2 * n]
        assert all(window.count(i) == 2 for i in range(n))


def test_nginx_documented_sequence():
    """nginx's own example: weights a=5, b=1, c=1 give a a b a c a a."""
    b = rr([5, 1, 1])
    assert [b.pick() for _ in range(14)] == [0, 0, 1, 0, 2, 0, 0] * 2


@settings(max_examples=150, deadline=None)
@given(weights_st)
def test_every_window_of_a_full_cycle_honours_weights_exactly(weights):
    """The sequence has period sum(weights): any sum(weights) consecutive picks hold each backend exactly
    its weight times (a backend never runs ahead by a whole pick, so none can fall behind either)."""
    total = sum(weights)
    b = rr(weights)
    seq = [b.pick() for _ in range(2 * total)]
    assert seq[:total] == seq[total:]
    for start in range(0, total, max(1, total // 7)):
        window = seq[start : start + total]
        assert [window.count(i) for i in range(len(weights))] == weights


@settings(max_examples=150, deadline=None)
@given(weights_st)
def test_picks_are_spread_not_bunched(weights):
    """After k picks from a fresh start, backend i has been chosen at most ceil(k * w_i / W) times: its
    current value (k * w_i - W * count) never drops to -W, since only the largest value, at least W / n
    after the additions, gives W back. It never lags by two picks either (a measured bound: the worst
    seen over 20000 random sets of up to 12 backends is 1.48 picks; it grows slowly with n)."""
    total, n = sum(weights), len(weights)
    b = rr(weights)
    counts = [0] * n
    for k in range(1, total + 1):
        counts[b.pick()] += 1
        for j in range(n):
            assert counts[j] <= -(-k * weights[j] // total)
            assert counts[j] * total > k * weights[j] - 2 * total


def test_equal_share_can_repeat_at_the_cycle_boundary():
    """Smoothness is the bound above, not "never twice in a row": with weights 3, 2, 2 the cycle is
    a b c a b c a, so a is picked twice across the boundary although its share is under half."""
    b = rr([3, 2, 2])
    seq = [b.pick() for _ in range(14)]
    assert seq == [0, 1, 2, 0, 1, 2, 0] * 2


@pytest.mark.parametrize(
    "change",
    [dict(health="down"), dict(admin="drain"), dict(admin="maint"), dict(weight=0)],
)
def test_unavailable_backend_is_skipped_and_returns(change):
    b = rr([1, 1, 1, 1])
    b.set(2, **change)
    assert [b.pick() for _ in range(6)] == [0, 1, 3, 0, 1, 3]
    b.set(2, health="up", admin="ready", weight=1)
    seq = [b.pick() for _ in range(40)]
    assert all(seq.count(i) == 10 for i in range(4))


def test_excluded_backends_are_skipped():
    b = rr([1, 1, 1])
    assert b.pick(exclude=[0]) == 1
    assert b.pick(exclude=[1, 2]) == 0
    with pytest.raises(OSError) as e:
        b.pick(exclude=[0, 1, 2])
    assert e.value.errno == errno.EHOSTUNREACH


def test_nothing_available():
    b = rr([1, 1])
    b.set(0, health="down")
    b.set(1, admin="maint")
    with pytest.raises(OSError) as e:
        b.pick()
    assert e.value.errno == errno.EHOSTUNREACH
    b.set(1, admin="ready")
    assert b.pick() == 1


def test_live_weight_change_needs_no_rebuild():
    b = rr([1, 1])
    b.set(1, weight=3)
    seq = [b.pick() for _ in range(400)]
    assert abs(seq.count(1) - 300) <= 2


def test_workers_keep_their_own_rotation():
    b = rr([1, 1, 1], nworkers=2)
    seq0, seq1 = [], []
    for k in range(9):
        seq0.append(b.pick(worker=0))
        if k % 2:
            seq1.append(b.pick(worker=1))
    assert seq0 == [0, 1, 2] * 3
    assert seq1 == [0, 1, 2, 0]


def test_worker_out_of_range_is_rejected():
    b = rr([1, 1], nworkers=2)
    with pytest.raises(OSError) as e:
        b.pick(worker=2)
    assert e.value.errno == errno.EINVAL
