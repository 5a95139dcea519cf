/* rtp.c - RTP and RTCP on the endpoints Python names.
 *
 * Python learns media addresses and ports from SDP and registers them
 * (hw_rtp_watch); from then on every UDP packet to or from such an endpoint
 * is analysed here: per direction, SSRC and call, the sequence numbers
 * (with wraps), expected versus received packets, and the RFC 3550
 * interarrival jitter in the payload type's clock, the way Wireshark's RTP
 * stream analysis computes them, so the figures can be checked against
 * `tshark -z rtp,streams`.
 *
 * Two open-addressing tables (endpoints, streams), both allocated once by
 * hw_rtp_init, removal by backward shift: the packet path never allocates,
 * and with no endpoint registered it returns at its first test. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define PT_CN 13
#define PT_CN_OLD 19
#define PT_DYN_FIRST 96

#define F_MARKER 0x1
#define F_WRONG_TS 0x2
#define F_PT_CN 0x4
#define F_FOLLOW_CN 0x8

/* Clock rates of the static payload types (RFC 3551, IANA). */
static const uint32_t static_clock[PT_DYN_FIRST] = {
    [0] = 8000,  [1] = 8000,  [2] = 8000,  [3] = 8000,  [4] = 8000,  [5] = 8000,  [6] = 16000,
    [7] = 8000,  [8] = 8000,  [9] = 8000,  [10] = 44100, [11] = 44100, [12] = 8000, [13] = 8000,
    [14] = 90000, [15] = 8000, [16] = 11025, [17] = 22050, [18] = 8000, [19] = 8000, [25] = 90000,
    [26] = 90000, [28] = 90000, [31] = 90000, [32] = 90000, [33] = 90000, [34] = 90000,
};

struct stream {
    struct hw_rtp_stream r;        /* what Python reads */
    uint32_t hash;
    uint8_t used, under, flags, pt;
    uint16_t start_seq, stop_seq, seq_num;
    uint32_t cycles;
    uint32_t total;                /* packets analysed, the first included */
    uint32_t first_ts;             /* the first packet's RTP timestamp */
    double last_nominal;           /* timestamp advance (ms) at the last packet with a known clock */
    double time_ms;                /* arrival of the last packet in time sequence, ms after first_ns */
    double delta_ms;
    uint32_t clock[HW_RTP_DYN];
};

struct hw_rtp {
    struct hw_rtp_endpoint *ep;    /* tag 0: free slot */
    uint32_t ep_mask;
    struct stream *st;
    uint32_t st_mask;
    struct hw_rtp_stats stats;
};

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

void hwint_rtp_destroy(struct hw_rtp *r)
{
    if (!r) return;
    free(r->ep);
    free(r->st);
    free(r);
}

struct hw_rtp *hwint_rtp_create(uint32_t max_endpoints, uint32_t max_streams)
{
    struct hw_rtp *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    uint32_t ne = pow2_at_least(2 * max_endpoints), ns = pow2_at_least(2 * max_streams);
    r->ep = calloc(ne, sizeof *r->ep);
    r->st = calloc(ns, sizeof *r->st);
    if (!r->ep || !r->st) {
        hwint_rtp_destroy(r);
        return NULL;
    }
    r->ep_mask = ne - 1;
    r->st_mask = ns - 1;
    r->stats.max_endpoints = max_endpoints;
    r->stats.max_streams = max_streams;
    return r;
}

/* ---- endpoints ----------------------------------------------------------- */

static inline uint32_t ep_hash(const uint8_t *addr, uint16_t port, uint8_t family)
{
    return (uint32_t)hw_mix_addr(addr, (uint64_t)port << 8 | family);
}

static inline int same_addr(const uint8_t *a, const uint8_t *b) { return !memcmp(a, b, 16); }

/* The endpoint that owns addr:port at time ts: of the registrations of that
 * address, the latest that began by then (an RTP one on a tie). */
