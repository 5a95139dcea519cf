/* extract.c - the packets behind an answer, out of the recordings.
 *
 * A recording is pcapng written by record.c: one section, one interface,
 * Enhanced Packet Blocks in host byte order; encrypted, the same bytes in
 * AES-256-GCM chunks that each hold whole blocks (docs/RECORDING.md; read
 * through recread.c).  hw_pcap_index_file walks a file once and cuts it into
 * ranges of whole blocks (plain: about `span` bytes each; encrypted: one per
 * chunk) with the earliest and latest packet time in each.  hw_pcap_extract
 * reads only the ranges it is given (the caller picks those that overlap the
 * window from the index), keeps the packets inside the window that pass
 * libpcap's BPF, and writes them as one pcapng section: a Section Header,
 * each interface the kept packets came from once, and their Enhanced Packet
 * Blocks unchanged but for the interface id. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recread.h"

#define MAX_OUT_IFACES 256      /* distinct interfaces in one output */
#define OUT_BUF (1u << 20)

/* ---- the index ------------------------------------------------------------------- */

static int add_mark(struct hw_pcap_index *ix, uint32_t *cap, uint64_t offset, uint64_t chunk)
{
    if (ix->n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        struct hw_pcap_mark *m = realloc(ix->marks, nc * sizeof *m);
        if (!m) return -1;
        ix->marks = m;
        *cap = nc;
    }
    struct hw_pcap_mark *m = &ix->marks[ix->n++];
    memset(m, 0, sizeof *m);
    m->offset = m->end = offset;
    m->chunk = chunk;
    m->first_ns = RR_NO_TIME;
    return 0;
}

static void note_packet(struct hw_pcap_index *ix, struct hw_pcap_mark *m, uint64_t ns)
{
    if (ns < m->first_ns) m->first_ns = ns;
    if (m->last_ns < ns || m->packets == 0) m->last_ns = ns;
    if (ns < ix->first_ns) ix->first_ns = ns;
    if (ix->last_ns < ns || ix->packets == 0) ix->last_ns = ns;
    m->packets++;
    ix->packets++;
}

/* The blocks of p[0..n): interfaces learnt, packets counted into mark m.  Bytes of whole blocks. */
static int64_t index_blocks(struct walk *w, struct hw_pcap_index *ix, struct hw_pcap_mark *m, const uint8_t *p,
                            size_t n)
{
    size_t o = 0;
    uint32_t len;
    while ((len = hwint_rr_block_len(p + o, n - o))) {
        int rc = hwint_rr_meta(w, p + o, len), ifc;
        if (rc) return rc;
        uint64_t ns;
        if (hwint_rr_packet(w, p + o, len, &ifc, &ns)) note_packet(ix, m, ns);
        o += len;
    }
    return (int64_t)o;
}

static int index_plain(const uint8_t *map, uint64_t size, uint32_t span, struct hw_pcap_index *ix, char *errbuf)
{
    struct walk w = {.errbuf = errbuf};
    uint32_t cap = 0;
    uint64_t o = 0;
    while (o < size) {
        if (add_mark(ix, &cap, o, 0)) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
        struct hw_pcap_mark *m = &ix->marks[ix->n - 1];
        /* whole blocks up to about span bytes */
        uint64_t stop = o + span < size ? o + span : size;
        uint32_t len;
        while (o < stop && (len = hwint_rr_block_len(map + o, size - o))) {
            int64_t rc = index_blocks(&w, ix, m, map + o, len);
            if (rc < 0) return (int)rc;
            o += len;
        }
        m->end = o;
        if (m->end == m->offset) {
            ix->n--;
            break;
        }
    }
    ix->size = o;
    ix->complete = o == size;
    return HW_OK;
}

