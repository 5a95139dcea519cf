/* rec-dns.c - a DNS message as a record: header, question, answer and
 * authority records (A, AAAA, CNAME, NS, PTR, MX, TXT, SOA with TTLs) and
 * EDNS.  Every read is bounded by the message; compression pointers may only
 * point backwards, so a name cannot loop.  Names are written as
 * tshark prints them: labels joined by dots (a dot inside a label is not
 * escaped), no trailing dot, bytes outside printable ASCII as \DDD. */
#include <string.h>

#include "hw.h"
#include "logjson.h"

#define T_A 1
#define T_NS 2
#define T_CNAME 5
#define T_SOA 6
#define T_PTR 12
#define T_MX 15
#define T_TXT 16
#define T_AAAA 28
#define T_OPT 41

struct msg {
    const uint8_t *p;
    uint32_t n;
    const char *q12;            /* the name at offset 12 (the first question's) as read whole, or NULL */
    uint32_t q12_len;
};

/* Appends one label byte in presentation form; 0 or -1 when out of room. */
static int put_byte(char *out, uint32_t *len, uint32_t cap, uint8_t b)
{
    if (b > 0x20 && b < 0x7f) {
        if (*len + 1 >= cap) return -1;
        out[(*len)++] = (char)b;
        return 0;
    }
    if (*len + 4 >= cap) return -1;
    out[(*len)++] = '\\';
    out[(*len)++] = (char)('0' + b / 100);
    out[(*len)++] = (char)('0' + b / 10 % 10);
    out[(*len)++] = (char)('0' + b % 10);
    return 0;
}

/* Reads the name at *off into out (NUL-terminated, length in *out_len) and
 * moves *off past it.  0, or -1 for a malformed name. */
static int read_name(const struct msg *m, uint32_t *off, char *out, uint32_t cap, uint32_t *out_len)
{
    uint32_t at = *off, end = 0, wire = 0, len = 0;
    int jumped = 0;
    for (;;) {
        if (at >= m->n) return -1;
        uint8_t l = m->p[at];
        if ((l & 0xc0) == 0xc0) {
            if (at + 1 >= m->n) return -1;
            uint32_t to = (uint32_t)(l & 0x3f) << 8 | m->p[at + 1];
            if (!jumped) end = at + 2;
            if (to >= at) return -1; /* only backwards: no loops */
            jumped = 1;
            at = to;
            continue;
        }
        if (l & 0xc0) return -1;
        if (l == 0) {
            if (!jumped) end = at + 1;
            break;
        }
        wire += (uint32_t)l + 1;
        if (wire > 255 || at + 1 + l > m->n) return -1;
        if (len && len + 1 < cap) out[len++] = '.';
        const uint8_t *src = m->p + at + 1;
        uint32_t i = 0;
        if (len + l + 1 < cap) {        /* the printable run as it is (a name is letters, digits and '-') */
            for (; i + 8 <= l; i += 8) {        /* 8 bytes a step while all are 0x21 to 0x7e: below 0x80, */
                uint64_t w, hi = 0x8080808080808080ULL;         /* adding 0x5f or 1 to a byte carries out of none */
                memcpy(&w, src + i, 8);
                if ((w & hi) || (~(w + 0x5f5f5f5f5f5f5f5fULL) & hi) || ((w + 0x0101010101010101ULL) & hi)) break;
                memcpy(out + len + i, &w, 8);
            }
            for (; i < l && src[i] > 0x20 && src[i] < 0x7f; i++) out[len + i] = (char)src[i];
            len += i;
        }
        for (; i < l; i++)
            if (put_byte(out, &len, cap, src[i]) < 0) return -1;
        at += 1 + (uint32_t)l;
    }
    out[len] = 0;
    *out_len = len;
    *off = end;
    return 0;
}

/* A name read (n characters and a NUL) into the record's text pool; -2 no room. */
static int pool_text(struct hw_rec_dns *r, const char *name, uint32_t n, uint16_t *at, uint16_t *len)
{
    if ((uint32_t)r->text_len + n + 1 > HW_DNS_TEXT_MAX) return -2;
    memcpy(r->text + r->text_len, name, n + 1);
    *at = r->text_len;
    *len = (uint16_t)n;
    r->text_len = (uint16_t)(r->text_len + n + 1);
    return 0;
}

/* A name into the record's text pool; -1 malformed, -2 no room. */
static int pool_name(const struct msg *m, uint32_t *off, struct hw_rec_dns *r, uint16_t *at, uint16_t *len)
{
    char tmp[HW_DNS_NAME_MAX * 4];
    uint32_t n;
    if (read_name(m, off, tmp, sizeof tmp, &n) < 0) return -1;
    return pool_text(r, tmp, n, at, len);
}

