# Mirror of fastlb/_addr.h.


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        unsigned short sa_family
    struct sockaddr_storage:
        unsigned short ss_family

cdef extern from "_addr.h" nogil:
    enum:
        FLB_ADDR_TEXT
    int flb_addr_parse(const char *text, sockaddr_storage *sa, socklen_t *len)
    int flb_addr_format(const sockaddr *sa, char *out)
