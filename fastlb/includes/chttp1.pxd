# Mirror of fastlb/_http1-t.h and fastlb/_http1.h.
from libc.stdint cimport uint32_t, uint64_t


cdef extern from "_http1.h" nogil:
    enum:
        FLB_HTTP1_HEAD_MAX
        FLB_HTTP1_TARGET_MAX
        FLB_HTTP1_MAX_HEADERS
        FLB_HTTP1_CHUNK_LINE_MAX
        FLB_HTTP1_TRAILERS_MAX
        FLB_HTTP1_E_COUNT
        FLB_HTTP1_F_CONN_CLOSE
        FLB_HTTP1_F_CONN_KEEP_ALIVE
        FLB_HTTP1_F_CONN_UPGRADE
        FLB_HTTP1_F_CONN_OTHER
        FLB_HTTP1_F_UPGRADE
        FLB_HTTP1_F_EXPECT_CONTINUE
        FLB_HTTP1_F_EXPECT_OTHER
        FLB_HTTP1_F_TUNNEL
        FLB_HTTP1_REQ_HEAD
        FLB_HTTP1_REQ_CONNECT

    enum flb_http1_error:
        FLB_HTTP1_E_NONE

    enum flb_http1_framing:
        FLB_HTTP1_BODY_NONE
        FLB_HTTP1_BODY_LENGTH
        FLB_HTTP1_BODY_CHUNKED
        FLB_HTTP1_BODY_CLOSE

    struct flb_http1_header:
        const char *name
        const char *value
        uint32_t name_len
        uint32_t value_len
        uint32_t kind

    struct flb_http1_request:
        flb_http1_header *headers
        uint32_t max_headers
        uint32_t head_max
        uint32_t target_max
        const char *method
        const char *target
        const char *host
        const char *app_id
        uint32_t method_len
        uint32_t target_len
        uint32_t host_len
        uint32_t app_id_len
        uint32_t nheaders
        uint32_t ncookies
        uint32_t cookie_first
        uint32_t head_len
        uint32_t flags
        int minor
        flb_http1_framing framing
        uint64_t content_length
        flb_http1_error error

    struct flb_http1_response:
        flb_http1_header *headers
        uint32_t max_headers
        uint32_t head_max
        const char *reason
        uint32_t reason_len
        uint32_t nheaders
        uint32_t head_len
        uint32_t flags
        int minor
        int status
        flb_http1_framing framing
        uint64_t content_length
        flb_http1_error error

    struct flb_http1_chunked:
        uint64_t remaining
        uint64_t data_bytes
        flb_http1_error error

    ssize_t flb_http1_request_parse(flb_http1_request *req, const char *buf, size_t len, size_t prev_len)
    ssize_t flb_http1_response_parse(flb_http1_response *resp, const char *buf, size_t len, size_t prev_len,
                                     unsigned req_flags)
    ssize_t flb_http1_chunked_feed(flb_http1_chunked *c, const char *buf, size_t len)
    int flb_http1_error_status(flb_http1_error err)
    const char *flb_http1_error_name(flb_http1_error err)
    int flb_http1_request_keep_alive(const flb_http1_request *req)
    int flb_http1_response_keep_alive(const flb_http1_response *resp)
