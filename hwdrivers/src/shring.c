/* shring.c - the shared ring of packed events (cdef/shring.h).  Head and tail
 * are byte positions on cache lines of their own; the producer publishes
 * records with a release store of head, the consumer frees them with a
 * release store of tail, so the two processes need no lock and no system
 * call per batch.  A record never wraps: one that does not fit before the
 * end of the buffer starts at its beginning, after a record of length 0. */
#include <string.h>

#include "hw.h"

#define SHRING_MAGIC 0x336b6370727368ULL /* "hsrpck3" */
#define ALIGN8(x) (((x) + 7u) & ~(uint64_t)7)
#define HEAD offsetof(struct hw_event, snippet)
#define REC offsetof(struct hw_event, rec)
#define FOLD offsetof(struct hw_rec_dns_fold, fold)
#define FOLD_LEN (offsetof(struct hw_rec_dns_fold, rep) + sizeof(struct hw_dns_repeat) - FOLD)
#define MAX_REC ALIGN8(sizeof(struct hw_shrec) + sizeof(struct hw_event) + FOLD_LEN)

struct shring {
    _Atomic uint64_t head, records_in;
    uint32_t kept;                    /* the producer's: kinds whose records it reads from the ring itself */
    uint8_t pad0[44];
    _Atomic uint64_t tail, records_out;
    _Atomic uint32_t unread;          /* the consumer's: kinds whose records it never reads */
    uint8_t pad1[44];
    uint64_t magic, size;
};

_Static_assert(sizeof(struct shring) <= HW_SHRING_HEADER, "shring header");

static uint64_t capacity(uint64_t bytes) { return bytes > HW_SHRING_HEADER + 2 * MAX_REC ? (bytes - HW_SHRING_HEADER) & ~7ULL : 0; }

int64_t hw_shring_init(void *mem, uint64_t bytes)
{
    uint64_t n = capacity(bytes);
    if (!mem || !n) return HW_E_ARG;
    struct shring *r = mem;
    memset(r, 0, sizeof *r);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->records_in, 0);
    atomic_init(&r->records_out, 0);
    atomic_init(&r->unread, 0);
    r->size = n;
    atomic_thread_fence(memory_order_release);
    r->magic = SHRING_MAGIC;
    return (int64_t)n;
}

int64_t hw_shring_attach(void *mem, uint64_t bytes)
{
    struct shring *r = mem;
    if (!mem || bytes <= HW_SHRING_HEADER || r->magic != SHRING_MAGIC || r->size != capacity(bytes))
        return HW_E_ARG;
    atomic_thread_fence(memory_order_acquire);
    return (int64_t)r->size;
}

/* A record's bytes as they are copied: its kind's struct, or for a DNS record (packed: a shared ring's) its fields
 * before the name, the name's name_len bytes, then from DNS_RR_AT(name_len) its n_rr records and text_len bytes
 * of text (hwdrivers/records.py dns_from_buffer, packed). */
#define DNS_NAME offsetof(struct hw_rec_dns, name)
#define DNS_RR_AT(name_len) ALIGN8(DNS_NAME + (name_len))
struct rec_size { size_t len; uint16_t name, rr, text; };

static size_t rec_size(const struct hw_event *e, int packed, struct rec_size *d)
{
    switch (e->kind) {
    case HW_EV_DNS: {
        const struct hw_rec_dns *r = &e->rec.dns;
        d->text = r->text_len > HW_DNS_TEXT_MAX ? HW_DNS_TEXT_MAX : r->text_len;
        if (!packed) return d->len = offsetof(struct hw_rec_dns, text) + d->text;
        d->name = r->name_len > HW_DNS_NAME_MAX ? HW_DNS_NAME_MAX : r->name_len;
        d->rr = r->n_rr > HW_DNS_RR_MAX ? HW_DNS_RR_MAX : r->n_rr;
        return d->len = DNS_RR_AT(d->name) + d->rr * sizeof(struct hw_dns_rr) + d->text;
    }
    case HW_EV_ARP: return d->len = sizeof(struct hw_rec_arp);
    case HW_EV_TCP_SRC: return d->len = sizeof(struct hw_rec_tcpsrc);
    case HW_EV_TLS: return d->len = sizeof(struct hw_rec_tls);
    case HW_EV_HTTP: return d->len = sizeof(struct hw_rec_http);
    case HW_EV_NDP: return d->len = sizeof(struct hw_rec_ndp);
    case HW_EV_DHCP: return d->len = sizeof(struct hw_rec_dhcp);
    default: return d->len = sizeof e->rec;
    }
}

static void put_rec(uint8_t *o, const struct hw_event *e, int packed, const struct rec_size *d)
{
    if (!packed || e->kind != HW_EV_DNS) {
        memcpy(o, &e->rec, d->len);
        return;
    }
    const struct hw_rec_dns *r = &e->rec.dns;
    memcpy(o, r, DNS_NAME + d->name);
    memcpy(o + DNS_RR_AT(d->name), r->rr, d->rr * sizeof(struct hw_dns_rr));
    memcpy(o + DNS_RR_AT(d->name) + d->rr * sizeof(struct hw_dns_rr), r->text, d->text);
}

/* The record's layout: what of e its readers use (hwdrivers.events.from_buffer, records.from_buffer); left_out: kinds
 * (1 << HW_EV_*) whose records no reader reads (left out: rec_at 0). */
