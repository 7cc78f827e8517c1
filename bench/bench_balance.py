"""Balancing micro-benchmarks (pytest-benchmark; not part of the test run).

    python3 -m pytest bench/bench_balance.py -q -p no:cacheprovider --benchmark-only

Each pick benchmark times a batch of 10000 picks through the test hook, so the figure includes the
Python loop around flb_balance_pick; compare algorithms and sizes with it, not absolute costs.
"""

import pytest

from fastlb import _testhooks

KEYS = [_testhooks._test_balance_hash64(b"%d" % i, 0) for i in range(10000)]


def ids(n):
    return sorted(f"10.0.{i // 250}.{i % 250 + 1}:8080" for i in range(n))


@pytest.mark.parametrize("n", [10, 100, 1000])
@pytest.mark.parametrize("algo", ["roundrobin", "leastconn", "maglev", "source"])
def test_pick(benchmark, algo, n):
    b = _testhooks._test_balancer(algo, ids(n), [1 + i % 5 for i in range(n)])
    benchmark(b.picks, KEYS)


@pytest.mark.parametrize("n", [10, 100, 1000, 5000])
def test_maglev_build(benchmark, n):
    names, weights = ids(n), [1 + i % 5 for i in range(n)]
    benchmark(_testhooks._test_balancer, "maglev", names, weights)


@pytest.mark.parametrize("n", [10, 1000])
def test_source_build(benchmark, n):
    names, weights = ids(n), [1 + i % 5 for i in range(n)]
    benchmark(_testhooks._test_balancer, "source", names, weights)