static int pool_bytes(struct hw_rec_dns *r, const uint8_t *p, uint32_t n, uint16_t *at, uint16_t *len)
{
    if ((uint32_t)r->text_len + n + 1 > HW_DNS_TEXT_MAX) return -2;
    memcpy(r->text + r->text_len, p, n);
    r->text[r->text_len + n] = 0;
    *at = r->text_len;
    *len = (uint16_t)n;
    r->text_len = (uint16_t)(r->text_len + n + 1);
    return 0;
}

/* The typed part of one record's rdata; rr is filled, r's pool grows. */
static int read_rdata(const struct msg *m, uint32_t off, uint32_t rdlen, struct hw_rec_dns *r,
                      struct hw_dns_rr *rr)
{
    uint32_t end = off + rdlen;
    struct msg bounded = {m->p, end, NULL, 0}; /* names in rdata may point back anywhere before end */
    int rc = 0;
    switch (rr->type) {
    case T_A:
    case T_AAAA:
        if (rdlen != (rr->type == T_A ? 4u : 16u)) return HW_RMAL_DNS_RDATA;
        rr->addr_len = (uint8_t)rdlen;
        memcpy(rr->addr, m->p + off, rdlen);
        return 0;
    case T_MX:
        if (rdlen < 3) return HW_RMAL_DNS_RDATA;
        rr->pref = hw_be16(m->p + off);
        off += 2;
        /* fallthrough */
    case T_NS:
    case T_CNAME:
    case T_PTR:
        rc = pool_name(&bounded, &off, r, &rr->data_off, &rr->data_len);
        break;
    case T_TXT:
        rc = pool_bytes(r, m->p + off, rdlen, &rr->data_off, &rr->data_len);
        break;
    case T_SOA: {
        uint16_t a, al, b, bl;
        rc = pool_name(&bounded, &off, r, &a, &al);
        if (rc == 0 && r->text_len) r->text[r->text_len - 1] = ' '; /* "mname rname" */
        if (rc == 0) rc = pool_name(&bounded, &off, r, &b, &bl);
        if (rc == 0) {
            if (off + 20 > end) return HW_RMAL_DNS_RDATA;
            for (int i = 0; i < 5; i++) rr->soa[i] = hw_be32(m->p + off + 4 * i);
            rr->data_off = a;
            rr->data_len = (uint16_t)(al + 1 + bl);
        }
        break;
    }
    default:
        return 0;
    }
    return rc == -1 ? HW_RMAL_DNS_RDATA : rc == -2 ? -2 : 0;
}

/* One resource record at *off; kept in r->rr when it is an answer or authority. */
static int read_rr(const struct msg *m, uint32_t *off, int section, struct hw_rec_dns *r)
{
    char buf[HW_DNS_NAME_MAX * 4];
    const char *owner = buf;
    uint32_t olen;
    if (m->q12 && *off + 1 < m->n && m->p[*off] == 0xc0 && m->p[*off + 1] == 12 && *off > 12) {
        owner = m->q12;         /* a pointer to the question's name (most answers): read_name would read it again */
        olen = m->q12_len;
        *off += 2;
    } else if (read_name(m, off, buf, sizeof buf, &olen) < 0) {
        return HW_RMAL_DNS_NAME;
    }
    if (*off + 10 > m->n) return HW_RMAL_DNS_RR;
    const uint8_t *h = m->p + *off;
    uint16_t type = hw_be16(h), cls = hw_be16(h + 2);
    uint32_t ttl = hw_be32(h + 4), rdlen = hw_be16(h + 8);
    uint32_t rdata = *off + 10;
    if (rdata + rdlen > m->n) return HW_RMAL_DNS_RR;
    *off = rdata + rdlen;
    if (type == T_OPT) {
        r->edns = 1;
        r->edns_udp_size = cls;
        r->rcode = (uint16_t)(r->rcode | (ttl >> 24) << 4);
        r->edns_version = (uint8_t)(ttl >> 16);
        r->edns_do = (uint8_t)(ttl >> 15 & 1);
        return 0;
    }
    if (section == 0) return 0; /* additional records: only OPT matters */
    if (r->n_rr == HW_DNS_RR_MAX) {
        r->rr_skipped++;
        return 0;
    }
    struct hw_dns_rr *rr = &r->rr[r->n_rr];
    memset(rr, 0, sizeof *rr);
    rr->type = type;
    rr->cls = cls;
    rr->ttl = ttl;
    rr->section = (uint8_t)section;
    uint16_t text_mark = r->text_len;
    int rc = pool_text(r, owner, olen, &rr->owner_off, &rr->owner_len);    /* as read above: not read twice */
    if (rc == 0) rc = read_rdata(m, rdata, rdlen, r, rr);
    if (rc == -2) { /* the text pool is full: skip the record, not the message */
        r->text_len = text_mark;
        r->rr_skipped++;
        return 0;
    }
    if (rc) return rc;
    r->n_rr++;
    return 0;
}

