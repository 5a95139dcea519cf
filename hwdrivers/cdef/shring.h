/* shring.h - a single-producer, single-consumer ring of fixed-size records in
 * memory that two processes map (a memfd): the agent's dispatcher copies
 * event records in, the consumer worker reads them in place.  Neither side
 * waits on the other: a full ring is the producer's drop to count.  The
 * ring's head and tail live in the mapping's first HW_SHRING_HEADER bytes. */

#define HW_SHRING_HEADER 256

/* Lay out a ring in bytes of mem: its capacity in records (a power of two), or HW_E_ARG. */
int64_t hw_shring_init(void *mem, uint64_t bytes, uint32_t rec_size);
/* Check the ring another process laid out in mem: its capacity, or HW_E_ARG. */
int64_t hw_shring_attach(void *mem, uint64_t bytes, uint32_t rec_size);
/* Producer: free records that follow one another from *offset (bytes from mem); then commit n of them. */
uint32_t hw_shring_reserve(void *mem, uint64_t *offset);
void hw_shring_commit(void *mem, uint32_t n);
/* Consumer: queued records that follow one another from *offset; then release n of them. */
uint32_t hw_shring_peek(void *mem, uint64_t *offset);
void hw_shring_release(void *mem, uint32_t n);
/* Records queued now. */
uint64_t hw_shring_used(void *mem);
