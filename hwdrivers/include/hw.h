/* hw.h - the C core's internal header: the public declarations (the cdef
 * files, shared with cffi) plus the structures the sources share. */
#ifndef HW_H
#define HW_H

#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../cdef/session.h"
#include "../cdef/flows.h"
#include "../cdef/records.h"
#include "../cdef/dnsgate.h"
#include "../cdef/events.h"
#include "../cdef/windows.h"
#include "../cdef/tokens.h"
#include "../cdef/fpga.h"
#include "../cdef/export.h"
#include "../cdef/record.h"
#include "../cdef/extract.h"
#include "../cdef/rtp.h"
#include "../cdef/shring.h"
#include "../cdef/logs.h"

#define HW_BATCH_MAX 256
#define HW_MAX_CAPLEN 262144 /* libpcap's MAXIMUM_SNAPLEN: anything larger is a corrupt record */
#define HW_NS 1000000000ULL

#define HW_LIKELY(x) __builtin_expect(!!(x), 1)
#define HW_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* DLT / LINKTYPE values the parser understands. */
#define HW_DLT_NULL 0
#define HW_DLT_EN10MB 1
#define HW_DLT_RAW 12
#define HW_DLT_RAW_OPENBSD 14
#define HW_LINKTYPE_RAW 101
#define HW_DLT_LOOP 108
#define HW_DLT_LINUX_SLL 113
#define HW_DLT_IPV4 228
#define HW_DLT_IPV6 229
#define HW_DLT_LINUX_SLL2 276

/* One packet as a backend hands it over; data stays valid until the next poll. */
struct hw_pkt {
    const uint8_t *data;
    uint32_t caplen, wirelen;
    uint64_t ts_ns;
};

struct hw_batch {
    int n;
    int cap;  /* the most packets this poll may return (a run's budget) */
    int eof;  /* set by the backend: no packet will follow */
    struct hw_pkt pkt[HW_BATCH_MAX];
};

/* A capture backend, libpcap-style: one file hw-<name>.c fills one of these. */
struct hw_backend_ops {
    const char *name;
    const char *description;
    uint32_t caps;
    int (*available)(char *errbuf);
    int (*open)(const struct hw_config *cfg, void **state, int *linktype, char *errbuf);
    int (*start)(void *state, char *errbuf);
    /* Fill b (b->n packets); returns b->n, or HW_E_* with errbuf set. */
    int (*poll)(void *state, struct hw_batch *b, int timeout_ms, char *errbuf);
    /* Add the backend_* counters. */
    void (*stats)(void *state, struct hw_counters *c);
    int (*set_filter)(void *state, const char *bpf, char *errbuf);
    void (*close)(void *state);
    /* Optional: flows metered by the hardware (HW_CAP_FLOWOFFLOAD). */
    int (*offload_flows)(void *state, struct hw_offload_flow *out, int max);
};

extern const struct hw_backend_ops hw_pcapfile_ops;
extern const struct hw_backend_ops hw_pcap_ops;
extern const struct hw_backend_ops hw_afpacket_ops;
extern const struct hw_backend_ops hw_fpga_ops;

/* What the parser learned of one packet.  Pointers point into the packet and
 * every length is already bounded by the captured length. */
struct hw_meta {
    const uint8_t *mac_dst, *mac_src; /* NULL when the link has none */
    const uint8_t *arp;               /* ARP body (28 bytes checked) */
    const uint8_t *pay;               /* L4 payload */
    uint32_t pay_cap;                 /* payload bytes captured */
    uint32_t pay_len;                 /* payload bytes the headers announce */
    uint32_t seq, ack;
    uint32_t frag_id;
    uint16_t vlan, sport, dport;
    uint16_t icmp_tc;                 /* ICMP: type << 8 | code */
    uint8_t family;                   /* 4, 6, or 0 for no IP */
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t frag;                     /* 0 none, 1 first fragment, 2 later fragment */
    uint16_t vlan_inner;              /* QinQ: the second tag's id */
    /* the tunnel that carried this packet (the innermost one), zero for none */
    uint8_t tun_type, tun_depth, tun_family, tun_proto;
    uint16_t tun_sport, tun_dport;
    uint32_t tun_id;                  /* VNI, ERSPAN session, GTP TEID or GRE key */
    uint8_t tun_frag;                 /* the tunnel packet was a first fragment (frag.c) */
    uint8_t inner_link;               /* what inner points to: HW_DLT_EN10MB or HW_DLT_RAW */
    const uint8_t *inner;             /* the innermost tunnel's payload, for the recording's filter */
    uint32_t inner_cap;
    uint32_t tun_frag_id;
    uint8_t src[16], dst[16];         /* the flow key's addresses: the innermost packet's */
    uint8_t tun_src[16], tun_dst[16]; /* the tunnel's own addresses; set only with tun_type */
};

