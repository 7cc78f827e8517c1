"""Maglev: table size, balance, weights, determinism, and how little moves when backends change."""

import errno
import hashlib
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from . import oracle
from .conftest import backend_ids, ids_strategy


def maglev(ids, weights):
    return _testhooks._test_balancer("maglev", ids, weights)


def slot_counts(b):
    counts = Counter(b.lookup)
    return [counts[i] for i in range(b.n)]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 10, 16, 17, 100, 1000])
def test_table_size(n):
    """m is prime, >= 101 slots per backend and >= FLB_MAGLEV_MIN, sized for n rounded up to a power of two
    so that it stays put while the backend count moves within [2^k + 1, 2^(k+1)]."""
    b = maglev(backend_ids(n), [1] * n)
    m = b.m
    assert oracle.next_prime(m) == m
    assert m >= 101 * n and m >= 307
    pow2 = 1 << max(n - 1, 0).bit_length()
    assert m == oracle.next_prime(max(307, 101 * pow2))
    if n > 2:
        lower = pow2 // 2 + 1
        assert maglev(backend_ids(lower), [1] * lower).m == m


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32))
def test_equal_weights_differ_by_at_most_one_slot(n, salt):
    rng = random.Random(salt)
    ids = sorted(rng.sample(backend_ids(2 * n, prefix=f"10.{salt % 200}."), n))
    counts = slot_counts(maglev(ids, [rng.randint(1, 256)] * n))
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == oracle.maglev_size(n)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 256), min_size=1, max_size=64))
def test_slots_follow_weights(weights):
    """Backend i's slots are within 3 + share_i / 101 of its exact share m * w_i / W. Each backend takes
    floor(r * w_i / wmax) slots after r rounds, the last round partial; summing over backends bounds the
    error by 1 + w_i / wmax + (n + W / wmax) * w_i / W, and w_i * n / W <= share_i / 101 since m >= 101 n.
    In relative terms: within about 1% plus 3 slots."""
    n = len(weights)
    b = maglev(backend_ids(n), weights)
    counts, total = slot_counts(b), sum(weights)
    if total == 0:
        assert b.lookup == [None] * b.m
        return
    for i, w in enumerate(weights):
        share = b.m * w / total
        assert abs(counts[i] - share) <= 3 + share / 101, (i, counts[i], share)
        if w == 0:
            assert counts[i] == 0


def test_weight_two_to_one():
    counts = slot_counts(maglev(backend_ids(3), [2, 1, 1]))
    assert abs(counts[0] - 2 * counts[1]) <= 2 and abs(counts[1] - counts[2]) <= 1


@settings(max_examples=30, deadline=None)
@given(ids_strategy, st.randoms(use_true_random=False))
def test_same_input_same_table_and_the_caller_sorts(ids, rng):
    weights = [rng.randint(1, 256) for _ in ids]
    table = maglev(ids, weights).lookup
    assert maglev(ids, weights).lookup == table
    pairs = list(zip(ids, weights))
    rng.shuffle(pairs)
    if [i for i, _ in pairs] != ids:
        # The C sorts nothing: an unsorted list is refused, not quietly reordered.
        with pytest.raises(OSError) as e:
            maglev([i for i, _ in pairs], [w for _, w in pairs])
        assert e.value.errno == errno.EINVAL
    pairs.sort()
    assert maglev([i for i, _ in pairs], [w for _, w in pairs]).lookup == table


