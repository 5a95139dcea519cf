/* frag.c - ports for later IP fragments.  A first fragment carries the
 * transport header; later ones only the IP identification.  A small
 * direct-mapped cache remembers (addresses, protocol, id) -> ports so the
 * later fragments are metered in the flow their first fragment opened. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define FRAG_SLOTS 4096
#define FRAG_TTL_NS (30 * HW_NS) /* RFC 791's reassembly timer */

struct frag_entry {
    uint8_t src[16], dst[16];
    uint64_t ts_ns;
    uint32_t id;
    uint16_t sport, dport;
    uint8_t family, proto, used;
};

struct hw_frags {
    struct frag_entry slot[FRAG_SLOTS];
};

struct hw_frags *hwint_frags_create(void) { return calloc(1, sizeof(struct hw_frags)); }
void hwint_frags_destroy(struct hw_frags *f) { free(f); }

static uint32_t slot_of(const struct hw_meta *m)
{
    uint32_t h = m->frag_id * 0x9e3779b1u;
    for (int i = 0; i < (m->family == 6 ? 16 : 4); i += 4) {
        uint32_t a, b;
        memcpy(&a, m->src + i, 4);
        memcpy(&b, m->dst + i, 4);
        h = (h ^ a ^ (b * 0x85ebca6bu)) * 0xc2b2ae35u;
    }
    return (h ^ (h >> 16) ^ m->proto) & (FRAG_SLOTS - 1);
}

/* First fragments are remembered; later ones get their ports. Returns 0 when
 * a later fragment's first was not seen (an orphan). */
int hwint_frag_ports(struct hw_frags *f, struct hw_meta *m, uint64_t ts_ns)
{
    struct frag_entry *e = &f->slot[slot_of(m)];
    size_t alen = m->family == 6 ? 16 : 4;
    if (m->frag == 1) {
        memcpy(e->src, m->src, alen);
        memcpy(e->dst, m->dst, alen);
        e->ts_ns = ts_ns;
        e->id = m->frag_id;
        e->sport = m->sport;
        e->dport = m->dport;
        e->family = m->family;
        e->proto = m->proto;
        e->used = 1;
        return 1;
    }
    if (e->used && e->id == m->frag_id && e->family == m->family && e->proto == m->proto &&
        ts_ns - e->ts_ns < FRAG_TTL_NS && !memcmp(e->src, m->src, alen) &&
        !memcmp(e->dst, m->dst, alen)) {
        m->sport = e->sport;
        m->dport = e->dport;
        return 1;
    }
    return 0;
}