#define HW_P_BAD 0   /* malformed: counted, nothing more to do */
#define HW_P_IP 1    /* an IP packet with a flow key */
#define HW_P_ARP 2
#define HW_P_OTHER 3 /* a well-formed frame that is not IP or ARP */

/* tun: the session's tunnel settings, NULL to meter tunnels as they are. */
int hwint_parse(int linktype, const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                struct hw_meta *m, struct hw_counters *c, const struct hw_config *tun);

/* The packet a tunnel carries (tunnel.c): an Ethernet frame (ethertype 0) or
 * an IP packet.  hwint_tunnel returns 1 with *in filled, 0 when m is no
 * tunnel (or its type is off), or -HW_MAL_* when its header is bad. */
struct hwint_inner {
    const uint8_t *p;
    uint32_t cap, wire;
    uint32_t ethertype;
    uint32_t id;
    uint8_t type;
};
int hwint_tunnel(const struct hw_meta *m, const struct hw_config *cfg, struct hwint_inner *in);

/* Single-producer, single-consumer ring of fixed-size records. */
struct hw_ring {
    uint32_t size, mask, rec_size;
    uint8_t *buf;
    _Atomic uint64_t head; /* written by the producer */
    _Atomic uint64_t tail; /* written by the consumer */
    pthread_mutex_t read_lock;
    void (*before)(void *ctx, struct hw_ring *r); /* called before each reserve (dnsgate.c: a held event goes first) */
    void *before_ctx;
};

/* logs.c: the attached logger's part of the event path (under the session lock) */
struct hw_flow;
uint32_t hwint_logger_events(const struct hw_logger *lg);     /* the event kinds it wants: 1 << HW_EV_x */
void hwint_logger_prefetch(const struct hw_logger *lg, int kind, uint64_t flow_id);   /* ahead of the event */
void hwint_logger_event(struct hw_logger *lg, const struct hw_event *e, struct hw_flow *flow);  /* flow: e's or NULL */
void hwint_logger_forget(struct hw_logger *lg);     /* the session's flows go: no entry of theirs kept */
/* The expired flows' lines as hw_logger_flows, kept[i] the SHA-1 of f[i]'s community ID (hw_flow's cid; all zero:
 * none made; kept NULL: none at all) */
int hwint_logger_flows(struct hw_logger *lg, const struct hw_flow_record *f, const uint8_t (*kept)[20], int n,
                       int32_t *rest);
/* A logger with no bound (a file read in batches) holds enough lines to be taken now: a lossless session
 * hands back to its caller, so the lines' buffers stay small and in cache. */
int hwint_logger_full(struct hw_logger *lg);

/* srcsum.c: per-source summaries of TCP SYNs and RSTs (events.h, HW_EV_TCP_SRC),
 * sent to the event ring as they fall due; never one event per SYN. */
struct hw_srcsum;
struct hw_srcsum *hwint_src_create(uint32_t max_sources);   /* max_hosts, at most 2^18 */
void hwint_src_destroy(struct hw_srcsum *t);
void hwint_src_packet(struct hw_srcsum *t, const struct hw_meta *m, uint64_t ts_ns, struct hw_ring *ring,
                      struct hw_counters *c);
/* Send the summaries whose interval ended by now_ns: a slice of the table per call, at most budget. */
void hwint_src_tick(struct hw_srcsum *t, uint64_t now_ns, struct hw_ring *ring, struct hw_counters *c,
                    uint32_t budget);
