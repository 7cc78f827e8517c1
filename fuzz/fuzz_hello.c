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
 * Built with -DFLB_FUZZ_REPLAY (no libFuzzer) it is a plain program that runs every file of the
 * directories or files named on its command line (see fuzz/README.md).
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

#ifdef FLB_FUZZ_REPLAY
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n); /* each call copies what it reads to an exact-size buffer */
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += replay_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            errors += replay_file(path) != 0;
            files++;
        }
        if (d != NULL)
            closedir(d);
    }
    printf("replayed %d files, %d unreadable\n", files, errors);
    return errors || files == 0;
}
#endif
