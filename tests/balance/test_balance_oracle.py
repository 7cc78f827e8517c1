"""Every algorithm gives exactly the oracle's answers (tests/balance/oracle.py), tables and picks."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from . import oracle
from .conftest import ids_strategy

weights_st = st.integers(0, 256)


@st.composite
def backends(draw, min_weight=0):
    ids = draw(ids_strategy)
    weights = draw(st.lists(st.integers(min_weight, 256), min_size=len(ids), max_size=len(ids)))
    return ids, weights


@settings(max_examples=60, deadline=None)
@given(backends())
def test_maglev_table_is_the_oracles(be):
    ids, weights = be
    b = _testhooks._test_balancer("maglev", ids, weights)
    assert b.m == oracle.maglev_size(len(ids))
    assert b.lookup == oracle.maglev_table(ids, weights)


@settings(max_examples=100, deadline=None)
@given(backends())
def test_source_map_is_the_oracles(be):
    ids, weights = be
    b = _testhooks._test_balancer("source", ids, weights)
    assert b.map == oracle.source_map(weights)


# A scenario: the backends, then a run of picks between which state changes as the control plane
# and the workers would change it.
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("pick"), st.integers(0, 2**64 - 1), st.lists(st.integers(0, 30), max_size=3)),
        st.tuples(st.just("weight"), st.integers(0, 30), st.integers(0, 256)),
        st.tuples(st.just("admin"), st.integers(0, 30), st.sampled_from(["ready", "drain", "maint"])),
        st.tuples(st.just("health"), st.integers(0, 30), st.sampled_from(["up", "down"])),
        st.tuples(st.just("active"), st.integers(0, 30), st.integers(-2, 1000)),
    ),
    max_size=120,
)


def run_scenario(algo, ids, weights, ops, pick_model):
    n = len(ids)
    b = _testhooks._test_balancer(algo, ids, weights)
    live_w, admin, health, active = list(weights), ["ready"] * n, ["up"] * n, [0] * n
    for op in ops:
        kind, i = op[0], op[1] % n if op[0] != "pick" else op[1]
        if kind == "weight":
            live_w[i] = op[2]
            b.set(i, weight=op[2])
        elif kind == "admin":
            admin[i] = op[2]
            b.set(i, admin=op[2])
        elif kind == "health":
            health[i] = op[2]
            b.set(i, health=op[2])
        elif kind == "active":
            active[i] = op[2]
            b.set(i, active=op[2])
        else:
            exclude = [e % n for e in op[2]]
            usable = {
                j for j in range(n)
                if live_w[j] > 0 and admin[j] == "ready" and health[j] == "up" and j not in exclude
            }
            want = pick_model(op[1], live_w, active, usable)
            try:
                got = b.pick(op[1], 0, exclude)
            except OSError as e:
                assert e.errno == 113  # EHOSTUNREACH
                got = None
            assert got == want


@settings(max_examples=80, deadline=None)
@given(backends(min_weight=1), ops_st)
def test_roundrobin_picks_are_the_oracles(be, ops):
    ids, weights = be
    model = oracle.SmoothRR(len(ids))
    run_scenario("roundrobin", ids, weights, ops, lambda key, w, active, usable: model.pick(w, usable))


@settings(max_examples=80, deadline=None)
@given(backends(min_weight=1), ops_st)
def test_leastconn_picks_are_the_oracles(be, ops):
    ids, weights = be
    model = oracle.LeastConn(len(ids))
    run_scenario("leastconn", ids, weights, ops, lambda key, w, active, usable: model.pick(w, active, usable))


@settings(max_examples=60, deadline=None)
@given(backends(), ops_st)
def test_maglev_picks_are_the_oracles(be, ops):
    ids, weights = be
    table = oracle.maglev_table(ids, weights)
    n = len(ids)

    def model(key, live_weights, active, usable):
        return oracle.hash_pick(table, n, key, usable)

    run_scenario("maglev", ids, weights, ops, model)


@settings(max_examples=80, deadline=None)
@given(backends(), ops_st)
def test_source_picks_are_the_oracles(be, ops):
    ids, weights = be
    smap = oracle.source_map(weights)
    n = len(ids)

    def model(key, live_weights, active, usable):
        return oracle.hash_pick(smap, n, key, usable)

    run_scenario("source", ids, weights, ops, model)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["roundrobin", "leastconn"]),
    st.lists(st.integers(1, 256), min_size=1, max_size=20),
    st.lists(st.integers(0, 6), max_size=200),
)
def test_workers_never_share_scratch(algo, weights, workers):
    """Seven workers picking in any interleaving each see the sequence a lone worker would."""
    n = len(weights)
    b = _testhooks._test_balancer(algo, [f"b{i:03d}" for i in range(n)], weights, nworkers=7)
    models = [oracle.SmoothRR(n) if algo == "roundrobin" else oracle.LeastConn(n) for _ in range(7)]
    usable = set(range(n))
    for w in workers:
        if algo == "roundrobin":
            want = models[w].pick(weights, usable)
        else:
            want = models[w].pick(weights, [0] * n, usable)
        assert b.pick(worker=w) == want


def test_workers_picking_at_once_keep_their_sequences():
    """Four threads pick at the same time, GIL released, one worker each: each sequence is the one a
    lone worker would see."""
    import threading

    def run(b, w, start, results):
        start.wait()
        results[w] = b.picks_nogil(20000, w)

    weights = [5, 1, 3, 2, 7, 1, 1, 4, 2]
    for algo in ("roundrobin", "leastconn"):
        b = _testhooks._test_balancer(algo, [f"b{i}" for i in range(len(weights))], weights, nworkers=4)
        results = [None] * 4
        start = threading.Barrier(4)
        threads = [threading.Thread(target=run, args=(b, w, start, results)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        model = oracle.SmoothRR(len(weights)) if algo == "roundrobin" else oracle.LeastConn(len(weights))
        usable = set(range(len(weights)))
        if algo == "roundrobin":
            want = [model.pick(weights, usable) for _ in range(20000)]
        else:
            want = [model.pick(weights, [0] * len(weights), usable) for _ in range(20000)]
        assert results == [want] * 4
