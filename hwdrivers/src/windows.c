/* windows.c - traffic windows in packet time.
 *
 * A window's counters are the change of the session's counters over it, so
 * the per-packet cost is a clock comparison.  What counters cannot say is
 * gathered as flows and handshakes happen: each flow records where it stood
 * when the window first saw it, and its share (bytes per direction, new
 * retransmissions, a long life, a protocol on another port) is folded into
 * per-window tables when the window closes or the flow ends.  Handshake and
 * response times are kept as a bounded reservoir of samples, initiators in a
 * table with distinct-count sketches of the hosts and ports they reach (what
 * a port scan looks like).  Python turns a closed window into figures. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hw.h"
#include "flow.h"

#define SOURCE_SLOTS 4096   /* initiators per window; beyond half of this they are counted as dropped */
#define TOUCHED_MAX 65536   /* flows remembered per window before their shares are folded early */
#define MAX_EMPTY 64        /* empty windows reported across a jump in time; the rest are skipped */
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* 32 bytes: the family is in the address (IPv4 as ::ffff:a.b.c.d); a slot
 * with no bytes either way is empty; the table is cleared for each window. */
struct whost {
    uint8_t addr[16];
    uint64_t tx, rx;
};

struct wsrc {
    uint8_t addr[16];
    uint8_t family;
    uint32_t gen;
    struct hw_win_source s;
    uint64_t hosts[HW_SKETCH_WORDS], ports[HW_SKETCH_WORDS];
};

struct hw_windows {
    uint64_t size_ns, long_ns;
    int started;
    uint32_t id, gen;
    uint64_t index, start_ns, end_ns, skipped;
    int seen;               /* the current window has had a packet */
    uint64_t rng;
    struct hw_counters base;
    struct hw_window cur;
    struct hw_flowtable *ft;
    uint32_t *touched, n_touched;
    struct whost *hosts;
    uint32_t host_mask, host_max, n_hosts;
    size_t host_bytes;
    struct wsrc *srcs;
    uint32_t n_srcs, srcs_dropped;
    struct hw_ring ring;
};

struct hw_windows *hwint_win_create(const struct hw_config *cfg)
{
    struct hw_windows *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->size_ns = (uint64_t)cfg->window_s * HW_NS;
    w->long_ns = (uint64_t)cfg->long_flow_s * HW_NS;
    w->rng = 0x9e3779b97f4a7c15ULL;
    uint32_t n = 16;
    while (n < cfg->max_hosts * 2) n <<= 1;
    w->host_mask = n - 1;
    w->host_max = cfg->max_hosts;
    w->host_bytes = (size_t)n * sizeof *w->hosts;
    w->hosts = calloc(n, sizeof *w->hosts);
    w->srcs = calloc(SOURCE_SLOTS, sizeof *w->srcs);
    w->touched = malloc(TOUCHED_MAX * sizeof *w->touched);
    w->id = w->gen = 1;
    if (!w->hosts || !w->srcs || !w->touched ||
        hwint_ring_init(&w->ring, cfg->window_ring ? cfg->window_ring : 64, sizeof(struct hw_window))) {
        hwint_win_destroy(w);
        return NULL;
    }
    return w;
}

void hwint_win_destroy(struct hw_windows *w)
{
    if (!w) return;
    hwint_ring_free(&w->ring);
    free(w->hosts);
    free(w->srcs);
    free(w->touched);
    free(w);
}

static void host_key(uint8_t *key, const uint8_t *addr, uint8_t family)
{
    if (family == 6) {
        memcpy(key, addr, 16);
        return;
    }
    memset(key, 0, 10);
    key[10] = key[11] = 0xff;
    memcpy(key + 12, addr, 4);
}

static uint32_t host_slot(struct hw_windows *w, const uint8_t *key)
{
    return (uint32_t)hw_mix_addr(key, 0) & w->host_mask;
}

