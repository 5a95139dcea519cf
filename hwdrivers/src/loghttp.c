/* loghttp.c - the http log lines (cdef/logs.h): a request waits for its
 * response in a bounded table of flows, then one line tells both.  Without
 * TCP reassembly a head can be missed, so a response answers the request its
 * ACK acknowledges (the ones before it go out unanswered), else the oldest;
 * requests still waiting when their flow ends go out without a status.  The
 * fields, their order and their text are those agent.logs.records writes
 * (Builder._on_http), byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "logger.h"

#define REQUESTS_MAX 256            /* requests of one flow waiting at once (agent.logs.records.REQUESTS_MAX) */
#define SEEN_BITS 19                /* a filter of 2^19 bits (64 KB): most flows that end never had HTTP */

struct req {                        /* a request waiting for its response */
    struct req *next;
    uint32_t end;                   /* its sequence number + payload length: the ACK of its response */
    uint16_t info;                  /* a 1xx answer seen before the final one (0: none) */
    size_t len;
    char text[];                    /* its line so far: the head and the request's fields, no closing brace */
};

struct hflow {
    uint64_t flow_id;
    struct hflow *hnext;            /* hash chain */
    struct hflow *older, *newer;    /* the order flows began waiting (while requests wait) */
    struct req *first, *last;
    uint32_t waiting;               /* requests in the queue */
    uint32_t depth;                 /* requests seen (trans_depth); 0: not counted (Builder._depth) */
};

struct hwint_http {
    struct hflow **bucket;
    uint32_t mask, max;
    uint32_t counted, pending;      /* flows with a depth; flows with requests waiting */
    struct hflow *oldest, *newest;
    uint32_t entries;               /* flows in the table */
    uint64_t seen[(1u << SEEN_BITS) / 64];  /* a bit set for every flow put in the table since it was empty */
};

static uint32_t seen_bit(uint64_t flow_id) { return (uint32_t)((flow_id * 0xc2b2ae3d27d4eb4fULL) >> (64 - SEEN_BITS)); }

struct hwint_http *hwint_http_new(uint32_t max)
{
    struct hwint_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->bucket = hwint_log_buckets(max, sizeof *h->bucket, &h->mask);
    if (!h->bucket) {
        free(h);
        return NULL;
    }
    h->max = max ? max : 1;
    return h;
}

static void free_queue(struct hflow *f)
{
    for (struct req *q = f->first, *next; q; q = next) next = q->next, free(q);
    f->first = f->last = NULL;
    f->waiting = 0;
}

void hwint_http_free(struct hwint_http *h)
{
    if (!h) return;
    for (uint32_t i = 0, left = h->entries; left && i <= h->mask; i++)     /* (untouched buckets stay so) */
        for (struct hflow *f = h->bucket[i], *next; f; f = next, left--) {
            next = f->hnext;
            free_queue(f);
            free(f);
        }
    free(h->bucket);
    free(h);
}

static uint32_t bucket_of(const struct hwint_http *h, uint64_t flow_id)
{
    return (uint32_t)(flow_id * 0x9e3779b97f4a7c15ULL >> 32) & h->mask;
}

/* (the bucket array and its mask never change: read without the logger's lock) */
void hwint_http_prefetch(const struct hwint_http *h, uint64_t flow_id)
{
    __builtin_prefetch(&h->bucket[bucket_of(h, flow_id)]);
}

/* Asked of the flows a few ahead of the one whose end is told (hw_logger_flows): a flow the filter has seen gets
 * its bucket fetched (stage 0), then the entry the bucket points to (stage 1), so that the end's lookup finds
 * both in cache where each was a miss, one after the other. */
void hwint_http_prefetch_ended(const struct hwint_http *h, uint64_t flow_id, int stage)
{
    uint32_t bit = seen_bit(flow_id);
    if (!(h->seen[bit / 64] & 1ULL << (bit % 64))) return;
    struct hflow *const *at = &h->bucket[bucket_of(h, flow_id)];
    if (!stage) __builtin_prefetch(at);
    else if (*at) __builtin_prefetch(*at);
}

static struct hflow **slot(struct hwint_http *h, uint64_t flow_id)
{
    struct hflow **at = &h->bucket[bucket_of(h, flow_id)];
    while (*at && (*at)->flow_id != flow_id) at = &(*at)->hnext;
    return at;
}

