/* _balance.c: fastlb's balancing, a pure function of (balancer, the backends' dynamic state, flow
 * key, the calling worker's scratch). The contract is in _balance.h; docs/internals/balancing.md
 * explains the choices, and tests/balance/oracle.py re-states every algorithm in a few lines of
 * Python that must give the same answers.
 *
 * Build allocates, reads each backend's weight once (static_weight) and shapes the hash tables
 * from it. A pick allocates nothing, reads no clock and no global: it reads the backends' live
 * atomics (admin, health, weight, active) and writes only the calling worker's scratch.
 *
 * One rule for every algorithm: a pick fails (EHOSTUNREACH) exactly when no backend is both
 * available (flb_backend_available) and outside <exclude>. Indices in <exclude> were already tried
 * by this connection, so they are never handed out again, even as a last resort.
 */
#include "_api.h"
#include "_balance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An empty hash slot (a Maglev table whose backends all had weight 0). */
#define BAL_NONE UINT32_MAX

/* Limits checked by build: weights are 0..256 (_backend-t.h), and the backend count keeps a Maglev
 * table under 27 MB and a source map under 68 MB even at those extremes. */
#define BAL_MAX_WEIGHT 256u
#define BAL_MAX_BACKENDS 65536u

/* Per-worker scratch starts on its own cache line (rows of cur rounded up to whole lines, one line per
 * rr offset, all 64-byte aligned), so that workers picking at once never write the same line. */
#define BAL_CACHE_LINE 64u
#define BAL_RR_STRIDE (BAL_CACHE_LINE / sizeof(uint32_t))

#define BAL_CUR_PER_LINE (BAL_CACHE_LINE / sizeof(int64_t))

static inline size_t bal_cur_lines(uint32_t n)
{
    return ((size_t)n + BAL_CUR_PER_LINE - 1) / BAL_CUR_PER_LINE;
}

/* Zeroed, cache-line aligned memory for <count> lines. */
static void *bal_alloc_lines(size_t count)
{
    if (count > SIZE_MAX / BAL_CACHE_LINE)
        return NULL;
    void *p = aligned_alloc(BAL_CACHE_LINE, count * BAL_CACHE_LINE);
    if (p)
        memset(p, 0, count * BAL_CACHE_LINE);
    return p;
}

/* Seeds of the two hashes of a backend's identity that give its Maglev permutation. Fixed forever:
 * changing one moves every key of every Maglev service of a fleet. */
#define BAL_SEED_OFFSET 0x6d61676c65762d6fULL /* "maglev-o" */
#define BAL_SEED_SKIP 0x6d61676c65762d73ULL   /* "maglev-s" */

/* k1 = k0 ^ this, chosen so that seed 0x0706050403020100 gives the key 00 01 .. 0f of the SipHash
 * paper, whose published test vectors then pin flb_hash64 (tests/balance/test_hash.py). */
#define BAL_HASH_K1_XOR 0x0808080808080808ULL

/* ---- hashing -------------------------------------------------------------------------------- */

#define ROTL64(x, r) (((x) << (r)) | ((x) >> (64 - (r))))

#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = ROTL64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = ROTL64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = ROTL64(v2, 32);                                                                       \
    } while (0)

/* Bytes are read as little-endian words whatever the host's byte order, so every machine computes
 * the same value. */
static inline uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* SipHash-2-4 with the key (seed, seed ^ BAL_HASH_K1_XOR). */
uint64_t flb_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t k0 = seed, k1 = seed ^ BAL_HASH_K1_XOR;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len & ~(size_t)7;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The j-th rehash of a flow key: the splitmix64 output for state key + j * golden ratio. Cheap,
 * and independent enough of key % len that a probe lands on an unrelated slot. */
