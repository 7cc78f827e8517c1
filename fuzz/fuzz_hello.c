/* fuzz_hello.c: libFuzzer target for the ClientHello reader (fastlb/_hello.c).
 *
 * Besides "no crash, no sanitizer report", the target checks the promises the https listener builds on;
 * a broken promise aborts:
 *   - the answer is one of enum flb_hello_kind or FLB_AGAIN, and never FLB_AGAIN once the input reaches
 *     FLB_HELLO_WIRE_MAX bytes;
 *   - an answer is final: every prefix of the input answers FLB_AGAIN or that same answer (the reader is
 *     called again with more bytes each time a segment arrives), and the same name;
 *   - a name found is 1..255 bytes, lower case, of letters, digits, '-', '.' and '_', NUL-terminated.
 * Each prefix is copied to a buffer of its own exact size, so ASan sees a read past its end.
 *
 * Linked with replay.c instead of libFuzzer it is a plain program that replays files (fuzz/README.md).
 */
#include "_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_hello.h"

#define PROMISE(cond)                                                                                                \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "broken promise at %s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                                                 \
        }                                                                                                            \
    } while (0)

static int hello(const uint8_t *data, size_t n, struct flb_hello *out)
{
    uint8_t *buf = malloc(n ? n : 1);
    PROMISE(buf != NULL);
    memcpy(buf, data, n);
    int rc = flb_hello_read(buf, n, out);
    free(buf);
    PROMISE(rc == FLB_AGAIN || (rc >= FLB_HELLO_SNI && rc <= FLB_HELLO_BAD));
    PROMISE(rc != FLB_AGAIN || n < FLB_HELLO_WIRE_MAX);
    if (rc == FLB_HELLO_SNI) {
        PROMISE(out->name_len >= 1 && out->name_len <= FLB_HELLO_NAME_MAX && out->name[out->name_len] == '\0');
        for (uint32_t i = 0; i < out->name_len; i++) {
            char c = out->name[i];
            PROMISE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_');
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct flb_hello whole, part;
    int rc = hello(data, size, &whole);

    /* the prefixes a client's segments would deliver: a few cut points, spread over the input */
    for (size_t k = 1; k <= 16 && size > 0; k++) {
        size_t cut = size * k / 17;
        int r = hello(data, cut, &part);
        PROMISE(r == FLB_AGAIN || r == rc);
        PROMISE(r != FLB_HELLO_SNI || strcmp(part.name, whole.name) == 0);
    }
    return 0;
}
