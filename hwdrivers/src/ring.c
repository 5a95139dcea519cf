/* ring.c - single-producer, single-consumer ring of fixed-size records.
 * The capture loop produces and never waits: a full ring is the caller's
 * drop to count.  Consumers (Python threads) copy records out under a lock
 * of their own, so the producer never takes it. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

int hwint_ring_init(struct hw_ring *r, uint32_t records, uint32_t rec_size)
{
    uint32_t n = 1;
    while (n < records) n <<= 1;
    r->size = n;
    r->mask = n - 1;
    r->rec_size = rec_size;
    r->buf = calloc(n, rec_size);
    if (!r->buf) return HW_E_NOMEM;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    pthread_mutex_init(&r->read_lock, NULL);
    return HW_OK;
}

void hwint_ring_free(struct hw_ring *r)
{
    if (!r->buf) return;
    free(r->buf);
    r->buf = NULL;
    pthread_mutex_destroy(&r->read_lock);
}

void *hwint_ring_reserve(struct hw_ring *r)
{
    if (r->before) r->before(r->before_ctx, r);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= r->size) return NULL;
    return r->buf + (size_t)(head & r->mask) * r->rec_size;
}

void hwint_ring_commit(struct hw_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

int hwint_ring_read_each(struct hw_ring *r, void *out, int max, hwint_ring_copy copy)
{
    if (!r->buf || max <= 0) return 0;
    pthread_mutex_lock(&r->read_lock);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t n = head - tail;
    if (n > (uint64_t)max) n = (uint64_t)max;
    uint8_t *dst = out;
    for (uint64_t i = 0; i < n; i++, dst += r->rec_size) {
        const uint8_t *src = r->buf + (size_t)((tail + i) & r->mask) * r->rec_size;
        if (copy) copy(dst, src);
        else memcpy(dst, src, r->rec_size);
    }
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    pthread_mutex_unlock(&r->read_lock);
    return (int)n;
}

int hwint_ring_read(struct hw_ring *r, void *out, int max)
{
    return hwint_ring_read_each(r, out, max, NULL);
}

uint32_t hwint_ring_used(struct hw_ring *r)
{
    if (!r->buf) return 0;
    return (uint32_t)(atomic_load_explicit(&r->head, memory_order_acquire) -
                      atomic_load_explicit(&r->tail, memory_order_acquire));
}
