# Mirror of fastlb/_l7-t.h, fastlb/_l7.h, fastlb/_vhost.h, fastlb/_h1auth.h and fastlb/_h1front.h (what a compile calls).
from libc.stddef cimport size_t
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastlb.includes.cengine cimport flb_engine
from fastlb.includes.croute cimport flb_service_counters, flb_table

cdef extern from "_l7-t.h" nogil:
    enum flb_l7_kind:
        FLB_L7_TCP
        FLB_L7_SERVICE
        FLB_L7_VHOST
        FLB_L7_APPID

    enum:
        FLB_L7_COOKIE_HEX

    struct flb_l7_cidr:
        pass

    struct flb_l7_user:
        char *name
        char *hash

    struct flb_vhost:
        pass

    struct flb_l7_str:
        char *s
        uint32_t len

    struct flb_l7_service:
        uint8_t http
        uint8_t sticky
        uint8_t hsts
        uint8_t redirect_https
        uint8_t forwarded
        char *cookie
        uint32_t cookie_len
        char (*cookie_val)[17]
        char *realm
        uint8_t auth_remove
        uint32_t nusers
        flb_l7_user *users
        uint64_t auth_epoch
        uint32_t ncidrs
        uint8_t allow_xff
        flb_l7_cidr *cidrs
        uint32_t request_ms
        uint32_t keepalive_ms
        uint32_t server_ms
        uint32_t client_ms
        uint32_t tunnel_ms
        uint32_t connect_ms
        flb_service_counters *c
        flb_l7_str strip
        flb_l7_str host_line
        flb_l7_str loc_prefix
        flb_l7_str redir
        uint16_t redir_code
        uint32_t nhosts
        flb_l7_str *hosts
        uint32_t nvhosts
        void *front  # struct flb_h1front * (declared below)

    struct flb_l7_listener:
        uint8_t kind
        uint16_t port
        uint32_t request_ms
        uint32_t keepalive_ms
        void *tls  # struct flb_tls * (ctls.pxd)
        uint32_t handshake_ms

    struct flb_l7_table:
        uint32_t nsvc
        uint32_t nlst
        flb_l7_service *svc
        flb_l7_listener *lst
        uint16_t https_port
        flb_vhost vhost

    struct flb_l7:
        uint64_t log_lines
        uint64_t log_drops

cdef extern from "_l7.h" nogil:
    flb_l7_table *flb_l7_table_new(uint32_t nsvc, uint32_t nlst)
    void flb_l7_table_reuse_routes(flb_l7_table *lt, const flb_l7_table *old)
    int flb_l7_set_access_log(flb_l7 *l, int fd)
    void flb_l7_set_cookie_key(flb_l7 *l, uint64_t key)
    uint64_t flb_l7_epoch(flb_l7 *l)
    void flb_l7_cookie_value(const flb_l7 *l, const char *id, char *out)

cdef extern from "_vhost.h" nogil:
    int flb_vhost_init(flb_vhost *v, uint32_t nroutes, uint32_t napps)
    int flb_vhost_set_route(flb_vhost *v, uint32_t i, const char *host, uint32_t service)
    int flb_vhost_add_path(flb_vhost *v, uint32_t i, const char *path)
    int flb_vhost_add_app(flb_vhost *v, const char *id, uint32_t service)
    int flb_vhost_build(flb_vhost *v)

cdef extern from "_h1auth.h" nogil:
    int flb_h1auth_cidr_parse(const char *text, flb_l7_cidr *c)

# The fields of the engine and table that HTTP mode hangs its state on (kept out of cengine/croute).
cdef extern from *:
    """
    #include "_engine-t.h"
    #include "_route-t.h"
    static inline struct flb_l7 *flb_l7_of(struct flb_engine *e) { return e->l7; }
    static inline void flb_l7_attach(struct flb_table *t, struct flb_l7_table *lt) { t->l7 = lt; }
    static inline struct flb_l7_table *flb_l7_table_of(struct flb_table *t) { return t->l7; }
    """
    flb_l7 *flb_l7_of(flb_engine *e)
    void flb_l7_attach(flb_table *t, flb_l7_table *lt)
    flb_l7_table *flb_l7_table_of(flb_table *t)


cdef extern from "_h1front.h" nogil:
    struct flb_h1front_fields:
        uint32_t n
        flb_l7_str *names
        flb_l7_str lines
        uint8_t xfp
        uint8_t xfport

    struct flb_h1front:
        flb_h1front_fields req
        flb_h1front_fields resp
        flb_l7_str sts
        uint8_t sts_plain
        uint16_t https_code
        flb_l7_str repl
        uint16_t re_code

    flb_h1front *flb_h1front_new()
    void flb_h1front_free(flb_h1front *f)
    int flb_h1front_set_regex(flb_h1front *f, const char *pattern, char *err, size_t errlen)
