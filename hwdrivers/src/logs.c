/* logs.c - the dns and conn log lines and the logger (cdef/logs.h; http:
 * loghttp.c, tls: logtls.c).  A DNS query waits in a bounded table keyed by
 * flow, DNS id and name for its answer (the round trip counts from the first
 * copy of the query, as tshark's); a flow's conn line (logconn.c) is written
 * when the flow leaves the table.  The fields, their order
 * and their text are those agent.logs.records wrote in Python. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "flow.h"
#include "logger.h"

#define NONE UINT32_MAX

struct pend {                   /* a query waiting for its answer */
    uint64_t ts_ns, flow_id;
    uint32_t hnext, prev, next; /* hash chain; insertion order (next doubles as the free list) */
    uint32_t repeats;
    uint16_t orig_p, resp_p, id, qtype, qclass, name_len;
    uint8_t family, proto, rd, used;
    uint8_t orig[16], resp[16];
    char name[HW_DNS_NAME_MAX];
};

struct hw_logger {
    pthread_mutex_t lock;       /* the capture thread makes lines, another takes them */
    uint32_t kinds;
    int path;                   /* "_path" first */
    uint8_t salt[16];
    uint64_t now_ns;
    struct hwint_jbuf out[HW_LOG_KINDS];
    struct hwint_jbuf taken[HW_LOG_KINDS];  /* what the last take handed out: the capture thread writes the other */
    struct pend *pend;
    uint32_t *bucket, mask, max, count, oldest, newest, free;
    uint32_t fresh, buckets;    /* entries below fresh were used; buckets allocated, mask + 1 of them in use */
    struct hwint_http *http;    /* HTTP requests waiting for their responses */
    struct hwint_tls *tls;      /* TLS handshakes being gathered */
    size_t bytes_max;           /* 0: no bound */
    uint64_t records[HW_LOG_KINDS], dropped[HW_LOG_KINDS], held_early;
    int in_event;               /* in hwint_logger_event: the attached session's flows are there to read */
    struct hw_flow *flow;       /* the flow of the event being logged (NULL: none, or not in an event) */
    struct {                    /* a dns line's community ID, made with the next one's (two SHA-1 chains at once) */
        int waiting;
        size_t at;              /* where its 30 characters go in out[HW_LOG_DNS] */
        int family;
        uint8_t proto, src[16], dst[16];
        uint16_t sport, dport;
        struct hw_flow *flow;   /* its flow's entry, to keep it in (if the entry still holds that flow) */
        uint64_t flow_id;
    } cid;
};

/* ---- uid ----------------------------------------------------------------- */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void hw_log_uid(const uint8_t *salt, uint64_t flow_id, char *out)
{
    uint64_t k0, k1;
    memcpy(&k0, salt, 8);
    memcpy(&k1, salt + 8, 8);
    uint64_t a = mix(mix(flow_id ^ k0) ^ k1), c = mix(a ^ k0 ^ 0x9e3779b97f4a7c15ULL);
    out[0] = 'C';
    for (int half = 0; half < 2; half++) {      /* 8 hex digits at a time: a nibble to a byte, then to its digit */
        uint64_t x = half ? a & 0xffffffffu : a >> 32;
        x = (x & 0xffff0000ULL) << 16 | (x & 0xffffULL);
        x = (x & 0x0000ff000000ff00ULL) << 8 | (x & 0x000000ff000000ffULL);
        x = (x & 0x00f000f000f000f0ULL) << 4 | (x & 0x000f000f000f000fULL);      /* the first digit highest */
        uint64_t letters = (x + 0x0606060606060606ULL) >> 4 & 0x0101010101010101ULL;    /* 1 where over 9 */
        x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        x = __builtin_bswap64(x);
#endif
        memcpy(out + 1 + 8 * half, &x, 8);
    }
    out[17] = "0123456789abcdef"[c & 0xf];
    out[18] = 0;
}

/* ---- the start of every record -------------------------------------------- */

/* ,"proto":"tcp" in 16 bytes, copied whole (the spare written over: no memcpy call a line), and its length; an
 * unnumbered protocol's number in t (40 bytes) */
static const char *proto_field(uint8_t proto, char *t, size_t *n)
{
#define FIELD(s) ",\"proto\":\"" s "\""
    static const char named[4][16] = {FIELD("tcp"), FIELD("udp"), FIELD("icmp"), FIELD("sctp")};
    static const uint8_t len[4] = {sizeof FIELD("tcp") - 1, sizeof FIELD("udp") - 1, sizeof FIELD("icmp") - 1,
                                   sizeof FIELD("sctp") - 1};
#undef FIELD
    int k = proto == 6 ? 0 : proto == 17 ? 1 : proto == 1 || proto == 58 ? 2 : proto == 132 ? 3 : -1;
    if (k >= 0) {
        *n = len[k];
        return named[k];
    }
    *n = (size_t)snprintf(t, 24, ",\"proto\":\"%u\"", proto);
    return t;
}

