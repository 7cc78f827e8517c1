/* _h1reply.c: fastlb's own answers (see _h1reply.h). */
#include "_api.h"

#include "_h1reply.h"

#include <stdio.h>
#include <string.h>

const char *flb_h1reply_reason(int status)
{
    switch (status) {
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

ssize_t flb_h1reply(char *buf, size_t cap, int status, const struct iovec *extra, int nextra)
{
    const char *reason = flb_h1reply_reason(status);
    char body[64];
    int blen = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Cache-Control: no-cache\r\nConnection: close\r\n",
                     status, reason, blen);
    size_t len;

    if (n < 0 || (size_t)n >= cap)
        return FLB_ERR;
    len = (size_t)n;
    for (int i = 0; i < nextra; i++) {
        if (len + extra[i].iov_len >= cap)
            return FLB_ERR;
        memcpy(buf + len, extra[i].iov_base, extra[i].iov_len);
        len += extra[i].iov_len;
    }
    if (len + 2 + (size_t)blen > cap)
        return FLB_ERR;
    memcpy(buf + len, "\r\n", 2);
    memcpy(buf + len + 2, body, (size_t)blen);
    return (ssize_t)(len + 2 + (size_t)blen);
}