static const struct hw_rtp_endpoint *ep_find(const struct hw_rtp *r, const uint8_t *addr, uint16_t port,
                                             uint8_t family, uint64_t ts)
{
    const struct hw_rtp_endpoint *best = NULL;
    for (uint32_t i = ep_hash(addr, port, family) & r->ep_mask;; i = (i + 1) & r->ep_mask) {
        const struct hw_rtp_endpoint *e = &r->ep[i];
        if (!e->tag) return best;
        if (e->port != port || e->family != family || e->from_ns > ts || !same_addr(e->addr, addr)) continue;
        if (!best || e->from_ns > best->from_ns || (e->from_ns == best->from_ns && e->kind == HW_RTP_RTP))
            best = e;
    }
}

int hwint_rtp_watch(struct hw_rtp *r, const struct hw_rtp_endpoint *e, char *errbuf)
{
    if (!e->tag) return hwint_err(errbuf, HW_E_ARG, "an RTP endpoint needs a tag other than 0");
    if (e->family != 4 && e->family != 6) return hwint_err(errbuf, HW_E_ARG, "family %u is not 4 or 6", e->family);
    if (e->kind != HW_RTP_RTP && e->kind != HW_RTP_RTCP) return hwint_err(errbuf, HW_E_ARG, "kind %u", e->kind);
    uint32_t i = ep_hash(e->addr, e->port, e->family) & r->ep_mask;
    for (;; i = (i + 1) & r->ep_mask) {
        struct hw_rtp_endpoint *x = &r->ep[i];
        if (!x->tag) break;
        if (x->tag == e->tag && x->port == e->port && x->family == e->family && x->kind == e->kind &&
            same_addr(x->addr, e->addr)) {
            if (e->from_ns < x->from_ns) x->from_ns = e->from_ns;
            for (int k = 0; k < HW_RTP_DYN; k++)
                if (e->clock[k]) x->clock[k] = e->clock[k];
            return HW_OK;
        }
    }
    if (r->stats.endpoints >= r->stats.max_endpoints)
        return hwint_err(errbuf, HW_E_NOMEM, "RTP endpoint table full (%u)", r->stats.max_endpoints);
    r->ep[i] = *e;
    r->stats.endpoints++;
    return HW_OK;
}

/* ---- streams --------------------------------------------------------------- */

struct skey {
    const uint8_t *src, *dst;
    uint16_t sport, dport;
    uint32_t ssrc, tag;
    uint8_t family, kind;
};

static inline uint32_t st_hash(const struct skey *k)
{
    uint64_t x = hw_mix_addr(k->src, (uint64_t)k->ssrc << 32 | (uint32_t)k->sport << 16 | k->dport);
    return (uint32_t)hw_mix_addr(k->dst, x ^ ((uint64_t)k->tag << 8 | k->kind));
}

static inline int st_match(const struct stream *s, const struct skey *k)
{
    const struct hw_rtp_stream *r = &s->r;
    return r->ssrc == k->ssrc && r->sport == k->sport && r->dport == k->dport && r->tag == k->tag &&
           r->kind == k->kind && r->family == k->family && same_addr(r->src, k->src) && same_addr(r->dst, k->dst);
}

/* The stream of a key, made if new; NULL when the table is full. */
static struct stream *st_get(struct hw_rtp *r, const struct skey *k, const struct hw_rtp_endpoint *e, uint64_t ts)
{
    uint32_t h = st_hash(k), i = h & r->st_mask;
    for (;; i = (i + 1) & r->st_mask) {
        struct stream *s = &r->st[i];
        if (!s->used) break;
        if (s->hash == h && st_match(s, k)) return s;
    }
    if (r->stats.streams >= r->stats.max_streams) return NULL;
    struct stream *s = &r->st[i];
    memset(s, 0, sizeof *s);
    s->used = 1;
    s->hash = h;
    memcpy(s->r.src, k->src, 16);
    memcpy(s->r.dst, k->dst, 16);
    s->r.sport = k->sport;
    s->r.dport = k->dport;
    s->r.family = k->family;
    s->r.kind = k->kind;
    s->r.ssrc = k->ssrc;
    s->r.tag = k->tag;
    s->r.first_ns = s->r.last_ns = ts;
    memcpy(s->clock, e->clock, sizeof s->clock);
    r->stats.streams++;
    return s;
}

