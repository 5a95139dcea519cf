/* rec-tls.c - the TLS handshake messages at the start of a TCP payload as a
 * record: ClientHello (versions, suites, extensions, SNI, ALPN, groups, JA3,
 * JA4), ServerHello (chosen version and suite, JA3S), the certificates of
 * TLS <= 1.2 (subject, issuer, validity, SHA-256), alerts, and both SSLv2
 * hello formats.  Only what this one segment holds is read: a message that
 * runs past it is left out, not guessed.  JA3 strings follow tshark's: GREASE
 * values (RFC 8701) are left out of every list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hw.h"

#define HS_MAX 16384 /* handshake bytes gathered from the segment's records */

struct rd {
    const uint8_t *p;
    uint32_t n, off;
    int bad;
};

static uint32_t get(struct rd *r, int bytes)
{
    if (r->bad || r->off + (uint32_t)bytes > r->n) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | r->p[r->off + (uint32_t)i];
    r->off += (uint32_t)bytes;
    return v;
}

/* A sub-reader over the next `len` bytes, which r skips. */
static struct rd sub(struct rd *r, uint32_t len)
{
    struct rd s = {r->p, 0, r->off, r->bad};
    if (r->bad || r->off + len > r->n) {
        r->bad = s.bad = 1;
        return s;
    }
    s.n = r->off + len;
    r->off += len;
    return s;
}

