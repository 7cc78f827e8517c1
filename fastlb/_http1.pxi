# Test hooks for the HTTP/1.1 parsers (fastlb/_http1.c). The data plane calls the C functions directly;
# these exist so the Python suite can drive every rule. They return plain Python values.

from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastlb.includes.capi cimport FLB_AGAIN, FLB_ERR
from fastlb.includes.chttp1 cimport *

_HTTP1_FRAMING = {
    FLB_HTTP1_BODY_NONE: "none",
    FLB_HTTP1_BODY_LENGTH: "length",
    FLB_HTTP1_BODY_CHUNKED: "chunked",
    FLB_HTTP1_BODY_CLOSE: "close",
}

_HTTP1_FLAGS = (
    (FLB_HTTP1_F_CONN_CLOSE, "conn_close"),
    (FLB_HTTP1_F_CONN_KEEP_ALIVE, "conn_keep_alive"),
    (FLB_HTTP1_F_CONN_UPGRADE, "conn_upgrade"),
    (FLB_HTTP1_F_CONN_OTHER, "conn_other"),
    (FLB_HTTP1_F_UPGRADE, "upgrade"),
    (FLB_HTTP1_F_EXPECT_CONTINUE, "expect_continue"),
    (FLB_HTTP1_F_EXPECT_OTHER, "expect_other"),
    (FLB_HTTP1_F_TUNNEL, "tunnel"),
)

HTTP1_HEAD_MAX = FLB_HTTP1_HEAD_MAX
HTTP1_TARGET_MAX = FLB_HTTP1_TARGET_MAX
HTTP1_MAX_HEADERS = FLB_HTTP1_MAX_HEADERS
HTTP1_CHUNK_LINE_MAX = FLB_HTTP1_CHUNK_LINE_MAX
HTTP1_TRAILERS_MAX = FLB_HTTP1_TRAILERS_MAX


cdef object _http1_span(const char *base, const char *p, uint32_t n):
    if p == NULL:
        return None
    return base[p - base:p - base + n]


cdef list _http1_headers(const char *base, flb_http1_header *h, uint32_t n):
    cdef uint32_t i
    return [
        (
            base[h[i].name - base:h[i].name - base + h[i].name_len],
            base[h[i].value - base:h[i].value - base + h[i].value_len],
            h[i].kind,
            h[i].name - base,
            h[i].value - base,
        )
        for i in range(n)
    ]


cdef list _http1_flag_names(uint32_t flags):
    return [name for bit, name in _HTTP1_FLAGS if flags & bit]


def _http1_errors():
    """{error name: status a proxy answers a client with}."""
    cdef int e
    return {flb_http1_error_name(<flb_http1_error>e).decode(): flb_http1_error_status(<flb_http1_error>e)
            for e in range(FLB_HTTP1_E_COUNT)}


def _http1_parse_request(bytes data, size_t prev_len=0, unsigned max_headers=100, unsigned head_max=0,
                         unsigned target_max=0):
    """Parses a request head. {"rc": FLB_AGAIN} | {"rc": FLB_ERR, "error", "status"} | {"rc": n, ...}.
    Headers come as (name, value, kind, name offset, value offset)."""
    cdef flb_http1_request req
    cdef const char *buf = data
    cdef size_t n = len(data)
    cdef ssize_t rc
    cdef flb_http1_header *hdrs = <flb_http1_header *>malloc(sizeof(flb_http1_header) * (max_headers + 1))
    if hdrs == NULL:
        raise MemoryError()
    try:
        memset(&req, 0, sizeof(req))
        req.headers = hdrs
        req.max_headers = max_headers
        req.head_max = head_max
        req.target_max = target_max
        with nogil:
            rc = flb_http1_request_parse(&req, buf, n, prev_len)
        if rc == FLB_AGAIN:
            return {"rc": rc}
        if rc == FLB_ERR:
            return {"rc": rc, "error": flb_http1_error_name(req.error).decode(),
                    "status": flb_http1_error_status(req.error)}
        return {
            "rc": rc,
            "method": _http1_span(buf, req.method, req.method_len),
            "target": _http1_span(buf, req.target, req.target_len),
            "target_offset": req.target - buf,
            "minor": req.minor,
            "headers": _http1_headers(buf, hdrs, req.nheaders),
            "framing": _HTTP1_FRAMING[req.framing],
            "content_length": req.content_length,
            "host": _http1_span(buf, req.host, req.host_len),
            "app_id": _http1_span(buf, req.app_id, req.app_id_len),
            "cookies": req.ncookies,
            "cookie_first": req.cookie_first if req.ncookies else None,
            "flags": _http1_flag_names(req.flags),
            "keep_alive": bool(flb_http1_request_keep_alive(&req)),
            "head_len": req.head_len,
        }
    finally:
        free(hdrs)


def _http1_parse_response(bytes data, size_t prev_len=0, bint head=False, bint connect=False,
                          unsigned max_headers=100, unsigned head_max=0):
    """Parses a response head to a request that was HEAD (<head>) or CONNECT (<connect>)."""
    cdef flb_http1_response resp
    cdef const char *buf = data
    cdef size_t n = len(data)
    cdef ssize_t rc
    cdef unsigned req_flags = (FLB_HTTP1_REQ_HEAD if head else 0) | (FLB_HTTP1_REQ_CONNECT if connect else 0)
    cdef flb_http1_header *hdrs = <flb_http1_header *>malloc(sizeof(flb_http1_header) * (max_headers + 1))
    if hdrs == NULL:
        raise MemoryError()
    try:
        memset(&resp, 0, sizeof(resp))
        resp.headers = hdrs
        resp.max_headers = max_headers
        resp.head_max = head_max
        with nogil:
            rc = flb_http1_response_parse(&resp, buf, n, prev_len, req_flags)
        if rc == FLB_AGAIN:
            return {"rc": rc}
        if rc == FLB_ERR:
            return {"rc": rc, "error": flb_http1_error_name(resp.error).decode()}
        return {
            "rc": rc,
            "minor": resp.minor,
            "status": resp.status,
            "reason": _http1_span(buf, resp.reason, resp.reason_len),
            "headers": _http1_headers(buf, hdrs, resp.nheaders),
            "framing": _HTTP1_FRAMING[resp.framing],
            "content_length": resp.content_length,
            "flags": _http1_flag_names(resp.flags),
            "keep_alive": bool(flb_http1_response_keep_alive(&resp)),
            "head_len": resp.head_len,
        }
    finally:
        free(hdrs)


def _http1_chunked(pieces):
    """Feeds <pieces> (bytes) to one chunked decoder, stopping at the first result other than FLB_AGAIN.
    {"rc": last result, "consumed": bytes taken as body over all pieces, "calls": pieces fed,
     "data_bytes": payload bytes, "error": name or None}."""
    cdef flb_http1_chunked c
    cdef ssize_t rc = FLB_AGAIN
    cdef size_t consumed = 0
    cdef bytes piece
    cdef int calls = 0
    memset(&c, 0, sizeof(c))
    for piece in pieces:
        calls += 1
        rc = flb_http1_chunked_feed(&c, piece, len(piece))
        if rc == FLB_AGAIN:
            consumed += len(piece)
            continue
        if rc >= 0:
            consumed += rc
        break
    return {
        "rc": rc,
        "consumed": consumed,
        "calls": calls,
        "data_bytes": c.data_bytes,
        "error": flb_http1_error_name(c.error).decode() if rc == FLB_ERR else None,
    }