/* Backward-shift deletion over either table (slot i is freed). */
#define SHIFT_DELETE(arr, mask, i, used_of, hash_of)                                  \
    do {                                                                              \
        uint32_t hole_ = (i);                                                         \
        for (uint32_t j_ = (hole_ + 1) & (mask);; j_ = (j_ + 1) & (mask)) {          \
            if (!used_of(&(arr)[j_])) break;                                          \
            uint32_t home_ = hash_of(&(arr)[j_]) & (mask);                            \
            if (((j_ - home_) & (mask)) >= ((j_ - hole_) & (mask))) {                 \
                (arr)[hole_] = (arr)[j_];                                             \
                hole_ = j_;                                                           \
            }                                                                         \
        }                                                                             \
        memset(&(arr)[hole_], 0, sizeof (arr)[hole_]);                                \
    } while (0)

#define EP_USED(e) ((e)->tag != 0)
#define EP_HASH(e) ep_hash((e)->addr, (e)->port, (e)->family)
#define ST_USED(s) ((s)->used)
#define ST_HASH(s) ((s)->hash)

int hwint_rtp_forget(struct hw_rtp *r, uint32_t tag)
{
    int n = 0;
    for (uint32_t i = 0; i <= r->ep_mask;) {
        if (r->ep[i].tag == tag) { /* the shift may pull another into i: look again */
            SHIFT_DELETE(r->ep, r->ep_mask, i, EP_USED, EP_HASH);
            r->stats.endpoints--;
            n++;
        } else {
            i++;
        }
    }
    for (uint32_t i = 0; i <= r->st_mask;) {
        if (r->st[i].used && r->st[i].r.tag == tag) {
            SHIFT_DELETE(r->st, r->st_mask, i, ST_USED, ST_HASH);
            r->stats.streams--;
        } else {
            i++;
        }
    }
    return n;
}

/* One RTP packet of a stream: Wireshark's rtppacket_analyse (ui/tap-rtp-analysis.c,
 * as tshark 4.0 runs it) in its essentials, so the figures equal `tshark -z
 * rtp,streams`: the sequence check and wrap count behind the loss figure;
 * D = arrival - (the previous packet in time sequence + the timestamp advance
 * since the last packet with a known clock); J += (|D| - J) / 16 (RFC 3550
 * 6.4.1); mean and max jitter are of J over the regular packets. */