static int grease(uint32_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

static void list_add(struct hw_tls_list *l, uint32_t v)
{
    if (l->n < HW_TLS_LIST_MAX) l->v[l->n++] = (uint16_t)v;
}

static void read_list(struct rd *r, int lenbytes, int itembytes, struct hw_tls_list *l)
{
    struct rd s = sub(r, get(r, lenbytes));
    while (!s.bad && s.off < s.n) list_add(l, get(&s, itembytes));
    r->bad |= s.bad;
}

static void copy_str(char *dst, size_t cap, const uint8_t *p, uint32_t n, uint8_t *cut)
{
    if (n >= cap) {
        n = (uint32_t)cap - 1;
        if (cut) *cut = 1;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}

static void ext_sni(struct rd e, struct hw_rec_tls *t)
{
    struct rd list = sub(&e, get(&e, 2));
    while (!list.bad && list.off < list.n) {
        uint32_t type = get(&list, 1), len = get(&list, 2);
        struct rd name = sub(&list, len);
        if (!name.bad && type == 0 && !t->sni[0]) copy_str(t->sni, sizeof t->sni, name.p + name.off, len, &t->sni_cut);
    }
}

static void ext_alpn(struct rd e, struct hw_rec_tls *t)
{
    struct rd list = sub(&e, get(&e, 2));
    while (!list.bad && list.off < list.n) {
        uint32_t len = get(&list, 1);
        struct rd s = sub(&list, len);
        if (!s.bad && t->n_alpn < HW_TLS_ALPN_MAX)
            copy_str(t->alpn[t->n_alpn++], sizeof t->alpn[0], s.p + s.off, len, NULL);
    }
}

static void read_extensions(struct rd *r, struct hw_rec_tls *t, int server)
{
    if (r->off >= r->n) return; /* no extensions at all */
    struct rd all = sub(r, get(r, 2));
    while (!all.bad && all.off < all.n) {
        uint32_t type = get(&all, 2);
        struct rd e = sub(&all, get(&all, 2));
        if (all.bad) break;
        list_add(&t->extensions, type);
        switch (type) {
        case 0: if (!server) ext_sni(e, t); break;
        case 16: ext_alpn(e, t); break;
        case 10: read_list(&e, 2, 2, &t->groups); break;
        case 11: read_list(&e, 1, 1, &t->point_formats); break;
        case 13: read_list(&e, 2, 2, &t->sig_algs); break;
        case 43:
            if (server) t->selected_version = (uint16_t)get(&e, 2);
            else read_list(&e, 1, 2, &t->versions);
            break;
        default: break;
        }
    }
    r->bad |= all.bad;
}

static void hex(char *out, const uint8_t *d, unsigned n)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

static void digest_hex(const EVP_MD *md, const char *s, size_t n, char *out, unsigned keep)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char h[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_Digest(s, n, d, &len, md, NULL)) len = 0;
    hex(h, d, len);
    h[keep < 2 * len ? keep : 2 * len] = 0;
    strcpy(out, h);
}

/* "a-b-c" of a list without GREASE, in decimal or "%04x" with commas. */
static size_t join(char *out, size_t cap, const struct hw_tls_list *l, int hexa, uint32_t skip1, uint32_t skip2)
{
    size_t n = 0;
    out[0] = 0;
    for (unsigned i = 0; i < l->n && n + 8 < cap; i++) {
        uint32_t v = l->v[i];
        if (grease(v) || v == skip1 || v == skip2) continue;
        n += (size_t)snprintf(out + n, cap - n, hexa ? "%s%04x" : "%s%u", n ? (hexa ? "," : "-") : "", v);
    }
    return n;
}

static int cmp16(const void *a, const void *b) { return *(const uint16_t *)a - *(const uint16_t *)b; }

static unsigned count_real(const struct hw_tls_list *l)
{
    unsigned n = 0;
    for (unsigned i = 0; i < l->n; i++) n += !grease(l->v[i]);
    return n;
}

static void fingerprints_client(struct hw_rec_tls *t)
{
    char s[2048], a[600], b[600], c[400], d[100];
    join(a, sizeof a, &t->ciphers, 0, 0x10000, 0x10000);
    join(b, sizeof b, &t->extensions, 0, 0x10000, 0x10000);
    join(c, sizeof c, &t->groups, 0, 0x10000, 0x10000);
    join(d, sizeof d, &t->point_formats, 0, 0x10000, 0x10000);
    int n = snprintf(s, sizeof s, "%u,%s,%s,%s,%s", t->version, a, b, c, d);
    digest_hex(EVP_md5(), s, (size_t)n, t->ja3, 32);
    /* JA4 (FoxIO): t<version><d|i><#suites><#extensions><alpn>_<suites>_<extensions>_<sig algs> */
    uint16_t best = t->version;
    for (unsigned i = 0; i < t->versions.n; i++)
        if (!grease(t->versions.v[i]) && t->versions.v[i] > best) best = t->versions.v[i];
    const char *ver = best == 0x0304 ? "13" : best == 0x0303 ? "12" : best == 0x0302 ? "11" : best == 0x0301 ? "10"
                    : best == 0x0300 ? "s3" : best == 0x0002 ? "s2" : "00";
    char alpn[3] = "00";
    if (t->n_alpn && t->alpn[0][0]) {
        size_t l = strlen(t->alpn[0]);
        alpn[0] = t->alpn[0][0];
        alpn[1] = t->alpn[0][l - 1];
    }
    unsigned nc = count_real(&t->ciphers), ne = count_real(&t->extensions);
    struct hw_tls_list sorted = t->ciphers;
    qsort(sorted.v, sorted.n, 2, cmp16);
    join(a, sizeof a, &sorted, 1, 0x10000, 0x10000);
    char ha[13], hb[13];
    if (nc) digest_hex(EVP_sha256(), a, strlen(a), ha, 12);
    else strcpy(ha, "000000000000");
    sorted = t->extensions;
    qsort(sorted.v, sorted.n, 2, cmp16);
    size_t bn = join(b, sizeof b, &sorted, 1, 0x0000, 0x0010);
    if (t->sig_algs.n) {
        join(c, sizeof c, &t->sig_algs, 1, 0x10000, 0x10000);
        bn += (size_t)snprintf(b + bn, sizeof b - bn, "_%s", c);
        if (bn >= sizeof b) bn = sizeof b - 1; /* cut: snprintf counts what did not fit */
    }
    if (ne) digest_hex(EVP_sha256(), b, bn, hb, 12);
    else strcpy(hb, "000000000000");
    snprintf(t->ja4, sizeof t->ja4, "t%s%c%02u%02u%c%c_%s_%s", ver, t->sni[0] ? 'd' : 'i', nc > 99 ? 99 : nc,
             ne > 99 ? 99 : ne, alpn[0], alpn[1], ha, hb);
}

static int client_hello(struct rd *r, struct hw_rec_tls *t)
{
    t->has_client_hello = 1;
    t->version = (uint16_t)get(r, 2);
    r->off += 32; /* random */
    struct rd sid = sub(r, get(r, 1));
    (void)sid;
    read_list(r, 2, 2, &t->ciphers);
    struct rd comp = sub(r, get(r, 1));
    (void)comp;
    read_extensions(r, t, 0);
    if (r->bad) return HW_RMAL_TLS_HELLO;
    fingerprints_client(t);
    return 0;
}

static int server_hello(struct rd *r, struct hw_rec_tls *t)
{
    t->has_server_hello = 1;
    t->version = (uint16_t)get(r, 2);
    if (r->off + 32 <= r->n) memcpy(t->server_random_tail, r->p + r->off + 24, 8);
    r->off += 32;
    struct rd sid = sub(r, get(r, 1));
    (void)sid;
    t->cipher = (uint16_t)get(r, 2);
    t->compression = (uint8_t)get(r, 1);
    read_extensions(r, t, 1);
    if (r->bad) return HW_RMAL_TLS_HELLO;
    char s[700], e[600];
    join(e, sizeof e, &t->extensions, 0, 0x10000, 0x10000);
    int n = snprintf(s, sizeof s, "%u,%u,%s", t->version, t->cipher, e);
    digest_hex(EVP_md5(), s, (size_t)n, t->ja3s, 32);
    return 0;
}

static int64_t asn1_time(const ASN1_TIME *a)
{
    struct tm tm;
    if (!a || !ASN1_TIME_to_tm(a, &tm)) return 0;
    return (int64_t)timegm(&tm);
}

static void name_str(X509_NAME *name, char *out, size_t cap)
{
    out[0] = 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, out, (int)cap - 1);
        out[n > 0 ? n : 0] = 0;
    }
    BIO_free(b);
}