/* ---- the dns lines' community IDs, two at a time -------------------------- */

/* The waiting one's key, for hwint_community_md2 */
static struct hwint_cid_key waiting_key(const struct hw_logger *lg)
{
    return (struct hwint_cid_key){lg->cid.family, lg->cid.src, lg->cid.dst, lg->cid.proto, lg->cid.sport,
                                  lg->cid.dport, 0};
}

/* The waiting id made alone, before its buffer is handed out */
static void settle_cid(struct hw_logger *lg)
{
    if (!lg->cid.waiting) return;
    char id[32];
    hw_community_id(lg->cid.family, lg->cid.src, lg->cid.dst, lg->cid.proto, lg->cid.sport, lg->cid.dport, 0, id);
    memcpy(lg->out[HW_LOG_DNS].p + lg->cid.at, id, 30);
    lg->cid.waiting = 0;
}

/* A dns line's id, its 30 characters at `at` (room taken): made with the one waiting, else it waits (a dns line's
 * id alone through SHA-1 was most of a line's head: one chain of dependent rounds, where two interleave).  Each
 * one's SHA-1 is kept in its flow's entry (fl, NULL for none): the flow's next lines and its conn line copy it. */
static void pair_cid(struct hw_logger *lg, size_t at, int family, const uint8_t *orig, uint16_t orig_p,
                     const uint8_t *resp, uint16_t resp_p, uint8_t proto, struct hw_flow *fl)
{
    size_t alen = family == 6 ? 16 : 4;
    if (!lg->cid.waiting) {
        lg->cid.waiting = 1, lg->cid.at = at, lg->cid.family = family, lg->cid.proto = proto;
        memcpy(lg->cid.src, orig, alen), memcpy(lg->cid.dst, resp, alen);
        lg->cid.sport = orig_p, lg->cid.dport = resp_p;
        lg->cid.flow = fl, lg->cid.flow_id = fl ? fl->id : 0;
        return;
    }
    struct hwint_cid_key k[2] = {waiting_key(lg), {family, orig, resp, proto, orig_p, resp_p, 0}};
    uint8_t md[2][20];
    int rc[2];
    hwint_community_md2(k, md, rc);
    char id[32];                /* (encoded here: 30 characters and a NUL the line's quote goes over) */
    hwint_cid_encode(md[0], id);
    memcpy(lg->out[HW_LOG_DNS].p + lg->cid.at, id, 30);
    hwint_cid_encode(md[1], lg->out[HW_LOG_DNS].p + at);
    struct hw_flow *w = lg->in_event ? lg->cid.flow : NULL;     /* (a flush: its session may be gone) */
    if (w && w->used && w->id == lg->cid.flow_id && !rc[0]) memcpy(w->cid, md[0], 20);  /* (not since reused) */
    if (fl && !rc[1]) memcpy(fl->cid, md[1], 20);
    lg->cid.waiting = 0;
}

/* The most a head takes: '{', "_path", "ts", "uid", two addresses and ports, "proto" and "community_id". */
#define HEAD_MAX (1 + 16 + 5 + 48 + 27 + 2 * (13 + 48 + 13 + 5) + 20 + 49)

/* uid: 1 write it (null for flow 0), 0 leave it out when flow 0 (a record Python compacted); cid: the
 * community ID made beforehand ("" for none), NULL to make it here.  Written at a cursor: the room taken once. */
