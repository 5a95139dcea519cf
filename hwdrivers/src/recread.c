/* recread.c - reading capbox's recordings: pcapng blocks checked at both
 * ends, interfaces with their time resolution, packet times in nanoseconds,
 * and encrypted chunks opened with their key and authenticated (with the
 * file's header and the chunk's index, so that nothing can be moved, cut or
 * swapped unnoticed) before their plaintext is used.  extract.c indexes and
 * extracts with these. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recread.h"

#define CHUNK_HEADER 20
#define CHUNK_FINAL 1u
#define TAG 16
#define MAX_CHUNK (64u << 20)

static inline uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }


/* A packet time in nanoseconds from its interface's units (if_tsresol). */
static uint64_t to_ns(uint64_t ts, uint8_t res)
{
    if (res & 0x80) {
        int k = res & 0x7f;
        return k >= 64 ? 0 : (uint64_t)(((unsigned __int128)ts * HW_NS) >> k);
    }
    uint64_t ns = ts;
    for (int i = res; i < 9; i++) ns *= 10;
    for (int i = 9; i < res; i++) ns /= 10;
    return ns;
}

static uint8_t idb_tsresol(const uint8_t *b, uint32_t len)
{
    uint32_t o = 16;
    while (o + 4 <= len - 4) {
        uint16_t code = get16(b + o), olen = get16(b + o + 2);
        if (code == 0) break;
        if (code == 9 && olen == 1 && o + 5 <= len - 4) return b[o + 4];
        o += 4 + ((olen + 3u) & ~3u);
    }
    return 6;
}

/* The block at p (n bytes left): its length, or 0 when it is not a whole block. */
uint32_t hwint_rr_block_len(const uint8_t *p, size_t n)
{
    if (n < 12) return 0;
    uint32_t len = rr_get32(p + 4);
    if (len < 12 || len % 4 || len > n || rr_get32(p + len - 4) != len) return 0;
    return len;
}

/* Section headers and interfaces; other blocks are left to the caller. */
int hwint_rr_meta(struct walk *w, const uint8_t *p, uint32_t len)
{
    uint32_t type = rr_get32(p);
    if (type == 0x0A0D0D0A) {
        if (len < 28 || rr_get32(p + 8) != 0x1A2B3C4D)
            return hwint_err(w->errbuf, HW_E_FORMAT, "a section that is not in this machine's byte order");
        w->n_ifs = 0; /* a new section starts its interfaces afresh */
    } else if (type == 1) {
        if (len < 20 || len > RR_MAX_IDB || w->n_ifs == RR_MAX_IFACES)
            return hwint_err(w->errbuf, HW_E_FORMAT, "a bad interface block, or more than %d", RR_MAX_IFACES);
        struct iface *f = &w->ifs[w->n_ifs++];
        f->linktype = get16(p + 8);
        f->tsresol = idb_tsresol(p, len);
        memcpy(f->idb, p, len);
        f->idb_len = len;
        f->out_id = -1;
    }
    return HW_OK;
}

/* One packet block: its interface and time.  0 for another kind of block. */
int hwint_rr_packet(const struct walk *w, const uint8_t *p, uint32_t len, int *ifc, uint64_t *ns)
{
    if (rr_get32(p) != 6 || len < 32) return 0;
    uint32_t id = rr_get32(p + 8);
    if (id >= (uint32_t)w->n_ifs) return 0;
    *ifc = (int)id;
    *ns = to_ns((uint64_t)rr_get32(p + 12) << 32 | rr_get32(p + 16), w->ifs[id].tsresol);
    return 1;
}



int hwint_rr_enc_open(struct enc *e, int fd, uint64_t size, const uint8_t *key, char *errbuf)
{
    memset(e, 0, sizeof *e);
    e->fd = fd;
    e->size = size;
    if (pread(fd, e->header, RR_ENC_HEADER, 0) != RR_ENC_HEADER || memcmp(e->header, RR_ENC_MAGIC, 8))
        return hwint_err(errbuf, HW_E_FORMAT, "not an encrypted recording");
    if (!key) return hwint_err(errbuf, HW_E_ARG, "an encrypted recording needs its key");
    uint8_t d[32];
    unsigned int dn = 0;
    EVP_Digest(key, HW_REC_KEY_SIZE, d, &dn, EVP_sha256(), NULL);
    if (memcmp(d, e->header + 16, HW_REC_KEY_ID_SIZE))
        return hwint_err(errbuf, HW_E_ARG, "the key is not this recording's");
    e->max_chunk = (uint32_t)e->header[12] << 24 | (uint32_t)e->header[13] << 16 | (uint32_t)e->header[14] << 8 |
                   e->header[15];
    if (e->header[8] != 1 || e->header[9] != 1 || !e->max_chunk || e->max_chunk > MAX_CHUNK)
        return hwint_err(errbuf, HW_E_FORMAT, "an encrypted recording of an unknown version or chunk size");
    e->ctx = EVP_CIPHER_CTX_new();
    e->buf = malloc(CHUNK_HEADER + (size_t)e->max_chunk + TAG);
    if (!e->ctx || !e->buf) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    if (EVP_DecryptInit_ex(e->ctx, EVP_aes_256_gcm(), NULL, key, NULL) != 1)
        return hwint_err(errbuf, HW_E_FORMAT, "cipher setup failed");
    return HW_OK;
}

