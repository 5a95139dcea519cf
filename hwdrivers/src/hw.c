/* hw.c - the capture session: backend registry, the per-packet loop
 * (parse -> flow table -> event ring), and the calls Python makes.
 *
 * One thread runs hw_session_run (with the GIL released); other threads may
 * read counters, top flows or drain the rings at any time.  The session lock
 * is held per batch, never while a backend waits for packets. */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw.h"
#include "flow.h"

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define POLL_SLICE_MS 100 /* the longest a backend waits before the loop looks around */
#define PREFETCH_AHEAD 8  /* packets between fetching a flow entry and using it */
#define APP_SNIFF_PACKETS 8 /* a flow's first packets are checked for TLS, HTTP and SIP */

static const struct hw_backend_ops *const backends[] = {
    &hw_pcapfile_ops,
    &hw_pcap_ops,
    &hw_afpacket_ops,
    &hw_fpga_ops,
    NULL,
};

struct hw_session {
    struct hw_config cfg;
    char *backend_name, *source;
    const struct hw_backend_ops *ops;
    void *bstate;
    int linktype;
    int eof;
    uint64_t now_ns;
    struct hw_counters c;
    struct hw_rec_counters rc;
    struct hw_flowtable *ft;
    struct hw_hosts *hosts;
    struct hw_frags *frags;
    struct hw_windows *win;   /* NULL when window_s is 0 */
    struct hw_tokens *tokens; /* NULL when no honeytoken is registered */
    struct hw_srcsum *src;    /* NULL unless tcp_src events are on */
    struct hw_dnsgate *gate;  /* NULL unless dns events are on */
    struct hw_rtp *rtp;       /* NULL until hw_rtp_init */
    struct hw_logger *logger; /* NULL until hw_session_set_logger */
    struct hw_event *log_event; /* where an event only the logger wants is made */
    uint32_t log_events;      /* the event kinds the logger wants (1 << HW_EV_x): a conn-only logger asks no packet */
    struct hw_flow_record *log_stage; /* hw_session_log_flows: expired flows waiting for the logger (LOG_STAGE) */
    uint8_t (*log_cid)[20];           /* and their community IDs' SHA-1 (hw_flow's cid) */
    int log_staged;
    struct hw_ring events, flows;
    struct hw_exporter *exp[HW_EXPORT_MAX];
    int n_exp, next_exp_id;
    uint32_t sample_n; /* IP packets since the last one sampled */
    struct hw_recorder *rec;
    struct hw_record_stats rec_last; /* of the recording that ended last */
    pthread_mutex_t lock;
    _Atomic int brk;
    char *pending_bpf; /* set_filter from another thread, applied between polls */
    struct hw_batch batch;
    struct hw_meta meta[HW_BATCH_MAX]; /* the batch, parsed */
    uint32_t hash[HW_BATCH_MAX];
    int kind[HW_BATCH_MAX];
};

int hwint_err(char *errbuf, int code, const char *fmt, ...)
{
    if (errbuf) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, HW_ERRBUF_SIZE, fmt, ap);
        va_end(ap);
    }
    return code;
}

uint64_t hwint_mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * HW_NS + (uint64_t)t.tv_nsec;
}

uint64_t hwint_wall_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * HW_NS + (uint64_t)t.tv_nsec;
}

int hwint_bpf_compile(int linktype, uint32_t snaplen, const char *expr, void *prog, char *errbuf)
{
    pcap_t *p = pcap_open_dead(linktype, snaplen ? (int)snaplen : HW_MAX_CAPLEN);
    if (!p) return hwint_err(errbuf, HW_E_NOMEM, "pcap_open_dead failed");
    int rc = HW_OK;
    if (pcap_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0)
        rc = hwint_err(errbuf, HW_E_FILTER, "bad filter \"%s\": %s", expr, pcap_geterr(p));
    pcap_close(p);
    return rc;
}

int hwint_ufilter_set(struct hw_ufilter *f, int linktype, const char *bpf, char *errbuf)
{
    struct bpf_program prog;
    if (bpf && *bpf) {
        int rc = hwint_bpf_compile(linktype, HW_MAX_CAPLEN, bpf, &prog, errbuf);
        if (rc) return rc;
    }
    hwint_ufilter_free(f);
    f->on = bpf && *bpf;
    if (f->on) f->prog = prog;
    return HW_OK;
}

int hwint_ufilter_pass(const struct hw_ufilter *f, const struct hw_pkt *p)
{
    if (!f->on) return 1;
    struct pcap_pkthdr h = {{0, 0}, p->caplen, p->wirelen};
    return pcap_offline_filter(&f->prog, &h, p->data) != 0;
}

void hwint_ufilter_free(struct hw_ufilter *f)
{
    if (f->on) pcap_freecode(&f->prog);
    f->on = 0;
}

/* ---- backends ---------------------------------------------------------- */

int hw_backend_count(void)
{
    int n = 0;
    while (backends[n]) n++;
    return n;
}

int hw_backend_info(int i, struct hw_backend_info *out)
{
    if (i < 0 || i >= hw_backend_count()) return HW_E_ARG;
    out->name = backends[i]->name;
    out->description = backends[i]->description;
    out->caps = backends[i]->caps;
    return HW_OK;
}

