/* logindex.c - what the log index keeps of each JSON line (cdef/logs.h:
 * hw_log_index): its packet time, its two addresses, its community ID and
 * its search text, read in one pass over the line's bytes instead of Python
 * parsing every line (the log indexer's largest cost per line).  Only what
 * is read here exactly as agent.logs.records.hosts and key_text read the
 * parsed record is answered; a line with anything else (non-ASCII, nested
 * values, a key field that is a number, an escape that is not plain ASCII, no
 * JSON at all) is marked for Python, which parses that one. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define KEYS_MAX 16             /* key fields of one type at most */

enum { F_TS, F_ORIG, F_RESP, F_IP, F_CLIENT, F_ASSIGNED, F_SERVER, F_CID, F_FIXED };

static const char *const fixed[F_FIXED] = {"ts", "id.orig_h", "id.resp_h", "ip", "client_addr", "assigned_addr",
                                           "server_addr", "community_id"};

struct span {                   /* a value in the line: [a, b) of the text; kind 's' string, 'n' number, 'l' null,
                                   'b' true/false, '[' array (of strings only, or 'x' anything else) */
    const char *a, *b;
    char kind;
};

/* bytes a string's inside stops at: its end, an escape, what JSON refuses raw, what is past ASCII */
static const uint8_t stop[256] = {[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1};

struct scan {
    const char *p, *end;
};

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t')) s->p++;
}

/* A JSON string at s->p ('"'): its inside in [*a, *b); 0 when it is no string, 2 when it has an escape.  (A
 * local pointer: through s->p every byte's step was a store, char * aliasing all.) */
static int string(struct scan *s, const char **a, const char **b)
{
    const char *p = s->p, *end = s->end;
    int rc = 1;
    if (p >= end || *p != '"') return 0;
    *a = ++p;
    for (;;) {
        while (p < end && !stop[(unsigned char)*p]) p++;
        if (p >= end || *p == '"') break;
        if (*p != '\\' || ++p >= end) return 0;     /* a control character, or past ASCII: Python's */
        rc = 2;
        if (*p == 'u') {
            if (end - p < 5) return 0;
            for (int i = 1; i <= 4; i++)
                if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return 0;
            p += 4;
        } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
            return 0;
        }
        p++;
    }
    if (p >= end) return 0;
    *b = p;
    s->p = p + 1;
    return rc;
}

static int number(struct scan *s)
{
    const char *p = s->p;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end || *p < '0' || *p > '9') return 0;
    if (*p == '0') p++;
    else while (p < s->end && *p >= '0' && *p <= '9') p++;
    if (p < s->end && *p == '.') {
        if (++p >= s->end || *p < '0' || *p > '9') return 0;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        if (++p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || *p < '0' || *p > '9') return 0;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    s->p = p;
    return 1;
}

static int word(struct scan *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n)) return 0;
    s->p += n;
    return 1;
}

/* A scalar or an array of scalars; 0 when the line is no JSON this scan reads (objects, nested arrays). */
static int value(struct scan *s, struct span *v)
{
    const char *a, *b;
    v->a = s->p;
    if (s->p >= s->end) return 0;
    switch (*s->p) {
    case '"':
        if (!string(s, &a, &b)) return 0;
        v->a = a, v->b = b, v->kind = 's';
        return 1;
    case 'n': v->kind = 'l'; return word(s, "null", 4) && (v->b = s->p);
    case 't': v->kind = 'b'; return word(s, "true", 4) && (v->b = s->p);
    case 'f': v->kind = 'b'; return word(s, "false", 5) && (v->b = s->p);
    case '[':
        v->kind = '[';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == ']') return s->p++, v->b = s->p, 1;
        for (;;) {
            struct span e;
            ws(s);
            if (s->p < s->end && *s->p == '[') return 0;
            if (!value(s, &e)) return 0;
            if (e.kind != 's') v->kind = 'x';
            ws(s);
            if (s->p < s->end && *s->p == ']') return s->p++, v->b = s->p, 1;
            if (s->p >= s->end || *s->p != ',') return 0;
            s->p++;
        }
    default:
        v->kind = 'n';
        return number(s) && (v->b = s->p);
    }
}

