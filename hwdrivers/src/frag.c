/* frag.c - ports for later IP fragments.  A first fragment carries the
 * transport header; later ones only the IP identification.  A small
 * direct-mapped cache remembers (addresses, protocol, id) -> ports so the
 * later fragments are metered in the flow their first fragment opened.  A
 * fragmented tunnel packet's first fragment was decapsulated: its later
 * fragments get the whole key of the packet it carried (and its tunnel). */
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
    /* a tunnel's fragments: the carried packet's key */
    uint8_t in_family, in_proto, tun_type;
    uint16_t in_sport, in_dport, vlan, vlan_inner;
    uint32_t tun_id;
    uint8_t in_src[16], in_dst[16];
};

struct hw_frags {
    struct frag_entry slot[FRAG_SLOTS];
};

struct hw_frags *hwint_frags_create(void) { return calloc(1, sizeof(struct hw_frags)); }
void hwint_frags_destroy(struct hw_frags *f) { free(f); }

static uint32_t slot_of(uint32_t id, uint8_t family, const uint8_t *src, const uint8_t *dst, uint8_t proto)
{
    uint32_t h = id * 0x9e3779b1u;
    for (int i = 0; i < (family == 6 ? 16 : 4); i += 4) {
        uint32_t a, b;
        memcpy(&a, src + i, 4);
        memcpy(&b, dst + i, 4);
        h = (h ^ a ^ (b * 0x85ebca6bu)) * 0xc2b2ae35u;
    }
    return (h ^ (h >> 16) ^ proto) & (FRAG_SLOTS - 1);
}

static void remember(struct frag_entry *e, uint32_t id, uint8_t family, const uint8_t *src, const uint8_t *dst,
                     uint8_t proto, uint64_t ts_ns)
{
    size_t alen = family == 6 ? 16 : 4;
    memcpy(e->src, src, alen);
    memcpy(e->dst, dst, alen);
    e->ts_ns = ts_ns;
    e->id = id;
    e->family = family;
    e->proto = proto;
    e->used = 1;
    e->tun_type = 0;
}

/* The first fragment of a tunnel packet, decapsulated into m. */
static void remember_tunnel(struct hw_frags *f, const struct hw_meta *m, uint64_t ts_ns)
{
    struct frag_entry *e = &f->slot[slot_of(m->tun_frag_id, m->tun_family, m->tun_src, m->tun_dst, m->tun_proto)];
    remember(e, m->tun_frag_id, m->tun_family, m->tun_src, m->tun_dst, m->tun_proto, ts_ns);
    e->sport = m->tun_sport;
    e->dport = m->tun_dport;
    e->tun_type = m->tun_type;
    e->tun_id = m->tun_id;
    e->in_family = m->family;
    e->in_proto = m->proto;
    e->in_sport = m->sport;
    e->in_dport = m->dport;
    e->vlan = m->vlan;
    e->vlan_inner = m->vlan_inner;
    memcpy(e->in_src, m->src, 16);
    memcpy(e->in_dst, m->dst, 16);
}

/* A later fragment of a tunnel packet: the key of what the tunnel carried. */
static void take_tunnel(const struct frag_entry *e, struct hw_meta *m)
{
    m->tun_type = e->tun_type;
    m->tun_id = e->tun_id;
    m->tun_depth = 1;
    m->tun_family = m->family;
    m->tun_proto = m->proto;
    m->tun_sport = e->sport;
    m->tun_dport = e->dport;
    memcpy(m->tun_src, m->src, 16);
    memcpy(m->tun_dst, m->dst, 16);
    m->family = e->in_family;
    m->proto = e->in_proto;
    m->sport = e->in_sport;
    m->dport = e->in_dport;
    m->vlan = e->vlan;
    m->vlan_inner = e->vlan_inner;
    m->mac_src = m->mac_dst = NULL;
    m->tcp_flags = 0;
    m->pay = NULL;
    m->pay_cap = m->pay_len = 0;
    memcpy(m->src, e->in_src, 16);
    memcpy(m->dst, e->in_dst, 16);
}

/* First fragments are remembered; later ones get their ports. Returns 0 when
 * a later fragment's first was not seen (an orphan). */
int hwint_frag_ports(struct hw_frags *f, struct hw_meta *m, uint64_t ts_ns)
{
    if (m->tun_frag == 1) remember_tunnel(f, m, ts_ns);
    if (!m->frag) return 1;
    struct frag_entry *e = &f->slot[slot_of(m->frag_id, m->family, m->src, m->dst, m->proto)];
    size_t alen = m->family == 6 ? 16 : 4;
    if (m->frag == 1) {
        remember(e, m->frag_id, m->family, m->src, m->dst, m->proto, ts_ns);
        e->sport = m->sport;
        e->dport = m->dport;
        return 1;
    }
    if (e->used && e->id == m->frag_id && e->family == m->family && e->proto == m->proto &&
        ts_ns - e->ts_ns < FRAG_TTL_NS && !memcmp(e->src, m->src, alen) &&
        !memcmp(e->dst, m->dst, alen)) {
        if (e->tun_type) {
            take_tunnel(e, m);
            return 1;
        }
        m->sport = e->sport;
        m->dport = e->dport;
        return 1;
    }
    return 0;
}