static void head(struct hw_logger *lg, struct hwint_jbuf *b, uint64_t ts_ns, uint64_t flow_id, int family,
                 const uint8_t *orig, int orig_p, const uint8_t *resp, int resp_p, uint8_t proto, int null_uid,
                 const char *cid)
{
    char t[40];
    char *o = hwint_j_room(b, HEAD_MAX);
    if (!o) return;
    static const struct { char s[24]; uint8_t n; } paths[HW_LOG_KINDS] = {
#define PATH(k) {"{\"_path\":\"" k "\",", sizeof("{\"_path\":\"" k "\",") - 1}
        PATH("dns"), PATH("conn"), PATH("http"), PATH("tls"),
#undef PATH
    };
    if (lg->path) {
        memcpy(o, paths[b - lg->out].s, 24);        /* a fixed copy, the spare written over */
        o += paths[b - lg->out].n;
    } else {
        *o++ = '{';
    }
    o = HWINT_J_PUT(o, "\"ts\":");
    o = hwint_j_secs_at(b, o, ts_ns);
    if (flow_id) {
        o = HWINT_J_PUT(o, ",\"uid\":\"");
        hw_log_uid(lg->salt, flow_id, o);       /* 18 characters and a NUL, the quote over it */
        o[18] = '"';
        o += 19;
    } else if (null_uid) {
        o = HWINT_J_PUT(o, ",\"uid\":null");
    }
    o = hwint_j_addr_at(HWINT_J_PUT(o, ",\"id.orig_h\":"), family, orig);
    if (orig_p >= 0) o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"id.orig_p\":"), (uint64_t)orig_p);
    o = hwint_j_addr_at(HWINT_J_PUT(o, ",\"id.resp_h\":"), family, resp);
    if (resp_p >= 0) o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"id.resp_p\":"), (uint64_t)resp_p);
    size_t n;
    const char *pf = proto_field(proto, t, &n);
    memcpy(o, pf, 16);          /* (its room counted: 20) */
    o += n;
    uint16_t op = orig_p < 0 ? 0 : (uint16_t)orig_p, rp = resp_p < 0 ? 0 : (uint16_t)resp_p;
    struct hw_flow *fl = lg->flow && lg->flow->id == flow_id ? lg->flow : NULL;     /* (the same endpoints) */
    if (!cid && b == &lg->out[HW_LOG_DNS] && (family == 4 || family == 6) && proto != 1 && proto != 58) {
        o = HWINT_J_PUT(o, ",\"community_id\":\"");           /* (its room counted: 49) */
        if (fl && hwint_cid_kept(fl->cid)) hwint_cid_encode(fl->cid, o);   /* made at the flow's first line */
        else pair_cid(lg, (size_t)(o - b->p), family, orig, op, resp, rp, proto, fl);
        o[30] = '"';
        hwint_j_done(b, o + 31);
        return;
    }
    if (!cid && fl && hwint_cid_kept(fl->cid)) {
        hwint_cid_encode(fl->cid, t);
        cid = t;
    } else if (!cid) {          /* made alone, and kept for the flow's next lines */
        struct hwint_cid_key k = {family, orig, resp, proto, op, rp, 0};
        uint8_t md[20];
        int rc = hwint_community_md(&k, md);
        if (!rc) hwint_cid_encode(md, t);
        if (!rc && fl) memcpy(fl->cid, md, 20);
        cid = rc ? "" : t;
    }
    if (*cid) o = hwint_j_plain_at(HWINT_J_PUT(o, ",\"community_id\":"), cid, 30);  /* "1:" and 28 base64 */
    hwint_j_done(b, o);
}

void hwint_log_head(struct hw_logger *lg, int kind, uint64_t ts_ns, uint64_t flow_id, int family,
                    const uint8_t *orig, int orig_p, const uint8_t *resp, int resp_p, uint8_t proto, int null_uid,
                    const char *cid)
{
    head(lg, &lg->out[kind], ts_ns, flow_id, family, orig, orig_p, resp, resp_p, proto, null_uid, cid);
}

struct hwint_jbuf *hwint_log_buf(struct hw_logger *lg, int kind) { return &lg->out[kind]; }

void hwint_log_early(struct hw_logger *lg) { lg->held_early++; }

#define HUGE_PAGE (2u << 20)

/* A megabyte of buckets or more (the http and tls tables' 131,072 pointers) in huge pages (asked of the kernel):
 * one TLB entry where the walks of their 256 pages, missed under the lines' cache traffic, stalled an HTTP
 * event's prefetch and a flow end's lookup (a prefetch waits for its address's translation).  Less stays calloc's
 * untouched pages. */
void *hwint_log_buckets(uint32_t max, size_t entry_size, uint32_t *mask)
{
    uint32_t nb = 16;
    while (nb < 2 * max && nb < (1u << 30)) nb <<= 1;
    *mask = nb - 1;
    size_t n = (size_t)nb * entry_size, whole = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (n < HUGE_PAGE / 2) return calloc(nb, entry_size);
    void *p = aligned_alloc(HUGE_PAGE, whole);
    if (!p) return NULL;
    madvise(p, whole, MADV_HUGEPAGE);   /* (a hint: without it, or refused, 4 KB pages as before) */
    memset(p, 0, n);
    return p;
}

static void end_line(struct hw_logger *lg, int kind, size_t start)
{
    struct hwint_jbuf *b = &lg->out[kind];
    hwint_j_raw(b, "}\n", 2);
    if (b->failed || (lg->bytes_max && b->len > lg->bytes_max)) {   /* no memory, or nobody took the lines */
        if (kind == HW_LOG_DNS && lg->cid.waiting && lg->cid.at >= start) lg->cid.waiting = 0;  /* its id too */
        b->len = start;                                               /* this one goes, those before stay */
        b->failed = 0;
        lg->dropped[kind]++;
        return;
    }
    lg->records[kind]++;
}

void hwint_log_end(struct hw_logger *lg, int kind, size_t start) { end_line(lg, kind, start); }

/* ---- dns ------------------------------------------------------------------ */

/* The most the question's fields take after the query: qclass and its name, qtype and its name, RD. */
#define QUESTION_TAIL_MAX (2 * (13 + 5) + 2 * (16 + 12) + 12)

