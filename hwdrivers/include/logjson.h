/* logjson.h - JSON text as Python's json.dumps(separators=(",", ":")) writes
 * it (ASCII only, \uXXXX escapes, floats as repr()), into growing buffers;
 * for the log lines of logs.c. */
#ifndef LOGJSON_H
#define LOGJSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct hwint_jbuf {
    char *p;
    size_t len, cap;
    int failed;                 /* an allocation failed: the line being written is dropped */
    uint64_t secs;              /* a time's whole seconds last written (1e8 or more, else 0) and their digits: */
    size_t secs_len;            /* the next line's time is mostly in the same second */
    char secs_text[16];
};

#define HWINT_J_LATIN1 0        /* every byte is one code point (Python's decode("latin-1")) */
#define HWINT_J_UTF8 1          /* UTF-8, bad bytes as \xNN text (decode("utf-8", "backslashreplace")) */

int hwint_j_grow(struct hwint_jbuf *b, size_t n);           /* room for n more bytes; 0: no memory (failed) */

/* Inline: a line is some thirty of these, and a literal's length is known when it is compiled. */
static inline void hwint_j_raw(struct hwint_jbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap && !hwint_j_grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void hwint_j_lit(struct hwint_jbuf *b, const char *s) { hwint_j_raw(b, s, strlen(s)); }

/* ,"key": (no comma after '{'); inline, so a literal key's copy is a few moves */
static inline void hwint_j_keyn(struct hwint_jbuf *b, const char *key, size_t n)
{
    if (b->len + n + 4 > b->cap && !hwint_j_grow(b, n + 4)) return;
    char *o = b->p + b->len;
    if (b->len && o[-1] != '{') *o++ = ',';
    *o++ = '"';
    memcpy(o, key, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    b->len = (size_t)(o - b->p);
}
#define hwint_j_key(b, key) hwint_j_keyn((b), (key), strlen(key))  /* ,"key": (no comma after '{') */

/* A string known to need no escape (a name from a table, a uid, a community ID): quoted as it is, no scan. */
static inline void hwint_j_plain(struct hwint_jbuf *b, const char *s, size_t n)
{
    if (b->len + n + 2 > b->cap && !hwint_j_grow(b, n + 2)) return;
    char *o = b->p + b->len;
    *o = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    b->len += n + 2;
}
#define hwint_j_name(b, s) hwint_j_plain((b), (s), strlen(s))

/* A run of fields with a known upper bound (a line's head, a conn line): room for it taken once, then each
 * field written at a cursor o without a check, the length set at its end.  NULL: no memory (failed). */
static inline char *hwint_j_room(struct hwint_jbuf *b, size_t n)
{
    if (b->len + n > b->cap && !hwint_j_grow(b, n)) return NULL;
    return b->p + b->len;
}
static inline void hwint_j_done(struct hwint_jbuf *b, char *o) { b->len = (size_t)(o - b->p); }
/* a literal (its length known where it is compiled) at o; past it */
#define HWINT_J_PUT(o, lit) ((char *)memcpy((o), (lit), sizeof(lit) - 1) + sizeof(lit) - 1)
/* a string known to need no escape, quoted, at o; past it */
static inline char *hwint_j_plain_at(char *o, const char *s, size_t n)
{
    *o = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    return o + n + 2;
}
char *hwint_j_u64_at(char *o, uint64_t v);                  /* at most 20 bytes */
char *hwint_addr_text(char *o, int family, const uint8_t *addr);    /* as inet_ntop writes it, unquoted and
                                                                      unterminated: at most 46 bytes (past it) */
char *hwint_j_addr_at(char *o, int family, const uint8_t *addr);    /* quoted: at most 48 bytes */
char *hwint_j_round6_at(struct hwint_jbuf *b, char *o, double x);  /* at most 48 bytes */
char *hwint_j_secs_at(struct hwint_jbuf *b, char *o, uint64_t ns);    /* round6 of ns / 1e9: 48 bytes */
void hwint_j_str(struct hwint_jbuf *b, const uint8_t *s, size_t n, int enc);
void hwint_j_cstr(struct hwint_jbuf *b, const char *s);
void hwint_j_u64(struct hwint_jbuf *b, uint64_t v);
void hwint_j_bool(struct hwint_jbuf *b, int v);
void hwint_j_float(struct hwint_jbuf *b, double x);         /* repr(x) */
double hwint_j_round(double x, int digits);                /* round(x, digits) */
void hwint_j_round6(struct hwint_jbuf *b, double x);        /* repr(round(x, 6)) */
void hwint_j_addr(struct hwint_jbuf *b, int family, const uint8_t *addr);

#endif
