/* _live.c: the live resource counts (see _api.h). */
#include "_api.h"

struct flb_live flb_live;