def test_every_process_builds_the_same_table():
    """A fleet agrees: another interpreter (another hash seed) builds the identical table, and the table
    for a fixed input is pinned, so a change of hash or population is seen here first."""
    code = (
        "from fastlb import _testhooks; import hashlib;"
        "ids = sorted('10.1.%d.%d:31%03d' % (i // 50, i % 50, i) for i in range(37));"
        "b = _testhooks._test_balancer('maglev', ids, [1 + i % 5 for i in range(37)]);"
        "print(b.m, hashlib.sha256(repr(b.lookup).encode()).hexdigest())"
    )
    ids = sorted("10.1.%d.%d:31%03d" % (i // 50, i % 50, i) for i in range(37))
    b = maglev(ids, [1 + i % 5 for i in range(37)])
    root = os.path.dirname(os.path.dirname(_testhooks.__file__))
    here = f"{b.m} {hashlib.sha256(repr(b.lookup).encode()).hexdigest()}"
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": root},
    ).stdout.strip()
    assert here == there
    assert here == PINNED_TABLE


PINNED_TABLE = "6469 7a72edb0e75cfc67de0533f2335b8f8e356a446593cb3444b2a54e0353407a25"


def disruption(ids, weights, k):
    """Slots that change owner, beyond those of backend k, when k is removed and the table rebuilt."""
    full = maglev(ids, weights).lookup
    rest = maglev(ids[:k] + ids[k + 1 :], weights[:k] + weights[k + 1 :]).lookup
    assert len(full) == len(rest)
    renumbered = [i if i < k else i + 1 for i in rest]
    moved = sum(1 for s, owner in enumerate(full) if owner != k and owner != renumbered[s])
    return moved / len(full), full.count(k) / len(full)


def test_removing_a_backend_moves_little_else():
    """Removing one of n + 1 backends (same table size) moves its own slots, plus a few others: the freed
    claims reshuffle the filling. Measured over 6000 random removals (10 to 100 backends, equal or random
    weights): 2% of the table on average, more than 4% for 0.7% of removals, more than 8% for 0.07%; 13%
    at worst in 8000 more among 10 to 15 weighted backends. Here, 80 fixed random removals: each under
    16%, the mean under 3.5%, at most 4 above 5%."""
    extras = []
    for salt in range(80):
        rng = random.Random(salt)
        n = rng.choice([10, 12, 15, 20, 30, 60, 100])
        ids = sorted(rng.sample(backend_ids(400, prefix=f"10.{salt}."), n + 1))
        weights = [rng.randint(1, 256) if salt % 2 else 1 for _ in ids]
        extras.append(disruption(ids, weights, rng.randrange(n + 1))[0])
    assert max(extras) <= 0.16
    assert sum(extras) / len(extras) <= 0.035
    assert sum(1 for e in extras if e > 0.05) <= 4


def test_adding_a_backend_takes_its_share():
    """The newcomer takes about m / (n + 1) slots, from every other backend alike."""
    ids = backend_ids(25)
    new, old = ids[12], ids[:12] + ids[13:]
    before = maglev(old, [1] * 24).lookup
    after = maglev(ids, [1] * 25).lookup
    m = len(after)
    assert after.count(12) in (m // 25, m // 25 + 1)
    moved_elsewhere = sum(
        1 for s in range(m) if after[s] != 12 and after[s] != (before[s] if before[s] < 12 else before[s] + 1)
    )
    assert moved_elsewhere <= 0.08 * m
    assert new not in old


def test_a_down_backend_moves_only_its_own_keys():
    """Health needs no rebuild: a down backend's keys go elsewhere, spread by the others' shares, and
    every other key stays where it was."""
    n = 8
    b = maglev(backend_ids(n), [1, 1, 1, 1, 2, 2, 4, 4])
    keys = [_testhooks._test_balance_hash64(b"client-%d" % i, 0) for i in range(20000)]
    before = b.picks(keys)
    assert before == [b.lookup[k % b.m] for k in keys]
    b.set(6, health="down")
    after = b.picks(keys)
    moved_to = [0] * n
    for k0, k1 in zip(before, after):
        if k0 == 6:
            assert k1 != 6
            moved_to[k1] += 1
        else:
            assert k1 == k0
    moved = sum(moved_to)
    expect = [1, 1, 1, 1, 2, 2, 0, 4]
    for i in range(n):
        assert abs(moved_to[i] - moved * expect[i] / 12) <= 0.25 * moved * expect[i] / 12 + 20
    b.set(6, health="up")
    assert b.picks(keys) == before


def test_excluded_then_nothing_left():
    b = maglev(backend_ids(3), [1, 1, 1])
    key = 123456789
    first = b.pick(key)
    second = b.pick(key, exclude=[first])
    assert second != first
    third = b.pick(key, exclude=[first, second])
    assert third not in (first, second)
    with pytest.raises(OSError) as e:
        b.pick(key, exclude=[0, 1, 2])
    assert e.value.errno == errno.EHOSTUNREACH


def test_weight_zero_at_build_takes_no_slot():
    b = maglev(backend_ids(3), [0, 1, 1])
    assert 0 not in b.lookup
    empty = maglev(backend_ids(3), [0, 0, 0])
    assert empty.lookup == [None] * empty.m
    with pytest.raises(OSError) as e:
        empty.pick(7)
    assert e.value.errno == errno.EHOSTUNREACH
    # A weight raised since the build makes the backend available; the fallback scan finds it.
    empty.set(2, weight=5)
    assert empty.pick(7) == 2