static struct whost *host(struct hw_windows *w, const uint8_t *key, uint32_t i)
{
    for (;; i = (i + 1) & w->host_mask) {
        struct whost *h = &w->hosts[i];
        if (!h->tx && !h->rx) {
            if (w->n_hosts >= w->host_max) return NULL;
            w->n_hosts++;
            memcpy(h->addr, key, 16);
            return h;
        }
        if (!memcmp(h->addr, key, 16)) return h;
    }
}

static struct wsrc *source(struct hw_windows *w, const uint8_t *addr, uint8_t family)
{
    for (uint32_t i = (uint32_t)hw_mix_addr(addr, family) & (SOURCE_SLOTS - 1);; i = (i + 1) & (SOURCE_SLOTS - 1)) {
        struct wsrc *s = &w->srcs[i];
        if (s->gen != w->gen) {
            if (w->n_srcs >= SOURCE_SLOTS / 2) {
                w->srcs_dropped++;
                return NULL;
            }
            w->n_srcs++;
            memset(s, 0, sizeof *s);
            memcpy(s->addr, addr, 16);
            s->family = family;
            s->gen = w->gen;
            return s;
        }
        if (s->family == family && !memcmp(s->addr, addr, 16)) return s;
    }
}

/* Linear counting: distinct items from the share of bits still zero. */
uint32_t hwint_sketch_count(const uint64_t *sk)
{
    int set = 0;
    for (int i = 0; i < HW_SKETCH_WORDS; i++) set += __builtin_popcountll(sk[i]);
    int bits = 64 * HW_SKETCH_WORDS, zero = bits - set;
    if (zero == 0) zero = 1; /* saturated: the estimate's ceiling */
    return (uint32_t)(-(double)bits * log((double)zero / bits) + 0.5);
}

static void note_flow(struct hw_windows *w, const struct hw_flow *f, uint8_t kind)
{
    struct hw_window *r = &w->cur;
    uint32_t segs = f->segs[0] + f->segs[1], rt = f->retrans[0] + f->retrans[1];
    struct hw_win_flow *slot = NULL;
    if (r->n_flows < HW_WIN_FLOWS) {
        slot = &r->flows[r->n_flows++];
    } else if (kind == HW_WF_LOSS) { /* the lossiest are kept */
        for (int i = 0; i < HW_WIN_FLOWS; i++) {
            struct hw_win_flow *e = &r->flows[i];
            if (e->kind == HW_WF_LOSS && (uint64_t)e->retransmissions * segs < (uint64_t)rt * e->segments &&
                (!slot || (uint64_t)e->retransmissions * slot->segments < (uint64_t)slot->retransmissions * e->segments))
                slot = e;
        }
        if (!slot) return;
    } else {
        return;
    }
    memcpy(slot->src, f->a, 16);
    memcpy(slot->dst, f->b, 16);
    slot->family = f->family;
    slot->proto = f->proto;
    slot->kind = kind;
    slot->app = f->app;
    slot->port_app = f->port_app;
    slot->sport = f->pa;
    slot->dport = f->pb;
    slot->first_ns = f->first_ns;
    slot->last_ns = f->last_ns;
    slot->packets = f->packets[0] + f->packets[1];
    slot->bytes = f->bytes[0] + f->bytes[1];
    slot->segments = segs;
    slot->retransmissions = rt;
}

/* A flow's share of the current window since the window first saw it.
 * Hosts are looked up from precomputed keys and slots (see fold_touched). */
static void fold(struct hw_windows *w, struct hw_flow *f, const uint8_t *ka, uint32_t sa, const uint8_t *kb,
                 uint32_t sb)
{
    f->wid = 0;
    uint64_t d0 = f->bytes[0] - f->wbase_bytes[0], d1 = f->bytes[1] - f->wbase_bytes[1];
    if (d0 | d1) {
        struct whost *a = host(w, ka, sa);
        if (a) a->tx += d0, a->rx += d1;
        struct whost *b = host(w, kb, sb);
        if (b) b->tx += d1, b->rx += d0;
    }
    if (f->retrans[0] + f->retrans[1] > f->wbase_retrans) note_flow(w, f, HW_WF_LOSS);
    if (w->long_ns && f->last_ns - f->first_ns >= w->long_ns && !(f->wflags & HW_WF_LONG)) {
        f->wflags |= HW_WF_LONG;
        note_flow(w, f, HW_WF_LONG);
    }
    if (f->port_app && f->app != f->port_app && !(f->wflags & HW_WF_PORT)) {
        f->wflags |= HW_WF_PORT;
        note_flow(w, f, HW_WF_PORT);
    }
}

