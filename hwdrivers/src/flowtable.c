/* flowtable.c - bidirectional flow metering.
 *
 * Open addressing with linear probing over a slot array of (hash, index)
 * pairs, so a probe that misses never touches a flow entry; entries live in
 * a separate pool of cache-aligned records.  The hash is symmetric in the
 * two endpoints, so both directions of a conversation find one entry.
 * Idle and active timeouts are enforced by a sweep that walks a slice of
 * the pool as packet time advances; a full table evicts the least recently
 * seen of a few candidates.  Removal shifts later slots back (no tombstones). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hw.h"
#include "flow.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define EVICT_CANDIDATES 8
#define INITIAL_SLOTS (1u << 16)
#define REORDER_WINDOW_NS 3000000ULL /* 3 ms, Wireshark's out-of-order bound without an RTT */

static void *map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct hw_flowtable *hwint_ft_create(uint32_t max_flows, uint32_t idle_s, uint32_t active_s,
                                     hw_flow_sink sink, struct hw_session *s)
{
    if (max_flows == 0 || max_flows > (1u << 30)) return NULL;
    struct hw_flowtable *ft = calloc(1, sizeof *ft);
    if (!ft) return NULL;
    uint32_t n = 1024;
    while (n < max_flows * 2ULL) n <<= 1;
    ft->max_slots = n;
    if (n > INITIAL_SLOTS) n = INITIAL_SLOTS;
    ft->mask = n - 1;
    ft->max = max_flows;
    ft->slot_bytes = (size_t)n * sizeof *ft->slot;
    ft->pool_bytes = (size_t)max_flows * sizeof *ft->pool;
    /* anonymous maps are zero and only touched pages cost memory */
    ft->slot = map(ft->slot_bytes);
    ft->pool = map(ft->pool_bytes);
    if (!ft->slot || !ft->pool) {
        hwint_ft_destroy(ft);
        return NULL;
    }
    ft->free_head = UINT32_MAX;
    ft->idle_ns = idle_s * HW_NS;
    ft->active_ns = active_s * HW_NS;
    uint64_t shortest = ft->idle_ns;
    if (!shortest || (ft->active_ns && ft->active_ns < shortest)) shortest = ft->active_ns;
    /* the whole pool is swept every 1/8 of the shortest timeout, at most every second */
    ft->sweep_ns = shortest / 8 > HW_NS ? shortest / 8 : HW_NS;
    ft->next_id = 1;
    ft->sink = sink;
    ft->session = s;
    return ft;
}

void hwint_ft_destroy(struct hw_flowtable *ft)
{
    if (!ft) return;
    if (ft->slot) munmap(ft->slot, ft->slot_bytes);
    if (ft->pool) munmap(ft->pool, ft->pool_bytes);
    free(ft);
}

/* One multiply per endpoint, one to combine: the high half of a 64-bit
 * product mixes every input bit, and only the high half is used. */
static inline uint64_t endpoint_hash(const uint8_t *addr, uint16_t port)
{
    uint64_t w0, w1;
    memcpy(&w0, addr, 8);
    memcpy(&w1, addr + 8, 8);
    return (w0 ^ (w1 * 0x9e3779b97f4a7c15ULL) ^ port) * 0xbf58476d1ce4e5b9ULL;
}

/* Symmetric: both directions of a conversation hash alike. */
uint32_t hwint_ft_hash(const struct hw_meta *m)
{
    uint64_t x = endpoint_hash(m->src, m->sport), y = endpoint_hash(m->dst, m->dport);
    uint64_t lo = x < y ? x : y, hi = x < y ? y : x;
    uint64_t h = (lo ^ (hi >> 29 | hi << 35) ^ ((uint64_t)m->proto << 56) ^ ((uint64_t)m->vlan << 40) ^
                  ((uint64_t)m->vlan_inner << 8) ^ m->family) * 0x94d049bb133111ebULL;
    return (uint32_t)(h >> 32);
}

