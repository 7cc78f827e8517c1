/* bench_http1.c: how long the request head parser takes per request. Not a test: it prints numbers.
 *   make -C tests/c bench      (the SSE2 build, then the scalar one)
 * Each request is parsed <iterations> times and the result checked inside the loop, so the compiler
 * cannot drop the work; times are the thread's CPU time, best of five rounds. The trickle figures feed
 * a head one byte at a time, with and without prev_len.
 */
#include "_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "_http1.h"

static const char browser[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 "
    "Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n"
    "\r\n";

static const char small[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

static const char api[] = "POST /v2/apps/group/app/tasks?scale=true HTTP/1.1\r\n"
                          "Host: marathon.mesos:8080\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: 1024\r\n"
                          "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0\r\n"
                          "X-Marathon-App-Id: /group/app\r\n"
                          "Accept: application/json\r\n"
                          "\r\n";

static double now(void)
{
    struct timespec ts;
    /* CPU time of this thread, not wall time: on a shared machine the wall clock also counts the time
     * other processes held the CPU */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench(const char *name, const char *req_text, long iterations)
{
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    struct flb_http1_request req;
    size_t len = strlen(req_text);
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long i = 0; i < iterations; i++) {
            memset(&req, 0, sizeof(req));
            req.headers = h;
            req.max_headers = FLB_HTTP1_MAX_HEADERS;
            if (flb_http1_request_parse(&req, req_text, len, 0) != (ssize_t)len)
                abort();
        }
        double ns = (now() - t0) / (double)iterations;
        if (ns < best)
            best = ns;
    }
    printf("%-8s %4zu bytes  %7.1f ns/request  %6.0f MB/s  (best of 5 x %ld)\n", name, len, best,
           (double)len / best * 1e3, iterations);
}

static void trickle(const char *req_text, int use_prev_len)
{
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    struct flb_http1_request req;
    size_t len = strlen(req_text);
    double t0 = now();
    for (int k = 0; k < 1000; k++) {
        for (size_t i = 1; i <= len; i++) {
            memset(&req, 0, sizeof(req));
            req.headers = h;
            req.max_headers = FLB_HTTP1_MAX_HEADERS;
            ssize_t rc = flb_http1_request_parse(&req, req_text, i, use_prev_len ? i - 1 : 0);
            if (rc != (i == len ? (ssize_t)len : FLB_AGAIN))
                abort();
        }
    }
    printf("trickle  %4zu bytes one at a time, prev_len %s: %8.1f ns/request\n", len, use_prev_len ? "on " : "off",
           (now() - t0) / 1000);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 1000000;
#if defined(__SSE2__) && !defined(FLB_HTTP1_NO_SIMD)
    printf("# SSE2 build\n");
#else
    printf("# scalar build\n");
#endif
    bench("small", small, iterations);
    bench("api", api, iterations);
    bench("browser", browser, iterations);
    trickle(browser, 0);
    trickle(browser, 1);
    return 0;
}