static inline uint64_t bal_rehash(uint64_t key, uint64_t j)
{
    uint64_t x = key + j * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- primes --------------------------------------------------------------------------------- */

static int bal_is_prime(uint32_t x)
{
    if (x < 4)
        return x >= 2;
    if (x % 2 == 0 || x % 3 == 0)
        return 0;
    for (uint64_t d = 5; d * d <= x; d += 6)
        if (x % d == 0 || x % (d + 2) == 0)
            return 0;
    return 1;
}

/* Returns 0 when no prime >= x fits in 32 bits (x > 4294967291). */
uint32_t flb_next_prime(uint32_t x)
{
    for (uint64_t c = x; c <= UINT32_MAX; c++)
        if (bal_is_prime((uint32_t)c))
            return (uint32_t)c;
    return 0;
}

/* ---- Maglev --------------------------------------------------------------------------------- */

/* The table size is a prime >= FLB_MAGLEV_FACTOR * n, with n rounded up to a power of two: any
 * change of the size sends each key to an unrelated slot, so sizing by n itself would move nearly
 * every key whenever a backend comes or goes. Rounded, the size changes only when n crosses a power
 * of two, and in between Maglev's minimal disruption holds. The table stays >= 101 slots per backend,
 * at most twice the memory of the exact size. */
static uint32_t bal_maglev_size(uint32_t n)
{
    uint32_t pow2 = 1;
    while (pow2 < n)
        pow2 <<= 1;
    uint32_t m = FLB_MAGLEV_FACTOR * pow2; /* n <= BAL_MAX_BACKENDS: no overflow */
    if (m < FLB_MAGLEV_MIN)
        m = FLB_MAGLEV_MIN;
    return flb_next_prime(m);
}

/* Populates lookup[m]. Backend i's preference order is offset_i + j * skip_i (mod m), a permutation
 * of the slots since m is prime. Population runs in rounds; in each round every backend adds its
 * weight to an accumulator and, each time the accumulator reaches the largest weight, takes it off
 * and claims its next still-empty slot. The heaviest backends claim a slot every round, a backend of
 * half their weight every other round: shares are proportional to weight, and with equal weights
 * this is the paper's algorithm, whose slot counts differ by at most one. */
static int bal_maglev_build(struct flb_balancer *b)
{
    uint32_t n = b->n, m = bal_maglev_size(n), wmax = 0;

    b->lookup = malloc((size_t)m * sizeof(*b->lookup));
    if (!b->lookup)
        return FLB_ERR;
    b->m = m;
    for (uint32_t s = 0; s < m; s++)
        b->lookup[s] = BAL_NONE;
    for (uint32_t i = 0; i < n; i++)
        if (b->static_weight[i] > wmax)
            wmax = b->static_weight[i];
    if (wmax == 0)
        return FLB_OK;

    uint32_t *scratch = malloc((size_t)n * 3 * sizeof(*scratch));
    if (!scratch)
        return FLB_ERR;
    uint32_t *pos = scratch, *skip = scratch + n, *acc = scratch + 2 * (size_t)n;
    for (uint32_t i = 0; i < n; i++) {
        const char *id = b->be[i]->id;
        size_t len = strlen(id);
        pos[i] = (uint32_t)(flb_hash64(id, len, BAL_SEED_OFFSET) % m);
        skip[i] = (uint32_t)(flb_hash64(id, len, BAL_SEED_SKIP) % (m - 1)) + 1;
        acc[i] = 0;
    }

    uint32_t filled = 0;
    for (;;) {
        for (uint32_t i = 0; i < n; i++) {
            acc[i] += b->static_weight[i];
            if (acc[i] < wmax)
                continue;
            acc[i] -= wmax;
            /* An empty slot remains (filled < m) and the order visits every slot: this ends. */
            while (b->lookup[pos[i]] != BAL_NONE)
                pos[i] = pos[i] >= m - skip[i] ? pos[i] - (m - skip[i]) : pos[i] + skip[i];
            b->lookup[pos[i]] = i;
            if (++filled == m)
                goto done;
        }
    }
done:
    free(scratch);
    return FLB_OK;
}

/* ---- source (map-based) --------------------------------------------------------------------- */

struct bal_copy {
    uint32_t num, den, idx; /* the copy sits at num / den on [0, 1) */
};

static int bal_copy_cmp(const void *pa, const void *pb)
{
    const struct bal_copy *a = pa, *b = pb;
    uint64_t l = (uint64_t)a->num * b->den, r = (uint64_t)b->num * a->den;
    if (l != r)
        return l < r ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static uint32_t bal_gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Builds map[]: backend i appears w_i / g times (g: the weights' gcd, so weights 2,2 and 1,1 give
 * the same map), its j-th copy placed at (2j + 1) / (2 w_i) of the way through, ties in index
 * order. Each backend's copies are evenly spread, so any run of the map is close to the weights. */
static int bal_source_build(struct flb_balancer *b)
{
    uint32_t n = b->n, g = 0;
    size_t len = 0;

    for (uint32_t i = 0; i < n; i++)
        g = bal_gcd(g, b->static_weight[i]);
    if (g == 0)
        return FLB_OK; /* every weight 0: an empty map */
    for (uint32_t i = 0; i < n; i++)
        len += b->static_weight[i] / g;

    struct bal_copy *copies = malloc(len * sizeof(*copies));
    b->map = malloc(len * sizeof(*b->map));
    if (!copies || !b->map) {
        free(copies);
        return FLB_ERR;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t w = b->static_weight[i] / g;
        for (uint32_t j = 0; j < w; j++)
            copies[k++] = (struct bal_copy){.num = 2 * j + 1, .den = 2 * w, .idx = i};
    }
    qsort(copies, len, sizeof(*copies), bal_copy_cmp);
    for (size_t s = 0; s < len; s++)
        b->map[s] = copies[s].idx;
    b->map_len = (uint32_t)len;
    free(copies);
    return FLB_OK;
}

/* ---- build / free --------------------------------------------------------------------------- */

int flb_balance_build(struct flb_balancer *b, enum flb_balance_algo algo, struct flb_backend **be, uint32_t n,
                      uint32_t nworkers)
{
    memset(b, 0, sizeof(*b));
    if ((unsigned)algo > FLB_BAL_SOURCE || n > BAL_MAX_BACKENDS || (n && !be))
        goto invalid;
    if ((algo == FLB_BAL_ROUNDROBIN || algo == FLB_BAL_LEASTCONN) && nworkers == 0)
        goto invalid;
    for (uint32_t i = 0; i < n; i++) {
        if (!be[i] || !be[i]->id)
            goto invalid;
        /* Sorted by identity, byte-wise (for UTF-8, the code-point order of Python's sorted()),
         * each identity once: the hash tables depend on the order, and a fleet must agree on it. */
        if (i && strcmp(be[i - 1]->id, be[i]->id) >= 0)
            goto invalid;
    }

    b->algo = algo;
    b->n = n;
    b->be = be;
    b->nworkers = nworkers;
    if (n) {
        b->static_weight = malloc((size_t)n * sizeof(*b->static_weight));
        if (!b->static_weight)
            goto nomem;
    }
    for (uint32_t i = 0; i < n; i++) {
        b->static_weight[i] = atomic_load_explicit(&be[i]->weight, memory_order_relaxed);
        if (b->static_weight[i] > BAL_MAX_WEIGHT)
            goto invalid_built;
    }

    switch (algo) {
    case FLB_BAL_ROUNDROBIN:
        if (n) {
            b->cur = bal_alloc_lines((size_t)nworkers * bal_cur_lines(n));
            if (!b->cur)
                goto nomem;
        }
        break;
    case FLB_BAL_LEASTCONN:
        b->rr = bal_alloc_lines(nworkers); /* one line holds BAL_RR_STRIDE offsets; one is used */
        if (!b->rr)
            goto nomem;
        break;
    case FLB_BAL_MAGLEV:
        if (bal_maglev_build(b) != FLB_OK)
            goto nomem;
        break;
    case FLB_BAL_SOURCE:
        if (bal_source_build(b) != FLB_OK)
            goto nomem;
        break;
    }
    return FLB_OK;

nomem:
    flb_balance_free(b);
    errno = ENOMEM;
    return FLB_ERR;
invalid_built:
    flb_balance_free(b);
invalid:
    errno = EINVAL;
    return FLB_ERR;
}

void flb_balance_free(struct flb_balancer *b)
{
    free(b->static_weight);
    free(b->lookup);
    free(b->map);
    free(b->cur);
    free(b->rr);
    memset(b, 0, sizeof(*b));
}

/* ---- pick ----------------------------------------------------------------------------------- */

static inline int bal_excluded(const uint32_t *exclude, uint32_t nexclude, uint32_t i)
{
    for (uint32_t k = 0; k < nexclude; k++)
        if (exclude[k] == i)
            return 1;
    return 0;
}

/* The live weight of backend i when it may take this connection, else 0. The weight is read once,
 * so a concurrent change to 0 cannot slip between the availability check and its use. */
/* A backend at its maxconn takes no new connection until one of its own ends. */
static inline int bal_full(const struct flb_balancer *b, uint32_t i)
{
    return b->maxconn != NULL && b->maxconn[i] > 0 &&
           atomic_load_explicit(&b->be[i]->active, memory_order_relaxed) >= (int64_t)b->maxconn[i];
}

static inline uint32_t bal_usable_weight(const struct flb_balancer *b, uint32_t i, const uint32_t *exclude,
                                         uint32_t nexclude)
{
    const struct flb_backend *be = b->be[i];
    if (atomic_load_explicit(&be->admin, memory_order_relaxed) != FLB_ADMIN_READY ||
        atomic_load_explicit(&be->health, memory_order_relaxed) != FLB_HEALTH_UP)
        return 0;
    uint32_t w = atomic_load_explicit(&be->weight, memory_order_relaxed);
    if (w == 0 || bal_excluded(exclude, nexclude, i) || bal_full(b, i))
        return 0;
    return w;
}

static inline int bal_usable(const struct flb_balancer *b, uint32_t i, const uint32_t *exclude,
                             uint32_t nexclude)
{
    return flb_backend_available(b->be[i]) && !bal_excluded(exclude, nexclude, i) && !bal_full(b, i);
}

int flb_balance_full(const struct flb_balancer *b, const uint32_t *exclude, uint32_t nexclude)
{
    for (uint32_t i = 0; b->maxconn != NULL && i < b->n; i++)
        if (flb_backend_available(b->be[i]) && !bal_excluded(exclude, nexclude, i) && bal_full(b, i))
            return 1;
    return 0;
}

static int bal_unreachable(void)
{
    errno = EHOSTUNREACH;
    return FLB_ERR;
}

/* nginx's smooth weighted round-robin: every usable backend adds its weight to its current value,
 * the largest current wins (the first on a tie) and gives back the total. Over any sum-of-weights
 * picks each backend is chosen weight times, spread out rather than in bursts; equal weights rotate. */
static int bal_rr_pick(struct flb_balancer *b, uint32_t worker, const uint32_t *exclude, uint32_t nexclude)
{
    int64_t *cur = b->cur + (size_t)worker * bal_cur_lines(b->n) * BAL_CUR_PER_LINE, total = 0;
    int best = -1;

    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t w = bal_usable_weight(b, i, exclude, nexclude);
        if (!w)
            continue;
        cur[i] += w;
        total += w;
        if (best < 0 || cur[i] > cur[best])
            best = (int)i;
    }
    if (best < 0)
        return bal_unreachable();
    cur[best] -= total;
    return best;
}

/* Fewest connections relative to weight, as HAProxy's leastconn counts it: the load a backend would
 * have once given this connection, (active + 1) / weight, compared by cross-multiplying. Scanning
 * from a per-worker offset that moves past each pick makes equal loads take turns. */
static int bal_lc_pick(struct flb_balancer *b, uint32_t worker, const uint32_t *exclude, uint32_t nexclude)
{
    uint32_t *offset = &b->rr[(size_t)worker * BAL_RR_STRIDE];
    uint32_t n = b->n, start = n ? *offset % n : 0;
    uint64_t best_load = 0, best_w = 0;
    int best = -1;

    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = start + k < n ? start + k : start + k - n;
        uint32_t w = bal_usable_weight(b, i, exclude, nexclude);
        if (!w)
            continue;
        int64_t active = atomic_load_explicit(&b->be[i]->active, memory_order_relaxed);
        uint64_t load = (uint64_t)(active > 0 ? active : 0) + 1;
        if (best < 0 || load * best_w < best_load * w) {
            best = (int)i;
            best_load = load;
            best_w = w;
        }
    }
    if (best < 0)
        return bal_unreachable();
    *offset = (uint32_t)best + 1 < n ? (uint32_t)best + 1 : 0;
    return best;
}