/* The ranges that are not global unicast, as agent.detectors.detector.is_public_ip (Python's ipaddress is_global,
 * and not multicast) answers; an IPv4-mapped IPv6 address is judged as its IPv4 one.  tests/hwdrivers/test_records.py
 * holds them to Python's answer at every range's edges. */
static const struct { uint32_t net; uint8_t bits; } NOT_PUBLIC_V4[] = {
    {0x00000000, 8}, {0x0a000000, 8}, {0x64400000, 10}, {0x7f000000, 8}, {0xa9fe0000, 16}, {0xac100000, 12},
    {0xc0000000, 29}, {0xc00000aa, 31}, {0xc0000200, 24}, {0xc0a80000, 16}, {0xc6120000, 15}, {0xc6336400, 24},
    {0xcb007100, 24}, {0xe0000000, 4}, {0xf0000000, 4}, {0xffffffff, 32},
};
static const struct { uint8_t net[16]; uint8_t bits; } NOT_PUBLIC_V6[] = {
    {{[15] = 1}, 128}, {{0}, 128}, {{0x01, 0x00}, 64}, {{0x20, 0x01}, 23}, {{0x20, 0x01, 0x00, 0x02}, 48},
    {{0x20, 0x01, 0x0d, 0xb8}, 32}, {{0x20, 0x01, 0x00, 0x10}, 28}, {{0xfc}, 7}, {{0xfe, 0x80}, 10}, {{0xff}, 8},
};

static int prefix_is(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole)) return 0;
    return !rest || !((a[whole] ^ net[whole]) & (uint8_t)(0xff << (8 - rest)));
}

_Static_assert(HW_DNS_RR_MAX <= 16, "ips_public holds a bit for each address of the answer section");

int hw_addr_public(int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (family == 6 && memcmp(addr, mapped, 12)) {
        for (unsigned i = 0; i < sizeof NOT_PUBLIC_V6 / sizeof NOT_PUBLIC_V6[0]; i++)
            if (prefix_is(addr, NOT_PUBLIC_V6[i].net, NOT_PUBLIC_V6[i].bits)) return 0;
        return 1;
    }
    uint32_t a = hw_be32(family == 6 ? addr + 12 : addr);
    for (unsigned i = 0; i < sizeof NOT_PUBLIC_V4 / sizeof NOT_PUBLIC_V4[0]; i++)
        if (!((a ^ NOT_PUBLIC_V4[i].net) >> (32 - NOT_PUBLIC_V4[i].bits))) return 0;
    return 1;
}

/* The answer section's addresses as the DNS detector reads them: how many, their least TTL, and the distinct
 * ones' text sorted (byte order: Python's order of these ASCII strings) and joined by ' ' at the end of the text
 * pool, so Python reads them with one split instead of making each record, with which of them are public
 * (ips_public); CNAMEs are counted (Python reads those records themselves).  Made once, as the event leaves for
 * Python (shring.c): the protocol logs, which read the record in C, never pay for it.  No room in the pool: facts
 * is HW_DNS_FACTS_NO_ROOM. */
void hw_dns_facts(struct hw_rec_dns *r)
{
    char text[HW_DNS_RR_MAX][48];
    const char *sorted[HW_DNS_RR_MAX];
    uint8_t public[HW_DNS_RR_MAX];
    uint32_t n = 0, bytes = 0;
    if (r->facts) return;
    r->facts = HW_DNS_FACTS_NO_ROOM;
    for (unsigned i = 0; i < r->n_rr && i < HW_DNS_RR_MAX; i++) {
        const struct hw_dns_rr *rr = &r->rr[i];
        if (rr->section != HW_DNS_SEC_ANSWER) continue;
        if (rr->type == T_CNAME) {
            r->n_cname++;
            continue;
        }
        if ((rr->type != T_A && rr->type != T_AAAA) || (rr->addr_len != 4 && rr->addr_len != 16)) continue;
        if (!r->n_addr || rr->ttl < r->min_ttl) r->min_ttl = rr->ttl;
        r->n_addr++;
        int family = rr->addr_len == 4 ? 4 : 6;
        *hwint_addr_text(text[n], family, rr->addr) = 0;
        uint32_t j = 0;
        int c = 1;
        while (j < n && (c = strcmp(sorted[j], text[n])) < 0) j++;
        if (j < n && c == 0) continue; /* a duplicate: once */
        memmove(&sorted[j + 1], &sorted[j], (n - j) * sizeof sorted[0]);
        sorted[j] = text[n];
        public[n] = (uint8_t)hw_addr_public(family, rr->addr);
        bytes += (uint32_t)strlen(text[n]) + 1;
        n++;
    }
    if ((uint32_t)r->text_len + bytes + 1 > HW_DNS_TEXT_MAX) return;
    uint32_t at = r->text_len, len = 0;
    r->ips_public = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(sorted[i]);
        if (i) r->text[at + len++] = ' ';
        memcpy(r->text + at + len, sorted[i], l);
        len += (uint32_t)l;
        if (public[(sorted[i] - text[0]) / sizeof text[0]]) r->ips_public = (uint16_t)(r->ips_public | 1u << i);
    }
    r->text[at + len] = 0;
    r->ips_off = (uint16_t)at;
    r->ips_len = (uint16_t)len;
    r->text_len = (uint16_t)(at + len + 1);
    r->facts = HW_DNS_FACTS_MADE;
}