/* Written at a cursor around the query's name (the one field that may need escapes): the room taken twice. */
static void question(struct hwint_jbuf *b, uint16_t id, const char *name, size_t name_len, uint16_t qclass,
                     uint16_t qtype, int rd)
{
    char *o = hwint_j_room(b, 32);
    if (!o) return;
    o = HWINT_J_PUT(hwint_j_u64_at(HWINT_J_PUT(o, ",\"trans_id\":"), id), ",\"query\":");
    hwint_j_done(b, o);
    hwint_j_str(b, (const uint8_t *)name, name_len, HWINT_J_LATIN1);
    if (!(o = hwint_j_room(b, QUESTION_TAIL_MAX))) return;
    if (qclass == 1) {          /* nearly every query: the two fields as one run of text */
        o = HWINT_J_PUT(o, ",\"qclass\":1,\"qclass_name\":\"C_INTERNET\"");
    } else {
        o = HWINT_J_PUT(hwint_j_u64_at(HWINT_J_PUT(o, ",\"qclass\":"), qclass), ",\"qclass_name\":\"");
        o = hwint_j_u64_at(o, qclass);
        *o++ = '"';
    }
    o = HWINT_J_PUT(hwint_j_u64_at(HWINT_J_PUT(o, ",\"qtype\":"), qtype), ",\"qtype_name\":\"");
    const char *name_t = hw_dns_type_name(qtype);
    if (name_t) {
        size_t n = strlen(name_t);
        memcpy(o, name_t, n);
        o += n;
    } else {
        o = hwint_j_u64_at(HWINT_J_PUT(o, "TYPE"), qtype);
    }
    o = rd ? HWINT_J_PUT(o, "\",\"RD\":true") : HWINT_J_PUT(o, "\",\"RD\":false");
    hwint_j_done(b, o);
}

/* A query logged alone (no answer came): the question, uid left out for flow 0 (repeats are told with answers) */
static void query_line(struct hw_logger *lg, const struct pend *p)
{
    struct hwint_jbuf *b = &lg->out[HW_LOG_DNS];
    size_t start = b->len;
    head(lg, b, p->ts_ns, p->flow_id, p->family, p->orig, p->orig_p, p->resp, p->resp_p, p->proto, 0, NULL);
    question(b, p->id, p->name, p->name_len, p->qclass, p->qtype, p->rd);
    end_line(lg, HW_LOG_DNS, start);
}

/* Flow, id and name, 8 bytes a step from the salt: mDNS asks everything under id 0, and names chosen under one
 * flow and id must not put every waiting query in one chain. */