/* The flow's entry goes when nothing is kept of it (no depth, no request waiting). */
static void drop_if_empty(struct hwint_http *h, struct hflow *f)
{
    if (f->depth || f->first) return;
    struct hflow **at = slot(h, f->flow_id);
    *at = f->hnext;
    free(f);
    if (!--h->entries) memset(h->seen, 0, sizeof h->seen);
}

static void unlink_pending(struct hwint_http *h, struct hflow *f)
{
    if (f->older) f->older->newer = f->newer;
    else h->oldest = f->newer;
    if (f->newer) f->newer->older = f->older;
    else h->newest = f->older;
    f->older = f->newer = NULL;
    h->pending--;
}

static void response_fields(struct hwint_jbuf *b, const struct hw_rec_http *r)
{
    hwint_j_key(b, "status_code"), hwint_j_u64(b, r->status);
    if (r->location[0]) hwint_j_key(b, "location"), hwint_j_str(b, (const uint8_t *)r->location,
                                                                 strlen(r->location), HWINT_J_UTF8);
    if (r->content_type[0])
        hwint_j_key(b, "content_type"), hwint_j_str(b, (const uint8_t *)r->content_type, strlen(r->content_type),
                                                    HWINT_J_UTF8);
    if (r->content_length >= 0) hwint_j_key(b, "response_body_len"), hwint_j_u64(b, (uint64_t)r->content_length);
}

/* A request's line: as it waited, with its response's fields when it has one. */
static void request_line(struct hw_logger *lg, const struct req *q, const struct hw_rec_http *resp)
{
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_HTTP);
    size_t start = b->len;
    hwint_j_raw(b, q->text, q->len);
    if (q->info) hwint_j_key(b, "info_code"), hwint_j_u64(b, q->info);
    if (resp) response_fields(b, resp);
    hwint_log_end(lg, HW_LOG_HTTP, start);
}

/* The first n requests waiting on f go out (with resp, the last of them is answered). */
static void release(struct hw_logger *lg, struct hwint_http *h, struct hflow *f, uint32_t n,
                    const struct hw_rec_http *resp)
{
    for (uint32_t i = 0; i < n && f->first; i++) {
        struct req *q = f->first;
        request_line(lg, q, i + 1 == n ? resp : NULL);
        f->first = q->next;
        f->waiting--;
        free(q);
    }
    if (!f->first) {
        f->last = NULL;
        unlink_pending(h, f);
    }
}

static void str_field(struct hwint_jbuf *b, const char *key, const char *s, int always)
{
    if (!always && !s[0]) return;
    hwint_j_key(b, key);
    hwint_j_str(b, (const uint8_t *)s, strlen(s), HWINT_J_UTF8);
}

/* The head and the request's fields, made at the end of the http buffer and moved out of it. */
static struct req *make_request(struct hw_logger *lg, const struct hw_event *e, uint32_t depth, uint32_t end)
{
    const struct hw_rec_http *r = &e->rec.http;
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_HTTP);
    size_t start = b->len;
    int fwd = e->from_initiator;
    hwint_log_head(lg, HW_LOG_HTTP, e->ts_ns, e->flow_id, e->family, fwd ? e->src : e->dst, fwd ? e->sport : e->dport,
                   fwd ? e->dst : e->src, fwd ? e->dport : e->sport, e->proto, 0, NULL);
    hwint_j_key(b, "trans_depth"), hwint_j_u64(b, depth);
    str_field(b, "method", r->method, 1);
    str_field(b, "host", r->host, 0);
    str_field(b, "uri", r->uri, 1);
    str_field(b, "version", strlen(r->version) > 5 ? r->version + 5 : "", 0);
    str_field(b, "user_agent", r->user_agent, 0);
    if (r->content_length >= 0) hwint_j_key(b, "request_body_len"), hwint_j_u64(b, (uint64_t)r->content_length);
    if (!r->complete) hwint_j_key(b, "head_cut"), hwint_j_bool(b, 1);
    struct req *q = b->failed ? NULL : malloc(sizeof *q + (b->len - start));
    if (!q) {                                       /* no memory: the request is dropped and counted */
        b->failed = 1;
        hwint_log_end(lg, HW_LOG_HTTP, start);
        return NULL;
    }
    *q = (struct req){.end = end, .len = b->len - start};
    memcpy(q->text, b->p + start, q->len);
    b->len = start;
    return q;
}

