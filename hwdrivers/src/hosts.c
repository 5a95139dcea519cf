/* hosts.c - talkers: per-host byte, packet and flow totals.  Folded in once
 * per flow as it leaves the table, so the cost is per flow, not per packet. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

struct hw_hosts {
    uint32_t mask, count, max;
    struct hw_host *slot; /* family == 0: empty */
};

struct hw_hosts *hwint_hosts_create(uint32_t max_hosts)
{
    struct hw_hosts *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    uint32_t n = 16;
    while (n < max_hosts * 2) n <<= 1;
    h->slot = calloc(n, sizeof *h->slot);
    if (!h->slot) {
        free(h);
        return NULL;
    }
    h->mask = n - 1;
    h->max = max_hosts;
    return h;
}

void hwint_hosts_destroy(struct hw_hosts *h)
{
    if (!h) return;
    free(h->slot);
    free(h);
}

static struct hw_host *find(struct hw_hosts *h, const uint8_t *addr, uint8_t family,
                            struct hw_counters *c)
{
    uint32_t i = (uint32_t)hw_mix_addr(addr, family) & h->mask;
    for (;; i = (i + 1) & h->mask) {
        struct hw_host *e = &h->slot[i];
        if (e->family == 0) {
            if (h->count >= h->max) {
                c->hosts_dropped++;
                return NULL;
            }
            h->count++;
            memcpy(e->addr, addr, 16);
            e->family = family;
            return e;
        }
        if (e->family == family && !memcmp(e->addr, addr, 16)) return e;
    }
}

void hwint_hosts_prefetch(const struct hw_hosts *h, const uint8_t *addr, uint8_t family)
{
    const struct hw_host *e = &h->slot[(uint32_t)hw_mix_addr(addr, family) & h->mask];
    __builtin_prefetch(e, 1);
    __builtin_prefetch((const char *)(e + 1) - 1, 1);  /* its counters: calloc's slots straddle two cache lines */
}

void hwint_hosts_add(struct hw_hosts *h, const struct hw_flow_record *r, struct hw_counters *c)
{
    struct hw_host *s = find(h, r->src, r->family, c);
    if (s) {
        s->bytes_out += r->bytes[0], s->bytes_in += r->bytes[1];
        s->packets_out += r->packets[0], s->packets_in += r->packets[1];
        s->flows += !r->continued;
    }
    struct hw_host *d = find(h, r->dst, r->family, c);
    if (d && d != s) {
        d->bytes_out += r->bytes[1], d->bytes_in += r->bytes[0];
        d->packets_out += r->packets[1], d->packets_in += r->packets[0];
        d->flows += !r->continued;
    }
}

static uint64_t total(const void *e)
{
    const struct hw_host *h = e;
    return h->bytes_out + h->bytes_in;
}

int hwint_hosts_top(struct hw_hosts *h, struct hw_host *out, int max)
{
    struct hw_topn t = {out, max, 0, sizeof *out, total};
    for (uint32_t i = 0; i <= h->mask; i++)
        if (h->slot[i].family) hwint_topn_push(&t, &h->slot[i]);
    return hwint_topn_finish(&t);
}