void hwint_win_fold(struct hw_windows *w, struct hw_flow *f)
{
    if (f->wid != w->id) return;
    uint8_t ka[16], kb[16];
    host_key(ka, f->a, f->family);
    host_key(kb, f->b, f->family);
    fold(w, f, ka, host_slot(w, ka), kb, host_slot(w, kb));
}

/* Fold every flow the window saw, in groups whose host slots are fetched
 * ahead: the host table is larger than the caches. */
#define FOLD_GROUP 32
static void fold_touched(struct hw_windows *w)
{
    uint8_t ka[FOLD_GROUP][16], kb[FOLD_GROUP][16];
    uint32_t sa[FOLD_GROUP], sb[FOLD_GROUP];
    for (uint32_t base = 0; base < w->n_touched; base += FOLD_GROUP) {
        uint32_t n = w->n_touched - base < FOLD_GROUP ? w->n_touched - base : FOLD_GROUP;
        for (uint32_t i = 0; i < n; i++) {
            struct hw_flow *f = &w->ft->pool[w->touched[base + i]];
            host_key(ka[i], f->a, f->family);
            host_key(kb[i], f->b, f->family);
            sa[i] = host_slot(w, ka[i]);
            sb[i] = host_slot(w, kb[i]);
            __builtin_prefetch(&w->hosts[sa[i]], 1);
            __builtin_prefetch(&w->hosts[sb[i]], 1);
        }
        for (uint32_t i = 0; i < n; i++) {
            struct hw_flow *f = &w->ft->pool[w->touched[base + i]];
            if (f->used && f->wid == w->id) fold(w, f, ka[i], sa[i], kb[i], sb[i]);
        }
    }
    w->n_touched = 0;
}

void hwint_win_touch(struct hw_windows *w, struct hw_flow *f, uint32_t idx)
{
    if (f->wid == w->id) return;
    if (w->n_touched == TOUCHED_MAX) fold_touched(w); /* the shares so far; they restart from here */
    f->wid = w->id;
    f->wbase_bytes[0] = f->bytes[0];
    f->wbase_bytes[1] = f->bytes[1];
    f->wbase_retrans = f->retrans[0] + f->retrans[1];
    w->touched[w->n_touched++] = idx;
}

void hwint_win_new_flow(struct hw_windows *w, const struct hw_flow *f, uint8_t tcp_flags)
{
    struct wsrc *s = source(w, f->a, f->family);
    if (!s) return;
    s->s.new_flows++;
    if (f->proto == 6) {
        if ((tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) s->s.tcp_syn_flows++;
        else if (!(tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST))) s->s.odd_flag_flows++; /* FIN, NULL, Xmas probes */
    } else if (f->proto == 17) {
        s->s.udp_flows++;
    }
    hwint_sketch_add(s->hosts, hw_mix_addr(f->b, f->family));
    hwint_sketch_add(s->ports, hw_mix_addr(f->b, 0) ^ ((uint64_t)f->pb * 0x94d049bb133111ebULL));
}

void hwint_win_rst(struct hw_windows *w, const struct hw_flow *f)
{
    struct wsrc *s = source(w, f->a, f->family);
    if (s) s->s.rst_received++;
}

void hwint_win_unreachable(struct hw_windows *w, const uint8_t *addr, uint8_t family)
{
    struct wsrc *s = source(w, addr, family);
    if (s) s->s.unreachable_received++;
}