/* Maglev and source: the key's own slot; past an unusable backend, FLB_HASH_PROBES slots chosen by
 * rehashing the key (so a key whose backend is healthy never moves, and the keys of a failed backend
 * spread over the others by their shares); then a scan of the backends from a key-chosen start. */
static int bal_hash_pick(const struct flb_balancer *b, const uint32_t *slots, uint32_t len, uint64_t key,
                         const uint32_t *exclude, uint32_t nexclude)
{
    if (len) {
        uint32_t i = slots[key % len];
        if (i != BAL_NONE && bal_usable(b, i, exclude, nexclude))
            return (int)i;
        for (uint64_t j = 1; j <= FLB_HASH_PROBES; j++) {
            i = slots[bal_rehash(key, j) % len];
            if (i != BAL_NONE && bal_usable(b, i, exclude, nexclude))
                return (int)i;
        }
    }
    if (b->n) {
        uint32_t start = (uint32_t)(bal_rehash(key, FLB_HASH_PROBES + 1) % b->n);
        for (uint32_t k = 0; k < b->n; k++) {
            uint32_t i = start + k < b->n ? start + k : start + k - b->n;
            if (bal_usable(b, i, exclude, nexclude))
                return (int)i;
        }
    }
    return bal_unreachable();
}

int flb_balance_pick(struct flb_balancer *b, uint64_t key, uint32_t worker, const uint32_t *exclude,
                     uint32_t nexclude)
{
    switch (b->algo) {
    case FLB_BAL_ROUNDROBIN:
        if (FLB_UNLIKELY(worker >= b->nworkers))
            break;
        return bal_rr_pick(b, worker, exclude, nexclude);
    case FLB_BAL_LEASTCONN:
        if (FLB_UNLIKELY(worker >= b->nworkers))
            break;
        return bal_lc_pick(b, worker, exclude, nexclude);
    case FLB_BAL_MAGLEV:
        return bal_hash_pick(b, b->lookup, b->m, key, exclude, nexclude);
    case FLB_BAL_SOURCE:
        return bal_hash_pick(b, b->map, b->map_len, key, exclude, nexclude);
    }
    errno = EINVAL;
    return FLB_ERR;
}