static int index_encrypted(int fd, uint64_t size, const uint8_t *key, struct hw_pcap_index *ix, char *errbuf)
{
    struct enc e;
    int rc = hwint_rr_enc_open(&e, fd, size, key, errbuf);
    struct walk w = {.errbuf = errbuf};
    uint32_t cap = 0;
    uint64_t o = RR_ENC_HEADER, index = 0;
    ix->size = o;
    while (rc == HW_OK) {
        const uint8_t *plain;
        uint32_t len;
        uint64_t next;
        int final;
        rc = hwint_rr_enc_chunk(&e, o, index, &plain, &len, &next, &final, errbuf);
        if (rc <= 0) break;
        if (add_mark(ix, &cap, o, index)) {
            rc = hwint_err(errbuf, HW_E_NOMEM, "out of memory");
            break;
        }
        struct hw_pcap_mark *m = &ix->marks[ix->n - 1];
        int64_t k = index_blocks(&w, ix, m, plain, len);
        if (k < 0) {
            rc = (int)k;
            break;
        }
        m->end = next;
        ix->size = o = next;
        index++;
        rc = HW_OK;
        if (final) {
            ix->complete = 1;
            break;
        }
    }
    hwint_rr_enc_close(&e);
    return rc < 0 ? rc : HW_OK;
}

void hw_pcap_index_free(struct hw_pcap_index *ix)
{
    free(ix->marks);
    ix->marks = NULL;
    ix->n = 0;
}

int hw_pcap_index_file(const char *path, const uint8_t *key, uint32_t span, struct hw_pcap_index *out, char *errbuf)
{
    memset(out, 0, sizeof *out);
    out->first_ns = RR_NO_TIME;
    if (span < 4096) span = 4096;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return hwint_err(errbuf, HW_E_OPEN, "%s: %s", path, strerror(errno));
    struct stat sb;
    uint8_t magic[8] = {0};
    int rc;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = hwint_err(errbuf, HW_E_OPEN, "%s: not a regular file", path);
    } else if (pread(fd, magic, 8, 0) == 8 && !memcmp(magic, RR_ENC_MAGIC, 8)) {
        rc = index_encrypted(fd, (uint64_t)sb.st_size, key, out, errbuf);
    } else if (sb.st_size == 0) {
        rc = HW_OK;
    } else {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            rc = hwint_err(errbuf, HW_E_IO, "mmap %s: %s", path, strerror(errno));
        } else {
            rc = index_plain(map, (uint64_t)sb.st_size, span, out, errbuf);
            munmap(map, (size_t)sb.st_size);
        }
    }
    close(fd);
    if (rc) hw_pcap_index_free(out);
    return rc;
}

/* ---- extraction ------------------------------------------------------------------- */

struct out {
    int fd;
    uint8_t *buf;
    uint32_t len;
    uint8_t *idbs[MAX_OUT_IFACES];  /* the interfaces written, to find one again */
    uint32_t idb_len[MAX_OUT_IFACES];
    struct bpf_program progs[MAX_OUT_IFACES];
    int n;
    const char *bpf;
    struct hw_pcap_extract_stats *st;
    char *errbuf;
};