static uint32_t key_hash(const struct hw_logger *lg, uint64_t flow_id, uint16_t id, const char *name, size_t n)
{
    uint64_t h, w = 0;
    memcpy(&h, lg->salt, 8);
    h = mix(h ^ flow_id * 0x9e3779b97f4a7c15ULL ^ id ^ (uint64_t)n << 48);
    size_t whole = n;
    for (; n >= 8; n -= 8, name += 8)           /* a multiply a word, one mix at the end (a mix a word was a fifth */
        memcpy(&w, name, 8), h = (h ^ w) * 0xff51afd7ed558ccdULL;       /* of a query's cost) */
    w = 0;
    if (n && whole >= 8) {      /* the tail as the last 8 bytes, those hashed already shifted out (no memcpy call) */
        memcpy(&w, name + n - 8, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        w >>= 8 * (8 - n);
#else
        w <<= 8 * (8 - n);
#endif
    } else {
        memcpy(&w, name, n);
    }
    return (uint32_t)mix(h ^ w);
}

static uint32_t *find(struct hw_logger *lg, uint64_t flow_id, uint16_t id, const char *name, size_t n)
{
    uint32_t *at = &lg->bucket[key_hash(lg, flow_id, id, name, n) & lg->mask];
    for (; *at != NONE; at = &lg->pend[*at].hnext) {
        const struct pend *p = &lg->pend[*at];
        if (p->flow_id == flow_id && p->id == id && p->name_len == n && !memcmp(p->name, name, n)) return at;
    }
    return at;
}

/* Takes the entry *at points to out of the table (its hash link, the order, to the free list). */
static void unlink_pend(struct hw_logger *lg, uint32_t *at)
{
    uint32_t i = *at;
    struct pend *p = &lg->pend[i];
    *at = p->hnext;
    if (p->prev != NONE) lg->pend[p->prev].next = p->next;
    else lg->oldest = p->next;
    if (p->next != NONE) lg->pend[p->next].prev = p->prev;
    else lg->newest = p->prev;
    p->used = 0;
    p->next = lg->free;
    lg->free = i;
    lg->count--;
}

static void release_oldest(struct hw_logger *lg)
{
    const struct pend *p = &lg->pend[lg->oldest];
    query_line(lg, p);
    unlink_pend(lg, find(lg, p->flow_id, p->id, p->name, p->name_len));
}

/* Twice the buckets in use, every waiting query hashed again: the table's buckets stay about twice its count,
 * so the few a capture usually holds stay in cache where the 512 KB of all of them missed on every lookup. */
static void grow(struct hw_logger *lg)
{
    lg->mask = 2 * lg->mask + 1;
    memset(lg->bucket, 0xff, (lg->mask + 1) * sizeof *lg->bucket);
    for (uint32_t i = lg->oldest; i != NONE; i = lg->pend[i].next) {
        struct pend *p = &lg->pend[i];
        uint32_t *b = &lg->bucket[key_hash(lg, p->flow_id, p->id, p->name, p->name_len) & lg->mask];
        p->hnext = *b;
        *b = i;
    }
}

static void hold(struct hw_logger *lg, const struct hw_event *e, const struct hw_rec_dns *r, uint32_t *at)
{
    if (lg->count >= lg->max) {
        release_oldest(lg);
        lg->held_early++;
        at = find(lg, e->flow_id, r->id, r->name, r->name_len);
    } else if (2 * (lg->count + 1) > lg->mask + 1 && lg->mask + 1 < lg->buckets) {
        grow(lg);
        at = find(lg, e->flow_id, r->id, r->name, r->name_len);
    }
    uint32_t i = lg->free != NONE ? lg->free : lg->fresh++;    /* entries are touched as first needed */
    struct pend *p = &lg->pend[i];
    if (lg->free != NONE) lg->free = p->next;
    /* field by field: a compound literal zeroed the name's 256 bytes too, with a rep stos (slow to start) */
    p->ts_ns = e->ts_ns, p->flow_id = e->flow_id;
    p->hnext = NONE, p->prev = lg->newest, p->next = NONE, p->repeats = 0;
    p->orig_p = e->sport, p->resp_p = e->dport, p->id = r->id, p->qtype = r->qtype, p->qclass = r->qclass;
    p->name_len = r->name_len, p->family = e->family, p->proto = e->proto, p->rd = !!(r->flags & 0x0100), p->used = 1;
    memcpy(p->orig, e->src, 16);
    memcpy(p->resp, e->dst, 16);
    memcpy(p->name, r->name, r->name_len);
    *at = i;
    if (lg->newest != NONE) lg->pend[lg->newest].next = i;
    else lg->oldest = i;
    lg->newest = i;
    lg->count++;
}

/* An answer's value as hwdrivers.records writes it (addresses, names, "pref name", "mname rname serial ...") */
static void answer(struct hwint_jbuf *b, const struct hw_rec_dns *r, const struct hw_dns_rr *rr)
{
    if (rr->addr_len == 4 || rr->addr_len == 16) {
        hwint_j_addr(b, rr->addr_len == 16 ? 6 : 4, rr->addr);
        return;
    }
    uint32_t off = rr->data_off < r->text_len ? rr->data_off : r->text_len;
    uint32_t n = rr->data_len < r->text_len - off ? rr->data_len : r->text_len - off;
    const uint8_t *d = (const uint8_t *)r->text + off;
    char t[128];
    if (rr->type == 16) {        /* TXT: the character strings, space-joined, each decoded as UTF-8 */
        struct hwint_jbuf tmp = {0};
        hwint_j_raw(b, "\"", 1);
        for (uint32_t i = 0; i < n; i += 1u + d[i]) {
            uint32_t len = d[i] < n - i - 1 ? d[i] : n - i - 1;
            if (i) hwint_j_raw(b, " ", 1);
            tmp.len = 0;
            hwint_j_str(&tmp, d + i + 1, len, HWINT_J_UTF8);
            if (tmp.len >= 2) hwint_j_raw(b, tmp.p + 1, tmp.len - 2);
            b->failed |= tmp.failed;
        }
        free(tmp.p);
        hwint_j_raw(b, "\"", 1);
        return;
    }
    size_t pre = 0, post = 0;
    char tail[64];
    if (rr->type == 15) pre = (size_t)snprintf(t, sizeof t, "%u ", rr->pref);
    if (rr->type == 6)
        post = (size_t)snprintf(tail, sizeof tail, " %u %u %u %u %u", rr->soa[0], rr->soa[1], rr->soa[2], rr->soa[3],
                                rr->soa[4]);
    uint8_t v[HW_DNS_TEXT_MAX + 128];
    memcpy(v, t, pre);
    memcpy(v + pre, d, n);
    memcpy(v + pre + n, tail, post);
    hwint_j_str(b, v, pre + n + post, HWINT_J_LATIN1);
}

/* The most the fields between the question's and the answers take (rcode, its name, AA TC RA, Z), and those
 * after them (every TTL with its ".0" and comma, rejected, answers_skipped). */
#define ANSWER_HEAD_MAX (10 + 5 + 16 + 12 + 40 + 8 + 12)
#define ANSWER_TAIL_MAX (10 + HW_DNS_RR_MAX * 13 + 18 + 20 + 6)

static void answered(struct hw_logger *lg, const struct hw_event *e, const struct hw_rec_dns *r, uint32_t *at)
{
    struct hwint_jbuf *b = &lg->out[HW_LOG_DNS];
    size_t start = b->len;
    if (*at != NONE) {
        const struct pend *p = &lg->pend[*at];
        head(lg, b, p->ts_ns, p->flow_id, p->family, p->orig, p->orig_p, p->resp, p->resp_p, p->proto, 1, NULL);
        question(b, p->id, p->name, p->name_len, p->qclass, p->qtype, p->rd);
        char *o = hwint_j_room(b, 8);      /* (the question's last field before it: no test of the last byte) */
        if (o) hwint_j_done(b, HWINT_J_PUT(o, ",\"rtt\":"));
        hwint_j_round6(b, (double)e->ts_ns / 1e9 - (double)p->ts_ns / 1e9);
        if (p->repeats) hwint_j_key(b, "query_repeats"), hwint_j_u64(b, p->repeats);
        unlink_pend(lg, at);
    } else {                    /* no query seen: the resolver is the responder all the same */
        head(lg, b, e->ts_ns, e->flow_id, e->family, e->dst, e->dport, e->src, e->sport, e->proto, 1, NULL);
        question(b, r->id, r->name, r->name_len, r->qclass, r->qtype, r->flags & 0x0100);
    }
    /* the fields after the question at a cursor: the room for those around the answers taken once each */
    char *o = hwint_j_room(b, ANSWER_HEAD_MAX);
    if (!o) {                   /* no memory: the line is dropped and counted */
        end_line(lg, HW_LOG_DNS, start);
        return;
    }
    const char *rn = hw_dns_rcode_name(r->rcode);
    if (r->rcode == 0) {
        o = HWINT_J_PUT(o, ",\"rcode\":0,\"rcode_name\":\"NOERROR\"");
    } else {
        o = HWINT_J_PUT(hwint_j_u64_at(HWINT_J_PUT(o, ",\"rcode\":"), r->rcode), ",\"rcode_name\":\"");
        if (rn) memcpy(o, rn, strlen(rn)), o += strlen(rn);
        else o = hwint_j_u64_at(o, r->rcode);
        *o++ = '"';
    }
    static const struct { char s[40]; uint8_t n; } flags[8] = {   /* AA, TC and RA as one run, by their bits */
#define F(aa, tc, ra) {",\"AA\":" aa ",\"TC\":" tc ",\"RA\":" ra, sizeof(",\"AA\":" aa ",\"TC\":" tc ",\"RA\":" ra) - 1}
        F("false", "false", "false"), F("false", "false", "true"), F("false", "true", "false"),
        F("false", "true", "true"), F("true", "false", "false"), F("true", "false", "true"),
        F("true", "true", "false"), F("true", "true", "true"),
#undef F
    };
    int f = (r->flags & 0x0400 ? 4 : 0) | (r->flags & 0x0200 ? 2 : 0) | (r->flags & 0x0080 ? 1 : 0);
    memcpy(o, flags[f].s, sizeof flags[f].s);     /* a fixed copy (its room counted), the spare written over */
    o += flags[f].n;
    o = HWINT_J_PUT(o, ",\"Z\":");
    *o++ = (char)('0' + ((r->flags >> 4) & 0x7));      /* a digit: 0 to 7 */
    o = HWINT_J_PUT(o, ",\"answers\":[");
    hwint_j_done(b, o);
    int n = r->n_rr < HW_DNS_RR_MAX ? r->n_rr : HW_DNS_RR_MAX, first = 1;
    for (int i = 0; i < n; i++) {
        if (r->rr[i].section != HW_DNS_SEC_ANSWER) continue;
        if (!first) hwint_j_raw(b, ",", 1);
        first = 0;
        answer(b, r, &r->rr[i]);
    }
    if (!(o = hwint_j_room(b, ANSWER_TAIL_MAX))) {
        end_line(lg, HW_LOG_DNS, start);
        return;
    }
    o = HWINT_J_PUT(o, "],\"TTLs\":[");
    first = 1;
    for (int i = 0; i < n; i++) {
        if (r->rr[i].section != HW_DNS_SEC_ANSWER) continue;
        if (!first) *o++ = ',';
        first = 0;
        o = HWINT_J_PUT(hwint_j_u64_at(o, r->rr[i].ttl), ".0");   /* a float as Python wrote it: repr(300.0) */
    }
    o = r->rcode == 5 ? HWINT_J_PUT(o, "],\"rejected\":true") : HWINT_J_PUT(o, "],\"rejected\":false");
    if (r->rr_skipped) o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"answers_skipped\":"), r->rr_skipped);
    hwint_j_done(b, o);
    end_line(lg, HW_LOG_DNS, start);
}