/* Send every pending summary (the end of input); returns how many did not fit in the ring. */
uint32_t hwint_src_flush(struct hw_srcsum *t, struct hw_ring *ring, struct hw_counters *c);

/* dnsgate.c: DNS queries held back and folded into the next DNS event (under the session lock) */
struct hw_dnsgate;
struct hw_dnsgate *hwint_dnsgate_create(struct hw_counters *c, struct hw_ring *events);
void hwint_dnsgate_destroy(struct hw_dnsgate *g);
void hwint_dnsgate_set(struct hw_dnsgate *g, int on);
/* The held query, taken for the DNS event about to be made (NULL: none); hwint_dnsgate_untake when that
 * event found no room, hwint_dnsgate_carry once it is made. */
const struct hw_event *hwint_dnsgate_take(struct hw_dnsgate *g);
void hwint_dnsgate_untake(struct hw_dnsgate *g);
void hwint_dnsgate_carry(struct hw_dnsgate *g, const struct hw_event *held, struct hw_event *e);
/* Whether e (a DNS event made in the ring, not committed) was held back instead of sent. */
int hwint_dnsgate_hold(struct hw_dnsgate *g, const struct hw_event *e);
/* Send the held query as it was (drop = 0: keep it when the ring is full; returns 1 then). */
int hwint_dnsgate_release(struct hw_dnsgate *g, int drop);
void hwint_dnsgate_counters(const struct hw_dnsgate *g, struct hw_dnsgate_counters *out);
/* Live capture: send the held query once it has waited HW_DNSGATE_HOLD_NS of packet time. */
#define HW_DNSGATE_HOLD_NS 50000000ULL
void hwint_dnsgate_tick(struct hw_dnsgate *g, uint64_t now_ns);

/* dnsrepeat.c: answer templates; mark sets e's rec.dnsfold.rep (t NULL: clears it), q the query folded into e */
struct hw_dnsrepeat;
struct hw_dnsrepeat *hwint_dnsrepeat_create(void);
void hwint_dnsrepeat_destroy(struct hw_dnsrepeat *t);
void hwint_dnsrepeat_mark(struct hw_dnsrepeat *t, struct hw_dnsgate_counters *n, const struct hw_event *q,
                          struct hw_event *e);

/* Distinct-count sketches of 4 words (256 bits; windows.c, srcsum.c). */
#define HW_SKETCH_WORDS 4
static inline void hwint_sketch_add(uint64_t *sk, uint64_t h)
{
    uint32_t bit = (uint32_t)(h >> 56);
    sk[bit >> 6] |= 1ULL << (bit & 63);
}
uint32_t hwint_sketch_count(const uint64_t *sk);

/* records.c: the record of an event of this kind, from the parsed packet */
void hwint_records_fill(struct hw_rec_counters *c, int kind, const struct hw_meta *m, struct hw_event *e);

int hwint_ring_init(struct hw_ring *r, uint32_t records, uint32_t rec_size);
void hwint_ring_free(struct hw_ring *r);
void *hwint_ring_reserve(struct hw_ring *r);   /* NULL when full */
void hwint_ring_commit(struct hw_ring *r);
int hwint_ring_read(struct hw_ring *r, void *out, int max);
/* A record's copy out of a ring (NULL: all of it, memcpy). */
typedef void (*hwint_ring_copy)(void *dst, const void *src);
int hwint_ring_read_each(struct hw_ring *r, void *out, int max, hwint_ring_copy copy);
/* An event ring's copy (hw_events_read): an event only as far as its readers read it (the head and snippet, the
 * record, a DNS event's fold: shring.c's packed layout, in place); the rest of dst is left as it was.  A struct
 * hw_event is 6.7 kB, most events use a few hundred bytes of it. */
void hwint_event_copy(void *dst, const void *src);
uint32_t hwint_ring_used(struct hw_ring *r);

/* Flow table. */
struct hw_flow;
struct hw_flowtable;
struct hw_session;

typedef void (*hw_flow_sink)(struct hw_session *s, const struct hw_flow_record *r, const uint8_t *cid);  /* cid: hw_flow's */