static void sample(struct hw_windows *w, uint64_t ns, uint64_t *count, uint64_t *sum, uint64_t *max,
                   uint32_t *n, uint32_t *samples)
{
    uint64_t us = ns / 1000;
    (*count)++;
    *sum += ns;
    if (ns > *max) *max = ns;
    uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    if (*n < HW_WIN_SAMPLES) {
        samples[(*n)++] = v;
        return;
    }
    w->rng ^= w->rng << 13, w->rng ^= w->rng >> 7, w->rng ^= w->rng << 17; /* xorshift64 */
    uint64_t j = w->rng % *count; /* reservoir: every sample equally likely to stay */
    if (j < HW_WIN_SAMPLES) samples[j] = v;
}

void hwint_win_rtt(struct hw_windows *w, uint64_t ns)
{
    struct hw_window *r = &w->cur;
    sample(w, ns, &r->rtt_count, &r->rtt_sum_ns, &r->rtt_max_ns, &r->rtt_samples, r->rtt_us);
}

void hwint_win_resp(struct hw_windows *w, uint64_t ns)
{
    struct hw_window *r = &w->cur;
    sample(w, ns, &r->resp_count, &r->resp_sum_ns, &r->resp_max_ns, &r->resp_samples, r->resp_us);
}

static uint64_t key_tx(const void *e) { return ((const struct whost *)e)->tx; }
static uint64_t key_rx(const void *e) { return ((const struct whost *)e)->rx; }
static uint64_t key_src(const void *e)
{
    const struct hw_win_source *s = &((const struct wsrc *)e)->s;
    return (uint64_t)s->new_flows << 32 | (uint64_t)(s->rst_received + s->unreachable_received);
}

static void top_hosts(struct hw_windows *w, uint64_t (*key)(const void *), struct hw_win_host *out, uint32_t *n)
{
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct whost best[HW_WIN_TALKERS];
    struct hw_topn t = {best, HW_WIN_TALKERS, 0, sizeof best[0], key};
    for (uint32_t i = 0; i <= w->host_mask; i++)
        if (key(&w->hosts[i])) hwint_topn_push(&t, &w->hosts[i]);
    *n = (uint32_t)hwint_topn_finish(&t);
    for (uint32_t i = 0; i < *n; i++) {
        memset(out[i].addr, 0, 16);
        if (memcmp(best[i].addr, v4, 12)) {
            memcpy(out[i].addr, best[i].addr, 16);
            out[i].family = 6;
        } else {
            memcpy(out[i].addr, best[i].addr + 12, 4);
            out[i].family = 4;
        }
        out[i].bytes = key(&best[i]);
    }
}

