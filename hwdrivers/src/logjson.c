/* logjson.c - JSON text byte for byte as Python's json.dumps writes it (the
 * log lines Python wrote before logs.c must not change): strings escaped to
 * ASCII with lower-case \uXXXX, floats as repr() (the shortest digits that
 * read back to the same double), round() as CPython rounds. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logjson.h"

int hwint_j_grow(struct hwint_jbuf *b, size_t n)
{
    if (b->len + n <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

/* One code point as json.dumps(ensure_ascii=True) writes it. */
static void put_cp(struct hwint_jbuf *b, uint32_t c)
{
    char t[16];
    switch (c) {
    case '"': hwint_j_raw(b, "\\\"", 2); return;
    case '\\': hwint_j_raw(b, "\\\\", 2); return;
    case '\n': hwint_j_raw(b, "\\n", 2); return;
    case '\r': hwint_j_raw(b, "\\r", 2); return;
    case '\t': hwint_j_raw(b, "\\t", 2); return;
    case '\b': hwint_j_raw(b, "\\b", 2); return;
    case '\f': hwint_j_raw(b, "\\f", 2); return;
    }
    if (c >= 0x20 && c < 0x7f) {
        char ch = (char)c;
        hwint_j_raw(b, &ch, 1);
    } else if (c < 0x10000) {
        hwint_j_raw(b, t, (size_t)snprintf(t, sizeof t, "\\u%04x", c));
    } else {
        c -= 0x10000;
        hwint_j_raw(b, t, (size_t)snprintf(t, sizeof t, "\\u%04x\\u%04x", 0xd800 | (c >> 10), 0xdc00 | (c & 0x3ff)));
    }
}

/* The code point of a well-formed UTF-8 sequence at s (its length in *used), or -1 (Python's strict rules:
 * no overlong forms, no surrogates, nothing past U+10FFFF). */
