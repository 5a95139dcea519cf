/* srcsum.c - TCP sources, summarised: what each source address's SYNs and
 * RSTs did over a span, so Python sees one record per source and span
 * instead of one event per SYN (scans and floods are counts; LAN learning
 * needs only each Ethernet address pair once, as soon as it appears).
 *
 * A set-associative table: a source hashes to a bucket of WAYS entries, and
 * a full bucket evicts its least recently seen entry (its pending counts are
 * sent first, and the eviction counted).  An entry remembers the last few
 * Ethernet address pairs its SYNs showed; a pair it has not seen sends a
 * summary at once, so a switch of next hop reaches Python in packet order.
 *
 * The tick's sweep skips a bucket none of whose spans can be due yet: each
 * bucket keeps a time before which none is (`due_at`: lowered by every
 * packet of its sources, recomputed when the sweep reads the bucket), so the
 * sweep reads 8 bytes, not 8 entries, for most (large.pcap: 0.13 s of CPU
 * in the sweep, most of it cache misses on entries). */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define WAYS 8                 /* sources a bucket */
#define MAX_SOURCES (1u << 18)
#define SWEEP 64               /* buckets looked at per tick */
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

struct src {
    uint8_t addr[16];
    uint8_t family, used, n_known, next_known;
    uint8_t span_pairs;        /* bit i: known[i] showed in this span */
    uint8_t last_pair;
    uint16_t vlan;
    uint64_t seen_ns;          /* last packet, for eviction */
    uint64_t first_ns, last_ns; /* the span: first_ns 0 when nothing is pending */
    uint32_t syns, rsts_sent, rsts_received;
    uint64_t hosts[HW_SKETCH_WORDS], ports[HW_SKETCH_WORDS];
    struct hw_src_pair known[HW_SRC_PAIRS];
};

struct hw_srcsum {
    struct src *t;
    uint64_t *due_at;          /* by bucket: no entry is due before it (UINT64_MAX: none pending) */
    uint32_t buckets, sweep_at;
};

struct hw_srcsum *hwint_src_create(uint32_t max_sources)
{
    struct hw_srcsum *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (max_sources > MAX_SOURCES) max_sources = MAX_SOURCES;
    for (s->buckets = 1; s->buckets * WAYS < max_sources;) s->buckets <<= 1;
    s->t = calloc((size_t)s->buckets * WAYS, sizeof *s->t);
    s->due_at = malloc((size_t)s->buckets * sizeof *s->due_at);
    if (!s->t || !s->due_at) {
        free(s->t);
        free(s->due_at);
        free(s);
        return NULL;
    }
    memset(s->due_at, 0xff, (size_t)s->buckets * sizeof *s->due_at);
    return s;
}

void hwint_src_destroy(struct hw_srcsum *t)
{
    if (!t) return;
    free(t->t);
    free(t->due_at);
    free(t);
}

static struct src *bucket(struct hw_srcsum *t, const uint8_t *addr, uint8_t family)
{
    return &t->t[(hw_mix_addr(addr, family) & (t->buckets - 1)) * WAYS];
}

static struct src *find(struct hw_srcsum *t, const uint8_t *addr, uint8_t family)
{
    struct src *b = bucket(t, addr, family);
    for (int i = 0; i < WAYS; i++)
        if (b[i].used && b[i].family == family && !memcmp(b[i].addr, addr, 16)) return &b[i];
    return NULL;
}