int hw_dns_parse(const uint8_t *p, uint32_t n, int tcp, struct hw_rec_dns *r)
{
    memset(r, 0, offsetof(struct hw_rec_dns, name));
    r->name[0] = 0;
    if (tcp) {
        if (n < 2) return HW_RMAL_DNS_HEADER;
        uint32_t size = hw_be16(p);
        p += 2, n -= 2;
        if (size < n) n = size;
        else if (size > n) r->cut = 1;
    }
    if (n < 4) return HW_RMAL_DNS_HEADER;
    r->id = hw_be16(p);
    r->flags = hw_be16(p + 2);
    r->rcode = r->flags & 15;
    if (n < 12) return HW_RMAL_DNS_HEADER;
    struct msg m = {p, n, NULL, 0};
    r->qdcount = hw_be16(p + 4);
    r->ancount = hw_be16(p + 6);
    r->nscount = hw_be16(p + 8);
    r->arcount = hw_be16(p + 10);
    uint32_t off = 12;
    for (uint32_t q = 0; q < r->qdcount; q++) {
        char tmp[HW_DNS_NAME_MAX * 4];
        uint32_t len;
        /* the first name straight into the record when it fits (no copy), else whole and cut */
        if (q != 0 || read_name(&m, &off, r->name, sizeof r->name, &len) < 0) {
            if (q == 0) r->name[0] = 0;
            if (read_name(&m, &off, tmp, sizeof tmp, &len) < 0) return HW_RMAL_DNS_NAME;
            if (q == 0) {
                if (len >= HW_DNS_NAME_MAX) len = HW_DNS_NAME_MAX - 1;
                memcpy(r->name, tmp, len);
                r->name[len] = 0;
            }
        }
        if (off + 4 > n) {
            if (q == 0) r->name[0] = 0;         /* as if never copied: the question is not whole */
            return HW_RMAL_DNS_QUESTION;
        }
        if (q == 0) {
            if (off + 4 <= n && r->name[len] == 0 && len + 1 < sizeof r->name) m.q12 = r->name, m.q12_len = len;
            r->name_len = (uint16_t)len;
            r->qtype = hw_be16(p + off);
            r->qclass = hw_be16(p + off + 2);
        }
        off += 4;
    }
    uint32_t counts[3] = {r->ancount, r->nscount, r->arcount};
    static const int sections[3] = {HW_DNS_SEC_ANSWER, HW_DNS_SEC_AUTHORITY, 0};
    for (int s = 0; s < 3; s++)
        for (uint32_t i = 0; i < counts[s]; i++) {
            int rc = read_rr(&m, &off, sections[s], r);
            if (rc) return rc;
        }
    return 0;
}

/* ---- names (the dns log lines, and Python's dns_type / dns_rcode) ---------- */

static const struct { uint16_t code; const char *name; } dns_types[] = {
    {1, "A"}, {2, "NS"}, {5, "CNAME"}, {6, "SOA"}, {12, "PTR"}, {15, "MX"}, {16, "TXT"}, {28, "AAAA"},
    {33, "SRV"}, {35, "NAPTR"}, {39, "DNAME"}, {41, "OPT"}, {43, "DS"}, {46, "RRSIG"}, {47, "NSEC"},
    {48, "DNSKEY"}, {50, "NSEC3"}, {52, "TLSA"}, {64, "SVCB"}, {65, "HTTPS"}, {99, "SPF"}, {251, "IXFR"},
    {252, "AXFR"}, {255, "ANY"}, {257, "CAA"},
};
static const char *rcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
                               "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};

const char *hw_dns_type_name(int type)
{
    for (size_t i = 0; i < sizeof dns_types / sizeof dns_types[0]; i++)
        if (dns_types[i].code == type) return dns_types[i].name;
    return NULL;
}

const char *hw_dns_rcode_name(int rcode)
{
    if (rcode == 16) return "BADVERS";
    return rcode >= 0 && rcode < (int)(sizeof rcodes / sizeof rcodes[0]) ? rcodes[rcode] : NULL;
}