static int32_t utf8_cp(const uint8_t *s, size_t n, size_t *used)
{
    uint8_t c = s[0];
    size_t len = c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
    if (!len || len > n) return -1;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (s[1] < lo || s[1] > hi) return -1;
    int32_t cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if (i > 1 && (s[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *used = len;
    return cp;
}

/* 1: the byte goes as it is (printable ASCII but the quote and the backslash) */
#define P8(x) x, x, x, x, x, x, x, x
static const uint8_t as_is[256] = {
    P8(0), P8(0), P8(0), P8(0),                                 /* 0x00-0x1f */
    1, 1, 0, 1, 1, 1, 1, 1, P8(1), P8(1), P8(1),                 /* 0x20-0x3f: '"' */
    P8(1), P8(1), P8(1), 1, 1, 1, 1, 0, 1, 1, 1,                 /* 0x40-0x5f: '\\' */
    P8(1), P8(1), P8(1), 1, 1, 1, 1, 1, 1, 1, 0,                 /* 0x60-0x7f: DEL */
};

/* How many of s's first bytes go as they are: 8 a step while every byte of a word does (below 0x80, adding
 * 0x60 or 1 to a byte carries out of none; a word holds a byte b when w ^ b has a zero byte), then the table. */
static size_t clean_run(const uint8_t *s, size_t n)
{
    const uint64_t hi = 0x8080808080808080ULL, one = 0x0101010101010101ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, bs;
        memcpy(&w, s + i, 8);
        q = w ^ 0x2222222222222222ULL, bs = w ^ 0x5c5c5c5c5c5c5c5cULL;
        if ((w & hi) | (~(w + 0x6060606060606060ULL) & hi) | ((w + one) & hi) | ((q - one) & ~q & hi) |
            ((bs - one) & ~bs & hi))
            break;
    }
    while (i < n && as_is[s[i]]) i++;
    return i;
}

void hwint_j_str(struct hwint_jbuf *b, const uint8_t *s, size_t n, int enc)
{
    size_t clean = clean_run(s, n);     /* most strings need no escape: one copy between the quotes */
    if (clean == n) {
        if (b->len + n + 2 > b->cap && !hwint_j_grow(b, n + 2)) return;
        char *o = b->p + b->len;
        *o = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->len += n + 2;
        return;
    }
    hwint_j_raw(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i;             /* printable ASCII but the quote and backslash goes as it is */
        while (run < n && as_is[s[run]]) run++;
        if (run > i) {
            hwint_j_raw(b, (const char *)s + i, run - i);
            i = run;
            continue;
        }
        if (s[i] < 0x80 || enc == HWINT_J_LATIN1) {
            put_cp(b, s[i++]);
            continue;
        }
        size_t used = 0;
        int32_t cp = utf8_cp(s + i, n - i, &used);
        if (cp < 0) {       /* backslashreplace: the text \xNN, its backslash escaped by JSON */
            char t[8];
            hwint_j_raw(b, t, (size_t)snprintf(t, sizeof t, "\\\\x%02x", s[i++]));
            continue;
        }
        put_cp(b, (uint32_t)cp);
        i += used;
    }
    hwint_j_raw(b, "\"", 1);
}

void hwint_j_cstr(struct hwint_jbuf *b, const char *s)
{
    hwint_j_str(b, (const uint8_t *)s, strlen(s), HWINT_J_LATIN1);
}

static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";

/* v in decimal ending at end (no NUL), four digits a division; where it starts */
static char *digits(char *end, uint64_t v)
{
    for (; v >= 10000; v /= 10000) {   /* four a division, the pairs' split in 32 bits */
        uint32_t r = (uint32_t)(v % 10000);
        end -= 4;
        memcpy(end, pairs + 2 * (r / 100), 2);
        memcpy(end + 2, pairs + 2 * (r % 100), 2);
    }
    if (v >= 100) end -= 2, memcpy(end, pairs + 2 * (v % 100), 2), v /= 100;
    if (v >= 10) end -= 2, memcpy(end, pairs + 2 * v, 2);
    else *--end = (char)('0' + v);
    return end;
}

/* without a division: bits * 1233 / 4096 is log10(2^bits) rounded down (exact to 2^64), one below the count
 * or the count itself, as v is below its power of ten or not (v is 10 or more here) */
static size_t count_digits(uint64_t v)
{
    static const uint64_t pow10[20] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
                                       1e14, 1e15, 1e16, 1e17, 1e18, 10000000000000000000ULL};
    size_t t = (size_t)(64 - __builtin_clzll(v | 1)) * 1233 >> 12;
    return t + (v >= pow10[t]);
}

char *hwint_j_u64_at(char *o, uint64_t v)
{
    if (v < 10) {                   /* a class, a type, an rcode, a count of 0: a digit (a third of them) */
        *o = (char)('0' + v);
        return o + 1;
    }
    size_t n = count_digits(v);     /* its digits, written in place from the last */
    digits(o + n, v);
    return o + n;
}

void hwint_j_u64(struct hwint_jbuf *b, uint64_t v)
{
    char *o = hwint_j_room(b, 20);
    if (o) hwint_j_done(b, hwint_j_u64_at(o, v));
}

void hwint_j_bool(struct hwint_jbuf *b, int v) { hwint_j_lit(b, v ? "true" : "false"); }

/* nearbyint(p) without a call: below 2^51, p + 1.5 * 2^52 has no fraction bits, so the addition rounds p to an
 * integer (to nearest, ties to even, as nearbyint in the default mode) and the subtraction is exact */
static inline double nearest(double p)
{
    if (!(fabs(p) < 0x1p51)) return nearbyint(p);
    return (p + 0x1.8p52) - 0x1.8p52;
}

/* CPython's round(x, n): the decimal correctly rounded to n places (glibc's printf rounds the exact binary
 * value, as dtoa does), read back.  Up to 6 places below 4e9 without printf: x * 10^n is held exactly in two
 * doubles (fma), which decide a half as the exact value does; the integer over 10^n is the double nearest
 * the decimal, as strtod reads it. */
double hwint_j_round(double x, int digits)
{
    static const double scale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    if (digits >= 0 && digits <= 6 && fabs(x) < 4e9 && (x == 0 || fabs(x) > 1e-300)) {
        double m = scale[digits], p = x * m, r = nearest(p), d = p - r;
        if (d == 0.5 || d == -0.5) {
            double err = fma(x, m, -p);
            if (d == 0.5 && err > 0) r += 1;
            if (d == -0.5 && err < 0) r -= 1;
        }
        return copysign(r / m, x);
    }
    char t[64];
    snprintf(t, sizeof t, "%.*f", digits, x);
    return strtod(t, NULL);
}

/* x as r / 10^6 when that is exact to the double and repr writes it in fixed notation: the shortest digits
 * are then those of r (a decimal with fewer places is 1e-6 away, more than the spacing of doubles below
 * 2^33), so no printf is needed.  0 when it is not so. */
static int micros(double x, long long *r)
{
    if (!(fabs(x) < 4e9)) return 0;
    double p = nearest(x * 1e6);
    if ((double)p / 1e6 != x || (p != 0 && fabs(p) < 100)) return 0;     /* below 1e-4 repr writes 1e-05 */
    *r = (long long)p;
    return 1;
}

static void put_micros(struct hwint_jbuf *b, long long r, int negative)
{
    if (b->len + 32 > b->cap && !hwint_j_grow(b, 32)) return;     /* written in place: a time in every line */
    unsigned long long a = r < 0 ? (unsigned long long)-r : (unsigned long long)r;
    uint64_t whole = a / 1000000, frac = a % 1000000;
    char *o = b->p + b->len, t[40];
    if (negative) *o++ = '-';
    const char *d = b->secs_text;
    size_t nd = b->secs_len;
    if (whole != b->secs || whole < 100000000) {
        d = digits(t + 24, whole);                  /* at most 10 digits (below 4e9) */
        nd = (size_t)(t + 24 - d);
        if (whole >= 100000000) b->secs = whole, b->secs_len = nd, memcpy(b->secs_text, d, 16);
    }
    memcpy(o, d, 16);       /* 16 bytes go, the rest written over below (a fixed copy: no count, 8 ns less) */
    o += nd;
    *o++ = '.';
    memcpy(o, pairs + 2 * (frac / 10000), 2);       /* all six places, then the trailing zeros go */
    memcpy(o + 2, pairs + 2 * (frac / 100 % 100), 2);
    memcpy(o + 4, pairs + 2 * (frac % 100), 2);
    int places = 6;
    while (places > 1 && o[places - 1] == '0') places--;
    b->len = (size_t)(o + places - b->p);
}

/* CPython's round(x, 6) rounds x's exact binary value to 6 places, ties to even; below 4e9 that value is
 * x * 1e6 held exactly in two doubles (fma), so the rounding needs no printf. */
void hwint_j_round6(struct hwint_jbuf *b, double x)
{
    double p = x * 1e6, r = nearest(p), d = p - r;
    if (d == 0.5 || d == -0.5) {                /* a half only as far as p tells: the exact value decides */
        double err = fma(x, 1e6, -p);
        if (d == 0.5 && err > 0) r += 1;
        if (d == -0.5 && err < 0) r -= 1;
    }
    if (fabs(x) < 4e9 && (r == 0 || fabs(r) >= 100)) {
        put_micros(b, (long long)r, signbit(x));
        return;
    }
    if (fabs(x) < 4e9) {        /* 1 to 99 millionths (a DNS round trip on a LAN): repr writes 4e-05, 1.5e-05 */
        char *o = hwint_j_room(b, 8);       /* in place: a word of bytes stored one at a time and read back */
        if (!o) return;                     /* whole stalled (no store forwarding) */
        unsigned a = (unsigned)fabs(r);
        if (r < 0) *o++ = '-';
        *o++ = (char)('0' + (a >= 10 ? a / 10 : a));
        if (a >= 10 && a % 10) *o++ = '.', *o++ = (char)('0' + a % 10);
        memcpy(o, a >= 10 ? "e-05" : "e-06", 4);
        hwint_j_done(b, o + 4);
        return;
    }
    hwint_j_float(b, hwint_j_round(x, 6));
}

char *hwint_j_round6_at(struct hwint_jbuf *b, char *o, double x)
{
    hwint_j_done(b, o);         /* (its own check then holds: the room was taken) */
    hwint_j_round6(b, x);
    return b->p + b->len;
}

/* ns / 1e9 (a time or a span) as hwint_j_round6_at writes it, by integers where the double's rounding cannot
 * matter: below 2^50 ns the conversion is exact and the quotient within 0.12 ns of ns / 1e9 (half its ulp);
 * below 2^61, within 366 ns (128 of the conversion, 238 of the quotient).  A remainder that far from half a
 * microsecond rounds as the double does, and never ties.  (A capture in microseconds: every time.) */
char *hwint_j_secs_at(struct hwint_jbuf *b, char *o, uint64_t ns)
{
    uint64_t q = ns / 1000;
    unsigned rem = (unsigned)(ns - q * 1000), off = rem > 500 ? rem - 500 : 500 - rem;
    if (q >= 100 && (ns < (1ULL << 50) ? off >= 1 : ns < (1ULL << 61) && off >= 380)) {
        hwint_j_done(b, o);
        put_micros(b, (long long)(q + (rem > 500)), 0);
        return b->p + b->len;
    }
    return hwint_j_round6_at(b, o, (double)ns / 1e9);
}

void hwint_j_float(struct hwint_jbuf *b, double x)
{
    char t[40], out[48];
    long long r;
    if (x == 0 || micros(x, &r)) {
        put_micros(b, x == 0 ? 0 : r, signbit(x));
        return;
    }
    if (fabs(x) < 1e16 && x == trunc(x)) {          /* an integer (a TTL): its digits and ".0" */
        char *e = t + sizeof t, *d = digits(e - 2, (uint64_t)fabs(x));
        e[-2] = '.', e[-1] = '0';
        if (x < 0) *--d = '-';
        hwint_j_raw(b, d, (size_t)(e - d));
        return;
    }
    int p = 1;
    for (; p < 17; p++) {               /* the shortest digits that read back to x */
        snprintf(t, sizeof t, "%.*e", p - 1, x);
        if (strtod(t, NULL) == x) break;
    }
    if (p == 17) snprintf(t, sizeof t, "%.16e", x);
    const char *s = t;
    size_t o = 0;
    if (*s == '-') out[o++] = *s++;
    char dig[20];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') dig[nd++] = *s;
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    int exp = atoi(s + 1), decpt = exp + 1;
    if (decpt > -4 && decpt <= 16) {    /* repr's fixed notation */
        if (decpt <= 0) {
            out[o++] = '0', out[o++] = '.';
            for (int i = 0; i < -decpt; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = dig[i];
        } else if (decpt >= nd) {
            for (int i = 0; i < nd; i++) out[o++] = dig[i];
            for (int i = nd; i < decpt; i++) out[o++] = '0';
            out[o++] = '.', out[o++] = '0';
        } else {
            for (int i = 0; i < nd; i++) {
                if (i == decpt) out[o++] = '.';
                out[o++] = dig[i];
            }
        }
        hwint_j_raw(b, out, o);
        return;
    }
    out[o++] = dig[0];
    if (nd > 1) {
        out[o++] = '.';
        for (int i = 1; i < nd; i++) out[o++] = dig[i];
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    hwint_j_raw(b, out, o);
}

/* "0" to "255", three bytes each (the unused ones after the digits), and how many are digits */
static const struct dec { char d[3]; uint8_t n; } decimal[256] = {
#define D1(x) {{'0' + (x), 0, 0}, 1}
#define D2(x) {{'0' + (x) / 10, '0' + (x) % 10, 0}, 2}
#define D3(x) {{'0' + (x) / 100, '0' + (x) / 10 % 10, '0' + (x) % 10}, 3}
#define R10(f, b) f(b), f(b + 1), f(b + 2), f(b + 3), f(b + 4), f(b + 5), f(b + 6), f(b + 7), f(b + 8), f(b + 9)
    R10(D1, 0), R10(D2, 10), R10(D2, 20), R10(D2, 30), R10(D2, 40), R10(D2, 50), R10(D2, 60), R10(D2, 70),
    R10(D2, 80), R10(D2, 90),
    R10(D3, 100), R10(D3, 110), R10(D3, 120), R10(D3, 130), R10(D3, 140), R10(D3, 150), R10(D3, 160),
    R10(D3, 170), R10(D3, 180), R10(D3, 190), R10(D3, 200), R10(D3, 210), R10(D3, 220), R10(D3, 230),
    R10(D3, 240), D3(250), D3(251), D3(252), D3(253), D3(254), D3(255),
#undef D1
#undef D2
#undef D3
#undef R10
};

/* a.b.c.d at o (room for 16: each part copied as 4 bytes, the dot over the spare); where it ends */
static char *v4_text(char *o, const uint8_t *addr)
{
    for (int i = 0; i < 4; i++) {
        const struct dec *d = &decimal[addr[i]];
        memcpy(o, d->d, 3);
        o += d->n;
        *o++ = '.';
    }
    return o - 1;
}

/* A word's hex digits without leading zeros, branch-free: its four nibbles one a byte (the first lowest: first in
 * memory), each made its digit at once, the leading zeros shifted out; 4 bytes stored, 1 to 4 of them kept. */
static inline char *hex_word(char *o, unsigned v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t x = (v >> 12) | (v >> 8 & 0xf) << 8 | (v >> 4 & 0xf) << 16 | (v & 0xf) << 24;
    uint32_t letters = (x + 0x06060606u) >> 4 & 0x01010101u;        /* 1 where over 9 */
    unsigned n = (unsigned)(35 - __builtin_clz(v | 1)) >> 2;        /* 1 to 4 digits */
    x = (x + 0x30303030u + letters * ('a' - '0' - 10)) >> (8 * (4 - n));
    memcpy(o, &x, 4);
    return o + n;
#else
    static const char hex[] = "0123456789abcdef";
    if (v >= 0x1000) *o++ = hex[v >> 12];
    if (v >= 0x100) *o++ = hex[v >> 8 & 0xf];
    if (v >= 0x10) *o++ = hex[v >> 4 & 0xf];
    *o++ = hex[v & 0xf];
    return o;
#endif
}

/* IPv6 text as glibc's inet_ntop writes it (Python's socket.inet_ntop is glibc's): the first longest run of
 * two or more zero words as "::", words in lower-case hex, ::a.b.c.d and ::ffff:a.b.c.d with the IPv4 address
 * in dotted form.  Without sprintf: a quarter of the log lines carry IPv6 addresses.  (Up to 3 bytes past the
 * text are written: within hwint_addr_text's 46.) */
static size_t v6_text(char *out, const uint8_t *a)
{
    unsigned w[8];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8; i++) w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    for (int i = 0; i < 8;) {          /* the first longest run of zero words */
        if (w[i]) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < 8 && !w[j]) j++;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j;
    }
    if (best_len < 2) best = -1;
    char *o = out;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *o++ = ':';
            i += best_len - 1;
            if (i == 7) *o++ = ':';
            continue;
        }
        if (i) *o++ = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
            return (size_t)(v4_text(o, a + 12) - out);
        o = hex_word(o, w[i]);
    }
    return (size_t)(o - out);
}

char *hwint_addr_text(char *o, int family, const uint8_t *addr)
{
    return family != 6 ? v4_text(o, addr) : o + v6_text(o, addr);
}

char *hwint_j_addr_at(char *o, int family, const uint8_t *addr)
{
    *o++ = '"';
    o = hwint_addr_text(o, family, addr);
    *o++ = '"';
    return o;
}

void hwint_j_addr(struct hwint_jbuf *b, int family, const uint8_t *addr)
{
    char *o = hwint_j_room(b, 64);      /* written in place: two in every line */
    if (o) hwint_j_done(b, hwint_j_addr_at(o, family, addr));
}