static inline int addr_eq(const uint8_t *x, const uint8_t *y)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, x, 8), memcpy(&a1, x + 8, 8);
    memcpy(&b0, y, 8), memcpy(&b1, y + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* 0: same direction as the initiator, 1: reverse, -1: another flow. */
static inline int match(const struct hw_flow *f, const struct hw_meta *m)
{
    if (f->proto != m->proto || f->vlan != m->vlan || f->family != m->family || f->vlan_inner != m->vlan_inner)
        return -1;
    if (f->pa == m->sport && f->pb == m->dport && addr_eq(f->a, m->src) && addr_eq(f->b, m->dst))
        return 0;
    if (f->pa == m->dport && f->pb == m->sport && addr_eq(f->a, m->dst) && addr_eq(f->b, m->src))
        return 1;
    return -1;
}

void hwint_ft_prefetch_slot(struct hw_flowtable *ft, uint32_t h)
{
    __builtin_prefetch(&ft->slot[h & ft->mask]);
}

/* The likely entry: the first in the probe run with the same hash. */
void hwint_ft_prefetch_flow(struct hw_flowtable *ft, uint32_t h)
{
    for (uint32_t i = h & ft->mask;; i = (i + 1) & ft->mask) {
        uint64_t s = ft->slot[i];
        if (!s) return;
        if ((uint32_t)(s >> 32) == h) {
            __builtin_prefetch(&ft->pool[(uint32_t)s - 1]);
            return;
        }
    }
}

static void slot_insert(uint64_t *slot, uint32_t mask, uint64_t v)
{
    uint32_t i = (uint32_t)(v >> 32) & mask;
    while (slot[i]) i = (i + 1) & mask;
    slot[i] = v;
}

/* Double the slot array (rehash) so probes stay short; 0 when at the limit. */
static int grow(struct hw_flowtable *ft)
{
    uint32_t n = (ft->mask + 1) * 2;
    if (n > ft->max_slots) return 0;
    size_t bytes = (size_t)n * sizeof *ft->slot;
    uint64_t *slot = map(bytes);
    if (!slot) return 0;
    for (uint32_t i = 0; i <= ft->mask; i++)
        if (ft->slot[i]) slot_insert(slot, n - 1, ft->slot[i]);
    munmap(ft->slot, ft->slot_bytes);
    ft->slot = slot;
    ft->slot_bytes = bytes;
    ft->mask = n - 1;
    return 1;
}

static void to_record(const struct hw_flow *f, struct hw_flow_record *r, uint8_t reason)
{
    memset(r, 0, sizeof *r);
    r->id = f->id;
    r->first_ns = f->first_ns;
    r->last_ns = f->last_ns;
    memcpy(r->packets, f->packets, sizeof r->packets);
    memcpy(r->bytes, f->bytes, sizeof r->bytes);
    r->rtt_ns = f->rtt_ns;
    r->syn_synack_ns = f->synack_ns > f->syn_ns && f->syn_ns ? f->synack_ns - f->syn_ns : 0;
    memcpy(r->retransmissions, f->retrans, sizeof r->retransmissions);
    memcpy(r->out_of_order, f->ooo, sizeof r->out_of_order);
    memcpy(r->src, f->a, 16);
    memcpy(r->dst, f->b, 16);
    memcpy(r->src_mac, f->mac_a, 6);
    memcpy(r->dst_mac, f->mac_b, 6);
    r->sport = f->pa;
    r->dport = f->pb;
    r->vlan = f->vlan;
    memcpy(r->icmp_type_code, f->icmp_tc, sizeof r->icmp_type_code);
    r->family = f->family;
    r->proto = f->proto;
    memcpy(r->tcp_flags, f->tcp_flags, 2);
    r->state = f->state;
    r->end_reason = reason;
    r->app = f->app;
    r->continued = f->continued;
    r->vlan_inner = f->vlan_inner;
    r->tun_type = f->tun_type;
    r->tun_family = f->tun_family;
    memcpy(r->tun_id, f->tun_id, sizeof r->tun_id);
    memcpy(r->tun_src, f->tun_src, 16);
    memcpy(r->tun_dst, f->tun_dst, 16);
}

static void emit(struct hw_flowtable *ft, const struct hw_flow *f, uint8_t reason)
{
    struct hw_flow_record r;
    to_record(f, &r, reason);
    ft->sink(ft->session, &r, f->cid);
}

static uint32_t slot_of(struct hw_flowtable *ft, uint32_t idx)
{
    uint64_t want = (uint64_t)ft->pool[idx].hash << 32 | (idx + 1);
    uint32_t i = ft->pool[idx].hash & ft->mask;
    while (ft->slot[i] != want) i = (i + 1) & ft->mask;
    return i;
}

/* Backward-shift deletion: pull later members of the probe run into the hole. */
static void slot_delete(struct hw_flowtable *ft, uint32_t i)
{
    for (uint32_t j = (i + 1) & ft->mask;; j = (j + 1) & ft->mask) {
        uint64_t s = ft->slot[j];
        if (!s) break;
        uint32_t home = (uint32_t)(s >> 32) & ft->mask;
        if (((j - home) & ft->mask) >= ((j - i) & ft->mask)) {
            ft->slot[i] = s;
            i = j;
        }
    }
    ft->slot[i] = 0;
}

static void remove_flow(struct hw_flowtable *ft, uint32_t idx, uint8_t reason, struct hw_counters *c)
{
    struct hw_flow *f = &ft->pool[idx];
    if (f->packets[0] + f->packets[1]) emit(ft, f, reason); /* not a continuation that stayed silent */
    if (ft->win) hwint_win_fold(ft->win, f);
    slot_delete(ft, slot_of(ft, idx));
    f->used = 0;
    f->next_free = ft->free_head;
    ft->free_head = idx;
    ft->active--;
    c->flows_active = ft->active;
    switch (reason) {
    case HW_END_IDLE: c->flows_expired_idle++; break;
    case HW_END_EVICTED: c->flows_evicted++; break;
    default: c->flows_expired_end++; break;
    }
}

/* An approximate LRU: the least recently seen of a few pool entries. */
static int evict_one(struct hw_flowtable *ft, struct hw_counters *c)
{
    uint32_t best = UINT32_MAX;
    uint64_t best_ns = UINT64_MAX;
    for (int k = 0; k < EVICT_CANDIDATES; k++) {
        uint32_t i = ft->evict_hand++ % ft->high;
        if (ft->pool[i].used && ft->pool[i].last_ns < best_ns) {
            best = i;
            best_ns = ft->pool[i].last_ns;
        }
    }
    if (best == UINT32_MAX) return -1;
    remove_flow(ft, best, HW_END_EVICTED, c);
    return 0;
}

static struct hw_flow *create(struct hw_flowtable *ft, const struct hw_meta *m, uint32_t h,
                              uint64_t ts, struct hw_counters *c)
{
    if (ft->free_head == UINT32_MAX && ft->high == ft->max && evict_one(ft, c) < 0) {
        c->flows_not_metered++;
        return NULL;
    }
    uint32_t idx;
    if (ft->free_head != UINT32_MAX) {
        idx = ft->free_head;
        ft->free_head = ft->pool[idx].next_free;
        if (idx < ft->flush_from) ft->flush_from = idx;
    } else {
        idx = ft->high++;
    }
    if (ft->active + 1 > (ft->mask + 1) / 2) grow(ft);
    slot_insert(ft->slot, ft->mask, (uint64_t)h << 32 | (idx + 1));

    struct hw_flow *f = &ft->pool[idx];
    memset(f, 0, sizeof *f);
    /* A SYN-ACK seen first means the SYN was missed: the destination opened it. */
    int swap = m->proto == 6 && (m->tcp_flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK);
    memcpy(f->a, swap ? m->dst : m->src, 16);
    memcpy(f->b, swap ? m->src : m->dst, 16);
    f->pa = swap ? m->dport : m->sport;
    f->pb = swap ? m->sport : m->dport;
    if (m->mac_src) {
        memcpy(swap ? f->mac_b : f->mac_a, m->mac_src, 6);
        if (m->mac_dst) memcpy(swap ? f->mac_a : f->mac_b, m->mac_dst, 6);
    }
    f->vlan = m->vlan;
    f->vlan_inner = m->vlan_inner;
    if (m->tun_type) {
        f->tun_type = m->tun_type;
        f->tun_family = m->tun_family;
        memcpy(swap ? f->tun_dst : f->tun_src, m->tun_src, 16);
        memcpy(swap ? f->tun_src : f->tun_dst, m->tun_dst, 16);
    }
    f->family = m->family;
    f->proto = m->proto;
    f->hash = h;
    f->used = 1;
    f->app = f->port_app = hwint_app_by_ports(m->proto, f->pa, f->pb);
    f->id = ft->next_id++;
    f->first_ns = f->last_ns = ts;
    ft->active++;
    c->flows_created++;
    if (m->proto == 6) c->flows_tcp++;
    else if (m->proto == 17) c->flows_udp++;
    else if (m->proto == 1 || m->proto == 58) c->flows_icmp++;
    else c->flows_other++;
    c->flows_active = ft->active;
    if (ft->win) hwint_win_new_flow(ft->win, f, m->tcp_flags);
    return f;
}

static void tcp_update(struct hw_flowtable *ft, struct hw_flow *f, int dir, const struct hw_meta *m, uint64_t ts,
                       struct hw_counters *c)
{
    uint8_t fl = m->tcp_flags, bit = (uint8_t)(1u << dir);
    f->tcp_flags[dir] |= fl;
    if (fl & TCP_SYN) {
        if (fl & TCP_ACK) c->tcp_synack++;
        else c->tcp_syn++;
    }
    if (fl & TCP_FIN) c->tcp_fin++;
    if (fl & TCP_RST) {
        c->tcp_rst++;
        if (dir == 1 && ft->win) hwint_win_rst(ft->win, f);
        f->state = HW_TCP_RESET;
    } else if ((fl & (TCP_SYN | TCP_ACK)) == TCP_SYN && f->state == HW_TCP_RESET) {
        f->state = HW_TCP_OPENING; /* the same SYN retried after a RST */
        f->synack_ns = 0;
    }
    if (f->state != HW_TCP_RESET) {
        if (fl & TCP_SYN) {
            if (!(fl & TCP_ACK) && dir == 0 && !f->synack_ns) {
                f->syn_ns = ts;
                f->isn = m->seq;
            }
            if ((fl & TCP_ACK) && dir == 1 && !f->rtt_ns) f->synack_ns = ts;
            if (f->state == HW_TCP_NONE) f->state = HW_TCP_OPENING;
        } else if ((fl & TCP_ACK) && f->state == HW_TCP_OPENING && f->synack_ns &&
                   (dir == 0 || m->pay_len)) {
            if (dir == 0 && f->syn_ns && !f->rtt_ns) {
                f->rtt_ns = ts - f->syn_ns;
                if (ft->win) hwint_win_rtt(ft->win, f->rtt_ns);
            }
            f->state = HW_TCP_ESTABLISHED;
        } else if (f->state == HW_TCP_NONE) {
            f->state = HW_TCP_ESTABLISHED; /* joined mid-stream */
        }
        if (fl & TCP_FIN) {
            f->fin |= bit;
            f->state = f->fin == 3 ? HW_TCP_CLOSED : HW_TCP_CLOSING;
        }
    }
    /* an IP fragment's segment length is unknown until reassembly */
    if (m->frag) return;
    if (m->pay_len) {
        c->tcp_segments++;
        f->segs[dir]++;
        /* response time: the initiator's first data after the handshake, to the responder's first answer */
        if (dir == 0 && !f->req_ns && f->synack_ns && f->state == HW_TCP_ESTABLISHED) {
            f->req_ns = ts;
        } else if (dir == 1 && f->req_ns && !(f->wflags & WF_RESPONDED)) {
            f->wflags |= WF_RESPONDED;
            if (ft->win) hwint_win_resp(ft->win, ts - f->req_ns);
        }
    }

    /* Sequence space: data below the highest end seen is a retransmission,
     * unless it fills the latest gap soon after it opened (out of order). */
    uint32_t seg = m->pay_len + !!(fl & TCP_SYN) + !!(fl & TCP_FIN);
    if (!(f->seq_init & bit)) {
        f->seq_init |= bit;
        f->next_seq[dir] = m->seq + seg;
        f->adv_ns[dir] = ts;
        return;
    }
    if (seg == 0) return;
    int32_t d = (int32_t)(m->seq - f->next_seq[dir]);
    if (d >= 0) {
        if (d > 0) {
            f->hole |= bit;
            f->hole_lo[dir] = f->next_seq[dir];
            f->hole_hi[dir] = m->seq;
        }
        f->next_seq[dir] = m->seq + seg;
        f->adv_ns[dir] = ts;
        return;
    }
    if (d == -1 && seg == 1 && !(fl & (TCP_SYN | TCP_FIN))) return; /* keep-alive */
    uint64_t window = f->rtt_ns ? f->rtt_ns : REORDER_WINDOW_NS;
    int fills = (f->hole & bit) && (int32_t)(m->seq - f->hole_lo[dir]) >= 0 &&
                (int32_t)(m->seq - f->hole_hi[dir]) < 0;
    if (fills && ts - f->adv_ns[dir] < window) {
        f->ooo[dir]++;
        c->tcp_out_of_order++;
        if (m->seq == f->hole_lo[dir]) f->hole_lo[dir] += seg;
        if ((int32_t)(f->hole_lo[dir] - f->hole_hi[dir]) >= 0) f->hole &= (uint8_t)~bit;
    } else {
        f->retrans[dir]++;
        c->tcp_retransmissions++;
    }
    if ((int32_t)(m->seq + seg - f->next_seq[dir]) > 0) {
        f->next_seq[dir] = m->seq + seg;
        f->adv_ns[dir] = ts;
    }
}

int hwint_ft_packet(struct hw_flowtable *ft, struct hw_meta *m, uint32_t h, uint32_t wirelen, uint64_t ts,
                    struct hw_flow_hit *hit, struct hw_counters *c)
{
    struct hw_flow *f = NULL;
    int dir = 0;
    for (uint32_t i = h & ft->mask;; i = (i + 1) & ft->mask) {
        uint64_t s = ft->slot[i];
        if (!s) break;
        if ((uint32_t)(s >> 32) != h) continue;
        struct hw_flow *cand = &ft->pool[(uint32_t)s - 1];
        if ((dir = match(cand, m)) >= 0) {
            f = cand;
            break;
        }
    }
    /* A flow silent for the idle timeout has ended, swept or not. */
    if (f && ft->idle_ns && ts > f->last_ns && ts - f->last_ns >= ft->idle_ns) {
        remove_flow(ft, (uint32_t)(f - ft->pool), HW_END_IDLE, c);
        f = NULL;
    }
    /* A new SYN on a closed or reset connection starts a new conversation;
     * the same SYN again (same ISN, e.g. retried after a RST) does not. */
    if (f && m->proto == 6 && (m->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
        (f->state == HW_TCP_CLOSED || f->state == HW_TCP_RESET) &&
        (dir != 0 || !f->syn_ns || m->seq != f->isn)) {
        remove_flow(ft, (uint32_t)(f - ft->pool), HW_END_TCP, c);
        f = NULL;
    }
    if (!f) {
        f = create(ft, m, h, ts, c);
        if (!f) {
            c->packets_not_metered++;
            return 0;
        }
        dir = match(f, m);
    }
    if (ft->win) {
        hwint_win_touch(ft->win, f, (uint32_t)(f - ft->pool));
        /* destination unreachable, to the one whose packet did not get through */
        if ((m->proto == 1 && m->dport >> 8 == 3) || (m->proto == 58 && m->dport >> 8 == 1))
            hwint_win_unreachable(ft->win, m->dst, m->family);
    }
    if (ts > f->last_ns) f->last_ns = ts;
    if (!(f->packets[0] | f->packets[1])) f->first_ns = ts; /* the first packet after an active-timeout report */
    if (HW_UNLIKELY(m->proto == 1 || m->proto == 58) && !f->packets[dir]) f->icmp_tc[dir] = m->icmp_tc;
    f->packets[dir]++;
    f->bytes[dir] += wirelen;
    if (HW_UNLIKELY(m->tun_type)) f->tun_id[dir] = m->tun_id; /* GTP: each direction its own TEID */
    if (m->proto == 6) tcp_update(ft, f, dir, m, ts, c);
    hit->id = f->id;
    hit->packets = f->packets[0] + f->packets[1];
    hit->app = &f->app;
    hit->port_app = f->port_app;
    hit->flow = f;
    hit->from_initiator = dir == 0;
    return 1;
}

/* Active timeout: report what the flow did so far and keep metering it as a
 * continuation, like a NetFlow cache does. */
static void restart(struct hw_flowtable *ft, struct hw_flow *f)
{
    if (ft->win) hwint_win_fold(ft->win, f); /* before the counts it started from go */
    memset(f->packets, 0, sizeof f->packets);
    memset(f->segs, 0, sizeof f->segs);
    memset(f->bytes, 0, sizeof f->bytes);
    memset(f->retrans, 0, sizeof f->retrans);
    memset(f->ooo, 0, sizeof f->ooo);
    memset(f->tcp_flags, 0, sizeof f->tcp_flags);
    /* first_ns is set by the next packet; until then there is nothing to report */
    f->continued = 1;
}

void hwint_ft_expire(struct hw_flowtable *ft, uint64_t now, struct hw_counters *c, uint32_t budget)
{
    if (now < ft->next_sweep_ns || ft->high == 0 || (!ft->idle_ns && !ft->active_ns)) return;
    uint64_t elapsed = ft->last_sweep_ns ? now - ft->last_sweep_ns : ft->sweep_ns;
    uint64_t n = elapsed >= ft->sweep_ns ? ft->high : (uint64_t)ft->high * elapsed / ft->sweep_ns + 1;
    for (uint64_t k = 0; k < n; k++) {
        uint32_t idx = ft->sweep_hand % ft->high;
        struct hw_flow *f = &ft->pool[idx];
        int idle = f->used && ft->idle_ns && now > f->last_ns && now - f->last_ns >= ft->idle_ns;
        int active = f->used && !idle && ft->active_ns && (f->packets[0] | f->packets[1]) &&
                     now > f->first_ns && now - f->first_ns >= ft->active_ns;
        if ((idle || active) && budget-- == 0) {
            ft->next_sweep_ns = 0; /* out of room: carry on from here next call */
            return;
        }
        ft->sweep_hand++;
        if (idle) {
            remove_flow(ft, idx, HW_END_IDLE, c);
        } else if (active) {
            emit(ft, f, HW_END_ACTIVE);
            c->flows_expired_active++;
            restart(ft, f);
        }
    }
    ft->last_sweep_ns = now;
    ft->next_sweep_ns = now + HW_NS / 4;
}

#define HOSTS_AHEAD 8   /* flows between fetching their slot and talkers' slots and their removal */

uint32_t hwint_ft_flush(struct hw_flowtable *ft, uint32_t max, struct hw_counters *c)
{
    uint32_t done = 0, i = ft->flush_from;
    for (; i < ft->high && ft->active && (!max || done < max); i++) {
        if (i + HOSTS_AHEAD < ft->high && ft->pool[i + HOSTS_AHEAD].used) {   /* (tables at random: a miss each) */
            const struct hw_flow *ahead = &ft->pool[i + HOSTS_AHEAD];
            __builtin_prefetch(&ft->slot[ahead->hash & ft->mask], 1);            /* its slot, to delete */
            if (ft->hosts) {
                hwint_hosts_prefetch(ft->hosts, ahead->a, ahead->family);
                hwint_hosts_prefetch(ft->hosts, ahead->b, ahead->family);
            }
        }
        if (!ft->pool[i].used) continue;
        remove_flow(ft, i, HW_END_FLUSH, c);
        done++;
    }
    ft->flush_from = ft->active ? i : 0;
    return ft->active;
}

static uint64_t key_bytes(const void *e)
{
    const struct hw_flow_record *r = e;
    return r->bytes[0] + r->bytes[1];
}
static uint64_t key_packets(const void *e)
{
    const struct hw_flow_record *r = e;
    return r->packets[0] + r->packets[1];
}
static uint64_t key_last(const void *e) { return ((const struct hw_flow_record *)e)->last_ns; }
static uint64_t key_first(const void *e) { return UINT64_MAX - ((const struct hw_flow_record *)e)->first_ns; }

int hwint_ft_top(struct hw_flowtable *ft, struct hw_flow_record *out, int max, int order)
{
    static uint64_t (*const keys[])(const void *) = {key_bytes, key_packets, key_last, key_first};
    if (order < 0 || order > HW_ORDER_FIRST) return HW_E_ARG;
    struct hw_topn t = {out, max, 0, sizeof *out, keys[order]};
    struct hw_flow_record r;
    for (uint32_t i = 0; i < ft->high; i++) {
        if (!ft->pool[i].used) continue;
        to_record(&ft->pool[i], &r, HW_END_ACTIVE_FLOW);
        hwint_topn_push(&t, &r);
    }
    return hwint_topn_finish(&t);
}

uint32_t hwint_ft_active(struct hw_flowtable *ft) { return ft->active; }

static const char *const end_names[] = {"active", "idle", "active_timeout", "tcp_end", "flush", "evicted"};
static const char *const state_names[] = {"none", "opening", "established", "closing", "closed", "reset"};

const char *hw_end_name(int r) { return r >= 0 && r <= HW_END_EVICTED ? end_names[r] : NULL; }
const char *hw_tcp_state_name(int s) { return s >= 0 && s <= HW_TCP_RESET ? state_names[s] : NULL; }
