"""fastlb's balancing re-stated in plain Python: the oracle that fastlb/_balance.c must agree with.

Each algorithm is written the obvious way, for reading, not speed. `usable` is the list of backend
indices that are available and not excluded for the pick at hand.
"""

from fractions import Fraction
from functools import reduce
from math import gcd

M64 = (1 << 64) - 1
NONE = None
HASH_PROBES = 8
MAGLEV_FACTOR = 101
MAGLEV_MIN = 307
SEED_OFFSET = int.from_bytes(b"maglev-o", "big")
SEED_SKIP = int.from_bytes(b"maglev-s", "big")


# ---- hashing: SipHash-2-4, key (seed, seed ^ 0x0808...08) -------------------------------------


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def _sipround(v: list[int]) -> None:
    v[0] = (v[0] + v[1]) & M64
    v[1] = _rotl(v[1], 13) ^ v[0]
    v[0] = _rotl(v[0], 32)
    v[2] = (v[2] + v[3]) & M64
    v[3] = _rotl(v[3], 16) ^ v[2]
    v[0] = (v[0] + v[3]) & M64
    v[3] = _rotl(v[3], 21) ^ v[0]
    v[2] = (v[2] + v[1]) & M64
    v[1] = _rotl(v[1], 17) ^ v[2]
    v[2] = _rotl(v[2], 32)


def hash64(data: bytes, seed: int) -> int:
    k0, k1 = seed, seed ^ 0x0808080808080808
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    tail = len(data) & 7
    words = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data) - tail, 8)]
    words.append(int.from_bytes(data[len(data) - tail :], "little") | (len(data) & 0xFF) << 56)
    for m in words:
        v[3] ^= m
        _sipround(v)
        _sipround(v)
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def rehash(key: int, j: int) -> int:
    x = (key + j * 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def next_prime(x: int) -> int:
    while x < 2 or any(x % d == 0 for d in range(2, int(x**0.5) + 1)):
        x += 1
    return x


# ---- Maglev ------------------------------------------------------------------------------------


def maglev_size(n: int) -> int:
    pow2 = 1 << max(n - 1, 0).bit_length()
    return next_prime(max(MAGLEV_MIN, MAGLEV_FACTOR * pow2))


def maglev_table(ids: list[str], weights: list[int]) -> list[int | None]:
    m = maglev_size(len(ids))
    table: list[int | None] = [NONE] * m
    if not any(weights):
        return table
    offset = [hash64(i.encode(), SEED_OFFSET) % m for i in ids]
    skip = [hash64(i.encode(), SEED_SKIP) % (m - 1) + 1 for i in ids]
    taken, acc, filled, wmax = [0] * len(ids), [0] * len(ids), 0, max(weights)
    while True:
        for i, w in enumerate(weights):
            acc[i] += w
            if acc[i] < wmax:
                continue
            acc[i] -= wmax
            while table[(offset[i] + taken[i] * skip[i]) % m] is not NONE:
                taken[i] += 1
            table[(offset[i] + taken[i] * skip[i]) % m] = i
            filled += 1
            if filled == m:
                return table


# ---- source (map-based) ------------------------------------------------------------------------


def source_map(weights: list[int]) -> list[int]:
    g = reduce(gcd, weights, 0)
    if g == 0:
        return []
    copies = [(Fraction(2 * j + 1, 2 * (w // g)), i) for i, w in enumerate(weights) for j in range(w // g)]
    return [i for _, i in sorted(copies)]


# ---- the hash pick, shared by Maglev and source --------------------------------------------------


def hash_pick(slots: list[int | None], n: int, key: int, usable: set[int]) -> int | None:
    if slots:
        for j in range(HASH_PROBES + 1):
            i = slots[(key if j == 0 else rehash(key, j)) % len(slots)]
            if i in usable:
                return i
    if n:
        start = rehash(key, HASH_PROBES + 1) % n
        for k in range(n):
            if (start + k) % n in usable:
                return (start + k) % n
    return None


# ---- round-robin and leastconn -------------------------------------------------------------------


class SmoothRR:
    """nginx's smooth weighted round-robin, one worker's state."""

    def __init__(self, n: int) -> None:
        self.cur = [0] * n

    def pick(self, weights: list[int], usable: set[int]) -> int | None:
        best, total = None, 0
        for i in sorted(usable):
            self.cur[i] += weights[i]
            total += weights[i]
            if best is None or self.cur[i] > self.cur[best]:
                best = i
        if best is not None:
            self.cur[best] -= total
        return best


class LeastConn:
    """HAProxy-style weighted leastconn, one worker's state: least (active + 1) / weight, ties rotate."""

    def __init__(self, n: int) -> None:
        self.n, self.offset = n, 0

    def pick(self, weights: list[int], active: list[int], usable: set[int]) -> int | None:
        order = [(self.offset + k) % self.n for k in range(self.n)]
        candidates = [i for i in order if i in usable]
        if not candidates:
            return None
        best = min(candidates, key=lambda i: Fraction(max(active[i], 0) + 1, weights[i]))  # first of equals
        self.offset = (best + 1) % self.n
        return best