static void analyse(struct stream *s, uint16_t seq, uint32_t ts32, uint8_t pt, int marker, uint64_t now)
{
    struct hw_rtp_stream *r = &s->r;
    double cur = (double)(int64_t)(now - r->first_ns) / 1e6;
    r->pt_mask[pt >> 5] |= 1u << (pt & 31);
    if (marker) r->markers++;
    if (s->total == 0) {
        s->start_seq = s->stop_seq = s->seq_num = seq;
        s->first_ts = ts32;
        s->time_ms = cur;
        s->pt = pt;
        s->total = 1;
        r->last_pt = pt;
        return;
    }
    uint8_t flags = marker ? F_MARKER : 0;
    /* in time sequence: at most half the timestamp range after the first packet's */
    int in_seq = (s->first_ts <= ts32 && ts32 - s->first_ts < 0x80000000u) ||
                 (s->first_ts > ts32 && (uint64_t)s->first_ts + (0xFFFFFFFFu - ts32) < 0x80000000u);
    if (!in_seq) flags |= F_WRONG_TS;

    /* a wrap: a number below the first one (or 0 after 65535) starts a cycle */
    if (in_seq && !s->under && (seq < s->start_seq || (seq == 0 && s->stop_seq == 65535))) {
        s->cycles++;
        s->under = 1;
    } else if (in_seq && s->under && seq > s->start_seq) {
        s->under = 0;
    }
    int last = s->seq_num;
    if (in_seq && (last + 1 == seq || (last == 65535 && seq == 0))) {
        s->seq_num = seq;
    } else if (in_seq && (last + 1 < seq || last - seq > 0xFF00)) { /* a gap, or the wrap's packets lost */
        s->seq_num = seq;
        r->seq_errors++;
    } else if (last + 1 > seq) {                                    /* late or duplicated */
        r->seq_errors++;
    }

    if (pt == PT_CN || pt == PT_CN_OLD) flags |= F_PT_CN;
    if (s->pt == PT_CN || s->pt == PT_CN_OLD) flags |= F_FOLLOW_CN;
    s->pt = pt;
    r->last_pt = pt;
    uint32_t clock = pt < PT_DYN_FIRST ? static_clock[pt] : s->clock[pt - PT_DYN_FIRST];

    double diff = 0;
    if (in_seq) {
        s->delta_ms = cur - s->time_ms;
        if (clock) {
            r->clock_rate = clock;
            uint32_t per_ms = clock / 1000 ? clock / 1000 : 1; /* whole samples per ms, as Wireshark divides */
            double nominal = (double)(uint32_t)(ts32 - s->first_ts) / per_ms;
            diff = cur - (s->time_ms + (nominal - s->last_nominal));
            if (diff < 0) diff = -diff;
            r->jitter_ms = (15 * r->jitter_ms + diff) / 16;
            s->last_nominal = nominal;
        }
    }
    /* the figures count regular packets: no marker, no comfort noise, in time order */
    if (!(flags & (F_MARKER | F_PT_CN | F_WRONG_TS | F_FOLLOW_CN))) {
        if (s->delta_ms > r->max_delta_ms) r->max_delta_ms = s->delta_ms;
        r->mean_delta_ms = (r->mean_delta_ms * (s->total - 1) + s->delta_ms) / s->total;
        if (clock) {
            if (r->jitter_ms > r->max_jitter_ms) r->max_jitter_ms = r->jitter_ms;
            r->mean_jitter_ms = (r->mean_jitter_ms * (s->total - 1) + r->jitter_ms) / s->total;
        }
    }
    if (in_seq) s->time_ms = cur;
    s->stop_seq = seq;
    s->total++;
}

static void count_pt(struct hw_rtp_stream *r)
{
    int n = 0;
    for (int k = 0; k < 4; k++) n += __builtin_popcount(r->pt_mask[k]);
    r->payload_types = (uint8_t)n;
}

void hwint_rtp_packet(struct hw_rtp *r, const struct hw_meta *m, uint64_t ts, uint32_t wirelen)
{
    if (!r->stats.endpoints || m->proto != 17 || m->frag == 2) return;
    const struct hw_rtp_endpoint *e = ep_find(r, m->dst, m->dport, m->family, ts);
    if (!e) e = ep_find(r, m->src, m->sport, m->family, ts);
    if (!e) return;
    const uint8_t *p = m->pay;
    /* RTP and RTCP are version 2; RTCP packet types 192..223 share an RTP port under rtcp-mux (RFC 5761) */
    if (m->pay_cap < 8 || p[0] >> 6 != 2) {
        r->stats.other_packets++;
        return;
    }
    int rtcp = e->kind == HW_RTP_RTCP || (p[1] >= 192 && p[1] <= 223);
    if (!rtcp && m->pay_cap < 12) {
        r->stats.other_packets++;
        return;
    }
    struct skey k = {m->src, m->dst, m->sport, m->dport, hw_be32(p + (rtcp ? 4 : 8)), e->tag, m->family,
                     rtcp ? HW_RTP_RTCP : HW_RTP_RTP};
    struct stream *s = st_get(r, &k, e, ts);
    if (!s) {
        r->stats.streams_full++;
        return;
    }
    struct hw_rtp_stream *o = &s->r;
    o->packets++;
    o->bytes += wirelen;
    if (ts > o->last_ns) o->last_ns = ts;
    if (rtcp) {
        r->stats.rtcp_packets++;
        return;
    }
    r->stats.rtp_packets++;
    analyse(s, hw_be16(p + 2), hw_be32(p + 4), p[1] & 0x7f, p[1] >> 7, ts);
}