static const struct hw_backend_ops *find_backend(const char *name)
{
    for (int i = 0; name && backends[i]; i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

int hw_backend_available(const char *name, char *errbuf)
{
    const struct hw_backend_ops *ops = find_backend(name);
    if (!ops) return hwint_err(errbuf, HW_E_BACKEND, "unknown backend \"%s\"", name ? name : "");
    return ops->available ? ops->available(errbuf) : HW_OK;
}

/* ---- configuration ----------------------------------------------------- */

void hw_config_init(struct hw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backend = "pcapfile";
    cfg->snaplen = 65535;
    cfg->buffer_size_mb = 64;
    cfg->promisc = 1;
    cfg->fanout_group = -1;
    cfg->block_timeout_ms = 10;
    cfg->max_flows = 1u << 20;
    cfg->max_hosts = 1u << 16;
    cfg->idle_timeout_s = 300;
    cfg->active_timeout_s = 1800;
    cfg->event_ring = 4096;
    cfg->flow_ring = 0;
    cfg->window_ring = 64;
    cfg->long_flow_s = 3600;
    cfg->sample_rate = 1;
    cfg->tunnel_depth = 4;
    cfg->vxlan_ports[0] = 4789;
    cfg->geneve_ports[0] = 6081;
    cfg->gtp_ports[0] = 2152;
}

static int check_config(const struct hw_config *cfg, char *errbuf)
{
    if (!cfg->source || !*cfg->source) return hwint_err(errbuf, HW_E_ARG, "no source given");
    if (cfg->snaplen < 64 || cfg->snaplen > HW_MAX_CAPLEN)
        return hwint_err(errbuf, HW_E_ARG, "snaplen %u out of range 64..%u", cfg->snaplen, HW_MAX_CAPLEN);
    if (cfg->buffer_size_mb < 1 || cfg->buffer_size_mb > 4096)
        return hwint_err(errbuf, HW_E_ARG, "buffer_size_mb %u out of range 1..4096", cfg->buffer_size_mb);
    if (cfg->max_flows < 16 || cfg->max_flows > (1u << 28))
        return hwint_err(errbuf, HW_E_ARG, "max_flows %u out of range 16..%u", cfg->max_flows, 1u << 28);
    if (cfg->max_hosts < 16 || cfg->max_hosts > (1u << 26))
        return hwint_err(errbuf, HW_E_ARG, "max_hosts %u out of range 16..%u", cfg->max_hosts, 1u << 26);
    if (cfg->event_mask && (cfg->event_ring < 4 * HW_BATCH_MAX || cfg->event_ring > (1u << 20)))
        return hwint_err(errbuf, HW_E_ARG, "event_ring %u out of range %u..%u", cfg->event_ring,
                         4 * HW_BATCH_MAX, 1u << 20);
    if (cfg->flow_ring && (cfg->flow_ring < 4 * HW_BATCH_MAX || cfg->flow_ring > (1u << 22)))
        return hwint_err(errbuf, HW_E_ARG, "flow_ring %u out of range %u..%u", cfg->flow_ring,
                         4 * HW_BATCH_MAX, 1u << 22);
    if (cfg->window_s > 86400) return hwint_err(errbuf, HW_E_ARG, "window_s %u is over a day", cfg->window_s);
    if (cfg->window_s && cfg->window_ring && (cfg->window_ring < 4 || cfg->window_ring > 4096))
        return hwint_err(errbuf, HW_E_ARG, "window_ring %u out of range 4..4096", cfg->window_ring);
    if (cfg->pace < 0 || cfg->pace > 1000)
        return hwint_err(errbuf, HW_E_ARG, "pace %g out of range 0..1000", cfg->pace);
    /* NetFlow v5 carries the interval in 14 bits */
    if (cfg->sample_rate > 16383)
        return hwint_err(errbuf, HW_E_ARG, "sample_rate %u out of range 1..16383", cfg->sample_rate);
    if (cfg->tunnel_depth > HW_TUN_DEPTH_MAX)
        return hwint_err(errbuf, HW_E_ARG, "tunnel_depth %u out of range 0..%d", cfg->tunnel_depth, HW_TUN_DEPTH_MAX);
    if (cfg->tunnel_off >= 1u << HW_TUN_COUNT)
        return hwint_err(errbuf, HW_E_ARG, "tunnel_off 0x%x names no tunnel type", cfg->tunnel_off);
    return HW_OK;
}

/* ---- expired flows ----------------------------------------------------- */

static void to_ring(struct hw_session *s, const struct hw_flow_record *r)
{
    if (!s->cfg.flow_ring) return;
    struct hw_flow_record *slot = hwint_ring_reserve(&s->flows);
    if (!slot) {
        s->c.flow_records_dropped++;
        return;
    }
    *slot = *r;
    hwint_ring_commit(&s->flows);
    s->c.flow_records++;
}

#define LOG_STAGE 64    /* expired flows handed to the logger at once (its community IDs made two at a time) */

/* The staged flows' conn lines (and the lines that waited for their end); those it leaves go to the ring. */
static void log_staged(struct hw_session *s)
{
    int32_t rest[LOG_STAGE];
    int left = hwint_logger_flows(s->logger, s->log_stage, s->log_cid, s->log_staged, rest);
    for (int i = 0; i < left; i++) to_ring(s, &s->log_stage[rest[i]]);
    s->log_staged = 0;
}

/* No stage: expired flows go to the ring again (the logger detached, or the stage's memory not had). */
static void drop_stage(struct hw_session *s)
{
    free(s->log_stage);
    free(s->log_cid);
    s->log_stage = NULL;
    s->log_cid = NULL;
}

static void flow_sink(struct hw_session *s, const struct hw_flow_record *r, const uint8_t *cid)
{
    hwint_hosts_add(s->hosts, r, &s->c);
    for (int i = 0; i < s->n_exp; i++) hwint_exp_flow(s->exp[i], r, s->now_ns, s->c.first_ns);
    if (!s->log_stage) {
        to_ring(s, r);
        return;
    }
    memcpy(s->log_cid[s->log_staged], cid, 20);     /* its community ID, when its dns lines made it */
    s->log_stage[s->log_staged++] = *r;        /* its line made here, hot, not after the ring and Python's copy */
    if (s->log_staged == LOG_STAGE) log_staged(s);
}

/* Room for expired-flow records in this call: unlimited unless lossless. */
static uint32_t flow_budget(struct hw_session *s)
{
    if (!s->cfg.lossless || !s->cfg.flow_ring) return UINT32_MAX;
    uint32_t free = s->flows.size - hwint_ring_used(&s->flows);
    return free > 2 * HW_BATCH_MAX ? free - 2 * HW_BATCH_MAX : 0;
}

/* Room in the event ring for summaries that fell due (lossless: what a batch may still need is kept). */
static uint32_t event_budget(struct hw_session *s)
{
    uint32_t free = s->events.size - hwint_ring_used(&s->events), keep = s->cfg.lossless ? 2 * HW_BATCH_MAX : 0;
    return free > keep ? free - keep : 0;
}

/* ---- session ------------------------------------------------------------ */

void hw_session_close(struct hw_session *s)
{
    if (!s) return;
    if (s->bstate) s->ops->close(s->bstate);
    for (int i = 0; i < s->n_exp; i++) hwint_exp_destroy(s->exp[i]);
    if (s->rec) {
        hwint_rec_end_file(s->rec);
        hwint_rec_destroy(s->rec);
    }
    hwint_ft_destroy(s->ft);
    hwint_hosts_destroy(s->hosts);
    hwint_frags_destroy(s->frags);
    hwint_win_destroy(s->win);
    hwint_tokens_destroy(s->tokens);
    hwint_src_destroy(s->src);
    hwint_dnsgate_destroy(s->gate);
    hwint_rtp_destroy(s->rtp);
    free(s->log_event);
    drop_stage(s);
    hwint_ring_free(&s->events);
    hwint_ring_free(&s->flows);
    pthread_mutex_destroy(&s->lock);
    free(s->pending_bpf);
    free(s->backend_name);
    free(s->source);
    free(s);
}

int hw_session_open(const struct hw_config *cfg, struct hw_session **out, char *errbuf)
{
    *out = NULL;
    int rc = check_config(cfg, errbuf);
    if (rc) return rc;
    const struct hw_backend_ops *ops = find_backend(cfg->backend);
    if (!ops) return hwint_err(errbuf, HW_E_BACKEND, "unknown backend \"%s\"", cfg->backend ? cfg->backend : "");
    struct hw_session *s = calloc(1, sizeof *s);
    if (!s) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = *cfg;
    s->ops = ops;
    s->backend_name = strdup(cfg->backend);
    s->source = strdup(cfg->source);
    s->cfg.backend = s->backend_name;
    s->cfg.source = s->source;
    s->cfg.bpf = NULL;
    s->ft = hwint_ft_create(cfg->max_flows, cfg->idle_timeout_s, cfg->active_timeout_s, flow_sink, s);
    s->hosts = hwint_hosts_create(cfg->max_hosts);
    if (s->ft) s->ft->hosts = s->hosts;
    s->frags = hwint_frags_create();
    if (cfg->window_s && s->ft && (s->win = hwint_win_create(cfg)) != NULL) s->ft->win = s->win;
    int sources = (cfg->event_mask & (1u << HW_EV_TCP_SRC)) != 0;
    if (sources) s->src = hwint_src_create(cfg->max_hosts);
    if ((cfg->window_s && !s->win) || (sources && !s->src) || !s->backend_name || !s->source || !s->ft || !s->hosts ||
        !s->frags ||
        (cfg->event_mask && hwint_ring_init(&s->events, cfg->event_ring, sizeof(struct hw_event))) ||
        (cfg->flow_ring && hwint_ring_init(&s->flows, cfg->flow_ring, sizeof(struct hw_flow_record)))) {
        hw_session_close(s);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory for %u flows", cfg->max_flows);
    }
    if ((cfg->event_mask & (1u << HW_EV_DNS)) && !(s->gate = hwint_dnsgate_create(&s->c, &s->events))) {
        hw_session_close(s);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    struct hw_config bcfg = s->cfg;
    bcfg.bpf = cfg->bpf;
    rc = ops->open(&bcfg, &s->bstate, &s->linktype, errbuf);
    if (rc == HW_OK) rc = ops->start(s->bstate, errbuf);
    if (rc != HW_OK) {
        hw_session_close(s);
        return rc;
    }
    *out = s;
    return HW_OK;
}

/* ---- events ------------------------------------------------------------- */

static int is_tls(const uint8_t *p, uint32_t n)
{
    /* every test below needs one of these; a payload's first byte is anything (one in two has SSLv2's bit, a
     * mispredicted branch when every payload is asked), so they are asked as one, without a branch each */
    if (n >= 3 && !((p[0] == 0x16) | (p[0] == 0x15) | (p[2] == 1) | (p[2] == 4))) return 0;
    if (n >= 6 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4 && (p[5] == 1 || p[5] == 2 || p[5] == 11)) return 1;
    if (n >= 7 && p[0] == 0x15 && p[1] == 3 && p[2] <= 4) return 1; /* alert */
    /* SSLv2-format ClientHello offering SSL 3.0 or TLS */
    if (n >= 5 && (p[0] & 0x80) && p[2] == 1 && (p[3] == 3 || (p[3] == 0 && p[4] == 2))) return 1;
    /* SSLv2 ServerHello (an SSL 2.0 session) */
    if (n >= 7 && (p[0] & 0x80) && p[2] == 4 && p[5] == 0 && p[6] == 2) return 1;
    return 0;
}

static int starts(const uint8_t *p, uint32_t n, const char *const *words)
{
    for (; *words; words++) {
        if (p[0] != (uint8_t)(*words)[0]) continue;
        size_t k = strlen(*words);
        if (n >= k && !memcmp(p, *words, k)) return 1;
    }
    return 0;
}

static const char *const http_words[] = {"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ",
                                         "PATCH ", "CONNECT ", "TRACE ", "HTTP/1.", NULL};
static const char *const sip_words[] = {"SIP/2.0 ", "INVITE sip", "ACK sip", "BYE sip", "CANCEL sip",
                                        "REGISTER sip", "OPTIONS sip", "PRACK sip", "SUBSCRIBE sip",
                                        "NOTIFY sip", "PUBLISH sip", "INFO sip", "REFER sip",
                                        "MESSAGE sip", "UPDATE sip", NULL};

static int is_http(const uint8_t *p, uint32_t n)
{
    if (n < 5) return 0;
    switch (p[0]) {             /* a switch, not memchr: every TCP payload a logger sees is asked */
    case 'G': case 'P': case 'H': case 'D': case 'O': case 'C': case 'T': return starts(p, n, http_words);
    }
    return 0;
}

static int is_sip(const uint8_t *p, uint32_t n)
{
    return n >= 8 && p[0] >= 'A' && p[0] <= 'U' && starts(p, n, sip_words);
}

/* The event of a payload that is neither DNS nor SIP, or -1. */
static int other_kind(const struct hw_meta *m)
{
    if (m->proto == 17 && ((m->sport == 67 || m->sport == 68) && (m->dport == 67 || m->dport == 68)))
        return HW_EV_DHCP;
    if (m->proto == 17 && ((m->sport == 546 || m->sport == 547) && (m->dport == 546 || m->dport == 547)))
        return HW_EV_DHCP;
    if (m->proto == 58 && m->family == 6 && (m->icmp_tc >> 8) >= 133 && (m->icmp_tc >> 8) <= 137)
        return HW_EV_NDP;
    if (m->proto == 6) {
        if (is_tls(m->pay, m->pay_cap)) return HW_EV_TLS;
        if (is_http(m->pay, m->pay_cap)) return HW_EV_HTTP;
    }
    return -1;
}

/* Which event a payload-carrying IP packet is, or -1.  SIP wins over the rest, but when nobody wants SIP (sip 0)
 * its words are looked for only in a packet that is something else (which then goes as -1, as SIP would). */
static int payload_kind(const struct hw_meta *m, int sip)
{
    if (!m->pay_cap) return -1;
    int l4 = m->proto == 17 || m->proto == 6;
    if (l4) {
        if (m->sport == 53 || m->dport == 53) return HW_EV_DNS;
        if (m->sport == 5060 || m->dport == 5060 || (sip && is_sip(m->pay, m->pay_cap))) return HW_EV_SIP;
    }
    int kind = other_kind(m);
    return kind >= 0 && l4 && !sip && is_sip(m->pay, m->pay_cap) ? -1 : kind;
}

/* skip: payload bytes left out of the snippet (a token event starts near its match) */
static void push_event_at(struct hw_session *s, int kind, const struct hw_meta *m, const struct hw_pkt *pkt,
                          uint64_t flow_id, struct hw_flow *flow, int from_initiator, uint32_t skip)
{
    int to_ring = !!(s->cfg.event_mask & (1u << kind)), to_log = !!(s->log_events & (1u << kind));
    if (!to_ring && !to_log) return;
    /* a held DNS query rides on the next DNS event (any other event releases it first: the ring's hook) */
    const struct hw_event *held = to_ring && kind == HW_EV_DNS && s->gate ? hwint_dnsgate_take(s->gate) : NULL;
    struct hw_event *e = to_ring ? hwint_ring_reserve(&s->events) : NULL;
    if (to_ring && !e) {
        s->c.events_dropped[kind]++;
        if (held) hwint_dnsgate_untake(s->gate);
        held = NULL;
    }
    if (!e && !to_log) return;
    if (to_log) hwint_logger_prefetch(s->logger, kind, flow_id);
    if (!e) e = s->log_event;
    /* in two parts, each at most 64 bytes: the 91 at once were a rep stos, slow to start, on every event */
    _Static_assert(offsetof(struct hw_event, snippet) > 64 && offsetof(struct hw_event, snippet) <= 128, "head");
    memset(e, 0, 64);
    memset((char *)e + 64, 0, offsetof(struct hw_event, snippet) - 64);
    e->ts_ns = pkt->ts_ns;
    e->flow_id = flow_id;
    memcpy(e->src, m->src, 16);
    memcpy(e->dst, m->dst, 16);
    if (m->mac_src) memcpy(e->src_mac, m->mac_src, 6);
    if (m->mac_dst) memcpy(e->dst_mac, m->mac_dst, 6);
    e->wirelen = pkt->wirelen > pkt->caplen ? pkt->wirelen : pkt->caplen;
    e->seq = m->seq;
    e->ack = m->ack;
    e->sport = m->sport;
    e->dport = m->dport;
    e->vlan = m->vlan;
    e->kind = (uint8_t)kind;
    e->family = m->family;
    e->proto = m->proto;
    e->tcp_flags = m->tcp_flags;
    e->from_initiator = (uint8_t)from_initiator;
    /* NDP: from the ICMPv6 header's second word (NA flags, RA preference and lifetime); no pointer
     * arithmetic on a NULL payload (UBSan) */
    uint32_t back = kind == HW_EV_NDP ? 4 : 0;
    const uint8_t *body = kind == HW_EV_ARP ? m->arp : m->pay ? m->pay + skip - back : NULL;
    uint32_t n = kind == HW_EV_ARP ? 28 : m->pay_cap + back - skip;
    e->payload_len = kind == HW_EV_ARP ? 28 : m->pay_len + back;
    if (!body) n = 0;
    if (n > HW_SNIPPET_MAX) n = HW_SNIPPET_MAX;
    e->snippet_len = (uint16_t)n;
    if (n && e != s->log_event) memcpy(e->snippet, body, n);     /* the logger reads the record, not the bytes */
    hwint_records_fill(&s->rc, kind, m, e);
    if (kind == HW_EV_DNS && e != s->log_event && s->gate) hwint_dnsgate_carry(s->gate, held, e);
    if (to_log) hwint_logger_event(s->logger, e, flow);
    if (e == s->log_event) return;
    if (kind == HW_EV_DNS && !held && s->gate && hwint_dnsgate_hold(s->gate, e)) return;
    hwint_ring_commit(&s->events);
    s->c.events[kind]++;
}

static void push_event(struct hw_session *s, int kind, const struct hw_meta *m, const struct hw_pkt *pkt,
                       uint64_t flow_id, struct hw_flow *flow, int from_initiator)
{
    push_event_at(s, kind, m, pkt, flow_id, flow, from_initiator, 0);
}

/* ---- the per-packet path ----------------------------------------------- */

/* Pass 1 of a batch: totals, parse, and the flow key's hash. */
static int classify(struct hw_session *s, const struct hw_pkt *pkt, struct hw_meta *m, uint32_t *hash)
{
    struct hw_counters *c = &s->c;
    /* a record cannot hold more than the wire carried */
    uint32_t wirelen = pkt->wirelen > pkt->caplen ? pkt->wirelen : pkt->caplen;
    c->packets++;
    c->bytes += wirelen;
    c->captured_bytes += pkt->caplen;
    if (HW_UNLIKELY(c->packets == 1 || pkt->ts_ns < c->first_ns)) c->first_ns = pkt->ts_ns;
    if (pkt->ts_ns > c->last_ns) c->last_ns = pkt->ts_ns;
    if (pkt->ts_ns > s->now_ns) s->now_ns = pkt->ts_ns;
    int kind = hwint_parse(s->linktype, pkt->data, pkt->caplen, wirelen, m, c, &s->cfg);
    if (kind == HW_P_ARP) c->arp_packets++;
    else if (kind == HW_P_OTHER) c->other_packets++;
    if (kind == HW_P_IP) {
        c->ip_packets++;
        if ((m->frag || m->tun_frag) && !hwint_frag_ports(s->frags, m, pkt->ts_ns)) c->frag_orphans++;
        *hash = hwint_ft_hash(m);
    }
    return kind;
}

/* tunnel_outer: the tunnel that carried m metered as a flow of its own. */
static void meter_tunnel(struct hw_session *s, const struct hw_meta *m, uint32_t wirelen, uint64_t ts_ns)
{
    struct hw_meta o;
    memset(&o, 0, sizeof o);
    o.family = m->tun_family;
    o.proto = m->tun_proto;
    o.sport = m->tun_sport;
    o.dport = m->tun_dport;
    memcpy(o.src, m->tun_src, sizeof o.src);
    memcpy(o.dst, m->tun_dst, sizeof o.dst);
    struct hw_flow_hit hit;
    hwint_ft_packet(s->ft, &o, hwint_ft_hash(&o), wirelen, ts_ns, &hit, &s->c);
}

/* Pass 2: the flow table, application mix and events. */
static void meter(struct hw_session *s, const struct hw_pkt *pkt, struct hw_meta *m, int kind, uint32_t hash)
{
    struct hw_counters *c = &s->c;
    if (kind == HW_P_ARP) {
        push_event(s, HW_EV_ARP, m, pkt, 0, NULL, 1);
        return;
    }
    if (kind != HW_P_IP) return;
    struct hw_flow_hit hit = {0, 0, NULL, 0, 1, NULL};
    uint32_t wirelen = pkt->wirelen > pkt->caplen ? pkt->wirelen : pkt->caplen;
    int metered = 0;
    if (HW_UNLIKELY(s->cfg.sample_rate > 1) && ++s->sample_n < s->cfg.sample_rate) {
        c->packets_unsampled++; /* systematic 1-in-N: this one is not metered */
    } else {
        s->sample_n = 0;
        metered = hwint_ft_packet(s->ft, m, hash, wirelen, pkt->ts_ns, &hit, c);
        if (HW_UNLIKELY(s->cfg.tunnel_outer) && m->tun_type) meter_tunnel(s, m, wirelen, pkt->ts_ns);
    }
    /* signatures are looked for in a flow's first packets, and in every
     * packet when Python wants the events */
    int young = metered && hit.packets <= APP_SNIFF_PACKETS;
    int sip = young || ((s->cfg.event_mask | s->log_events) & (1u << HW_EV_SIP));
    int ev = (s->cfg.event_mask || young || s->log_events) ? payload_kind(m, sip) : -1;
    if (metered) {
        /* a payload signature beats the port guess; the first one stands */
        if (young && *hit.app == hit.port_app) {
            if (ev == HW_EV_TLS) *hit.app = HW_APP_TLS;
            else if (ev == HW_EV_HTTP) *hit.app = HW_APP_HTTP;
            else if (ev == HW_EV_SIP && is_sip(m->pay, m->pay_cap)) *hit.app = HW_APP_SIP; /* not port 5060 alone */
        }
        /* a TCP flow that spoke SIP on another port: its later segments (a
         * message's continuation, the next messages) are SIP too */
        if (ev < 0 && m->proto == 6 && *hit.app == HW_APP_SIP && m->pay_cap &&
            (s->cfg.event_mask & (1u << HW_EV_SIP)))
            ev = HW_EV_SIP;
        c->app_packets[*hit.app]++;
        c->app_bytes[*hit.app] += wirelen;
    }
    if (HW_UNLIKELY(s->rtp != NULL)) hwint_rtp_packet(s->rtp, m, pkt->ts_ns, wirelen);
    if (!s->cfg.event_mask && !s->log_events) return;
    if (s->src && m->proto == 6 && (m->tcp_flags & (TCP_SYN | TCP_RST)))
        hwint_src_packet(s->src, m, pkt->ts_ns, &s->events, c);
    if (ev >= 0) push_event(s, ev, m, pkt, hit.id, hit.flow, hit.from_initiator);
    if (HW_UNLIKELY(s->tokens != NULL) && m->pay_cap && (s->cfg.event_mask & (1u << HW_EV_TOKEN))) {
        int at = hwint_tokens_find(s->tokens, m->pay, m->pay_cap);
        if (at >= 0) {
            uint32_t skip = (uint32_t)at > HW_TOKEN_CONTEXT ? (uint32_t)at - HW_TOKEN_CONTEXT : 0;
            push_event_at(s, HW_EV_TOKEN, m, pkt, hit.id, hit.flow, hit.from_initiator, skip);
        }
    }
}

/* Two passes so the flow table's cache misses overlap: parsing a run of the
 * batch first lets each slot, then each entry, be fetched ahead of use.  A
 * run ends where a traffic window does, so a window closes only after every
 * packet before its end was metered. */
static void process_batch(struct hw_session *s, struct hw_batch *b)
{
    for (int begin = 0, end; begin < b->n; begin = end) {
        uint64_t window_end = UINT64_MAX;
        if (s->win) {
            hwint_win_packet(s->win, s->ft, &s->c, b->pkt[begin].ts_ns);
            window_end = hwint_win_end(s->win);
        }
        for (end = begin; end < b->n; end++) {
            if (HW_UNLIKELY(b->pkt[end].ts_ns >= window_end)) break;
            if (s->win && end > begin) hwint_win_packet(s->win, s->ft, &s->c, b->pkt[end].ts_ns);
            s->kind[end] = classify(s, &b->pkt[end], &s->meta[end], &s->hash[end]);
            if (s->kind[end] == HW_P_IP) hwint_ft_prefetch_slot(s->ft, s->hash[end]);
        }
        if (end == begin) { /* the run's first packet belongs after the window it closed */
            s->kind[end] = classify(s, &b->pkt[end], &s->meta[end], &s->hash[end]);
            end++;
        }
        for (int i = begin; i < end; i++) {
            int ahead = i + PREFETCH_AHEAD;
            if (ahead < end && s->kind[ahead] == HW_P_IP) hwint_ft_prefetch_flow(s->ft, s->hash[ahead]);
            meter(s, &b->pkt[i], &s->meta[i], s->kind[i], s->hash[i]);
        }
    }
}

/* After each batch, read or injected (under the session lock): the flows its time expired (and their lines),
 * the TCP sources' summaries and the exporters' timers. */
static void after_batch(struct hw_session *s)
{
    hwint_ft_expire(s->ft, s->now_ns, &s->c, flow_budget(s));
    if (s->log_staged) log_staged(s);
    if (s->src) hwint_src_tick(s->src, s->now_ns, &s->events, &s->c, event_budget(s));
    for (int i = 0; i < s->n_exp; i++) hwint_exp_tick(s->exp[i], s->now_ns);
}

static int needs_drain(struct hw_session *s)
{
    if (!s->cfg.lossless) return 0;
    if (s->cfg.event_mask && hwint_ring_used(&s->events) > s->events.size / 2) return 1;
    uint32_t cap;
    if (s->win && hwint_win_queued(s->win, &cap) > cap / 2) return 1;
    if (s->logger && hwint_logger_full(s->logger)) return 1;
    return s->cfg.flow_ring && hwint_ring_used(&s->flows) > s->flows.size / 2;
}

static int apply_pending_filter(struct hw_session *s, char *errbuf)
{
    pthread_mutex_lock(&s->lock);
    char *bpf = s->pending_bpf;
    s->pending_bpf = NULL;
    pthread_mutex_unlock(&s->lock);
    if (!bpf) return HW_OK;
    int rc = s->ops->set_filter(s->bstate, bpf, errbuf);
    free(bpf);
    return rc;
}

int hw_session_run(struct hw_session *s, uint64_t max_packets, int timeout_ms, char *errbuf)
{
    uint64_t done = 0;
    uint64_t deadline = timeout_ms >= 0 ? hwint_mono_ns() + (uint64_t)timeout_ms * 1000000ULL : 0;
    int live = (s->ops->caps & HW_CAP_LIVE) != 0;
    for (;;) {
        if (atomic_exchange(&s->brk, 0)) return HW_RUN_BREAK;
        if (s->eof) return HW_RUN_EOF;
        if (needs_drain(s)) return HW_RUN_DRAIN;
        if (max_packets && done >= max_packets) return HW_RUN_BUDGET;
        int slice = POLL_SLICE_MS;
        if (timeout_ms >= 0) {
            uint64_t now = hwint_mono_ns();
            if (now >= deadline) return HW_RUN_TIMEOUT;
            uint64_t left = (deadline - now) / 1000000ULL;
            if (left < (uint64_t)slice) slice = (int)left;
        }
        int rc = apply_pending_filter(s, errbuf);
        if (rc < 0) return rc;
        struct hw_batch *b = &s->batch;
        b->n = 0;
        b->eof = 0;
        b->cap = HW_BATCH_MAX;
        if (max_packets && max_packets - done < HW_BATCH_MAX) b->cap = (int)(max_packets - done);
        rc = s->ops->poll(s->bstate, b, slice, errbuf);
        if (rc < 0) return rc;
        pthread_mutex_lock(&s->lock);
        s->c.polls++;
        if (b->n == 0) s->c.empty_polls++;
        process_batch(s, b);
        if (s->rec) {
            hwint_rec_batch(s->rec, b, s->meta);
            hwint_rec_tick(s->rec);
        }
        if (live && b->n == 0) {
            uint64_t wall = hwint_wall_ns();
            if (wall > s->now_ns) s->now_ns = wall;
            if (s->win) hwint_win_idle(s->win, s->ft, &s->c, s->now_ns); /* windows close on time */
            if (s->gate) hwint_dnsgate_release(s->gate, 1); /* a quiet wire: the held query goes now */
        }
        if (live && s->gate) hwint_dnsgate_tick(s->gate, s->now_ns); /* a busy wire with no other event */
        after_batch(s);
        pthread_mutex_unlock(&s->lock);
        done += (uint64_t)b->n;
        if (b->eof) s->eof = 1;
    }
}

int hw_session_inject(struct hw_session *s, int linktype, const uint8_t *data, uint32_t caplen,
                      uint32_t wirelen, uint64_t ts_ns)
{
    if (!data && caplen) return HW_E_ARG;
    struct hw_batch *b = malloc(sizeof *b); /* s->batch may be in a poll in another thread */
    if (!b) return HW_E_NOMEM;
    b->n = b->cap = 1;
    b->pkt[0] = (struct hw_pkt){data, caplen, wirelen, ts_ns};
    pthread_mutex_lock(&s->lock);
    int saved = s->linktype;
    s->linktype = linktype;
    process_batch(s, b);
    free(b);
    s->linktype = saved;
    after_batch(s);
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

void hw_session_break(struct hw_session *s) { atomic_store(&s->brk, 1); }

int hw_session_set_filter(struct hw_session *s, const char *bpf, char *errbuf)
{
    if (!(s->ops->caps & HW_CAP_BPF)) return hwint_err(errbuf, HW_E_UNSUPPORTED, "backend %s has no BPF filter", s->ops->name);
    if (!bpf) bpf = "";
    if (*bpf) {
        struct bpf_program prog;
        int rc = hwint_bpf_compile(s->linktype, s->cfg.snaplen, bpf, &prog, errbuf);
        if (rc) return rc;
        pcap_freecode(&prog);
    }
    char *copy = strdup(bpf);
    if (!copy) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    pthread_mutex_lock(&s->lock);
    free(s->pending_bpf);
    s->pending_bpf = copy;
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_bpf_check(int linktype, const char *bpf, char *errbuf)
{
    struct bpf_program prog;
    int rc = hwint_bpf_compile(linktype, 0, bpf ? bpf : "", &prog, errbuf);
    if (rc == HW_OK) pcap_freecode(&prog);
    return rc;
}

int hw_session_flush(struct hw_session *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t budget = flow_budget(s), left = hwint_ft_active(s->ft);
    if (budget) left = hwint_ft_flush(s->ft, budget == UINT32_MAX ? 0 : budget, &s->c);
    if (s->log_staged) log_staged(s);
    if (!left && s->win) hwint_win_flush(s->win, s->ft, &s->c); /* the last window, with every flow folded */
    if (s->gate) left += (uint32_t)hwint_dnsgate_release(s->gate, 0); /* the last query held back */
    if (s->src) left += hwint_src_flush(s->src, &s->events, &s->c); /* the last TCP source summaries */
    for (int i = 0; i < s->n_exp; i++) hwint_exp_flush(s->exp[i], s->now_ns);
    pthread_mutex_unlock(&s->lock);
    return (int)(left > 0x7fffffff ? 0x7fffffff : left);
}

int hw_session_counters(struct hw_session *s, struct hw_counters *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->c;
    out->flows_active = hwint_ft_active(s->ft);
    if (s->ops->stats) s->ops->stats(s->bstate, out);
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_session_linktype(struct hw_session *s) { return s->linktype; }

pthread_mutex_t *hwint_session_lock(struct hw_session *s) { return &s->lock; }
struct hw_rtp **hwint_session_rtp(struct hw_session *s) { return &s->rtp; }
struct hw_ring *hwint_session_events(struct hw_session *s) { return s->cfg.event_mask && s->events.buf ? &s->events : NULL; }

int hw_events_read(struct hw_session *s, struct hw_event *out, int max)
{
    return s->cfg.event_mask ? hwint_ring_read_each(&s->events, out, max, hwint_event_copy) : 0;
}

int hw_records_counters(struct hw_session *s, struct hw_rec_counters *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->rc;
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_windows_read(struct hw_session *s, struct hw_window *out, int max)
{
    return s->win ? hwint_win_read(s->win, out, max) : 0;
}

int hw_windows_flush(struct hw_session *s)
{
    if (!s->win) return 0;
    pthread_mutex_lock(&s->lock);
    hwint_win_flush(s->win, s->ft, &s->c);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int hw_flows_read(struct hw_session *s, struct hw_flow_record *out, int max)
{
    return s->cfg.flow_ring ? hwint_ring_read(&s->flows, out, max) : 0;
}

int hw_flows_active(struct hw_session *s, struct hw_flow_record *out, int max, int order)
{
    pthread_mutex_lock(&s->lock);
    int n = hwint_ft_top(s->ft, out, max, order);
    pthread_mutex_unlock(&s->lock);
    return n;
}

int hw_hosts_top(struct hw_session *s, struct hw_host *out, int max)
{
    pthread_mutex_lock(&s->lock);
    int n = hwint_hosts_top(s->hosts, out, max);
    pthread_mutex_unlock(&s->lock);
    return n;
}

int hw_tokens_set(struct hw_session *s, const uint8_t *const *tokens, const uint32_t *lens, int n, char *errbuf)
{
    struct hw_tokens *t;
    int rc = hwint_tokens_build(tokens, lens, n, &t, errbuf);
    if (rc) return rc;
    pthread_mutex_lock(&s->lock); /* batches are processed under the lock: none sees half a set */
    struct hw_tokens *old = s->tokens;
    s->tokens = t;
    pthread_mutex_unlock(&s->lock);
    hwint_tokens_destroy(old);
    return HW_OK;
}


/* ---- recording ------------------------------------------------------------ */

int hw_record_start(struct hw_session *s, const struct hw_record_config *cfg, char *errbuf)
{
    struct hw_recorder *r;
    int rc = hwint_rec_create(cfg, s->linktype, &r, errbuf);
    if (rc) return rc;
    pthread_mutex_lock(&s->lock);
    if (s->rec) {
        pthread_mutex_unlock(&s->lock);
        hwint_rec_destroy(r);
        return hwint_err(errbuf, HW_E_STATE, "this capture is already recording");
    }
    s->rec = r;
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_record_stop(struct hw_session *s, char *errbuf)
{
    pthread_mutex_lock(&s->lock);
    struct hw_recorder *r = s->rec;
    if (r) hwint_rec_end_file(r);
    s->rec = NULL;
    pthread_mutex_unlock(&s->lock);
    if (!r) return hwint_err(errbuf, HW_E_STATE, "this capture is not recording");
    hwint_rec_stop(r); /* the writer finishes the last file */
    struct hw_record_stats st;
    hwint_rec_stats(r, &st);
    hwint_rec_destroy(r);
    pthread_mutex_lock(&s->lock);
    s->rec_last = st;
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_record_rotate(struct hw_session *s, char *errbuf)
{
    pthread_mutex_lock(&s->lock);
    if (s->rec) hwint_rec_end_file(s->rec);
    int on = s->rec != NULL;
    pthread_mutex_unlock(&s->lock);
    return on ? HW_OK : hwint_err(errbuf, HW_E_STATE, "this capture is not recording");
}

int hw_record_set_key(struct hw_session *s, const uint8_t *key, char *errbuf)
{
    pthread_mutex_lock(&s->lock);
    if (s->rec) hwint_rec_set_key(s->rec, key);
    int on = s->rec != NULL;
    pthread_mutex_unlock(&s->lock);
    return on ? HW_OK : hwint_err(errbuf, HW_E_STATE, "this capture is not recording");
}

int hw_record_stats(struct hw_session *s, struct hw_record_stats *out)
{
    pthread_mutex_lock(&s->lock);
    if (s->rec) hwint_rec_stats(s->rec, out);
    else *out = s->rec_last;
    pthread_mutex_unlock(&s->lock);
    return out->active;
}

/* ---- exporters ------------------------------------------------------------ */

int hw_export_add(struct hw_session *s, const struct hw_export_config *cfg, char *errbuf)
{
    pthread_mutex_lock(&s->lock);
    int n = s->n_exp, id = s->next_exp_id + 1;
    pthread_mutex_unlock(&s->lock);
    if (n >= HW_EXPORT_MAX)
        return hwint_err(errbuf, HW_E_ARG, "a session has at most %d exporters", HW_EXPORT_MAX);
    /* connecting may take a while: not under the lock the capture loop takes */
    struct hw_exporter *e;
    int rc = hwint_exp_create(cfg, id, s->cfg.sample_rate, &e, errbuf);
    if (rc) return rc;
    pthread_mutex_lock(&s->lock);
    if (s->n_exp >= HW_EXPORT_MAX || s->next_exp_id + 1 != id) {
        pthread_mutex_unlock(&s->lock);
        hwint_exp_destroy(e);
        return hwint_err(errbuf, HW_E_STATE, "exporters were added concurrently; try again");
    }
    s->exp[s->n_exp++] = e;
    s->next_exp_id = id;
    pthread_mutex_unlock(&s->lock);
    return id;
}

int hw_export_remove(struct hw_session *s, int id, struct hw_export_stats *last)
{
    struct hw_exporter *e = NULL;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_exp; i++) {
        if (hwint_exp_id(s->exp[i]) != id) continue;
        e = s->exp[i];
        hwint_exp_flush(e, s->now_ns);
        if (last) hwint_exp_stats(e, last);
        memmove(&s->exp[i], &s->exp[i + 1], (size_t)(s->n_exp - i - 1) * sizeof s->exp[0]);
        s->n_exp--;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    if (!e) return HW_E_ARG;
    hwint_exp_destroy(e);
    return HW_OK;
}

int hw_export_list(struct hw_session *s, struct hw_export_stats *out, int max)
{
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (; n < s->n_exp && n < max; n++) hwint_exp_stats(s->exp[n], &out[n]);
    pthread_mutex_unlock(&s->lock);
    return n;
}

static const char *const event_names[HW_EV_COUNT] = {"dns", "arp", "tls", "http", "sip", "tcp_src", "token",
                                                     "ndp", "dhcp"};

const char *hw_event_name(int k) { return k >= 0 && k < HW_EV_COUNT ? event_names[k] : NULL; }

int hw_session_offload_flows(struct hw_session *s, struct hw_offload_flow *out, int max)
{
    if (!s->ops->offload_flows) return HW_E_UNSUPPORTED;
    return s->ops->offload_flows(s->bstate, out, max);
}

int hw_session_log_flows(struct hw_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->logger && !s->log_stage) {
        s->log_stage = malloc(LOG_STAGE * sizeof *s->log_stage);
        s->log_cid = malloc(LOG_STAGE * sizeof *s->log_cid);
        if (!s->log_stage || !s->log_cid) drop_stage(s);
    }
    int rc = !s->logger ? HW_E_ARG : s->log_stage ? HW_OK : HW_E_NOMEM;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int hw_session_set_logger(struct hw_session *s, struct hw_logger *lg)
{
    if (!s->log_event && !(s->log_event = malloc(sizeof *s->log_event))) return HW_E_NOMEM;
    pthread_mutex_lock(&s->lock);
    if (s->log_staged) log_staged(s);
    if (!lg) drop_stage(s);
    if (lg && lg != s->logger) hwint_logger_forget(lg);     /* a flow entry it kept was another session's */
    s->logger = lg;
    s->log_events = lg ? hwint_logger_events(lg) : 0;
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_session_set_dns_fold(struct hw_session *s, int on)
{
    if (!s->gate) return on ? HW_E_ARG : HW_OK;
    pthread_mutex_lock(&s->lock);
    hwint_dnsgate_set(s->gate, on);
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}

int hw_dnsgate_counters(struct hw_session *s, struct hw_dnsgate_counters *out)
{
    pthread_mutex_lock(&s->lock);
    hwint_dnsgate_counters(s->gate, out);
    pthread_mutex_unlock(&s->lock);
    return HW_OK;
}