static void on_dns(struct hw_logger *lg, const struct hw_event *e)
{
    const struct hw_rec_dns *r = &e->rec.dns;
    size_t name_len = r->name_len < HW_DNS_NAME_MAX ? r->name_len : HW_DNS_NAME_MAX - 1;
    uint32_t *at = find(lg, e->flow_id, r->id, r->name, name_len);
    if (!(r->flags & 0x8000)) {         /* a query: the querier is the originator */
        if (*at != NONE) lg->pend[*at].repeats++;     /* the query again: the round trip counts from the first */
        else hold(lg, e, r, at);
        return;
    }
    answered(lg, e, r, at);
}

/* ---- the logger ------------------------------------------------------------ */

struct hw_logger *hw_logger_new(uint32_t kinds, const uint8_t *salt, uint32_t pending_max, size_t bytes_max,
                                int path)
{
    struct hw_logger *lg = calloc(1, sizeof *lg);
    if (!lg) return NULL;
    pthread_mutex_init(&lg->lock, NULL);
    hwint_conn_names();
    lg->kinds = kinds;
    lg->path = path;
    lg->bytes_max = bytes_max;
    memcpy(lg->salt, salt, 16);
    lg->max = pending_max ? pending_max : 1;
    lg->pend = calloc(lg->max, sizeof *lg->pend);
    lg->bucket = hwint_log_buckets(lg->max, sizeof *lg->bucket, &lg->buckets);     /* (untouched pages) */
    lg->buckets++;
    lg->mask = (lg->buckets < 256 ? lg->buckets : 256) - 1;
    lg->http = hwint_http_new(lg->max);
    lg->tls = hwint_tls_new(lg->max);
    if (!lg->pend || !lg->bucket || !lg->http || !lg->tls) {
        hw_logger_free(lg);
        return NULL;
    }
    memset(lg->bucket, 0xff, (lg->mask + 1) * sizeof *lg->bucket);
    lg->free = NONE;            /* the free list holds entries given back; those never used wait past fresh */
    lg->oldest = lg->newest = NONE;
    return lg;
}

