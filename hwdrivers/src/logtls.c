/* logtls.c - the tls log lines (Zeek's ssl; cdef/logs.h): a connection's
 * hellos and certificates gather in one record, in a bounded table of flows,
 * until the handshake is told (TLS 1.3's ServerHello: the certificates are
 * hidden; else the certificates), the flow ends, or 30 s of packet time pass.
 * The fields, their order and their text are those agent.logs.records writes
 * (Builder._on_tls), byte for byte: each message kind sets its group of
 * fields (the latest one wins), and the groups stand in the order each first
 * came, as the keys of the Builder's dict do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logger.h"

enum { G_CLIENT, G_SERVER, G_CERTS, G_ALERT, GROUPS };

struct tpend {                      /* a connection's record being gathered */
    uint64_t flow_id, ts_ns;
    struct tpend *hnext, *older, *newer;
    uint8_t order[GROUPS], n_order;
    struct hwint_jbuf head, group[GROUPS];
};

struct suite {
    uint16_t code;
    char *name;
};

struct hwint_tls {
    struct tpend **bucket;
    uint32_t mask, max, count;
    struct tpend *oldest, *newest;
    struct suite *suites;           /* IANA names, sorted by code (hw_logger_suite) */
    uint32_t n_suites, cap_suites;
};

struct hwint_tls *hwint_tls_new(uint32_t max)
{
    struct hwint_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bucket = hwint_log_buckets(max, sizeof *t->bucket, &t->mask);
    if (!t->bucket) {
        free(t);
        return NULL;
    }
    t->max = max ? max : 1;
    return t;
}

static void free_pend(struct tpend *p)
{
    free(p->head.p);
    for (int g = 0; g < GROUPS; g++) free(p->group[g].p);
    free(p);
}

void hwint_tls_free(struct hwint_tls *t)
{
    if (!t) return;
    for (struct tpend *p = t->oldest, *next; p; p = next) next = p->newer, free_pend(p);
    for (uint32_t i = 0; i < t->n_suites; i++) free(t->suites[i].name);
    free(t->suites);
    free(t->bucket);
    free(t);
}

int hwint_tls_suite(struct hwint_tls *t, uint16_t code, const char *name)
{
    uint32_t at = 0;
    while (at < t->n_suites && t->suites[at].code < code) at++;
    if (at < t->n_suites && t->suites[at].code == code) {
        char *n = strdup(name);
        if (!n) return -1;
        free(t->suites[at].name);
        t->suites[at].name = n;
        return 0;
    }
    if (t->n_suites == t->cap_suites) {
        uint32_t cap = t->cap_suites ? 2 * t->cap_suites : 256;
        struct suite *s = realloc(t->suites, cap * sizeof *s);
        if (!s) return -1;
        t->suites = s, t->cap_suites = cap;
    }
    char *n = strdup(name);
    if (!n) return -1;
    memmove(&t->suites[at + 1], &t->suites[at], (t->n_suites - at) * sizeof *t->suites);
    t->suites[at] = (struct suite){code, n};
    t->n_suites++;
    return 0;
}

static const char *suite_name(const struct hwint_tls *t, uint16_t code)
{
    uint32_t lo = 0, hi = t->n_suites;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->suites[mid].code < code) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n_suites && t->suites[lo].code == code ? t->suites[lo].name : NULL;
}

static const char *version_name(uint16_t v)
{
    switch (v) {
    case 0x0002: return "SSLv2";
    case 0x0300: return "SSLv3";
    case 0x0301: return "TLSv10";
    case 0x0302: return "TLSv11";
    case 0x0303: return "TLSv12";
    case 0x0304: return "TLSv13";
    }
    return NULL;
}

static struct tpend **slot(struct hwint_tls *t, uint64_t flow_id)
{
    struct tpend **at = &t->bucket[(flow_id * 0x9e3779b97f4a7c15ULL >> 32) & t->mask];
    while (*at && (*at)->flow_id != flow_id) at = &(*at)->hnext;
    return at;
}