/* A string's inside as its decoded text into out (ASCII, lower case when lower): 0 when Python must decode it
 * (a character past ASCII, or a '\n' that would split the output's entries). */
static int text(const char *a, const char *b, char **out, int lower)
{
    char *o = *out;
    for (const char *p = a; p < b; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (c == 'u') {
                char h[5] = {p[1], p[2], p[3], p[4], 0};
                long u = strtol(h, NULL, 16);
                if (u >= 0x80 || u == '\n') return 0;
                c = (char)u;
                p += 4;
            } else if (c == 'n') {
                return 0;
            } else {
                c = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            }
        }
        *o++ = lower && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    *out = o;
    return 1;
}

/* A host or community ID: its text, nothing for null or absent, or -1 (Python) for another value. */
static int entry(const struct span *v, char **out)
{
    if (!v->a || v->kind == 'l') return 0;
    if (v->kind != 's') return -1;
    return text(v->a, v->b, out, 0) ? 0 : -1;
}

/* key_text: the key fields' strings (or arrays of strings) space-joined, lower case */
static int keys(const struct span *v, int n, char **out)
{
    int parts = 0;
    for (int f = 0; f < n; f++) {
        if (!v[f].a || v[f].kind == 'l') continue;
        if (v[f].kind == 's') {
            if (parts++) *(*out)++ = ' ';
            if (!text(v[f].a, v[f].b, out, 1)) return -1;
            continue;
        }
        if (v[f].kind != '[') return -1;
        struct scan s = {v[f].a + 1, v[f].b - 1};
        const char *a, *b;
        for (ws(&s); s.p < s.end; s.p++, ws(&s)) {     /* checked by value(): strings, commas, blanks */
            string(&s, &a, &b);
            if (parts++) *(*out)++ = ' ';
            if (!text(a, b, out, 1)) return -1;
            ws(&s);
        }
    }
    return 0;
}

/* One line (s->end: the buffer's; a '\n' stops every token, so the line ends at the first): its fields' values
 * into v (fixed ones first, then the key fields); 0 when it is no flat object. */
static int line(struct scan *s, const char *const *names, const uint32_t *bylen, int n, struct span *v)
{
    memset(v, 0, (size_t)n * sizeof *v);
    ws(s);
    if (s->p >= s->end || *s->p++ != '{') return 0;
    ws(s);
    if (s->p < s->end && *s->p == '}') return s->p++, ws(s), s->p == s->end || *s->p == '\n';
    for (;;) {
        const char *a, *b;
        struct span val;
        ws(s);
        if (string(s, &a, &b) != 1) return 0;           /* an escaped key could name a field: Python reads it */
        ws(s);
        if (s->p >= s->end || *s->p++ != ':') return 0;
        ws(s);
        if (!value(s, &val)) return 0;
        size_t kl = (size_t)(b - a);
        for (uint32_t m = kl < 64 ? bylen[kl] : 0; m; m &= m - 1) {   /* the fields of that length */
            int f = __builtin_ctz(m);
            if (names[f][0] == a[0] && !memcmp(names[f], a, kl)) v[f] = val;   /* a repeated key: the last */
        }
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p >= s->end || *s->p++ != '}') return 0;
        ws(s);
        return s->p == s->end || *s->p == '\n';
    }
}

/* A number with no exponent and at most 2^53 in its digits: one exact division by an exact power of ten, so
 * correctly rounded (Clinger's fast path: strtod's answer, at a tenth of its cost); 0 for strtod. */