/* The summary of e's span to the ring (dropped and counted when it is full); the span starts over. */
static void summarise(struct src *e, int reason, struct hw_ring *ring, struct hw_counters *c)
{
    struct hw_event *ev = hwint_ring_reserve(ring);
    if (!ev) {
        c->events_dropped[HW_EV_TCP_SRC]++;
    } else {
        memset(ev, 0, offsetof(struct hw_event, snippet));
        const struct hw_src_pair *p = &e->known[e->last_pair];
        ev->ts_ns = e->last_ns;
        memcpy(ev->src, e->addr, 16);
        memcpy(ev->dst, p->dst, 16);
        memcpy(ev->src_mac, p->src_mac, 6);
        memcpy(ev->dst_mac, p->dst_mac, 6);
        ev->vlan = e->vlan;
        ev->kind = HW_EV_TCP_SRC;
        ev->family = e->family;
        ev->proto = 6;
        ev->has_rec = 1;
        struct hw_rec_tcpsrc *r = &ev->rec.tcpsrc;
        memset(r, 0, sizeof *r);
        r->first_ns = e->first_ns;
        r->last_ns = e->last_ns;
        r->syns = e->syns;
        r->rsts_sent = e->rsts_sent;
        r->rsts_received = e->rsts_received;
        r->hosts = e->syns ? hwint_sketch_count(e->hosts) : 0;
        r->ports = e->syns ? hwint_sketch_count(e->ports) : 0;
        r->reason = (uint8_t)reason;
        for (int i = 0; i < e->n_known; i++)
            if (e->span_pairs & (1u << i)) r->pairs[r->n_pairs++] = e->known[i];
        hwint_ring_commit(ring);
        c->events[HW_EV_TCP_SRC]++;
    }
    e->first_ns = e->last_ns = 0;
    e->syns = e->rsts_sent = e->rsts_received = 0;
    e->span_pairs = 0;
    memset(e->hosts, 0, sizeof e->hosts);
    memset(e->ports, 0, sizeof e->ports);
}

static int pending(const struct src *e) { return e->used && e->first_ns; }

/* A span ends HW_SRC_INTERVAL_S after it began when it is busy (HW_SRC_BURST packets an interval on
 * average: a flood or a scan wants its rate soon); a quiet source's span runs on to HW_SRC_REFRESH_S,
 * so it costs one summary per refresh. */
static int due(const struct src *e, uint64_t now_ns)
{
    uint64_t interval = (uint64_t)HW_SRC_INTERVAL_S * HW_NS, age = now_ns - e->first_ns;
    if (!pending(e) || now_ns < e->first_ns + interval) return 0;
    uint64_t packets = (uint64_t)e->syns + e->rsts_sent + e->rsts_received;
    return packets * interval >= (uint64_t)HW_SRC_BURST * age || age >= (uint64_t)HW_SRC_REFRESH_S * HW_NS;
}

static struct src *take(struct hw_srcsum *t, const struct hw_meta *m, struct hw_ring *ring, struct hw_counters *c)
{
    struct src *b = bucket(t, m->src, m->family), *victim = &b[0];
    for (int i = 0; i < WAYS; i++) {
        if (!b[i].used) {
            victim = &b[i];
            break;
        }
        if (b[i].seen_ns < victim->seen_ns) victim = &b[i];
    }
    if (victim->used) {
        c->tcp_sources_evicted++;
        if (pending(victim)) summarise(victim, HW_SRC_EVICTED, ring, c);
    }
    memset(victim, 0, sizeof *victim);
    victim->used = 1;
    victim->family = m->family;
    memcpy(victim->addr, m->src, 16);
    return victim;
}

/* The index of this SYN's address pair among e's known ones; added (over the oldest) when new. */
static int pair_of(struct src *e, const struct hw_meta *m, int *added)
{
    uint8_t smac[6] = {0}, dmac[6] = {0};
    if (m->mac_src) memcpy(smac, m->mac_src, 6);
    if (m->mac_dst) memcpy(dmac, m->mac_dst, 6);
    for (int i = 0; i < e->n_known; i++) {
        struct hw_src_pair *p = &e->known[i];
        if (!memcmp(p->src_mac, smac, 6) && !memcmp(p->dst_mac, dmac, 6)) {
            memcpy(p->dst, m->dst, 16); /* the latest destination it went to */
            *added = 0;
            return i;
        }
    }
    int i = e->n_known < HW_SRC_PAIRS ? e->n_known++ : e->next_known;
    e->next_known = (uint8_t)((i + 1) % HW_SRC_PAIRS);
    e->span_pairs &= (uint8_t)~(1u << i);
    memcpy(e->known[i].src_mac, smac, 6);
    memcpy(e->known[i].dst_mac, dmac, 6);
    memcpy(e->known[i].dst, m->dst, 16);
    *added = 1;
    return i;
}

