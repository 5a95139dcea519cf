/* fuzz_parse.c - libFuzzer harness for the C core's packet path.
 *
 * Every input is a handful of packets fed through hw_session_inject on a
 * fresh session: the same path real packets take (parser, fragment cache,
 * flow table with eviction and timeouts, event ring, flow ring, and the
 * protocol logger with tables of two: dns, conn and http lines).  Each packet
 * is copied into a buffer of exactly its captured length, so ASan catches a
 * read one byte past it.  After every input the counters must add up; a
 * broken invariant aborts, which libFuzzer reports like a crash.
 *
 * Input:
 *   byte 0    link type: linktypes[byte % N_LINK] (the ten the parser knows, and one it does not)
 *   byte 1    bits 0-1 wire length: 0 = captured length, 1 = + 4 * next length byte,
 *             2 = half the captured length (below it: counted as the captured length), 3 = 65535;
 *             bits 2-7 time step between packets, in 100 ms (timeouts are 1 s idle, 2 s active)
 *   then up to MAX_PACKETS of: 2-byte big-endian length, that many bytes (cut at the end of input)
 *
 * Built with -DFUZZ_SEEDS instead, this file is a small program that writes
 * a seed corpus in that format from capture files (libpcap reads pcap and
 * pcapng): every packet alone, the first 64 packets of each file together (so
 * flows see handshakes, and more flows than the table holds), and IP packets
 * re-framed in each link type and wrapped in VLAN, MPLS and PPPoE.
 *   make fuzz   builds both, extracts ../shared/pcaps into build/fuzz-corpus, fuzzes FUZZ_SECONDS. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PACKETS 64

static const int linktypes[] = {0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147 /* USER0: unknown */};
#define N_LINK ((int)(sizeof linktypes / sizeof linktypes[0]))

#ifndef FUZZ_SEEDS

#include <unistd.h>

#include "hw.h"

