/* _http1-t.h: types of fastlb's HTTP/1.1 parsers (request head, response head, chunked body).
 *
 * The parsers allocate nothing and copy nothing: every string they report is a pointer and a length
 * into the caller's buffer, valid as long as that buffer is. They are strict on purpose: anything that
 * two HTTP implementations could frame differently (request smuggling) is an error, answered with the
 * status the error maps to and followed by a close. The rules and their reasons are in
 * docs/internals/http1.md.
 */
#ifndef FLB_HTTP1_T_H
#define FLB_HTTP1_T_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a head (start line, fields and the empty line) a request or response may take; beyond it a
 * request is answered 431. 16 KiB is HAProxy's tune.bufsize and larger than any browser's head. */
#define FLB_HTTP1_HEAD_MAX 16384
/* Bytes of a request target; beyond it, 414. 8 KiB matches the common server limits (nginx's
 * large_client_header_buffers, Apache's LimitRequestLine), so nothing a backend would take is refused. */
#define FLB_HTTP1_TARGET_MAX 8192
/* A sensible capacity for the caller's field array: more fields than the array holds is 431. */
#define FLB_HTTP1_MAX_HEADERS 100
/* Bytes of one chunk-size line (size, extensions, CRLF): extensions are never useful to a proxy, so a
 * small bound stops a sender from streaming an endless one. */
#define FLB_HTTP1_CHUNK_LINE_MAX 4096
/* Bytes of the trailer section after the last chunk (fields and the final CRLF). */
#define FLB_HTTP1_TRAILERS_MAX 16384

/* Why a message was refused. flb_http1_error_status() maps each to the status a proxy answers a client
 * with (400, 414, 431, 501, 505); any error in a response is answered 502. Values are stable. */
enum flb_http1_error {
    FLB_HTTP1_E_NONE = 0,
    FLB_HTTP1_E_METHOD = 1,           /* 400: empty method, or a byte that is not a token character */
    FLB_HTTP1_E_TARGET = 2,           /* 400: empty target, a byte outside 0x21..0x7E, a form the method forbids */
    FLB_HTTP1_E_TARGET_TOO_LONG = 3,  /* 414: target longer than target_max */
    FLB_HTTP1_E_VERSION = 4,          /* 400: not "HTTP/" DIGIT "." DIGIT */
    FLB_HTTP1_E_VERSION_UNSUPPORTED = 5, /* 505: well formed, but not 1.0 or 1.1 */
    FLB_HTTP1_E_LINE_ENDING = 6,      /* 400: bare LF or bare CR, or a start line not ended by CRLF */
    FLB_HTTP1_E_HEADER_NAME = 7,      /* 400: empty name, a non-token byte, white space before the colon,
                                       * Content_Length or Transfer_Encoding (underscores) */
    FLB_HTTP1_E_HEADER_VALUE = 8,     /* 400: NUL, DEL or another control byte (HT apart) in a value */
    FLB_HTTP1_E_OBS_FOLD = 9,         /* 400: a line folded onto the previous one, or white space after the start line */
    FLB_HTTP1_E_HEAD_TOO_LARGE = 10,  /* 431: the head is longer than head_max */
    FLB_HTTP1_E_TOO_MANY_HEADERS = 11, /* 431: more fields than the caller's array holds */
    FLB_HTTP1_E_HOST = 12,            /* 400: Host missing (1.1), repeated, or not a valid uri-host[:port] */
    FLB_HTTP1_E_CONTENT_LENGTH = 13,  /* 400: not 1*DIGIT, 2^63 or more, a list, or the field repeated */
    FLB_HTTP1_E_CL_AND_TE = 14,       /* 400: Content-Length and Transfer-Encoding together */
    FLB_HTTP1_E_TE_NOT_CHUNKED = 15,  /* 400: last coding not chunked, chunked twice, empty or malformed list */
    FLB_HTTP1_E_TE_UNSUPPORTED = 16,  /* 501: a transfer coding other than chunked (gzip, deflate, identity, ...) */
    FLB_HTTP1_E_TE_HTTP10 = 17,       /* 400: Transfer-Encoding in an HTTP/1.0 message */
    FLB_HTTP1_E_APP_ID = 18,          /* 400: X-Marathon-App-Id repeated */
    FLB_HTTP1_E_STATUS = 19,          /* (response) status line not "HTTP/1.x" SP 3DIGIT [SP reason] CRLF */
    FLB_HTTP1_E_CHUNK_SIZE = 20,      /* chunk size: not hex, or more than 60 bits */
    FLB_HTTP1_E_CHUNK_EXT = 21,       /* chunk extension: bad byte, or size line longer than FLB_HTTP1_CHUNK_LINE_MAX */
    FLB_HTTP1_E_CHUNK_DATA = 22,      /* chunk data not followed by CRLF */
    FLB_HTTP1_E_TRAILER = 23,         /* malformed trailer field, or one that carries framing (CL, TE, Host) */
    FLB_HTTP1_E_TRAILERS_TOO_LARGE = 24, /* trailer section longer than FLB_HTTP1_TRAILERS_MAX */
};
#define FLB_HTTP1_E_COUNT 25

/* How the body that follows a head is delimited. */
enum flb_http1_framing {
    FLB_HTTP1_BODY_NONE = 0,    /* no body: the next message starts right after the head */
    FLB_HTTP1_BODY_LENGTH = 1,  /* exactly content_length bytes (which may be 0) */
    FLB_HTTP1_BODY_CHUNKED = 2, /* chunked: feed the body to flb_http1_chunked_feed() */
    FLB_HTTP1_BODY_CLOSE = 3,   /* (responses only) everything until the server closes */
};