struct hw_flowtable *hwint_ft_create(uint32_t max_flows, uint32_t idle_s, uint32_t active_s,
                                     hw_flow_sink sink, struct hw_session *s);
void hwint_ft_destroy(struct hw_flowtable *ft);
/* Meter one parsed packet (h = hwint_ft_hash(m)); 0 when the table had no
 * room, else 1 with what the caller needs of the flow in *hit. */
struct hw_flow_hit {
    uint64_t id;
    uint64_t packets;      /* the flow's packets so far, this one included */
    uint8_t *app;          /* the flow's application, for payload signatures to refine */
    uint8_t port_app;      /* what its ports alone say: the first signature replaces only that */
    int from_initiator;
    struct hw_flow *flow;  /* the flow's entry (its log lines' community ID kept there) */
};
uint32_t hwint_ft_hash(const struct hw_meta *m);
int hwint_ft_packet(struct hw_flowtable *ft, struct hw_meta *m, uint32_t h, uint32_t wirelen, uint64_t ts_ns,
                    struct hw_flow_hit *hit, struct hw_counters *c);
/* Batches look ahead: fetch the slot, then the entry, before they are needed. */
void hwint_ft_prefetch_slot(struct hw_flowtable *ft, uint32_t h);
void hwint_ft_prefetch_flow(struct hw_flowtable *ft, uint32_t h);
/* Expire what timed out by `now`: a slice of the table per call, at most
 * `budget` records (the room left in a lossless flow ring). */
void hwint_ft_expire(struct hw_flowtable *ft, uint64_t now_ns, struct hw_counters *c,
                     uint32_t budget);
/* Expire up to `max` flows (0 = all) for the end of input; returns how many remain. */
uint32_t hwint_ft_flush(struct hw_flowtable *ft, uint32_t max, struct hw_counters *c);
int hwint_ft_top(struct hw_flowtable *ft, struct hw_flow_record *out, int max, int order);
uint32_t hwint_ft_active(struct hw_flowtable *ft);

/* Talkers: per-host totals folded in as flows leave the table. */
struct hw_hosts;
struct hw_hosts *hwint_hosts_create(uint32_t max_hosts);
void hwint_hosts_destroy(struct hw_hosts *h);
void hwint_hosts_add(struct hw_hosts *h, const struct hw_flow_record *r, struct hw_counters *c);
void hwint_hosts_prefetch(const struct hw_hosts *h, const uint8_t *addr, uint8_t family);   /* its slot, ahead */
int hwint_hosts_top(struct hw_hosts *h, struct hw_host *out, int max);

/* The N largest of a stream by key(), descending after finish. */
#define HW_TOPN_ELEM_MAX 512
struct hw_topn {
    void *out;
    int max, n;
    size_t size;
    uint64_t (*key)(const void *);
};
void hwint_topn_push(struct hw_topn *t, const void *e);
int hwint_topn_finish(struct hw_topn *t);

/* Application classification by port. */
uint8_t hwint_app_by_ports(uint8_t proto, uint16_t sport, uint16_t dport);
#define HW_APP_DNS 1
#define HW_APP_HTTP 2
#define HW_APP_TLS 3
#define HW_APP_SIP 9
#define HW_APP_ICMP 23

/* Fragment cache: later fragments get the ports of their first fragment, and
 * a tunnel's later fragments the key of the packet it carried.  Called for
 * every packet with m->frag or m->tun_frag set. */
struct hw_frags;
struct hw_frags *hwint_frags_create(void);
void hwint_frags_destroy(struct hw_frags *f);
int hwint_frag_ports(struct hw_frags *f, struct hw_meta *m, uint64_t ts_ns);

/* Honeytokens (tokens.c): a set built once, searched per payload. */
struct hw_tokens;
int hwint_tokens_build(const uint8_t *const *tokens, const uint32_t *lens, int n, struct hw_tokens **out,
                       char *errbuf);