static void close_window(struct hw_windows *w, struct hw_counters *c)
{
    struct hw_window *r = &w->cur;
    const struct hw_counters *b = &w->base;
    fold_touched(w);
    r->index = w->index;
    r->start_ns = w->start_ns;
    r->end_ns = w->end_ns;
    r->skipped_before = w->skipped;
    r->packets = c->packets - b->packets;
    r->bytes = c->bytes - b->bytes;
    r->malformed = c->malformed - b->malformed;
    for (int i = 0; i < HW_L_COUNT; i++) {
        r->layer_packets[i] = c->layer_packets[i] - b->layer_packets[i];
        r->layer_bytes[i] = c->layer_bytes[i] - b->layer_bytes[i];
    }
    for (int i = 0; i < HW_APP_COUNT; i++) {
        r->app_packets[i] = c->app_packets[i] - b->app_packets[i];
        r->app_bytes[i] = c->app_bytes[i] - b->app_bytes[i];
    }
    r->new_flows = c->flows_created - b->flows_created;
    r->new_flows_tcp = c->flows_tcp - b->flows_tcp;
    r->new_flows_udp = c->flows_udp - b->flows_udp;
    r->new_flows_icmp = c->flows_icmp - b->flows_icmp;
    r->new_flows_other = c->flows_other - b->flows_other;
    r->flows_active = w->ft->active;
    r->tcp_syn = c->tcp_syn - b->tcp_syn;
    r->tcp_synack = c->tcp_synack - b->tcp_synack;
    r->tcp_rst = c->tcp_rst - b->tcp_rst;
    r->tcp_fin = c->tcp_fin - b->tcp_fin;
    r->tcp_segments = c->tcp_segments - b->tcp_segments;
    r->tcp_retransmissions = c->tcp_retransmissions - b->tcp_retransmissions;
    top_hosts(w, key_tx, r->top_src, &r->n_top_src);
    top_hosts(w, key_rx, r->top_dst, &r->n_top_dst);
    struct wsrc best[HW_WIN_SOURCES];
    struct hw_topn t = {best, HW_WIN_SOURCES, 0, sizeof best[0], key_src};
    for (uint32_t i = 0; i < SOURCE_SLOTS; i++)
        if (w->srcs[i].gen == w->gen) hwint_topn_push(&t, &w->srcs[i]);
    r->n_sources = (uint32_t)hwint_topn_finish(&t);
    for (uint32_t i = 0; i < r->n_sources; i++) {
        r->sources[i] = best[i].s;
        memcpy(r->sources[i].addr, best[i].addr, 16);
        r->sources[i].family = best[i].family;
        r->sources[i].hosts = hwint_sketch_count(best[i].hosts);
        r->sources[i].ports = hwint_sketch_count(best[i].ports);
    }
    r->sources_dropped = w->srcs_dropped;

    struct hw_window *slot = hwint_ring_reserve(&w->ring);
    if (slot) {
        memcpy(slot, r, sizeof *r);
        hwint_ring_commit(&w->ring);
    } else {
        c->windows_dropped++;
    }
    c->windows_closed++;
    memset(r, 0, sizeof *r);
    w->seen = 0;
    w->base = *c;
    w->skipped = 0;
    if (w->n_hosts) memset(w->hosts, 0, w->host_bytes);
    w->n_hosts = w->n_srcs = w->srcs_dropped = 0;
    if (++w->gen == 0) w->gen = 1;
    if (++w->id == 0) w->id = 1;
}

void hwint_win_clock(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t ts)
{
    w->ft = ft;
    if (!w->started) {
        w->started = 1;
        w->start_ns = ts;
        w->end_ns = ts + w->size_ns;
        w->base = *c;
        return;
    }
    for (int emitted = 0; ts >= w->end_ns; emitted++) {
        close_window(w, c);
        w->index++;
        w->start_ns = w->end_ns;
        w->end_ns += w->size_ns;
        if (emitted + 1 >= MAX_EMPTY && ts >= w->end_ns) { /* a jump in time: skip to ts */
            uint64_t n = (ts - w->start_ns) / w->size_ns;
            w->index += n;
            w->start_ns += n * w->size_ns;
            w->end_ns = w->start_ns + w->size_ns;
            w->skipped = n;
            break;
        }
    }
}

uint64_t hwint_win_end(struct hw_windows *w) { return w->started ? w->end_ns : 0; }

void hwint_win_idle(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t now)
{
    if (w->started && now >= w->end_ns) hwint_win_clock(w, ft, c, now);
}

void hwint_win_packet(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t ts)
{
    if (!w->started || ts >= w->end_ns) hwint_win_clock(w, ft, c, ts);
    if (!w->seen || ts < w->cur.first_packet_ns) w->cur.first_packet_ns = ts;
    if (!w->seen || ts > w->cur.last_packet_ns) w->cur.last_packet_ns = ts;
    w->seen = 1;
}

void hwint_win_flush(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c)
{
    w->ft = ft;
    if (!w->started) return;
    close_window(w, c);
    w->started = 0; /* the next packet starts a new series */
    w->index++;
}

int hwint_win_read(struct hw_windows *w, struct hw_window *out, int max)
{
    return hwint_ring_read(&w->ring, out, max);
}

uint32_t hwint_win_queued(struct hw_windows *w, uint32_t *capacity)
{
    *capacity = w->ring.size;
    return hwint_ring_used(&w->ring);
}