/* The record goes out as it is, and leaves the table. */
static void release(struct hw_logger *lg, struct hwint_tls *t, struct tpend *p)
{
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_TLS);
    size_t start = b->len;
    hwint_j_raw(b, p->head.p, p->head.len);
    for (int i = 0; i < p->n_order; i++) {
        const struct hwint_jbuf *g = &p->group[p->order[i]];
        if (!g->len) continue;
        hwint_j_raw(b, ",", 1);
        hwint_j_raw(b, g->p, g->len);
    }
    if (p->head.failed) b->failed = 1;
    for (int g = 0; g < GROUPS; g++)
        if (p->group[g].failed) b->failed = 1;
    hwint_log_end(lg, HW_LOG_TLS, start);
    struct tpend **at = slot(t, p->flow_id);
    *at = p->hnext;
    if (p->older) p->older->newer = p->newer;
    else t->oldest = p->newer;
    if (p->newer) p->newer->older = p->older;
    else t->newest = p->older;
    t->count--;
    free_pend(p);
}

static void str_field(struct hwint_jbuf *b, const char *key, const char *s)
{
    if (!s[0]) return;
    hwint_j_keyn(b, key, strlen(key));
    hwint_j_str(b, (const uint8_t *)s, strlen(s), HWINT_J_UTF8);
}

