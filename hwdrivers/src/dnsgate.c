/* dnsgate.c - the DNS gate: a DNS query on its way to the event ring is held
 * back, and the next DNS event carries its facts (rec.dnsfold.fold) instead
 * of the query costing Python an event of its own.  Anything else that
 * would reach the ring first (an ARP, a TCP source summary, a TLS hello...)
 * releases the held query as it was, in front of it: the ring's `before`
 * hook.  So Python learns every query in packet order, exactly as from its
 * own event (the transaction, the client's warmth, the LAN's frame), and
 * a DNS exchange of a query and its answer is one event, not two.
 *
 * One query is held at a time: holding more would let a later event pass an
 * earlier query, and what the detectors read depends on that order (the
 * LAN's next hops, the client's warmth; docs/DETECTION.md).  Held: well-formed
 * UDP queries of one question and no records but EDNS (what a stub sends). */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define HELD_HEAD offsetof(struct hw_event, snippet)
#define HELD_DNS offsetof(struct hw_rec_dns, rr) /* a held query has no answer or authority records */

struct hw_dnsgate {
    int on, held;                 /* on 2: and answers are marked as repeats of their templates (dnsrepeat.c) */
    struct hw_dnsrepeat *templates;
    struct hw_counters *c;
    struct hw_ring *ring;
    struct hw_dnsgate_counters n;
    struct hw_event ev;           /* the held query: head, snippet and DNS record */
};

static void before(void *ctx, struct hw_ring *r)
{
    (void)r;
    hwint_dnsgate_release(ctx, 1);
}

struct hw_dnsgate *hwint_dnsgate_create(struct hw_counters *c, struct hw_ring *events)
{
    struct hw_dnsgate *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (!(g->templates = hwint_dnsrepeat_create())) {
        free(g);
        return NULL;
    }
    g->c = c;
    g->ring = events;
    events->before = before;
    events->before_ctx = g;
    return g;
}

void hwint_dnsgate_destroy(struct hw_dnsgate *g)
{
    if (!g) return;
    g->ring->before = NULL;
    hwint_dnsrepeat_destroy(g->templates);
    free(g);
}

void hwint_dnsgate_set(struct hw_dnsgate *g, int on)
{
    if (!on) hwint_dnsgate_release(g, 1);
    g->on = on;
}

const struct hw_event *hwint_dnsgate_take(struct hw_dnsgate *g)
{
    if (!g->held) return NULL;
    g->held = 0;
    return &g->ev;
}

void hwint_dnsgate_untake(struct hw_dnsgate *g) { g->held = 1; }

void hwint_dnsgate_carry(struct hw_dnsgate *g, const struct hw_event *q, struct hw_event *e)
{
    struct hw_dns_fold *f = &e->rec.dnsfold.fold;
    hwint_dnsrepeat_mark(g->on == 2 ? g->templates : NULL, &g->n, q, e);
    if (!q) {
        f->ts_ns = 0;
        return;
    }
    const struct hw_rec_dns *d = &q->rec.dns;
    f->ts_ns = q->ts_ns ? q->ts_ns : 1;
    f->flow_id = q->flow_id;
    memcpy(f->src, q->src, 16);
    memcpy(f->dst, q->dst, 16);
    memcpy(f->src_mac, q->src_mac, 6);
    memcpy(f->dst_mac, q->dst_mac, 6);
    f->wirelen = q->wirelen;
    f->payload_len = q->payload_len;
    f->sport = q->sport;
    f->dport = q->dport;
    f->vlan = q->vlan;
    f->family = q->family;
    f->proto = q->proto;
    f->from_initiator = q->from_initiator;
    f->id = d->id;
    f->flags = d->flags;
    f->rcode = d->rcode;
    f->qtype = d->qtype;
    f->qclass = d->qclass;
    f->arcount = d->arcount;
    f->edns = d->edns;
    f->edns_udp_size = d->edns_udp_size;
    f->edns_version = d->edns_version;
    f->edns_do = d->edns_do;
    f->cut = d->cut;
    f->name_len = d->name_len;
    memcpy(f->name, d->name, d->name_len);
    g->n.folded++;
}

static int holdable(const struct hw_event *e)
{
    const struct hw_rec_dns *d = &e->rec.dns;
    return e->kind == HW_EV_DNS && e->proto == 17 && e->has_rec && !e->rec_status && !(d->flags & 0x8000) &&
           d->qdcount == 1 && !d->ancount && !d->nscount && !d->n_rr && !d->rr_skipped &&
           d->name_len < HW_DNS_FOLD_NAME_MAX;
}

int hwint_dnsgate_hold(struct hw_dnsgate *g, const struct hw_event *e)
{
    if (!g->on || g->held || !holdable(e)) return 0;
    memcpy(&g->ev, e, HELD_HEAD + e->snippet_len);
    memcpy(&g->ev.rec.dns, &e->rec.dns, HELD_DNS);
    g->held = 1;
    g->n.held++;
    return 1;
}

int hwint_dnsgate_release(struct hw_dnsgate *g, int drop)
{
    if (!g->held) return 0;
    g->held = 0;
    struct hw_event *e = hwint_ring_reserve(g->ring);
    if (!e) {
        if (!drop) {
            g->held = 1;
            return 1;
        }
        g->n.dropped++;
        g->c->events_dropped[HW_EV_DNS]++;
        return 0;
    }
    memcpy(e, &g->ev, HELD_HEAD + g->ev.snippet_len);
    memcpy(&e->rec.dns, &g->ev.rec.dns, HELD_DNS);
    e->rec.dnsfold.fold.ts_ns = 0;
    memset(&e->rec.dnsfold.rep, 0, sizeof e->rec.dnsfold.rep);
    hwint_ring_commit(g->ring);
    g->c->events[HW_EV_DNS]++;
    g->n.released++;
    return 0;
}

void hwint_dnsgate_counters(const struct hw_dnsgate *g, struct hw_dnsgate_counters *out)
{
    if (g) *out = g->n;
    else memset(out, 0, sizeof *out);
}

void hwint_dnsgate_tick(struct hw_dnsgate *g, uint64_t now_ns)
{
    /* a live wire busy with traffic that makes no event: the query must not wait for the next one */
    if (g->held && now_ns > g->ev.ts_ns + HW_DNSGATE_HOLD_NS) hwint_dnsgate_release(g, 1);
}