static uint32_t layout(const struct hw_event *e, struct hw_shrec *h, struct rec_size *d, int packed, uint32_t left_out)
{
    uint64_t at = ALIGN8(HEAD + (e->snippet_len > HW_SNIPPET_MAX ? HW_SNIPPET_MAX : e->snippet_len));
    h->rec_at = h->fold_at = 0;
    d->len = 0;
    if (e->has_rec && !(left_out >> e->kind & 1)) {
        h->rec_at = (uint16_t)at;
        at = ALIGN8(at + rec_size(e, packed, d));
    }
    if (e->has_rec && e->kind == HW_EV_DNS) {
        h->fold_at = (uint16_t)at;
        at += ALIGN8(FOLD_LEN);
    }
    h->len = (uint32_t)(sizeof *h + at);
    return h->len;
}

/* What Python reads of a DNS answer that the core makes only for Python (hw_dns_facts), in e's own record: the
 * event is its reader's, under the event ring's read lock, and the protocol logs read it before it was queued. */
static void for_python(const struct hw_event *e)
{
    if (e->kind == HW_EV_DNS && e->has_rec && !e->rec_status && e->rec.dns.n_rr)
        hw_dns_facts((struct hw_rec_dns *)&e->rec.dns);
}

void hwint_event_copy(void *dst, const void *src)
{
    const struct hw_event *e = src;
    uint8_t *o = dst;
    struct hw_shrec h;
    struct rec_size d;
    for_python(e);
    layout(e, &h, &d, 0, 0);
    memcpy(o, e, HEAD + (e->snippet_len > HW_SNIPPET_MAX ? HW_SNIPPET_MAX : e->snippet_len));
    if (h.rec_at) put_rec(o + REC, e, 0, &d);
    if (h.fold_at) memcpy(o + REC + FOLD, (const uint8_t *)&e->rec + FOLD, FOLD_LEN);
}

int hw_shring_fill(void *mem, struct hw_session *s, int max, uint64_t *offsets, int *full)
{
    struct shring *r = mem;
    struct hw_ring *src = hwint_session_events(s);
    *full = 0;
    if (!src || max <= 0) return 0;
    pthread_mutex_lock(&src->read_lock);
    uint64_t from = atomic_load_explicit(&src->tail, memory_order_relaxed);
    uint64_t avail = atomic_load_explicit(&src->head, memory_order_acquire) - from;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint8_t *buf = (uint8_t *)mem + HW_SHRING_HEADER;
    uint32_t left_out = atomic_load_explicit(&r->unread, memory_order_relaxed) & ~r->kept;
    int n = 0;
    for (; n < max && (uint64_t)n < avail; n++) {
        const struct hw_event *e = (const void *)(src->buf + (size_t)((from + n) & src->mask) * src->rec_size);
        struct hw_shrec h;
        struct rec_size d;
        for_python(e);
        uint32_t len = layout(e, &h, &d, 1, left_out);
        uint64_t at = head % r->size, room = r->size - at, skip = room < len ? room : 0;
        if (r->size - (head - tail) < skip + len) {
            *full = 1;
            break;
        }
        if (skip) {                       /* the rest of the buffer is too short: the record starts over */
            ((struct hw_shrec *)(buf + at))->len = 0;
            head += skip;
            at = 0;
        }
        uint8_t *out = buf + at;
        memcpy(out, &h, sizeof h);
        out += sizeof h;
        memcpy(out, e, HEAD + (e->snippet_len > HW_SNIPPET_MAX ? HW_SNIPPET_MAX : e->snippet_len));
        if (h.rec_at) put_rec(out + h.rec_at, e, 1, &d);
        if (h.fold_at) memcpy(out + h.fold_at, (const uint8_t *)&e->rec + FOLD, FOLD_LEN);
        offsets[n] = HW_SHRING_HEADER + at;
        head += len;
    }
    atomic_store_explicit(&src->tail, from + n, memory_order_release);
    pthread_mutex_unlock(&src->read_lock);
    if (n) {
        atomic_fetch_add_explicit(&r->records_in, (uint64_t)n, memory_order_relaxed);
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    return n;
}

uint32_t hw_shring_peek(void *mem, uint32_t max, uint64_t *offsets, uint64_t *next)
{
    struct shring *r = mem;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    const uint8_t *buf = (const uint8_t *)mem + HW_SHRING_HEADER;
    uint32_t n = 0;
    while (n < max && tail < head) {
        uint64_t at = tail % r->size;
        uint32_t len = ((const struct hw_shrec *)(buf + at))->len;
        if (!len) {                       /* the producer started over at the beginning */
            tail += r->size - at;
            continue;
        }
        offsets[n++] = HW_SHRING_HEADER + at;
        tail += len;
    }
    *next = tail;
    return n;
}

void hw_shring_release(void *mem, uint64_t next, uint32_t n)
{
    struct shring *r = mem;
    atomic_fetch_add_explicit(&r->records_out, n, memory_order_relaxed);
    atomic_store_explicit(&r->tail, next, memory_order_release);
}

void hw_shring_unread(void *mem, uint32_t kinds)
{
    atomic_store_explicit(&((struct shring *)mem)->unread, kinds, memory_order_relaxed);
}

void hw_shring_kept(void *mem, uint32_t kinds)
{
    ((struct shring *)mem)->kept = kinds;
}

uint64_t hw_shring_used(void *mem)
{
    struct shring *r = mem;
    return atomic_load_explicit(&r->records_in, memory_order_acquire) -
           atomic_load_explicit(&r->records_out, memory_order_acquire);
}