static void i64_field(struct hwint_jbuf *b, const char *key, int64_t v)
{
    if (!v) return;
    hwint_j_keyn(b, key, strlen(key));
    if (v < 0) hwint_j_raw(b, "-", 1);
    hwint_j_u64(b, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

static void alpn_list(struct hwint_jbuf *b, const struct hw_rec_tls *r)
{
    int n = r->n_alpn < HW_TLS_ALPN_MAX ? r->n_alpn : HW_TLS_ALPN_MAX;
    if (!n) return;
    hwint_j_key(b, "client_alpn");
    hwint_j_raw(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i) hwint_j_raw(b, ",", 1);
        hwint_j_str(b, (const uint8_t *)r->alpn[i], strnlen(r->alpn[i], sizeof r->alpn[i]), HWINT_J_UTF8);
    }
    hwint_j_raw(b, "]", 1);
}

/* One group's fields as the message sets them (a field left unset is left out). */
static void fill(const struct hwint_tls *t, struct hwint_jbuf *b, int g, const struct hw_rec_tls *r)
{
    char hex[16];
    b->len = 0;
    if (g == G_CLIENT) {
        str_field(b, "server_name", r->sni);
        str_field(b, "ja3", r->ja3);
        str_field(b, "ja4", r->ja4);
        alpn_list(b, r);
        const char *v = version_name(r->version);
        if (v) hwint_j_key(b, "client_version"), hwint_j_cstr(b, v);
    } else if (g == G_SERVER) {
        uint16_t neg = r->selected_version ? r->selected_version : r->version;
        const char *v = version_name(neg), *c = suite_name(t, r->cipher);
        if (!v) snprintf(hex, sizeof hex, "0x%04x", neg);
        hwint_j_key(b, "version"), hwint_j_cstr(b, v ? v : hex);
        if (!c) snprintf(hex, sizeof hex, "0x%04x", r->cipher);
        hwint_j_key(b, "cipher"), hwint_j_cstr(b, c ? c : hex);
        str_field(b, "ja3s", r->ja3s);
        if (r->n_alpn)              /* the server's choice, even empty */
            hwint_j_key(b, "next_protocol"), hwint_j_str(b, (const uint8_t *)r->alpn[0],
                                                         strnlen(r->alpn[0], sizeof r->alpn[0]), HWINT_J_UTF8);
    } else if (g == G_CERTS) {
        int n = r->n_certs < HW_TLS_CERT_MAX ? r->n_certs : HW_TLS_CERT_MAX;
        static const char digits[] = "0123456789abcdef";
        hwint_j_key(b, "cert_chain_fps");
        hwint_j_raw(b, "[", 1);
        for (int i = 0; i < n; i++) {
            char fp[66];
            fp[0] = fp[65] = '"';
            for (int k = 0; k < 32; k++) {
                fp[1 + 2 * k] = digits[r->certs[i].sha256[k] >> 4];
                fp[2 + 2 * k] = digits[r->certs[i].sha256[k] & 15];
            }
            if (i) hwint_j_raw(b, ",", 1);
            hwint_j_raw(b, fp, sizeof fp);
        }
        hwint_j_raw(b, "]", 1);
        str_field(b, "subject", r->certs[0].subject);
        str_field(b, "issuer", r->certs[0].issuer);
        i64_field(b, "not_valid_before", r->certs[0].not_before);
        i64_field(b, "not_valid_after", r->certs[0].not_after);
    } else {
        hwint_j_key(b, "last_alert"), hwint_j_u64(b, r->alert_desc);
    }
}

static void apply(const struct hwint_tls *t, struct tpend *p, int g, const struct hw_rec_tls *r)
{
    int seen = 0;
    for (int i = 0; i < p->n_order; i++) seen |= p->order[i] == g;
    if (!seen) p->order[p->n_order++] = (uint8_t)g;
    fill(t, &p->group[g], g, r);
}

void hwint_tls_event(struct hw_logger *lg, struct hwint_tls *t, const struct hw_event *e)
{
    const struct hw_rec_tls *r = &e->rec.tls;
    struct tpend **at = slot(t, e->flow_id), *p = *at;
    if (!p && !(r->has_client_hello || r->has_server_hello || r->n_certs))
        return;                     /* records after the handshake (already logged) or a missed start */
    if (!p) {
        if (t->count >= t->max && t->oldest) {      /* the oldest goes out as it is */
            release(lg, t, t->oldest);
            hwint_log_early(lg);
            at = slot(t, e->flow_id);
        }
        p = calloc(1, sizeof *p);
        if (!p) return;
        p->flow_id = e->flow_id;
        p->ts_ns = e->ts_ns;
        /* the head, made at the end of the tls buffer and moved out of it (no closing brace) */
        struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_TLS);
        size_t start = b->len;
        int fwd = e->from_initiator;
        hwint_log_head(lg, HW_LOG_TLS, e->ts_ns, e->flow_id, e->family, fwd ? e->src : e->dst,
                       fwd ? e->sport : e->dport, fwd ? e->dst : e->src, fwd ? e->dport : e->sport, e->proto, 0, NULL);
        hwint_j_raw(&p->head, b->p + start, b->len - start);
        p->head.failed |= b->failed;
        b->len = start;
        b->failed = 0;
        *at = p;
        p->older = t->newest;
        if (t->newest) t->newest->newer = p;
        else t->oldest = p;
        t->newest = p;
        t->count++;
    }
    if (r->has_client_hello) apply(t, p, G_CLIENT, r);
    if (r->has_server_hello) apply(t, p, G_SERVER, r);
    if (r->n_certs) apply(t, p, G_CERTS, r);
    if (r->alert_level) apply(t, p, G_ALERT, r);
    uint16_t neg = r->selected_version ? r->selected_version : r->version;
    if ((r->has_server_hello && neg == 0x0304) || r->n_certs) release(lg, t, p);
}

void hwint_tls_ended(struct hw_logger *lg, struct hwint_tls *t, uint64_t flow_id)
{
    if (!t->count) return;
    struct tpend *p = *slot(t, flow_id);
    if (p) release(lg, t, p);
}

void hwint_tls_expire(struct hw_logger *lg, struct hwint_tls *t, uint64_t now_ns, uint64_t wait_ns)
{
    for (struct tpend *p = t->oldest, *next; p; p = next) {
        next = p->newer;
        if (now_ns >= p->ts_ns + wait_ns) release(lg, t, p);
    }
}

void hwint_tls_flush(struct hw_logger *lg, struct hwint_tls *t)
{
    while (t->oldest) release(lg, t, t->oldest);
}