/* What a field is, for the fields the proxy acts on (hop-by-hop fields it must not forward blindly,
 * routing and framing). Matching is case-insensitive. */
enum flb_http1_hdr_kind {
    FLB_HTTP1_H_OTHER = 0,
    FLB_HTTP1_H_HOST = 1,
    FLB_HTTP1_H_CONTENT_LENGTH = 2,
    FLB_HTTP1_H_TRANSFER_ENCODING = 3,
    FLB_HTTP1_H_CONNECTION = 4,
    FLB_HTTP1_H_UPGRADE = 5,
    FLB_HTTP1_H_EXPECT = 6,
    FLB_HTTP1_H_COOKIE = 7,
    FLB_HTTP1_H_APP_ID = 8,           /* X-Marathon-App-Id */
    FLB_HTTP1_H_KEEP_ALIVE = 9,       /* hop-by-hop */
    FLB_HTTP1_H_PROXY_CONNECTION = 10, /* hop-by-hop, never standard */
    FLB_HTTP1_H_TE = 11,              /* hop-by-hop */
    FLB_HTTP1_H_TRAILER = 12,         /* hop-by-hop */
    FLB_HTTP1_H_SET_COOKIE = 13,
};

/* One field; name and value point into the caller's buffer. The value has its leading and trailing
 * white space (SP, HT) removed and may be empty. */
struct flb_http1_header {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
    uint32_t kind; /* enum flb_http1_hdr_kind */
};

/* Facts about a head, as bits of <flags>. */
#define FLB_HTTP1_F_CONN_CLOSE 0x0001      /* Connection: close */
#define FLB_HTTP1_F_CONN_KEEP_ALIVE 0x0002 /* Connection: keep-alive */
#define FLB_HTTP1_F_CONN_UPGRADE 0x0004    /* Connection: upgrade */
#define FLB_HTTP1_F_CONN_OTHER 0x0008      /* Connection names other fields: they are hop-by-hop too */
#define FLB_HTTP1_F_UPGRADE 0x0010         /* an Upgrade field is present */
#define FLB_HTTP1_F_EXPECT_CONTINUE 0x0020 /* Expect: 100-continue */
#define FLB_HTTP1_F_EXPECT_OTHER 0x0040    /* an Expect value other than 100-continue (417 territory) */
#define FLB_HTTP1_F_TUNNEL 0x0080          /* (response) 2xx to CONNECT or 101: the connection becomes a tunnel */

/* Input to flb_http1_response_parse(): what the request was, since that decides the framing. */
#define FLB_HTTP1_REQ_HEAD 0x1    /* the request was HEAD: no body whatever the fields say */
#define FLB_HTTP1_REQ_CONNECT 0x2 /* the request was CONNECT: a 2xx starts a tunnel */

/* A request head. The caller sets the inputs (zero means the default) and the parser fills the rest
 * on success; on FLB_ERR only <error> is meaningful. Zero it (or set the inputs) once per connection:
 * the parser never reads its outputs back. */
struct flb_http1_request {
    /* inputs */
    struct flb_http1_header *headers; /* caller's array */
    uint32_t max_headers;             /* its capacity: more fields is 431 (0: no fields allowed) */
    uint32_t head_max;                /* 0: FLB_HTTP1_HEAD_MAX */
    uint32_t target_max;              /* 0: FLB_HTTP1_TARGET_MAX */
    /* results */
    const char *method;
    const char *target;
    const char *host;   /* NULL when absent (allowed in 1.0 only); may be empty */
    const char *app_id; /* X-Marathon-App-Id value, NULL when absent */
    uint32_t method_len;
    uint32_t target_len;
    uint32_t host_len;
    uint32_t app_id_len;
    uint32_t nheaders;
    uint32_t ncookies;     /* Cookie fields; the first is headers[cookie_first], the others follow with kind COOKIE */
    uint32_t cookie_first;
    uint32_t head_len;     /* bytes of the head, final CRLF included (the return value) */
    uint32_t flags;        /* FLB_HTTP1_F_* */
    int minor;             /* HTTP/1.<minor>: 0 or 1 */
    enum flb_http1_framing framing; /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;        /* when framing is LENGTH */
    enum flb_http1_error error;     /* when the parser returned FLB_ERR */
};

/* A response head; the same rules as struct flb_http1_request. */
struct flb_http1_response {
    /* inputs */
    struct flb_http1_header *headers;
    uint32_t max_headers;
    uint32_t head_max; /* 0: FLB_HTTP1_HEAD_MAX */
    /* results */
    const char *reason;
    uint32_t reason_len;
    uint32_t nheaders;
    uint32_t head_len;
    uint32_t flags;
    int minor;
    int status;                     /* 100..999 */
    enum flb_http1_framing framing; /* any of the four */
    uint64_t content_length;
    enum flb_http1_error error;
};

/* The chunked decoder's state, zeroed by the caller before the first byte of a body. It keeps what it
 * needs between calls, so a body can arrive in pieces of any size. */
struct flb_http1_chunked {
    uint64_t remaining;   /* bytes of chunk data still to come in the current chunk */
    uint64_t data_bytes;  /* chunk data (payload) seen so far, framing excluded */
    uint32_t line_len;    /* bytes of the current size line or trailer section so far */
    uint8_t state;        /* private */
    uint8_t name_len;     /* private: bytes of the trailer name seen (saturates) */
    char name[18];        /* private: the start of the current trailer name, lower case */
    enum flb_http1_error error; /* when flb_http1_chunked_feed() returned FLB_ERR */
};

#endif