int hwint_rtp_read(struct hw_rtp *r, uint32_t tag, struct hw_rtp_stream *out, int max)
{
    int n = 0;
    for (uint32_t i = 0; i <= r->st_mask && n < max; i++) {
        struct stream *s = &r->st[i];
        if (!s->used || (tag && s->r.tag != tag)) continue;
        out[n] = s->r;
        if (s->r.kind == HW_RTP_RTP && s->total) {
            out[n].expected = (uint64_t)s->stop_seq + (uint64_t)s->cycles * 65536 - s->start_seq + 1;
            out[n].lost = (int64_t)out[n].expected - (int64_t)s->total;
        }
        count_pt(&out[n]);
        n++;
    }
    return n;
}

void hwint_rtp_stats(struct hw_rtp *r, struct hw_rtp_stats *out) { *out = r->stats; }

/* ---- the calls Python makes: under the session lock, as the packet path runs ---- */

int hw_rtp_init(struct hw_session *s, uint32_t max_endpoints, uint32_t max_streams, char *errbuf)
{
    if (max_endpoints < 1 || max_endpoints > (1u << 22) || max_streams < 1 || max_streams > (1u << 22))
        return hwint_err(errbuf, HW_E_ARG, "RTP table sizes %u, %u out of range 1..%u", max_endpoints, max_streams,
                         1u << 22);
    struct hw_rtp *r = hwint_rtp_create(max_endpoints, max_streams);
    if (!r) return hwint_err(errbuf, HW_E_NOMEM, "out of memory for %u RTP streams", max_streams);
    pthread_mutex_lock(hwint_session_lock(s));
    struct hw_rtp **slot = hwint_session_rtp(s);
    int rc = HW_OK;
    if (*slot) rc = hwint_err(errbuf, HW_E_STATE, "RTP tracking is already on");
    else *slot = r;
    pthread_mutex_unlock(hwint_session_lock(s));
    if (rc) hwint_rtp_destroy(r);
    return rc;
}

int hw_rtp_watch(struct hw_session *s, const struct hw_rtp_endpoint *e, char *errbuf)
{
    pthread_mutex_lock(hwint_session_lock(s));
    struct hw_rtp *r = *hwint_session_rtp(s);
    int rc = r ? hwint_rtp_watch(r, e, errbuf) : hwint_err(errbuf, HW_E_STATE, "RTP tracking is off (hw_rtp_init)");
    pthread_mutex_unlock(hwint_session_lock(s));
    return rc;
}

int hw_rtp_forget(struct hw_session *s, uint32_t tag)
{
    pthread_mutex_lock(hwint_session_lock(s));
    struct hw_rtp *r = *hwint_session_rtp(s);
    int n = r ? hwint_rtp_forget(r, tag) : 0;
    pthread_mutex_unlock(hwint_session_lock(s));
    return n;
}

int hw_rtp_read(struct hw_session *s, uint32_t tag, struct hw_rtp_stream *out, int max)
{
    pthread_mutex_lock(hwint_session_lock(s));
    struct hw_rtp *r = *hwint_session_rtp(s);
    int n = r ? hwint_rtp_read(r, tag, out, max) : 0;
    pthread_mutex_unlock(hwint_session_lock(s));
    return n;
}

int hw_rtp_stats(struct hw_session *s, struct hw_rtp_stats *out)
{
    pthread_mutex_lock(hwint_session_lock(s));
    struct hw_rtp *r = *hwint_session_rtp(s);
    if (r) hwint_rtp_stats(r, out);
    else memset(out, 0, sizeof *out);
    pthread_mutex_unlock(hwint_session_lock(s));
    return HW_OK;
}