void hw_logger_free(struct hw_logger *lg)
{
    if (!lg) return;
    for (int k = 0; k < HW_LOG_KINDS; k++) free(lg->out[k].p), free(lg->taken[k].p);
    free(lg->pend);
    free(lg->bucket);
    hwint_http_free(lg->http);
    hwint_tls_free(lg->tls);
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}

uint32_t hwint_logger_events(const struct hw_logger *lg)
{
    return (lg->kinds & (1u << HW_LOG_DNS) ? 1u << HW_EV_DNS : 0) |
           (lg->kinds & (1u << HW_LOG_HTTP) ? 1u << HW_EV_HTTP : 0) |
           (lg->kinds & (1u << HW_LOG_TLS) ? 1u << HW_EV_TLS : 0);
}

/* Before the event's parse: the miss on its table's bucket (a megabyte of them) is taken under the parse's work. */
void hwint_logger_prefetch(const struct hw_logger *lg, int kind, uint64_t flow_id)
{
    if (kind == HW_EV_HTTP) hwint_http_prefetch(lg->http, flow_id);
}

void hwint_logger_event(struct hw_logger *lg, const struct hw_event *e, struct hw_flow *flow)
{
    pthread_mutex_lock(&lg->lock);
    if (e->ts_ns > lg->now_ns) lg->now_ns = e->ts_ns;
    if (e->has_rec && !e->rec_status) {
        lg->flow = flow, lg->in_event = 1;
        if (e->kind == HW_EV_DNS) on_dns(lg, e);
        else if (e->kind == HW_EV_HTTP) hwint_http_event(lg, lg->http, e);
        else if (e->kind == HW_EV_TLS) hwint_tls_event(lg, lg->tls, e);
        lg->flow = NULL, lg->in_event = 0;
    }
    pthread_mutex_unlock(&lg->lock);
}

void hwint_logger_forget(struct hw_logger *lg)
{
    pthread_mutex_lock(&lg->lock);
    lg->cid.flow = NULL;
    pthread_mutex_unlock(&lg->lock);
}

/* A file's lines (no bound) are taken after each return of the session: about a megabyte at a time stays in
 * cache, where 50 MB between two takes were fresh pages to fault in and write back. */
int hwint_logger_full(struct hw_logger *lg)
{
    pthread_mutex_lock(&lg->lock);
    size_t held = lg->out[0].len + lg->out[1].len + lg->out[2].len + lg->out[3].len;
    pthread_mutex_unlock(&lg->lock);
    return !lg->bytes_max && held > (1u << 20);
}

#define HTTP_AHEAD 8            /* flows between fetching an http bucket and its lookup (half that for the entry) */

#define FLOWS_CHUNK 64           /* flows whose community IDs are made before their lines */

/* The flows' community IDs into use[] ("" for none, NULL: made alone in the line): a flow's own kept SHA-1
 * (kept[i], its dns lines made it; kept NULL: none) encoded, the others made two at a time (two SHA-1 chains). */
static void flow_cids(const struct hw_flow_record *f, const uint8_t (*kept)[20], int n, char cid[][32],
                      const char *use[])
{
    int wait = -1;
    for (int i = 0; i < n; i++) {
        use[i] = cid[i];
        if (kept && hwint_cid_kept(kept[i])) {
            hwint_cid_encode(kept[i], cid[i]);
            continue;
        }
        if (wait < 0) {
            wait = i;
            continue;
        }
        struct hwint_cid_key key[2] = {{f[wait].family, f[wait].src, f[wait].dst, f[wait].proto, f[wait].sport,
                                        f[wait].dport, 0},
                                       {f[i].family, f[i].src, f[i].dst, f[i].proto, f[i].sport, f[i].dport, 0}};
        uint8_t md[2][20];
        int rc[2], at[2] = {wait, i};
        hwint_community_md2(key, md, rc);
        for (int k = 0; k < 2; k++) {
            if (rc[k]) use[at[k]] = "";
            else hwint_cid_encode(md[k], cid[at[k]]);
        }
        wait = -1;
    }
    if (wait >= 0) use[wait] = NULL;
}

