"""flb_hash64 (SipHash-2-4) and flb_next_prime."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import _testhooks

from . import oracle

# Seed whose key is the SipHash paper's 00 01 .. 0f (k1 = seed ^ 0x0808080808080808).
PAPER_SEED = 0x0706050403020100

# The reference SipHash-2-4 outputs (little-endian bytes) for the messages 00, 00 01, .. 00 .. 3e under
# that key, as published with the algorithm (and as OpenSSL's SIPHASH MAC computes them).
PAPER_VECTORS = [
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785",
    "b7877127e09427cf", "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab",
    "6224939a79f5f593", "b0e4a90bdf82009e", "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7", "e545be4961ca29a1",
    "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8",
    "94af49f6c650adb8", "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f",
    "a5c91da7acaa4dde", "716595876650a2a6", "28ef495c53a387ad", "42c341d8fa92d832",
    "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012", "ae97a10fd434e015",
    "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4",
    "f21df2e41d4535f9", "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0",
    "51a9cb9ecba312e6", "96afadfc2ce666c7", "72fe52975a4364ee", "5a1645b276d592a1",
    "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f", "9924a43cc1315724",
    "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
]


def test_siphash_paper_vectors():
    for i, want in enumerate(PAPER_VECTORS):
        got = _testhooks._test_balance_hash64(bytes(range(i)), PAPER_SEED)
        assert got.to_bytes(8, "little").hex() == want, i


def test_pinned_fastlb_values():
    """Values fleets depend on (Maglev permutations): a change here moves every Maglev key."""
    assert _testhooks._test_balance_hash64(b"10.0.0.1:8080", 0) == 0x79014C5B61BBE7A5
    assert _testhooks._test_balance_hash64(b"10.0.0.1:8080", oracle.SEED_OFFSET) == 0x75635F5703EF3AF9
    assert (
        _testhooks._test_balance_hash64(b"app.1f2e3d4c-0000-11ef-9c2b-0242ac110002", oracle.SEED_SKIP)
        == 0x91DB1F3611D2F075
    )
    assert _testhooks._test_balance_hash64(b"\xff" * 33, 2**64 - 1) == 0xC98CE25851A2389B


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 2**64 - 1))
def test_hash_matches_oracle(data, seed):
    assert _testhooks._test_balance_hash64(data, seed) == oracle.hash64(data, seed)


def test_hash_bits_are_balanced():
    """Each output bit is set for about half of 20000 consecutive integer keys."""
    outs = [_testhooks._test_balance_hash64(i.to_bytes(8, "little"), 0) for i in range(20000)]
    for bit in range(64):
        ones = sum((h >> bit) & 1 for h in outs)
        assert 9300 < ones < 10700, bit  # 10 sigma


def test_hash_avalanche():
    """Flipping one input bit flips about half of the output bits."""
    rng = random.Random(7)
    flips = []
    for _ in range(400):
        data = bytearray(rng.randbytes(16))
        h = _testhooks._test_balance_hash64(bytes(data), 1)
        bit = rng.randrange(128)
        data[bit // 8] ^= 1 << (bit % 8)
        flips.append(bin(h ^ _testhooks._test_balance_hash64(bytes(data), 1)).count("1"))
    assert 31 < sum(flips) / len(flips) < 33
    assert min(flips) > 12


def test_hash_buckets_are_even():
    """Keys hashed into 101 buckets fill them evenly (chi-square far below a failing value)."""
    counts = [0] * 101
    for i in range(50500):
        counts[_testhooks._test_balance_hash64(b"client-%d" % i, 3) % 101] += 1
    chi2 = sum((c - 500) ** 2 / 500 for c in counts)
    assert chi2 < 180  # 100 degrees of freedom: p < 1e-5 above this


@pytest.mark.parametrize(
    "x, want",
    [(0, 2), (1, 2), (2, 2), (3, 3), (4, 5), (307, 307), (308, 311), (1010, 1013), (65536, 65537),
     (999984, 1000003), (4294967291, 4294967291), (4294967292, 0), (2**32 - 1, 0)],
)
def test_next_prime_values(x, want):
    assert _testhooks._test_balance_next_prime(x) == want


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**7))
def test_next_prime_matches_oracle(x):
    assert _testhooks._test_balance_next_prime(x) == oracle.next_prime(x)