static void certificate(const uint8_t *der, uint32_t len, struct hw_tls_cert *c)
{
    unsigned n = 0;
    EVP_Digest(der, len, c->sha256, &n, EVP_sha256(), NULL);
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x) return;
    c->parsed = 1;
    name_str(X509_get_subject_name(x), c->subject, sizeof c->subject);
    name_str(X509_get_issuer_name(x), c->issuer, sizeof c->issuer);
    c->not_before = asn1_time(X509_get0_notBefore(x));
    c->not_after = asn1_time(X509_get0_notAfter(x));
    X509_free(x);
}

static int certificates(struct rd *r, struct hw_rec_tls *t)
{
    struct rd list = sub(r, get(r, 3));
    while (!list.bad && list.off < list.n) {
        uint32_t len = get(&list, 3);
        struct rd der = sub(&list, len);
        if (der.bad) break;
        if (t->n_certs < HW_TLS_CERT_MAX) certificate(der.p + der.off, len, &t->certs[t->n_certs++]);
    }
    return list.bad ? HW_RMAL_TLS_CERT : 0;
}

static void v2_specs(struct rd *specs, struct hw_rec_tls *t)
{
    while (!specs->bad && specs->off + 3 <= specs->n) {
        uint32_t v = get(specs, 3);
        if (t->n_v2_ciphers < HW_TLS_V2_MAX) t->v2_ciphers[t->n_v2_ciphers++] = v;
    }
}