/* Builder._depth holds at most max flows: past it, every count starts over. */
static void forget_depths(struct hwint_http *h)
{
    for (uint32_t i = 0; i <= h->mask; i++)
        for (struct hflow *f = h->bucket[i], *next; f; f = next) {
            next = f->hnext;
            f->depth = 0;
            drop_if_empty(h, f);
        }
    h->counted = 0;
}

static void on_request(struct hw_logger *lg, struct hwint_http *h, const struct hw_event *e)
{
    uint32_t end = e->seq + e->payload_len;
    struct hflow *f = *slot(h, e->flow_id);
    for (struct req *q = f ? f->first : NULL; q; q = q->next)
        if (q->end == end) return;                  /* a retransmitted request */
    if (h->counted >= h->max) {
        forget_depths(h);
        f = *slot(h, e->flow_id);
    }
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f) return;
        f->flow_id = e->flow_id;
        *slot(h, e->flow_id) = f;
        h->entries++;
        h->seen[seen_bit(f->flow_id) / 64] |= 1ULL << (seen_bit(f->flow_id) % 64);
    }
    if (!f->depth++) h->counted++;
    struct req *q = make_request(lg, e, f->depth, end);
    if (!q) return;
    if (!f->first) {                                /* the flow begins waiting: the oldest flow goes when full */
        if (h->pending >= h->max && h->oldest) {
            struct hflow *old = h->oldest;
            release(lg, h, old, old->waiting, NULL);
            drop_if_empty(h, old);
            hwint_log_early(lg);
        }
        f->older = h->newest;
        if (h->newest) h->newest->newer = f;
        else h->oldest = f;
        h->newest = f;
        h->pending++;
    } else if (f->waiting >= REQUESTS_MAX) {
        release(lg, h, f, 1, NULL);                 /* the flow still waits: its oldest request goes */
        hwint_log_early(lg);
    }
    if (f->last) f->last->next = q;
    else f->first = q;
    f->last = q;
    f->waiting++;
}

static void on_response(struct hw_logger *lg, struct hwint_http *h, const struct hw_event *e)
{
    const struct hw_rec_http *r = &e->rec.http;
    struct hflow *f = *slot(h, e->flow_id);
    if (f && f->first) {
        uint32_t at = 0, i = 0;
        struct req *q = f->first;
        for (struct req *p = f->first; p; p = p->next, i++)
            if (p->end == e->ack) {
                at = i, q = p;
                break;
            }
        if (r->status >= 100 && r->status < 200 && r->status != 101) {   /* an interim answer: the final follows */
            q->info = r->status;
            return;
        }
        release(lg, h, f, at + 1, r);
        drop_if_empty(h, f);
        return;
    }
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_HTTP);
    size_t start = b->len;
    int fwd = e->from_initiator;
    hwint_log_head(lg, HW_LOG_HTTP, e->ts_ns, e->flow_id, e->family, fwd ? e->src : e->dst, fwd ? e->sport : e->dport,
                   fwd ? e->dst : e->src, fwd ? e->dport : e->sport, e->proto, 0, NULL);
    str_field(b, "version", strlen(r->version) > 5 ? r->version + 5 : "", 0);
    response_fields(b, r);
    hwint_log_end(lg, HW_LOG_HTTP, start);
}

void hwint_http_event(struct hw_logger *lg, struct hwint_http *h, const struct hw_event *e)
{
    if (e->rec.http.response) on_response(lg, h, e);
    else on_request(lg, h, e);
}

void hwint_http_ended(struct hw_logger *lg, struct hwint_http *h, uint64_t flow_id)
{
    uint32_t bit = seen_bit(flow_id);
    if (!(h->seen[bit / 64] & 1ULL << (bit % 64))) return;      /* never in the table: no lookup */
    struct hflow *f = *slot(h, flow_id);
    if (!f) return;
    if (f->first) release(lg, h, f, f->waiting, NULL);
    if (f->depth) h->counted--;
    f->depth = 0;
    drop_if_empty(h, f);
}

void hwint_http_flush(struct hw_logger *lg, struct hwint_http *h)
{
    while (h->oldest) {
        struct hflow *f = h->oldest;
        release(lg, h, f, f->waiting, NULL);
        drop_if_empty(h, f);
    }
}
