/* recread.h - reading capbox's recordings (internal to the C core): pcapng
 * blocks in this machine's byte order, the interfaces they name, packet
 * times in nanoseconds, and the AES-256-GCM chunks of an encrypted recording
 * (docs/RECORDING.md), each authenticated before its plaintext is used. */
#ifndef CAPBOX_RECREAD_H
#define CAPBOX_RECREAD_H

#include <string.h>

#include <openssl/evp.h>

#include "hw.h"

#define RR_ENC_MAGIC "\x89" "CBX\r\n\x1a\n"
#define RR_ENC_HEADER 48
#define RR_MAX_IFACES 16        /* interfaces of one file */
#define RR_MAX_IDB 1024         /* bytes of an interface block */
#define RR_NO_TIME UINT64_MAX

struct iface {
    int linktype;
    uint8_t tsresol;
    uint8_t idb[RR_MAX_IDB];       /* the block (a chunk's plaintext does not outlive the chunk) */
    uint32_t idb_len;
    int out_id;                 /* -1 until a packet of it is written */
};

/* What a walk over a file's blocks knows: its interfaces. */
struct walk {
    struct iface ifs[RR_MAX_IFACES];
    int n_ifs;
    char *errbuf;
};

struct enc {
    int fd;
    uint64_t size;
    uint8_t header[RR_ENC_HEADER];
    uint32_t max_chunk;
    EVP_CIPHER_CTX *ctx;
    uint8_t *buf;               /* one chunk: header, data, tag */
};

static inline uint32_t rr_get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* The block at p (n bytes left): its length, or 0 when it is not a whole block. */
uint32_t hwint_rr_block_len(const uint8_t *p, size_t n);
/* Section headers and interface descriptions update w; other blocks are left alone. */
int hwint_rr_meta(struct walk *w, const uint8_t *p, uint32_t len);
/* A packet block's interface and time; 0 for any other block. */
int hwint_rr_packet(const struct walk *w, const uint8_t *p, uint32_t len, int *ifc, uint64_t *ns);
/* The interfaces of a file: its blocks from the start up to the first that is neither. */
int hwint_rr_preamble(struct walk *w, const uint8_t *p, uint64_t size);
int hwint_rr_enc_open(struct enc *e, int fd, uint64_t size, const uint8_t *key, char *errbuf);
void hwint_rr_enc_close(struct enc *e);
/* Chunk `index` at `offset`, authenticated: its plaintext and length, *next its end, *final
 * its flag.  1 with a chunk, 0 at the end of what can be read, or an error. */
int hwint_rr_enc_chunk(struct enc *e, uint64_t offset, uint64_t index, const uint8_t **plain, uint32_t *len,
                       uint64_t *next, int *final, char *errbuf);

#endif