static int exact(const char *a, const char *b, double *out)
{
    static const double tens[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                                  1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int neg = a < b && *a == '-', digits = 0, frac = -1;
    uint64_t m = 0;
    for (const char *p = a + neg; p < b; p++) {
        if (*p == '.') {
            frac = 0;
            continue;
        }
        if (*p < '0' || *p > '9' || ++digits > 19) return 0;
        m = m * 10 + (uint64_t)(*p - '0');
        frac += frac >= 0;
    }
    if (m > (1ULL << 53) || frac > 22) return 0;
    double d = (double)m / tens[frac > 0 ? frac : 0];
    *out = neg ? -d : d;
    return 1;
}

/* The line at a (the buffer ends at b): its entries; 0, or -1 when Python must read it.  *next: where it ends. */
static int index_line(const char *a, const char *b, const char **next, const char *const *names,
                      const uint32_t *bylen, int n, double *ts, char **k, char **h, char **c)
{
    struct span v[F_FIXED + KEYS_MAX];
    struct scan s = {a, b};
    int ok = line(&s, names, bylen, n, v);
    *next = ok ? s.p : memchr(a, '\n', (size_t)(b - a));
    if (!*next) *next = b;
    if (!ok) return -1;
    *ts = 0.0;
    if (v[F_TS].a && !(v[F_TS].kind == 'n' && exact(v[F_TS].a, v[F_TS].b, ts))) {
        if (v[F_TS].kind != 'n' || v[F_TS].b - v[F_TS].a > 40) return -1;
        char t[48];
        memcpy(t, v[F_TS].a, (size_t)(v[F_TS].b - v[F_TS].a));
        t[v[F_TS].b - v[F_TS].a] = 0;
        if (!strpbrk(t, ".eE") && strlen(t) > 15) return -1;    /* an integer a double may not hold */
        *ts = strtod(t, NULL);
    }
    const struct span *h1 = &v[F_ORIG], *h2 = &v[F_RESP], none = {0};
    if (!v[F_ORIG].a) {         /* hosts(): id.orig_h, else ip, else client_addr or assigned_addr and server_addr */
        if (v[F_IP].a) {
            h1 = &v[F_IP], h2 = &none;
        } else {
            const struct span *cl = &v[F_CLIENT];
            if (cl->a && cl->kind != 's' && cl->kind != 'l') return -1;
            h1 = cl->a && cl->kind == 's' && cl->b > cl->a ? cl : &v[F_ASSIGNED];
            h2 = &v[F_SERVER];
        }
    }
    if (entry(h1, h) < 0) return -1;
    *(*h)++ = '\n';
    return entry(h2, h) < 0 || entry(&v[F_CID], c) < 0 || keys(v + F_FIXED, n - F_FIXED, k) < 0 ? -1 : 0;
}

/* A byte past ASCII (a line break str.splitlines() may see in its UTF-8), or another it splits at ('\n' aside) */
static int odd(const char *a, const char *b)
{
    for (; a < b; a++) {
        unsigned char c = (unsigned char)*a;
        if (c >= 0x80 || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) return 1;
    }
    return 0;
}

int hw_log_index(const char *buf, size_t len, const char *fields, uint32_t max, double *ts, uint8_t *py,
                 char *keys_out, char *hosts_out, char *cids_out, size_t *out_lens)
{
    const char *names[F_FIXED + KEYS_MAX];
    size_t lens[F_FIXED + KEYS_MAX];
    int n = 0;
    for (; n < F_FIXED; n++) names[n] = fixed[n], lens[n] = strlen(fixed[n]);
    for (const char *f = fields; *f && n < F_FIXED + KEYS_MAX; f += lens[n++] + 1) names[n] = f, lens[n] = strlen(f);
    uint32_t bylen[64] = {0};                  /* bit f: field f's name is that long */
    for (int f = 0; f < n; f++)
        if (lens[f] < 64) bylen[lens[f]] |= 1u << f;
    char *k = keys_out, *h = hosts_out, *c = cids_out;
    uint32_t count = 0;
    const char *p = buf, *end = buf + len;
    for (; p < end && count < max; count++) {  /* each entry ends in '\n' (a line's two hosts: two entries) */
        const char *e;
        char *k0 = k, *h0 = h, *c0 = c;
        py[count] = index_line(p, end, &e, names, bylen, n, &ts[count], &k, &h, &c) < 0;
        if (py[count]) {        /* Python fills them in; a line with a break str.splitlines() knows, all of buf */
            if (odd(p, e)) return -1;
            k = k0, h = h0, c = c0, *h++ = '\n', ts[count] = 0.0;
        }
        *k++ = '\n', *h++ = '\n', *c++ = '\n';
        p = e < end ? e + 1 : end;
    }
    if (p < end) return -1;
    out_lens[0] = (size_t)(k - keys_out), out_lens[1] = (size_t)(h - hosts_out), out_lens[2] = (size_t)(c - cids_out);
    return (int)count;
}