/* The earliest e can be due, as due() judges it at now without more packets (0: it is due now). */
static uint64_t due_from(const struct src *e, uint64_t now_ns)
{
    uint64_t interval = (uint64_t)HW_SRC_INTERVAL_S * HW_NS;
    if (!pending(e)) return UINT64_MAX;
    if (due(e, now_ns)) return 0;
    /* not due past its interval: too few packets for its age, and fewer still the longer it waits */
    return now_ns < e->first_ns + interval ? e->first_ns + interval : e->first_ns + (uint64_t)HW_SRC_REFRESH_S * HW_NS;
}

/* A packet of e's: its span begins (or goes on), and its bucket may be due from its interval on. */
static void begin(struct hw_srcsum *t, struct src *e, uint64_t ts_ns)
{
    if (!e->first_ns) e->first_ns = ts_ns ? ts_ns : 1;
    uint64_t *due_at = &t->due_at[(size_t)(e - t->t) / WAYS], at = e->first_ns + (uint64_t)HW_SRC_INTERVAL_S * HW_NS;
    if (at < *due_at) *due_at = at;
    if (ts_ns > e->last_ns) e->last_ns = ts_ns;
    e->seen_ns = ts_ns;
}

void hwint_src_packet(struct hw_srcsum *t, const struct hw_meta *m, uint64_t ts_ns, struct hw_ring *ring,
                      struct hw_counters *c)
{
    if (m->proto != 6 || (m->family != 4 && m->family != 6)) return;
    if (m->tcp_flags & TCP_RST) {
        struct src *e = find(t, m->src, m->family), *to = find(t, m->dst, m->family);
        if (e) {
            begin(t, e, ts_ns);
            e->rsts_sent++;
        }
        if (to) {
            begin(t, to, ts_ns);
            to->rsts_received++;
        }
        return;
    }
    if ((m->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) return;
    struct src *e = find(t, m->src, m->family);
    int fresh = e == NULL, added;
    if (fresh) e = take(t, m, ring, c);
    else if (due(e, ts_ns))
        summarise(e, HW_SRC_INTERVAL, ring, c); /* a span that ended before this packet is sent without it */
    int i = pair_of(e, m, &added);
    begin(t, e, ts_ns);
    e->vlan = m->vlan;
    e->syns++;
    c->tcp_source_syns++;
    e->span_pairs |= (uint8_t)(1u << i);
    e->last_pair = (uint8_t)i;
    hwint_sketch_add(e->hosts, hw_mix_addr(m->dst, m->family));
    hwint_sketch_add(e->ports, hw_mix_addr(m->dst, (uint64_t)m->dport << 8 | m->family));
    if (fresh || added) summarise(e, fresh ? HW_SRC_NEW : HW_SRC_CHANGED, ring, c);
}

void hwint_src_tick(struct hw_srcsum *t, uint64_t now_ns, struct hw_ring *ring, struct hw_counters *c,
                    uint32_t budget)
{
    for (int n = 0; n < SWEEP && budget; n++) {
        uint32_t at = t->sweep_at;
        struct src *b = &t->t[at * WAYS];
        t->sweep_at = (at + 1) & (t->buckets - 1);
        if (now_ns < t->due_at[at]) continue;
        uint64_t due_at = UINT64_MAX;
        for (int i = 0; i < WAYS; i++) {
            if (budget && due(&b[i], now_ns)) {
                summarise(&b[i], HW_SRC_INTERVAL, ring, c);
                budget--;
            }
            uint64_t from = due_from(&b[i], now_ns);
            if (from < due_at) due_at = from;
        }
        t->due_at[at] = due_at;
    }
}

uint32_t hwint_src_flush(struct hw_srcsum *t, struct hw_ring *ring, struct hw_counters *c)
{
    uint32_t left = 0;
    for (uint32_t i = 0; i < t->buckets * WAYS; i++) {
        if (!pending(&t->t[i])) continue;
        if (hwint_ring_used(ring) >= ring->size) left++;
        else summarise(&t->t[i], HW_SRC_END, ring, c);
    }
    return left;
}