static int flush_out(struct out *o)
{
    const uint8_t *p = o->buf;
    size_t n = o->len;
    while (n) {
        ssize_t k = write(o->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return hwint_err(o->errbuf, HW_E_IO, "write: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    o->st->bytes_out += o->len;
    o->len = 0;
    return HW_OK;
}

static int put_out(struct out *o, const uint8_t *p, uint32_t n)
{
    if (o->len + n > OUT_BUF) {
        int rc = flush_out(o);
        if (rc) return rc;
    }
    if (n > OUT_BUF) return hwint_err(o->errbuf, HW_E_FORMAT, "a block of %u bytes", n);
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return HW_OK;
}

static int put_shb(struct out *o)
{
    static const char appl[] = "capbox extract";
    uint8_t b[52];   /* header 24, option 4 + 16, end of options 4, length 4 */
    memset(b, 0, sizeof b);
    uint32_t v = 0x0A0D0D0A, len = sizeof b, magic = 0x1A2B3C4D;
    memcpy(b, &v, 4);
    memcpy(b + 4, &len, 4);
    memcpy(b + 8, &magic, 4);
    uint16_t major = 1, minor = 0, code = 4, olen = sizeof appl - 1;
    memcpy(b + 12, &major, 2);
    memcpy(b + 14, &minor, 2);
    memset(b + 16, 0xff, 8);          /* section length unknown */
    memcpy(b + 24, &code, 2);         /* shb_userappl */
    memcpy(b + 26, &olen, 2);
    memcpy(b + 28, appl, sizeof appl - 1); /* 14 bytes, padded to 16 */
    memcpy(b + 48, &len, 4);
    return put_out(o, b, sizeof b);
}

/* The output's id for a file's interface: written (with its filter compiled) the first time. */
static int out_iface(struct out *o, struct iface *f)
{
    if (f->out_id >= 0) return f->out_id;
    for (int i = 0; i < o->n; i++)
        if (o->idb_len[i] == f->idb_len && !memcmp(o->idbs[i], f->idb, f->idb_len)) return f->out_id = i;
    if (o->n == MAX_OUT_IFACES) return hwint_err(o->errbuf, HW_E_FORMAT, "more than %d interfaces", MAX_OUT_IFACES);
    int i = o->n;
    o->idbs[i] = malloc(f->idb_len);
    if (!o->idbs[i]) return hwint_err(o->errbuf, HW_E_NOMEM, "out of memory");
    memcpy(o->idbs[i], f->idb, f->idb_len);
    o->idb_len[i] = f->idb_len;
    if (o->bpf && *o->bpf) {
        int rc = hwint_bpf_compile(f->linktype, HW_MAX_CAPLEN, o->bpf, &o->progs[i], o->errbuf);
        if (rc) {
            free(o->idbs[i]);
            return rc;
        }
    }
    o->n++;
    int rc = put_out(o, f->idb, f->idb_len);
    return rc ? rc : (f->out_id = i);
}

static int passes(struct out *o, const struct iface *f, const uint8_t *epb, uint32_t len)
{
    if (!o->bpf || !*o->bpf) return 1;
    uint32_t cap = rr_get32(epb + 20), wire = rr_get32(epb + 24);
    if (28 + (uint64_t)cap > len - 4) return 0;
    struct pcap_pkthdr h = {{0, 0}, cap, wire};
    return pcap_offline_filter(&o->progs[f->out_id], &h, epb + 28) != 0;
}

/* The blocks of one range: the packets in the window that pass, out. */
static int extract_blocks(struct out *o, struct walk *w, const uint8_t *p, size_t n, uint64_t since, uint64_t until)
{
    size_t off = 0;
    uint32_t len;
    while ((len = hwint_rr_block_len(p + off, n - off))) {
        const uint8_t *b = p + off;
        off += len;
        int rc = hwint_rr_meta(w, b, len), ifc;
        if (rc) return rc;
        uint64_t ns;
        if (!hwint_rr_packet(w, b, len, &ifc, &ns)) continue;
        o->st->examined++;
        if (ns < since || ns > until) continue;
        struct iface *f = &w->ifs[ifc];
        int id = f->out_id;
        if (id < 0) {
            /* the filter is compiled for a link type once an interface is first met */
            id = out_iface(o, f);
            if (id < 0) return id;
        }
        if (!passes(o, f, b, len)) continue;
        uint32_t nid = (uint32_t)id;
        if (o->len + len > OUT_BUF && (rc = flush_out(o))) return rc;
        if (len > OUT_BUF) continue;
        memcpy(o->buf + o->len, b, len);
        memcpy(o->buf + o->len + 8, &nid, 4);
        o->len += len;
        o->st->packets++;
    }
    return HW_OK;
}


static int extract_plain(struct out *o, const struct hw_pcap_source *s, int fd, uint64_t size, uint64_t since,
                         uint64_t until)
{
    if (!size) return HW_OK;
    const uint8_t *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return hwint_err(o->errbuf, HW_E_IO, "mmap %s: %s", s->path, strerror(errno));
    struct walk w = {.errbuf = o->errbuf};
    int rc = hwint_rr_preamble(&w, map, size);
    for (uint32_t i = 0; !rc && i < s->n_marks; i++) {
        const struct hw_pcap_mark *m = &s->marks[i];
        if (m->offset >= size || m->end > size || m->end < m->offset) continue; /* an index of another file */
        /* a mark's blocks may belong to a new section: walked blocks update the interfaces */
        rc = extract_blocks(o, &w, map + m->offset, m->end - m->offset, since, until);
        o->st->bytes_read += m->end - m->offset;
        o->st->ranges++;
    }
    munmap((void *)map, (size_t)size);
    return rc;
}

static int extract_encrypted(struct out *o, const struct hw_pcap_source *s, int fd, uint64_t size, uint64_t since,
                             uint64_t until)
{
    struct enc e;
    int rc = hwint_rr_enc_open(&e, fd, size, s->key, o->errbuf);
    struct walk w = {.errbuf = o->errbuf};
    const uint8_t *plain;
    uint32_t len;
    uint64_t next;
    int final;
    if (!rc && (rc = hwint_rr_enc_chunk(&e, RR_ENC_HEADER, 0, &plain, &len, &next, &final, o->errbuf)) > 0)
        rc = hwint_rr_preamble(&w, plain, len);
    for (uint32_t i = 0; rc >= 0 && i < s->n_marks; i++) {
        const struct hw_pcap_mark *m = &s->marks[i];
        if (m->chunk == 0) w.n_ifs = 0; /* chunk 0 starts with the section again */
        rc = hwint_rr_enc_chunk(&e, m->offset, m->chunk, &plain, &len, &next, &final, o->errbuf);
        if (rc > 0) rc = extract_blocks(o, &w, plain, len, since, until);
        o->st->bytes_read += m->end - m->offset;
        o->st->ranges++;
    }
    hwint_rr_enc_close(&e);
    return rc < 0 ? rc : HW_OK;
}

int hw_pcap_extract(const struct hw_pcap_source *src, uint32_t n, uint64_t since_ns, uint64_t until_ns,
                    const char *bpf, int fd, struct hw_pcap_extract_stats *st, char *errbuf)
{
    memset(st, 0, sizeof *st);
    struct out o = {.fd = fd, .bpf = bpf, .st = st, .errbuf = errbuf};
    if (bpf && *bpf) { /* a bad filter is refused before a byte is written */
        struct bpf_program probe;
        int rc = hwint_bpf_compile(HW_DLT_EN10MB, HW_MAX_CAPLEN, bpf, &probe, errbuf);
        if (rc) return rc;
        pcap_freecode(&probe);
    }
    o.buf = malloc(OUT_BUF);
    if (!o.buf) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    int rc = put_shb(&o);
    for (uint32_t i = 0; !rc && i < n; i++) {
        int f = open(src[i].path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (f < 0) {
            if (errno == ENOENT) continue; /* retention took it since the index was read */
            rc = hwint_err(errbuf, HW_E_OPEN, "%s: %s", src[i].path, strerror(errno));
            break;
        }
        struct stat sb;
        uint8_t magic[8] = {0};
        if (fstat(f, &sb) < 0 || !S_ISREG(sb.st_mode)) {
            rc = hwint_err(errbuf, HW_E_OPEN, "%s: not a regular file", src[i].path);
        } else if (pread(f, magic, 8, 0) == 8 && !memcmp(magic, RR_ENC_MAGIC, 8)) {
            rc = extract_encrypted(&o, &src[i], f, (uint64_t)sb.st_size, since_ns, until_ns);
        } else {
            rc = extract_plain(&o, &src[i], f, (uint64_t)sb.st_size, since_ns, until_ns);
        }
        close(f);
        st->files++;
    }
    if (!rc) rc = flush_out(&o);
    for (int i = 0; i < o.n; i++) {
        free(o.idbs[i]);
        if (bpf && *bpf) pcap_freecode(&o.progs[i]);
    }
    free(o.buf);
    return rc;
}
