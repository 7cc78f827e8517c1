"""flb_balance_build / flb_balance_free: what a build accepts, and the rule every pick shares."""

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from .conftest import backend_ids

ALGOS = ["roundrobin", "leastconn", "maglev", "source"]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "ids, weights",
    [
        (["b", "a"], [1, 1]),  # not sorted: the caller sorts
        (["a", "a"], [1, 1]),  # one identity twice
        (["a", "b"], [1, 257]),  # weights are 0..256
    ],
)
def test_bad_input_is_refused(algo, ids, weights):
    with pytest.raises(OSError) as e:
        _testhooks._test_balancer(algo, ids, weights)
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("algo", ["roundrobin", "leastconn"])
def test_per_worker_algorithms_need_a_worker(algo):
    with pytest.raises(OSError) as e:
        _testhooks._test_balancer(algo, ["a"], [1], nworkers=0)
    assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("algo", ["maglev", "source"])
def test_hash_algorithms_need_no_worker_scratch(algo):
    assert _testhooks._test_balancer(algo, ["a"], [1], nworkers=0).pick(5, worker=7) == 0


@pytest.mark.parametrize("algo", ALGOS)
def test_no_backends(algo):
    b = _testhooks._test_balancer(algo, [], [])
    with pytest.raises(OSError) as e:
        b.pick(1)
    assert e.value.errno == errno.EHOSTUNREACH


def test_identities_sort_bytewise_like_python_strings():
    """UTF-8 byte order is code-point order, so Python's sorted() is the order the C checks."""
    ids = sorted(["z", "é", "ä:1", "\u3042", "A", "a"])
    _testhooks._test_balancer("maglev", ids, [1] * len(ids))


@pytest.mark.parametrize("algo", ALGOS)
def test_free_and_build_again(algo):
    b = _testhooks._test_balancer(algo, backend_ids(5), [1, 2, 3, 4, 5], nworkers=2)
    first = [b.pick(k) for k in range(20)]
    b.set(0, weight=9)
    for _ in range(3):
        b.rebuild(algo, nworkers=2)
    assert b.static_weight == [9, 2, 3, 4, 5]
    b.set(0, weight=1)
    b.rebuild(algo, nworkers=2)
    assert [b.pick(k) for k in range(20)] == first


@pytest.mark.parametrize("algo", ["maglev", "source"])
def test_tables_come_from_weights_at_build(algo):
    """A live weight change leaves the hash tables alone (a rebuild applies it); only 0 takes a backend
    out."""
    b = _testhooks._test_balancer(algo, backend_ids(4), [1, 1, 1, 1])
    keys = list(range(0, 10**6, 997))
    before = b.picks(keys)
    b.set(2, weight=200)
    assert b.picks(keys) == before
    b.set(2, weight=0)
    assert 2 not in b.picks(keys)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ALGOS),
    st.lists(
        st.tuples(
            st.sampled_from(["ready", "drain", "maint"]),
            st.sampled_from(["up", "down"]),
            st.integers(0, 3),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 2**64 - 1),
)
def test_pick_fails_exactly_when_nothing_is_usable(algo, states, key):
    """For every algorithm: the pick is a backend that is available and not excluded, and it fails with
    EHOSTUNREACH only when there is none; excluded backends are never a last resort."""
    n = len(states)
    b = _testhooks._test_balancer(algo, backend_ids(n), [1] * n)
    exclude = [i for i, (_, _, _, ex) in enumerate(states) if ex]
    usable = set()
    for i, (admin, health, weight, ex) in enumerate(states):
        b.set(i, admin=admin, health=health, weight=weight)
        if admin == "ready" and health == "up" and weight and not ex:
            usable.add(i)
        assert b.available(i) == (admin == "ready" and health == "up" and weight > 0)
    if usable:
        assert b.pick(key, exclude=exclude) in usable
    else:
        with pytest.raises(OSError) as e:
            b.pick(key, exclude=exclude)
        assert e.value.errno == errno.EHOSTUNREACH