void hwint_rr_enc_close(struct enc *e)
{
    if (e->ctx) EVP_CIPHER_CTX_free(e->ctx);
    free(e->buf);
    e->ctx = NULL;
    e->buf = NULL;
}

/* Chunk `index` at `offset`: its plaintext (in e->buf) and length; *next its end, *final its flag.
 * 0 at a clean end of file, 1 with a chunk, or an error. */
int hwint_rr_enc_chunk(struct enc *e, uint64_t offset, uint64_t index, const uint8_t **plain, uint32_t *len,
                     uint64_t *next, int *final, char *errbuf)
{
    if (offset + CHUNK_HEADER > e->size) return 0;
    if (pread(e->fd, e->buf, CHUNK_HEADER, (off_t)offset) != CHUNK_HEADER)
        return hwint_err(errbuf, HW_E_IO, "read: %s", strerror(errno));
    uint32_t n = (uint32_t)e->buf[0] << 24 | (uint32_t)e->buf[1] << 16 | (uint32_t)e->buf[2] << 8 | e->buf[3];
    uint32_t flags = (uint32_t)e->buf[4] << 24 | (uint32_t)e->buf[5] << 16 | (uint32_t)e->buf[6] << 8 | e->buf[7];
    if (n > e->max_chunk || flags & ~CHUNK_FINAL)
        return hwint_err(errbuf, HW_E_FORMAT, "chunk %llu has an impossible header", (unsigned long long)index);
    if (offset + CHUNK_HEADER + n + TAG > e->size) return 0; /* torn: the end of what can be read */
    ssize_t k = pread(e->fd, e->buf + CHUNK_HEADER, (size_t)n + TAG, (off_t)(offset + CHUNK_HEADER));
    if (k != (ssize_t)n + TAG) return hwint_err(errbuf, HW_E_IO, "read: %s", k < 0 ? strerror(errno) : "short");
    uint8_t aad[RR_ENC_HEADER + 16];
    memcpy(aad, e->header, RR_ENC_HEADER);
    for (int i = 0; i < 8; i++) aad[RR_ENC_HEADER + i] = (uint8_t)(index >> (56 - 8 * i));
    memcpy(aad + RR_ENC_HEADER + 8, e->buf, 8);
    uint8_t *data = e->buf + CHUNK_HEADER;
    int outl = 0;
    if (EVP_DecryptInit_ex(e->ctx, NULL, NULL, NULL, e->buf + 8) != 1 ||
        EVP_DecryptUpdate(e->ctx, NULL, &outl, aad, (int)sizeof aad) != 1 ||
        (n && EVP_DecryptUpdate(e->ctx, data, &outl, data, (int)n) != 1) ||
        EVP_CIPHER_CTX_ctrl(e->ctx, EVP_CTRL_GCM_SET_TAG, TAG, data + n) != 1 ||
        EVP_DecryptFinal_ex(e->ctx, data + n, &outl) != 1)
        return hwint_err(errbuf, HW_E_FORMAT, "chunk %llu at byte %llu failed authentication",
                         (unsigned long long)index, (unsigned long long)offset);
    *plain = data;
    *len = n;
    *next = offset + CHUNK_HEADER + n + TAG;
    *final = (flags & CHUNK_FINAL) != 0;
    return 1;
}


/* The interfaces of a plain file: its blocks from the start up to the first packet. */
int hwint_rr_preamble(struct walk *w, const uint8_t *map, uint64_t size)
{
    uint64_t o = 0;
    uint32_t len;
    while ((len = hwint_rr_block_len(map + o, size - o)) && (rr_get32(map + o) == 0x0A0D0D0A || rr_get32(map + o) == 1)) {
        int rc = hwint_rr_meta(w, map + o, len);
        if (rc) return rc;
        o += len;
    }
    return HW_OK;
}
