/* rec-http.c - an HTTP/1.x head as a record: method, URI, version, status,
 * Host, User-Agent, Location, Strict-Transport-Security, Set-Cookie names and flags,
 * Content-Type and -Length, and whether a url-encoded form post in the same
 * segment carries a password-like field.  Lines end at LF (a CR before it
 * is dropped); header names compare without case; the head ends at the
 * first empty line or the end of the segment (then `complete` is 0). */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "hw.h"

struct span {
    const char *p;
    uint32_t n;
};

static void put(char *dst, size_t cap, struct span s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    __asm__("" : "+r"(n));      /* n's bound hidden: GCC made the bounded copy a rep movs (slow to start), not a call */
    memcpy(dst, s.p, n);
    dst[n] = 0;
}

static struct span trim(struct span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t' || s.p[s.n - 1] == '\r')) s.n--;
    return s;
}

/* The next `sep`-separated token of *s (s moves past it and the separator). */
static struct span token(struct span *s, char sep)
{
    const char *at = s->n ? memchr(s->p, sep, s->n) : NULL;
    struct span t = {s->p, at ? (uint32_t)(at - s->p) : s->n};
    uint32_t skip = at ? t.n + 1 : t.n;
    s->p += skip, s->n -= skip;
    return t;
}

static int is(struct span s, const char *word)
{
    size_t k = strlen(word);
    return s.n == k && !strncasecmp(s.p, word, k);
}

static int has(struct span s, const char *word) /* case-insensitive substring */
{
    size_t k = strlen(word);
    for (uint32_t i = 0; i + k <= s.n; i++)
        if (!strncasecmp(s.p + i, word, k)) return 1;
    return 0;
}

static uint64_t number(struct span s)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && v < (1ULL << 40); i++)
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    return v;
}

static void set_cookie(struct hw_rec_http *r, struct span v)
{
    if (r->n_cookies == HW_HTTP_COOKIES) return;
    int i = r->n_cookies++;
    struct span name = trim(token(&v, '='));
    put(r->cookie_names[i], sizeof r->cookie_names[i], name);
    while (v.n) {
        struct span attr = trim(token(&v, ';'));
        struct span key = trim(token(&attr, '='));
        if (is(key, "secure")) r->cookie_flags[i] |= HW_HTTP_COOKIE_SECURE;
        else if (is(key, "httponly")) r->cookie_flags[i] |= HW_HTTP_COOKIE_HTTPONLY;
        else if (is(key, "samesite")) r->cookie_flags[i] |= HW_HTTP_COOKIE_SAMESITE;
    }
}

static void header(struct hw_rec_http *r, struct span name, struct span v)
{
    if (is(name, "host")) put(r->host, sizeof r->host, v);
    else if (is(name, "location")) put(r->location, sizeof r->location, v);
    else if (is(name, "content-type")) put(r->content_type, sizeof r->content_type, v);
    else if (is(name, "user-agent")) put(r->user_agent, sizeof r->user_agent, v);
    else if (is(name, "content-length")) r->content_length = (int64_t)number(v);
    else if (is(name, "set-cookie")) set_cookie(r, v);
    else if (is(name, "strict-transport-security")) {
        r->hsts = 1;
        while (v.n) {
            struct span d = trim(token(&v, ';'));
            struct span key = trim(token(&d, '='));
            if (is(key, "max-age")) r->hsts_max_age = (uint32_t)number(trim(d));
            else if (is(key, "includesubdomains")) r->hsts_subdomains = 1;
        }
    }
}

/* A url-encoded form: the first field whose name looks like a password. */
static void form(struct hw_rec_http *r, struct span body)
{
    static const char *const words[] = {"pass", "pwd", "secret", "pin", NULL};
    while (body.n) {
        struct span field = token(&body, '&');
        struct span name = token(&field, '=');
        for (const char *const *w = words; *w; w++)
            if (has(name, *w)) {
                r->form_password = 1;
                put(r->password_field, sizeof r->password_field, name);
                return;
            }
    }
}

int hw_http_parse(const uint8_t *p, uint32_t n, struct hw_rec_http *r)
{
    /* the fields before the names zeroed, each string emptied: every reader stops at a string's NUL and reads
     * only the n_cookies names set here (the 3 KB of the whole record were a quarter of a head's parse) */
    memset(r, 0, offsetof(struct hw_rec_http, cookie_names));
    r->method[0] = r->version[0] = r->host[0] = r->uri[0] = r->location[0] = 0;
    r->content_type[0] = r->password_field[0] = r->user_agent[0] = 0;
    r->content_length = -1;
    struct span all = {(const char *)p, n};
    struct span line = trim(token(&all, '\n'));
    struct span a = token(&line, ' '), b = token(&line, ' ');
    if (a.n > 5 && !strncmp(a.p, "HTTP/", 5)) {
        r->response = 1;
        put(r->version, sizeof r->version, a);
        r->status = (uint16_t)number(b);
        if (b.n != 3 || r->status < 100) return HW_RMAL_HTTP;
    } else if (!memchr(p, '\n', n) && a.n && b.n) { /* a start line longer than the segment */
        put(r->method, sizeof r->method, a);
        put(r->uri, sizeof r->uri, b);
        return 0;
    } else {
        /* "GET /" alone is an HTTP/0.9 request */
        if (!a.n || !b.n || (line.n && (line.n < 6 || strncmp(line.p, "HTTP/", 5)))) return HW_RMAL_HTTP;
        put(r->method, sizeof r->method, a);
        put(r->uri, sizeof r->uri, b);
        put(r->version, sizeof r->version, line);
    }
    while (all.n) {
        struct span l = token(&all, '\n');
        if (l.n && l.p[l.n - 1] == '\r') l.n--;
        if (!l.n) {
            r->complete = 1;
            break;
        }
        struct span name = token(&l, ':');
        header(r, trim(name), trim(l));
    }
    if (r->complete && !r->response && has((struct span){r->content_type, (uint32_t)strlen(r->content_type)},
                                           "application/x-www-form-urlencoded"))
        form(r, all);
    return 0;
}