/* SSLv2 record: 2-byte length with the top bit set, then CLIENT-HELLO (1) or SERVER-HELLO (4). */
static int sslv2(const uint8_t *p, uint32_t n, struct hw_rec_tls *t)
{
    t->sslv2 = 1;
    uint32_t len = (uint32_t)(p[0] & 0x7f) << 8 | p[1];
    struct rd r = {p, n < len + 2 ? n : len + 2, 2, 0};
    uint32_t type = get(&r, 1);
    if (type == 1) {
        t->hs_type = HW_TLS_CLIENT_HELLO;
        t->has_client_hello = 1;
        t->version = (uint16_t)get(&r, 2);
        uint32_t cs = get(&r, 2), sid = get(&r, 2), ch = get(&r, 2);
        struct rd specs = sub(&r, cs);
        v2_specs(&specs, t);
        (void)sub(&r, sid), (void)sub(&r, ch);
        return r.bad || cs % 3 ? HW_RMAL_TLS_HELLO : 0;
    }
    if (type == 4) {
        t->hs_type = HW_TLS_SERVER_HELLO;
        t->has_server_hello = 1;
        get(&r, 2); /* session id hit, certificate type */
        t->version = (uint16_t)get(&r, 2);
        uint32_t cl = get(&r, 2), cs = get(&r, 2);
        get(&r, 2); /* connection id length */
        struct rd der = sub(&r, cl);
        if (!der.bad && cl) certificate(der.p + der.off, cl, &t->certs[t->n_certs++]);
        struct rd specs = sub(&r, cs);
        v2_specs(&specs, t);
        return r.bad || cs % 3 ? HW_RMAL_TLS_HELLO : 0;
    }
    return HW_RMAL_TLS_HELLO;
}

static int handshake(const uint8_t *hs, uint32_t n, struct hw_rec_tls *t)
{
    struct rd r = {hs, n, 0, 0};
    while (r.off + 4 <= n) {
        uint32_t type = get(&r, 1), len = get(&r, 3);
        if (r.off + len > n) break; /* continues in a later segment */
        struct rd body = sub(&r, len);
        if (!t->hs_type) t->hs_type = (uint8_t)type;
        int rc = 0;
        if (type == HW_TLS_CLIENT_HELLO) rc = client_hello(&body, t);
        else if (type == HW_TLS_SERVER_HELLO) rc = server_hello(&body, t);
        else if (type == HW_TLS_CERTIFICATE && !t->selected_version) rc = certificates(&body, t);
        if (rc) return rc;
    }
    return 0;
}

int hw_tls_parse(const uint8_t *p, uint32_t n, struct hw_rec_tls *t)
{
    memset(t, 0, sizeof *t);
    if (n >= 3 && (p[0] & 0x80) && (p[2] == 1 || p[2] == 4)) return sslv2(p, n, t);
    static __thread uint8_t hs[HS_MAX];
    uint32_t hn = 0, off = 0;
    while (off + 5 <= n) {
        uint8_t type = p[off];
        uint32_t len = hw_be16(p + off + 3);
        if (p[off + 1] != 3) {
            if (!off) return HW_RMAL_TLS_RECORD;
            break; /* what follows the records read is not TLS: keep those */
        }
        if (!t->record_version) t->record_version = hw_be16(p + off + 1);
        uint32_t have = n - off - 5 < len ? n - off - 5 : len;
        if (type == 22) {
            uint32_t k = HS_MAX - hn < have ? HS_MAX - hn : have;
            memcpy(hs + hn, p + off + 5, k);
            hn += k;
        } else if (type == 21 && len == 2 && have == 2 && !t->alert_level) { /* longer: encrypted */
            if (!t->hs_type) t->hs_type = HW_TLS_ALERT;
            t->alert_level = p[off + 5];
            t->alert_desc = p[off + 6];
        } else if (type != 20 && type != 21 && type != 23) {
            break;
        }
        off += 5 + len;
    }
    if (!t->record_version) return HW_RMAL_TLS_RECORD;
    return handshake(hs, hn, t);
}