int hwint_logger_flows(struct hw_logger *lg, const struct hw_flow_record *f, const uint8_t (*kept)[20], int n,
                       int32_t *rest)
{
    int left = 0, conn = !!(lg->kinds & (1u << HW_LOG_CONN)), http = !!(lg->kinds & (1u << HW_LOG_HTTP));
    pthread_mutex_lock(&lg->lock);
    for (int base = 0; base < n; base += FLOWS_CHUNK) {
        int m = n - base < FLOWS_CHUNK ? n - base : FLOWS_CHUNK;
        char cid[FLOWS_CHUNK][32];
        const char *use[FLOWS_CHUNK];
        if (conn) flow_cids(f + base, kept ? kept + base : NULL, m, cid, use);
        for (int i = base; i < base + m; i++) {
            if (http && i + HTTP_AHEAD < n) hwint_http_prefetch_ended(lg->http, f[i + HTTP_AHEAD].id, 0);
            if (http && i + HTTP_AHEAD / 2 < n) hwint_http_prefetch_ended(lg->http, f[i + HTTP_AHEAD / 2].id, 1);
            const struct hw_flow_record *r = &f[i];     /* (their http lookups' misses, ahead) */
            if (http) hwint_http_ended(lg, lg->http, r->id);
            if (lg->kinds & (1u << HW_LOG_TLS)) hwint_tls_ended(lg, lg->tls, r->id);
            if (!conn || !hwint_conn_line(lg, r, use[i - base])) rest[left++] = i;
        }
    }
    pthread_mutex_unlock(&lg->lock);
    return left;
}

int hw_logger_flows(struct hw_logger *lg, const struct hw_flow_record *f, int n, int32_t *rest)
{
    return hwint_logger_flows(lg, f, NULL, n, rest);
}

void hw_logger_ended(struct hw_logger *lg, uint64_t flow_id)
{
    pthread_mutex_lock(&lg->lock);
    hwint_http_ended(lg, lg->http, flow_id);
    hwint_tls_ended(lg, lg->tls, flow_id);
    pthread_mutex_unlock(&lg->lock);
}

int hw_logger_suite(struct hw_logger *lg, uint16_t code, const char *name)
{
    pthread_mutex_lock(&lg->lock);
    int rc = hwint_tls_suite(lg->tls, code, name);
    pthread_mutex_unlock(&lg->lock);
    return rc;
}

void hw_logger_expire(struct hw_logger *lg, uint64_t now_ns, uint64_t wait_ns)
{
    pthread_mutex_lock(&lg->lock);
    if (lg->now_ns > now_ns) now_ns = lg->now_ns;
    /* oldest first: packet times arrive nearly in order, so the first young query ends the walk */
    while (lg->oldest != NONE && now_ns >= lg->pend[lg->oldest].ts_ns + wait_ns) release_oldest(lg);
    hwint_tls_expire(lg, lg->tls, now_ns, wait_ns);
    pthread_mutex_unlock(&lg->lock);
}

void hw_logger_flush(struct hw_logger *lg)
{
    pthread_mutex_lock(&lg->lock);
    while (lg->oldest != NONE) release_oldest(lg);
    hwint_http_flush(lg, lg->http);
    hwint_tls_flush(lg, lg->tls);
    pthread_mutex_unlock(&lg->lock);
}

/* The buffer handed out stays the caller's until its next take of that kind (lines go to the other). */
const char *hw_logger_take(struct hw_logger *lg, int kind, size_t *len)
{
    if (kind < 0 || kind >= HW_LOG_KINDS) {
        *len = 0;
        return "";
    }
    pthread_mutex_lock(&lg->lock);
    if (kind == HW_LOG_DNS) settle_cid(lg);     /* (its flow's entry not written: another thread's) */
    struct hwint_jbuf t = lg->taken[kind];
    lg->taken[kind] = lg->out[kind];
    lg->out[kind] = t;
    lg->out[kind].len = 0;
    pthread_mutex_unlock(&lg->lock);
    *len = lg->taken[kind].len;
    return lg->taken[kind].p ? lg->taken[kind].p : "";
}

void hw_logger_stats(struct hw_logger *lg, struct hw_logger_stats *out)
{
    pthread_mutex_lock(&lg->lock);
    for (int k = 0; k < HW_LOG_KINDS; k++) {
        out->records[k] = lg->records[k];
        out->dropped[k] = lg->dropped[k];
    }
    out->held_early = lg->held_early;
    out->pending = lg->count;
    out->now_ns = lg->now_ns;
    pthread_mutex_unlock(&lg->lock);
}