void hwint_tokens_destroy(struct hw_tokens *t);
int hwint_tokens_find(const struct hw_tokens *t, const uint8_t *p, uint32_t n);
/* Flow exporters (ipfix.c): records are encoded as flows expire; `now` is
 * the session's packet clock, `first_ns` its first packet (v5/v9 uptime origin). */
struct hw_exporter;
int hwint_exp_create(const struct hw_export_config *cfg, int id, uint32_t sample_rate,
                     struct hw_exporter **out, char *errbuf);
void hwint_exp_flow(struct hw_exporter *e, const struct hw_flow_record *r, uint64_t now, uint64_t first_ns);
void hwint_exp_tick(struct hw_exporter *e, uint64_t now);
void hwint_exp_flush(struct hw_exporter *e, uint64_t now);
void hwint_exp_stats(const struct hw_exporter *e, struct hw_export_stats *out);
int hwint_exp_id(const struct hw_exporter *e);
void hwint_exp_destroy(struct hw_exporter *e);

/* Recording (record.c): the capture side runs under the session lock. */
struct hw_recorder;
int hwint_rec_create(const struct hw_record_config *cfg, int linktype, struct hw_recorder **out, char *errbuf);
/* meta: the batch's parse results (a tunnelled packet's filter sees the packet inside), or NULL. */
void hwint_rec_batch(struct hw_recorder *r, const struct hw_batch *b, const struct hw_meta *meta);
void hwint_rec_tick(struct hw_recorder *r);
void hwint_rec_end_file(struct hw_recorder *r);
void hwint_rec_set_key(struct hw_recorder *r, const uint8_t *key);
void hwint_rec_stats(struct hw_recorder *r, struct hw_record_stats *out);
void hwint_rec_stop(struct hw_recorder *r);
void hwint_rec_destroy(struct hw_recorder *r);

/* BPF through libpcap, for backends that filter in user space. */
int hwint_bpf_compile(int linktype, uint32_t snaplen, const char *expr, void *prog, char *errbuf);
struct hw_ufilter {
    struct bpf_program prog;
    int on;
};
/* Replace the filter ("" or NULL: none); the old one stays on a bad expression. */
int hwint_ufilter_set(struct hw_ufilter *f, int linktype, const char *bpf, char *errbuf);
int hwint_ufilter_pass(const struct hw_ufilter *f, const struct hw_pkt *p); /* 1 when it passes (or no filter) */
void hwint_ufilter_free(struct hw_ufilter *f);

/* RTP and RTCP of the endpoints Python registered (rtp.c). */
struct hw_rtp;
struct hw_rtp *hwint_rtp_create(uint32_t max_endpoints, uint32_t max_streams);
void hwint_rtp_destroy(struct hw_rtp *r);
int hwint_rtp_watch(struct hw_rtp *r, const struct hw_rtp_endpoint *e, char *errbuf);
int hwint_rtp_forget(struct hw_rtp *r, uint32_t tag);
int hwint_rtp_read(struct hw_rtp *r, uint32_t tag, struct hw_rtp_stream *out, int max);
void hwint_rtp_stats(struct hw_rtp *r, struct hw_rtp_stats *out);
void hwint_rtp_packet(struct hw_rtp *r, const struct hw_meta *m, uint64_t ts_ns, uint32_t wirelen);
/* What rtp.c needs of a session: its lock and its RTP tables (NULL until hw_rtp_init). */
pthread_mutex_t *hwint_session_lock(struct hw_session *s);
struct hw_rtp **hwint_session_rtp(struct hw_session *s);
/* shring.c: the session's event ring (NULL: events off), read under its read_lock */
struct hw_ring *hwint_session_events(struct hw_session *s);

uint64_t hwint_mono_ns(void);
uint64_t hwint_wall_ns(void);
int hwint_err(char *errbuf, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A 16-byte address (and a small extra) to 64 well-mixed bits, for hash
 * tables indexed by the low bits: splitmix64's finaliser. */
static inline uint64_t hw_mix_addr(const uint8_t *addr, uint64_t extra)
{
    uint64_t a, b;
    __builtin_memcpy(&a, addr, 8);
    __builtin_memcpy(&b, addr + 8, 8);
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ULL) ^ extra;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint16_t hw_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t hw_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