#define CHECK(x)                                                                            \
    do {                                                                                    \
        if (!(x)) {                                                                         \
            fprintf(stderr, "fuzz_parse: invariant broken: %s (line %d)\n", #x, __LINE__); \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static char source[64];
static struct hw_event events[64];
static struct hw_flow_record records[256];
static struct hw_host hosts[8];

static void remove_source(void) { unlink(source); }

/* The record parsers on the raw bytes too: ND and DHCP have no event kind
 * of their own here, and every parser must survive any input. */
static void parse_records(const uint8_t *p, uint32_t n)
{
    static struct hw_event ev; /* its rec union holds every record type */
    int rc = hw_dns_parse(p, n, n & 1, &ev.rec.dns);
    CHECK(rc >= 0 && rc < HW_RMAL_COUNT);
    CHECK(ev.rec.dns.text_len <= HW_DNS_TEXT_MAX && ev.rec.dns.n_rr <= HW_DNS_RR_MAX);
    CHECK(ev.rec.dns.name_len < HW_DNS_NAME_MAX);
    hw_dns_facts(&ev.rec.dns);      /* (what the core adds for Python, on whatever the parse left) */
    CHECK(ev.rec.dns.text_len <= HW_DNS_TEXT_MAX && ev.rec.dns.n_addr + ev.rec.dns.n_cname <= ev.rec.dns.n_rr);
    CHECK(ev.rec.dns.facts != HW_DNS_FACTS_MADE || ev.rec.dns.ips_off + ev.rec.dns.ips_len < ev.rec.dns.text_len);
    rc = hw_tls_parse(p, n, &ev.rec.tls);
    CHECK(rc >= 0 && rc < HW_RMAL_COUNT);
    CHECK(ev.rec.tls.n_certs <= HW_TLS_CERT_MAX && ev.rec.tls.n_alpn <= HW_TLS_ALPN_MAX);
    CHECK(hw_arp_parse(p, n, &ev.rec.arp) >= 0);
    rc = hw_ndp_parse(p, n, &ev.rec.ndp);
    CHECK(rc >= 0 && ev.rec.ndp.n_prefixes <= HW_NDP_PREFIX_MAX && ev.rec.ndp.n_rdnss <= HW_NDP_RDNSS_MAX);
    rc = hw_dhcp_parse(p, n, n & 2 ? 6 : 4, &ev.rec.dhcp);
    CHECK(rc >= 0 && ev.rec.dhcp.server_id_len <= HW_DHCP_ID_MAX);
    CHECK(ev.rec.dhcp.n_routers <= HW_DHCP_ADDR_MAX && ev.rec.dhcp.n_dns <= HW_DHCP_ADDR_MAX);
    rc = hw_http_parse(p, n, &ev.rec.http);
    CHECK(rc >= 0 && ev.rec.http.n_cookies <= HW_HTTP_COOKIES);
}

/* hw_session_open needs a source: a classic pcap with a header and no packet. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const uint8_t header[24] = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0,
                                       0,    0,    0,    0,    0xff, 0xff, 0, 0, 1, 0, 0, 0};
    snprintf(source, sizeof source, "/tmp/capbox-fuzz-%d.pcap", (int)getpid());
    FILE *f = fopen(source, "wb");
    if (!f || fwrite(header, 1, sizeof header, f) != sizeof header || fclose(f) != 0) {
        perror(source);
        exit(1);
    }
    atexit(remove_source);
    return 0;
}

/* A TCP source summary (srcsum.c) is about a span of packets, not the one just injected. */
static uint64_t summarised_syns;

static void check_summary(const struct hw_event *e)
{
    const struct hw_rec_tcpsrc *r = &e->rec.tcpsrc;
    CHECK(e->has_rec && e->snippet_len == 0 && e->proto == 6 && (e->family == 4 || e->family == 6));
    CHECK(r->reason <= HW_SRC_END && r->n_pairs <= HW_SRC_PAIRS);
    CHECK(r->first_ns && r->first_ns <= r->last_ns && e->ts_ns == r->last_ns);
    CHECK(r->syns + r->rsts_sent + r->rsts_received > 0);
    CHECK(r->hosts <= 2000 && r->ports <= 2000 && (r->syns > 0 || (r->hosts == 0 && r->ports == 0)));
    CHECK(r->reason == HW_SRC_INTERVAL || r->reason == HW_SRC_END || r->syns > 0);
    if (r->reason == HW_SRC_NEW || r->reason == HW_SRC_CHANGED) CHECK(r->n_pairs >= 1);
    summarised_syns += r->syns;
}

/* The DNS gate (dnsgate.c): the packet whose query it holds, and the queries seen folded into events. */
static uint8_t held_pkt[1 << 16];
static uint32_t held_len, held_wirelen;
static uint64_t held_ts, folds_seen, repeats_seen, templates_seen;

/* A DNS event may carry the held query, or be that query released: from held_pkt, not the packet just in. */
static int check_gated(const struct hw_event *e, const uint8_t *pkt, uint32_t caplen)
{
    const struct hw_dns_fold *f = &e->rec.dnsfold.fold;
    const struct hw_dns_repeat *r = &e->rec.dnsfold.rep;
    if (f->ts_ns) {
        folds_seen++;
        CHECK(f->ts_ns == held_ts && f->wirelen == held_wirelen && f->proto == 17);
        CHECK((f->family == 4 || f->family == 6) && f->name_len < HW_DNS_FOLD_NAME_MAX && f->ts_ns <= e->ts_ns);
    }
    /* an answer template (dnsrepeat.c): only a plain UDP NOERROR answer carrying its own query */
    if (r->gen || r->defines) {
        CHECK(f->ts_ns && !(r->gen && r->defines) && e->proto == 17 && e->has_rec && !e->rec_status);
        CHECK((e->rec.dns.flags & 0x8000) && !e->rec.dns.rcode && f->id == e->rec.dns.id && (r->has_ttl || !r->ttl));
        CHECK(r->gen ? r->id == e->rec.dns.id : !r->id && !r->ttl && !r->has_ttl);
        repeats_seen += !!r->gen, templates_seen += !!r->defines;
    } else {
        CHECK(!r->ttl && !r->has_ttl && !r->id);
    }
    if (!e->snippet_len || (pkt && memmem(pkt, caplen, e->snippet, e->snippet_len))) return 0;
    CHECK(held_len && e->wirelen == held_wirelen && e->ts_ns == held_ts && !f->ts_ns);
    CHECK(memmem(held_pkt, held_len, e->snippet, e->snippet_len) != NULL);
    return 1;
}

/* Every event is about the packet just injected (or, a DNS query the gate held, an earlier one): its snippet
 * must be bytes of that packet. */
static void check_event(const struct hw_event *e, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
    CHECK(e->kind < HW_EV_COUNT);
    if (e->kind == HW_EV_TCP_SRC) {
        check_summary(e);
        return;
    }
    if (e->kind == HW_EV_DNS && check_gated(e, pkt, caplen)) return;
    CHECK(e->wirelen == wirelen);
    CHECK(e->snippet_len <= HW_SNIPPET_MAX && e->snippet_len <= caplen);
    if (e->snippet_len) CHECK(memmem(pkt, caplen, e->snippet, e->snippet_len) != NULL);
    if (e->kind == HW_EV_ARP) CHECK(e->snippet_len == 28);
}

/* The shared ring of packed events (shring.c), small so that it wraps and fills: every other packet's events
 * go through it and are checked as unpacked (what a record holds; the rest of the event zero). */
#define SHRING_BYTES (HW_SHRING_HEADER + 4 * sizeof(struct hw_event))
#define HEAD_LEN offsetof(struct hw_event, snippet)
#define DNS_NAME offsetof(struct hw_rec_dns, name)
#define FOLD_LEN (offsetof(struct hw_rec_dns_fold, rep) + sizeof(struct hw_dns_repeat) - \
                  offsetof(struct hw_rec_dns_fold, fold))
static uint8_t shmem[SHRING_BYTES] __attribute__((aligned(64)));
static uint64_t sh_offsets[64], sh_seen[64];
static struct hw_event unpacked;
static unsigned through_ring;

static const struct hw_event *unpack(uint64_t at)
{
    const struct hw_shrec *h = (const void *)(shmem + at);
    const uint8_t *base = shmem + at + sizeof *h;
    struct hw_event *e = &unpacked;
    CHECK(h->len % 8 == 0 && h->len >= sizeof *h + HEAD_LEN && at + h->len <= SHRING_BYTES);
    memset(e, 0, sizeof *e);
    memcpy(e, base, HEAD_LEN);
    CHECK(e->snippet_len <= HW_SNIPPET_MAX && sizeof *h + HEAD_LEN + e->snippet_len <= h->len);
    memcpy(e->snippet, base + HEAD_LEN, e->snippet_len);
    uint32_t end = h->len - (uint32_t)sizeof *h;
    CHECK(!h->rec_at || (e->has_rec && h->rec_at % 8 == 0 && h->rec_at >= HEAD_LEN + e->snippet_len));
    CHECK(!h->fold_at || (e->kind == HW_EV_DNS && h->rec_at && h->fold_at > h->rec_at && h->fold_at % 8 == 0 &&
                          h->fold_at + FOLD_LEN <= end));
    if (h->rec_at) {
        uint32_t len = (h->fold_at ? h->fold_at : end) - h->rec_at;
        if (e->kind == HW_EV_DNS) {            /* packed: the fields, the name, the records from 8-aligned on, the text */
            const uint8_t *r = base + h->rec_at;
            struct hw_rec_dns *d = &e->rec.dns;
            CHECK(len >= DNS_NAME);
            memcpy(d, r, DNS_NAME);
            size_t rr_at = (DNS_NAME + d->name_len + 7u) & ~(size_t)7, rr_len = d->n_rr * sizeof d->rr[0];
            CHECK(d->name_len <= HW_DNS_NAME_MAX && d->n_rr <= HW_DNS_RR_MAX && d->text_len <= HW_DNS_TEXT_MAX &&
                  rr_at + rr_len + d->text_len <= len);   /* what the readers use of a DNS record is in it */
            memcpy(d->name, r + DNS_NAME, d->name_len);
            memcpy(d->rr, r + rr_at, rr_len);
            memcpy(d->text, r + rr_at + rr_len, d->text_len);
        } else {
            memcpy(&e->rec, base + h->rec_at, len < sizeof e->rec ? len : sizeof e->rec);
        }
    }
    if (h->fold_at) memcpy(&e->rec.dnsfold.fold, base + h->fold_at, FOLD_LEN);
    if (e->kind == HW_EV_DNS && e->has_rec) CHECK(h->fold_at && h->rec_at);
    if (e->kind == HW_EV_HTTP && through_ring & 2) CHECK(!h->rec_at);   /* left out: hw_shring_unread */
    return e;
}

static void check_events(struct hw_session *s, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
    int n, full;
    if (through_ring++ & 1) {
        hw_shring_unread(shmem, through_ring & 2 ? 1u << HW_EV_HTTP : 0);   /* every other time, HTTP records left out */
        while ((n = hw_shring_fill(shmem, s, 64, sh_offsets, &full)) > 0) {
            uint64_t next;
            CHECK(hw_shring_used(shmem) == (uint64_t)n);
            CHECK(hw_shring_peek(shmem, 64, sh_seen, &next) == (uint32_t)n);
            CHECK(!memcmp(sh_seen, sh_offsets, n * sizeof sh_offsets[0]));
            for (int i = 0; i < n; i++) check_event(unpack(sh_offsets[i]), pkt, caplen, wirelen);
            hw_shring_release(shmem, next, (uint32_t)n);
            CHECK(hw_shring_used(shmem) == 0 && hw_shring_peek(shmem, 64, sh_seen, &next) == 0);
        }
        CHECK(!full);                  /* an empty ring holds any event */
        return;
    }
    while ((n = hw_events_read(s, events, 64)) > 0)
        for (int i = 0; i < n; i++) check_event(&events[i], pkt, caplen, wirelen);
}

struct flow_sums {
    uint64_t records, packets;
    uint8_t seen[MAX_PACKETS + 1]; /* by flow id (a packet creates at most one flow): 1 reported, 2 ended */
};

/* The log lines made so far: each one JSON object of printable ASCII on its own line, counted. */
static struct hw_logger *logger;
static uint64_t log_lines[HW_LOG_KINDS];

/* The log index's reading of lines (hw_log_index) into outputs of exactly the size it asks for: the lines it
 * counts (-1: all left to Python). */
static int index_keys(const char *p, size_t len, uint32_t max)
{
    static const char fields[] = "query\0answers\0host\0uri\0server_name\0cert_chain_fps\0\0";
    size_t cap = len + 2 * (size_t)max + 16, lens[3];
    char *out = malloc(3 * cap);
    double *ts = malloc(max * sizeof *ts);
    uint8_t *py = malloc(max);
    CHECK(out && ts && py);
    int n = hw_log_index(p, len, fields, max, ts, py, out, out + cap, out + 2 * cap, lens);
    CHECK(n < 0 || (lens[0] <= cap && lens[1] <= cap && lens[2] <= cap));
    free(out), free(ts), free(py);
    return n;
}

static void take_lines(void)
{
    for (int k = 0; k < HW_LOG_KINDS; k++) {
        size_t len;
        const char *p = hw_logger_take(logger, k, &len);
        uint32_t lines = 0;
        for (size_t i = 0; i < len; i++) lines += p[i] == '\n';
        CHECK(len == 0 || index_keys(p, len, lines + 1) == (int)lines);   /* the logger's lines: all ASCII */
        for (size_t i = 0; i < len; i++) {
            CHECK(p[i] == '\n' || (p[i] >= 0x20 && p[i] < 0x7f));
            if (p[i] != '\n') continue;
            CHECK(i >= 2 && p[i - 1] == '}');
            log_lines[k]++;
        }
        CHECK(len == 0 || (p[0] == '{' && p[len - 1] == '\n'));
    }
}

static void drain_flows(struct hw_session *s, struct flow_sums *f)
{
    int n;
    int32_t rest[256];
    while ((n = hw_flows_read(s, records, 256)) > 0) {
        int left = hw_logger_flows(logger, records, n, rest);
        CHECK(left >= 0 && left <= n);
        take_lines();
        for (int i = 0; i < n; i++) {
            const struct hw_flow_record *r = &records[i];
            CHECK(r->end_reason >= HW_END_IDLE && r->end_reason <= HW_END_EVICTED);
            CHECK(r->family == 4 || r->family == 6);
            CHECK(r->packets[0] + r->packets[1] > 0); /* a silent continuation reports nothing */
            CHECK(r->id >= 1 && r->id <= MAX_PACKETS);
            CHECK(f->seen[r->id] != 2); /* nothing after a flow's last record */
            f->seen[r->id] = r->end_reason == HW_END_ACTIVE ? 1 : 2;
            f->records++;
            f->packets += r->packets[0] + r->packets[1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint32_t raw_lines = 1;     /* the input as JSON lines too: the index's reader on any bytes */
    for (size_t i = 0; i < size; i++) raw_lines += data[i] == '\n';
    CHECK(index_keys((const char *)data, size, raw_lines) <= (int)raw_lines);
    int linktype = linktypes[data[0] % N_LINK];
    int wire_mode = data[1] & 3;
    uint64_t step = (uint64_t)(data[1] >> 2) * 100000000ULL;
    int fold = !((data[0] / N_LINK) & 1);
    data += 2, size -= 2;

    struct hw_config cfg;
    hw_config_init(&cfg);
    cfg.source = source;
    cfg.max_flows = 16; /* small: eviction runs */
    cfg.max_hosts = 16;
    cfg.idle_timeout_s = 1;
    cfg.active_timeout_s = 2;
    cfg.event_mask = (1u << HW_EV_COUNT) - 1;
    cfg.event_ring = 4 * HW_BATCH_MAX;
    cfg.flow_ring = 4 * HW_BATCH_MAX;
    cfg.lossless = 1;
    char errbuf[HW_ERRBUF_SIZE];
    struct hw_session *s;
    if (hw_session_open(&cfg, &s, errbuf) != HW_OK) {
        fprintf(stderr, "fuzz_parse: %s\n", errbuf);
        abort();
    }
    /* DNS queries folded into the next DNS event (the seeds' first byte is below N_LINK: on) */
    CHECK(hw_session_set_dns_fold(s, fold ? 2 : 0) == HW_OK);    /* and answer templates */
    CHECK(hw_shring_init(shmem, SHRING_BYTES) > 0);
    through_ring = 0;
    held_len = held_wirelen = 0;
    held_ts = folds_seen = repeats_seen = templates_seen = 0;
    struct hw_dnsgate_counters gate;
    /* the protocol logs of every kind, with room for 2 waiting queries and HTTP flows: the full tables run */
    static const uint8_t salt[16] = {1};
    logger = hw_logger_new((1u << HW_LOG_KINDS) - 1, salt, 2, 1 << 16, wire_mode & 1);
    CHECK(logger != NULL && hw_session_set_logger(s, logger) == HW_OK);
    memset(log_lines, 0, sizeof log_lines);

    uint64_t packets = 0, bytes = 0, captured = 0, ts = 1000000000ULL;
    summarised_syns = 0;
    struct flow_sums flows;
    memset(&flows, 0, sizeof flows);
    while (size >= 2 && packets < MAX_PACKETS) {
        uint32_t len = (uint32_t)data[0] << 8 | data[1];
        data += 2, size -= 2;
        if (len > size) len = (uint32_t)size;
        uint32_t wirelen = len;
        if (wire_mode == 1) wirelen = len + 4u * (len ? data[0] : 0);
        else if (wire_mode == 2) wirelen = len / 2;
        else if (wire_mode == 3) wirelen = 65535;
        /* exactly caplen bytes of heap: ASan sees a read past the end */
        uint8_t *pkt = malloc(len ? len : 1);
        CHECK(pkt != NULL);
        memcpy(pkt, data, len);
        hw_dnsgate_counters(s, &gate);
        uint64_t was_held = gate.held;
        CHECK(hw_session_inject(s, linktype, len ? pkt : NULL, len, wirelen, ts) == HW_OK);
        uint32_t counted = wirelen > len ? wirelen : len;
        check_events(s, pkt, len, counted);
        if (hw_dnsgate_counters(s, &gate) == HW_OK && gate.held != was_held) { /* this packet's query is held */
            memcpy(held_pkt, pkt, len);
            held_len = len, held_wirelen = counted, held_ts = ts;
        }
        parse_records(pkt, len);
        free(pkt);
        packets++;
        bytes += counted;
        captured += len;
        ts += step;
        data += len, size -= len;
        if (packets % 16 == 0) drain_flows(s, &flows);
        if (packets % 8 == 0) {
            hw_logger_expire(logger, ts, 2000000000ULL);
            hw_logger_ended(logger, packets / 8);
            take_lines();
        }
    }

    struct hw_counters c;
    hw_session_counters(s, &c);
    CHECK(c.packets == packets);
    CHECK(c.bytes == bytes);
    CHECK(c.captured_bytes == captured);
    CHECK(c.packets == c.malformed + c.ip_packets + c.arp_packets + c.other_packets);
    uint64_t sum = 0;
    for (int i = 0; i < HW_MAL_COUNT; i++) sum += c.malformed_by[i];
    CHECK(sum == c.malformed);
    sum = 0;
    for (int i = 0; i < HW_TRUNC_COUNT; i++) sum += c.truncated_by[i];
    CHECK(c.truncated <= sum && c.truncated <= c.packets - c.malformed);
    CHECK(c.flows_created == c.flows_tcp + c.flows_udp + c.flows_icmp + c.flows_other);
    sum = 0;
    for (int i = 0; i < HW_APP_COUNT; i++) sum += c.app_packets[i];
    CHECK(sum == c.ip_packets - c.packets_not_metered);
    CHECK(packets == 0 || (c.first_ns <= c.last_ns && c.last_ns == ts - step));

    /* the top flows still in the table, in each order */
    for (int order = HW_ORDER_BYTES; order <= HW_ORDER_FIRST; order++) {
        int n = hw_flows_active(s, records, 8, order);
        CHECK(n >= 0 && n <= 8 && (uint64_t)n <= c.flows_active);
        CHECK(n == 8 || (uint64_t)n == c.flows_active);
        for (int i = 1; i < n; i++) {
            const struct hw_flow_record *a = &records[i - 1], *b = &records[i];
            if (order == HW_ORDER_BYTES) CHECK(a->bytes[0] + a->bytes[1] >= b->bytes[0] + b->bytes[1]);
            if (order == HW_ORDER_PACKETS) CHECK(a->packets[0] + a->packets[1] >= b->packets[0] + b->packets[1]);
            if (order == HW_ORDER_LAST) CHECK(a->last_ns >= b->last_ns);
            if (order == HW_ORDER_FIRST) CHECK(a->first_ns <= b->first_ns);
        }
    }

    /* every IP packet is metered in exactly one flow record, or counted as not metered */
    for (int rounds = 0;; rounds++) {
        CHECK(rounds < 1000);
        int left = hw_session_flush(s);
        drain_flows(s, &flows);
        check_events(s, NULL, 0, 0); /* the last TCP source summaries */
        if (left == 0) break;
    }
    hw_session_counters(s, &c);
    CHECK(c.flows_active == 0);
    /* every SYN the source table took is in exactly one summary, the evicted ones' too */
    CHECK(c.events_dropped[HW_EV_TCP_SRC] == 0 && summarised_syns == c.tcp_source_syns);
    CHECK(c.flow_records_dropped == 0);
    CHECK(flows.records == c.flow_records);
    CHECK(c.flows_expired_idle + c.flows_expired_end + c.flows_evicted == c.flows_created);
    for (uint64_t id = 1; id <= MAX_PACKETS; id++) CHECK(!flows.seen[id] == (id > c.flows_created));
    CHECK(flows.packets + c.packets_not_metered == c.ip_packets);
    /* every query the gate held went out once: folded into the next DNS event, or as it was */
    hw_dnsgate_counters(s, &gate);
    CHECK(gate.held == gate.folded + gate.released && gate.dropped == 0 && gate.folded == folds_seen);
    CHECK(gate.repeats == repeats_seen && gate.templates == templates_seen);
    CHECK(gate.changed + gate.evicted <= gate.templates);
    CHECK(gate.repeats + gate.templates + gate.unfit <= gate.folded);

    /* every log line made was handed out whole, and counted (none dropped: the bound is far) */
    hw_logger_flush(logger);
    take_lines();
    struct hw_logger_stats ls;
    hw_logger_stats(logger, &ls);
    for (int k = 0; k < HW_LOG_KINDS; k++) CHECK(ls.records[k] == log_lines[k] && ls.dropped[k] == 0);
    CHECK(ls.pending == 0);

    /* talkers: every flow record was folded in; the largest first */
    int n = hw_hosts_top(s, hosts, 8);
    CHECK(n >= 0 && n <= 8 && (n > 0) == (flows.records > 0));
    for (int i = 1; i < n; i++)
        CHECK(hosts[i - 1].bytes_in + hosts[i - 1].bytes_out >= hosts[i].bytes_in + hosts[i].bytes_out);
    hw_session_close(s);
    hw_logger_free(logger);
    return 0;
}

#else /* FUZZ_SEEDS: the seed corpus from capture files */

#include <libgen.h>
#include <pcap/pcap.h>

#define GROUP MAX_PACKETS /* packets in a multi-packet seed */

static int write_seed(const char *dir, const char *stem, const char *tag, int n, int link_index,
                      const uint8_t *const *pkts, const uint32_t *lens, int count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%s%d-link%d", dir, stem, tag, n, linktypes[link_index]);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t head[2] = {(uint8_t)link_index, 1 << 2 /* 100 ms between packets */};
    fwrite(head, 1, 2, f);
    for (int i = 0; i < count; i++) {
        uint32_t len = lens[i] > 0xffff ? 0xffff : lens[i];
        uint8_t l[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        fwrite(l, 1, 2, f);
        fwrite(pkts[i], 1, len, f);
    }
    return fclose(f);
}

static int link_index(int linktype)
{
    for (int i = 0; i < N_LINK; i++)
        if (linktypes[i] == linktype) return i;
    return N_LINK - 1;
}

/* An Ethernet frame carrying IP, re-framed for the other link types. */
static void reframe(const char *dir, const char *stem, int n, const uint8_t *eth, uint32_t len)
{
    static uint8_t buf[65536 + 32];
    if (len < 15 || len > 65535) return;
    uint16_t type = (uint16_t)(eth[12] << 8 | eth[13]);
    if (type != 0x0800 && type != 0x86dd) return;
    const uint8_t *ip = eth + 14;
    uint32_t iplen = len - 14;
    int v6 = type == 0x86dd;
    const uint8_t *p = buf;
    for (int k = 0; k < N_LINK - 1; k++) {
        int lt = linktypes[k];
        uint32_t hl = 0, l;
        switch (lt) {
        case 0: /* host byte order, as the writer had it */
            buf[0] = v6 ? 10 : 2, buf[1] = buf[2] = buf[3] = 0, hl = 4;
            break;
        case 108: buf[0] = buf[1] = buf[2] = 0, buf[3] = v6 ? 24 : 2, hl = 4; break;
        case 113: /* SLL: packet type, ARPHRD_ETHER, address length, address, protocol */
            memset(buf, 0, 16);
            buf[3] = 1, buf[5] = 6;
            memcpy(buf + 6, eth + 6, 6);
            buf[14] = eth[12], buf[15] = eth[13], hl = 16;
            break;
        case 276: /* SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address */
            memset(buf, 0, 20);
            buf[0] = eth[12], buf[1] = eth[13], buf[7] = 1, buf[9] = 1, buf[11] = 6;
            memcpy(buf + 12, eth + 6, 6);
            hl = 20;
            break;
        case 228: if (v6) continue; break;
        case 229: if (!v6) continue; break;
        case 1: /* the original wrapped: VLAN, MPLS, PPPoE session */
            memcpy(buf, eth, 12);
            memcpy(buf + 12, "\x81\x00\x00\x0a", 4);
            memcpy(buf + 16, eth + 12, 2);
            memcpy(buf + 18, ip, iplen);
            l = 18 + iplen;
            write_seed(dir, stem, "vlan", n, k, &p, &l, 1);
            memcpy(buf + 12, "\x88\x47\x00\x01\x01\x40", 6);
            memcpy(buf + 18, ip, iplen);
            write_seed(dir, stem, "mpls", n, k, &p, &l, 1);
            memcpy(buf + 12, "\x88\x64\x11\x00\x00\x01", 6);
            buf[18] = (uint8_t)((iplen + 2) >> 8), buf[19] = (uint8_t)(iplen + 2);
            buf[20] = 0, buf[21] = v6 ? 0x57 : 0x21;
            memcpy(buf + 22, ip, iplen);
            l = 22 + iplen;
            write_seed(dir, stem, "pppoe", n, k, &p, &l, 1);
            continue;
        default: break; /* raw IP */
        }
        memcpy(buf + hl, ip, iplen);
        l = hl + iplen;
        write_seed(dir, stem, "", n, k, &p, &l, 1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CORPUS_DIR CAPTURE...\n", argv[0]);
        return 2;
    }
    int written = 0;
    for (int a = 2; a < argc; a++) {
        char err[PCAP_ERRBUF_SIZE];
        pcap_t *pc = pcap_open_offline(argv[a], err);
        if (!pc) { /* damaged captures are fine: skip them */
            fprintf(stderr, "%s: %s (skipped)\n", argv[a], err);
            continue;
        }
        char stem_buf[4096];
        snprintf(stem_buf, sizeof stem_buf, "%s", argv[a]);
        const char *stem = basename(stem_buf);
        int li = link_index(pcap_datalink(pc));
        static uint8_t group[GROUP][512];
        const uint8_t *gp[GROUP];
        uint32_t gl[GROUP];
        struct pcap_pkthdr *h;
        const u_char *d;
        int n = 0, g = 0;
        while (n < 256 && pcap_next_ex(pc, &h, &d) == 1) {
            uint32_t len = h->caplen > 65535 ? 65535 : h->caplen;
            const uint8_t *one = d;
            write_seed(argv[1], stem, "", n, li, &one, &len, 1);
            if (linktypes[li] == 1 && n % 4 == 0) reframe(argv[1], stem, n, d, len);
            if (g < GROUP) { /* whole small packets, the headers of big ones */
                if (len > sizeof group[g]) len = sizeof group[g];
                memcpy(group[g], d, len);
                gp[g] = group[g], gl[g] = len, g++;
            }
            n++;
        }
        if (g > 1) write_seed(argv[1], stem, "first", g, li, gp, gl, g);
        written += n;
        pcap_close(pc);
    }
    printf("%d packets from %d captures in %s\n", written, argc - 2, argv[1]);
    return 0;
}

#endif
