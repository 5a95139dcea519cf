/* shring.h - a single-producer, single-consumer ring of packed event records in
 * memory that two processes map (a memfd): the agent's dispatcher moves events
 * in from a session's C ring, the consumer worker reads them in place.  Each
 * record holds only what its event uses (the head, the snippet's bytes, the
 * record of its kind; a DNS event: its kept records and text, the query and
 * repeat folded in), so the ring holds several small events where a
 * struct hw_event would fill it.  Neither side waits on the other: a full ring
 * is the live producer's drop to count (`capbox detect`'s tries again once the
 * worker took some: hwdrivers/shring.py, fill's wait).  Head, tail and counts live in the
 * mapping's first HW_SHRING_HEADER bytes. */

#define HW_SHRING_HEADER 256

/* A packed record: this header, the event (struct hw_event's bytes up to its snippet, then snippet_len bytes),
 * its record at rec_at (its kind's struct; a DNS record packed: src/shring.c put_rec) and, for a DNS event,
 * the struct hw_dns_fold and hw_dns_repeat it carries at fold_at
 * (offsets from the event's start, 8-aligned).  len 0: nothing more before the end of the buffer. */
struct hw_shrec {
    uint32_t len;               /* bytes of the record, header included (8-aligned) */
    uint16_t rec_at, fold_at;   /* 0: none */
};

/* Lay out a ring in bytes of mem: its capacity in bytes, or HW_E_ARG. */
int64_t hw_shring_init(void *mem, uint64_t bytes);
/* Check the ring another process laid out in mem: its capacity in bytes, or HW_E_ARG. */
int64_t hw_shring_attach(void *mem, uint64_t bytes);
/* Producer: move up to max events from s's event ring, oldest first, until one does not fit (*full 1); the
 * records' offsets (bytes from mem) in offsets[].  How many moved. */
int hw_shring_fill(void *mem, struct hw_session *s, int max, uint64_t *offsets, int *full);
/* Consumer: the offsets of up to max queued records, oldest first, and *next, the tail after them; then
 * release them (n records, up to next). */
uint32_t hw_shring_peek(void *mem, uint32_t max, uint64_t *offsets, uint64_t *next);
void hw_shring_release(void *mem, uint64_t next, uint32_t n);
/* Consumer: the kinds (1 << HW_EV_*) whose records it never reads, from the next fill on: left out of their
 * records (rec_at 0) unless the producer reads them too.  Producer: the kinds whose records it reads. */
void hw_shring_unread(void *mem, uint32_t kinds);
void hw_shring_kept(void *mem, uint32_t kinds);
/* Records queued now. */
uint64_t hw_shring_used(void *mem);
