/* shring.c - the shared ring (cdef/shring.h).  Head and tail are on cache
 * lines of their own; the producer publishes records with a release store of
 * head, the consumer frees them with a release store of tail, so the two
 * processes need no lock and no system call per batch. */
#include <string.h>

#include "hw.h"

#define SHRING_MAGIC 0x676e697268736863ULL /* "chshring" */

struct shring {
    _Atomic uint64_t head;
    uint8_t pad0[56];
    _Atomic uint64_t tail;
    uint8_t pad1[56];
    uint64_t magic, size, rec_size;
};

_Static_assert(sizeof(struct shring) <= HW_SHRING_HEADER, "shring header");

static uint64_t capacity(uint64_t bytes, uint32_t rec_size)
{
    if (rec_size == 0 || bytes <= HW_SHRING_HEADER) return 0;
    uint64_t fit = (bytes - HW_SHRING_HEADER) / rec_size, n = 1;
    if (fit < 2) return 0;
    while (n * 2 <= fit) n *= 2;
    return n;
}

int64_t hw_shring_init(void *mem, uint64_t bytes, uint32_t rec_size)
{
    uint64_t n = capacity(bytes, rec_size);
    if (!mem || !n) return HW_E_ARG;
    struct shring *r = mem;
    memset(r, 0, sizeof *r);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->size = n;
    r->rec_size = rec_size;
    atomic_thread_fence(memory_order_release);
    r->magic = SHRING_MAGIC;
    return (int64_t)n;
}

int64_t hw_shring_attach(void *mem, uint64_t bytes, uint32_t rec_size)
{
    struct shring *r = mem;
    if (!mem || bytes <= HW_SHRING_HEADER || r->magic != SHRING_MAGIC || r->rec_size != rec_size ||
        r->size != capacity(bytes, rec_size))
        return HW_E_ARG;
    atomic_thread_fence(memory_order_acquire);
    return (int64_t)r->size;
}

uint32_t hw_shring_reserve(void *mem, uint64_t *offset)
{
    struct shring *r = mem;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t at = head & (r->size - 1), free = r->size - (head - tail);
    if (free > r->size - at) free = r->size - at;  /* up to the end of the buffer */
    *offset = HW_SHRING_HEADER + at * r->rec_size;
    return (uint32_t)free;
}

void hw_shring_commit(void *mem, uint32_t n)
{
    struct shring *r = mem;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + n, memory_order_release);
}

uint32_t hw_shring_peek(void *mem, uint64_t *offset)
{
    struct shring *r = mem;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t at = tail & (r->size - 1), used = head - tail;
    if (used > r->size - at) used = r->size - at;
    *offset = HW_SHRING_HEADER + at * r->rec_size;
    return (uint32_t)used;
}

void hw_shring_release(void *mem, uint32_t n)
{
    struct shring *r = mem;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
}

uint64_t hw_shring_used(void *mem)
{
    struct shring *r = mem;
    return atomic_load_explicit(&r->head, memory_order_acquire) - atomic_load_explicit(&r->tail, memory_order_acquire);
}
