/* record.c - packet recording to rotating pcapng files, optionally encrypted.
 *
 * Two threads share a ring of buffers.  The capture thread (under the
 * session lock, per batch) filters each packet with the recording's own BPF
 * program, copies it into the current buffer as an Enhanced Packet Block and
 * hands the buffer on when it is full, when flush_ms has passed since its
 * first packet, or when its file ends (rotation by size or packet time, a
 * new key, stop).  Buffers always hold whole blocks, and the first buffer of
 * a file starts with its Section Header and Interface Description Blocks.
 * The writer thread takes buffers in order: opens a file when one begins a
 * file, writes it with one write(2) (encrypted: one AES-256-GCM chunk, see
 * docs/RECORDING.md), and when one ends a file writes the final chunk,
 * fsyncs the file and its directory, closes it and applies retention.
 *
 * So a kill -9 loses at most the buffers not yet written; every file is
 * whole blocks (or whole chunks) up to its last complete write, and a file
 * the writer completed is complete.  A live capture never waits: with no
 * free buffer the packet is counted as dropped (lossless: the capture waits). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hw.h"

#define ENC_MAGIC "\x89" "CBX\r\n\x1a\n"
#define ENC_VERSION 1
#define ENC_AES_256_GCM 1
#define ENC_HEADER 48
#define CHUNK_HEADER 20               /* length, flags, nonce */
#define CHUNK_FINAL 1u
#define NONCE 12
#define TAG 16
#define EPB_OVERHEAD 32               /* block header, interface, time, lengths, trailing length */
#define RETENTION_EVERY_NS (10 * HW_NS)

struct rec_buf {
    uint8_t *mem;                     /* CHUNK_HEADER reserved, then data, then room for the tag */
    uint32_t len;                     /* data bytes */
    uint32_t packets;
    int begins_file, ends_file;
    int encrypted;
    uint8_t key[HW_REC_KEY_SIZE];     /* for a buffer that begins a file */
    uint64_t first_mono_ns;
};

struct hw_recorder {
    struct hw_record_config cfg;
    char dir[320], prefix[64], if_name[128];
    struct bpf_program prog;
    int has_filter;
    struct bpf_program prog_eth, prog_raw; /* the same filter for a tunnel's inner frame or IP packet */
    int has_eth, has_raw;
    int linktype;
    uint32_t cap;                     /* data bytes a buffer holds */

    struct rec_buf *bufs;
    uint32_t n;
    uint64_t handed, done;            /* buffers handed to / written by the writer */
    struct rec_buf *cur;              /* the buffer the capture side fills, or NULL */
    pthread_mutex_t mu;
    pthread_cond_t to_writer, to_capture;
    int stopping;
    pthread_t writer;
    int writer_started;

    /* capture side (the session lock) */
    uint64_t packets, bytes, filtered, dropped;
    uint32_t max_packet;              /* bytes of a packet a buffer can take after a file's preamble */
    int file_open;
    uint64_t file_bytes, file_packets, file_start_ts;
    int has_key;
    uint8_t key[HW_REC_KEY_SIZE];
    _Atomic int reopen;               /* the writer lost its file: start a new one */

    /* writer side */
    int fd;
    char path[512];
    EVP_CIPHER_CTX *ctx;
    int file_encrypted;
    uint8_t header[ENC_HEADER];
    uint64_t chunk_index;
    uint32_t seq;
    uint64_t last_retention_ns;

    struct hw_record_stats st;        /* under mu */
};

/* ---- little helpers ----------------------------------------------------- */

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64be(uint8_t *p, uint64_t v)
{
    put32be(p, (uint32_t)(v >> 32));
    put32be(p + 4, (uint32_t)v);
}

static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); } /* pcapng: host byte order */
static inline void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void set_error(struct hw_recorder *r, const char *what, int err)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->st.last_error, sizeof r->st.last_error, "%s: %s", what, strerror(err));
    r->st.write_errors++;
    pthread_mutex_unlock(&r->mu);
}

static void key_id(const uint8_t *key, uint8_t *out)
{
    uint8_t d[32];
    unsigned int n = 0;
    EVP_Digest(key, HW_REC_KEY_SIZE, d, &n, EVP_sha256(), NULL);
    memcpy(out, d, HW_REC_KEY_ID_SIZE);
}

/* ---- pcapng blocks -------------------------------------------------------- */

/* Section Header Block + Interface Description Block (if_name, if_tsresol = 9). */
static uint32_t file_preamble(const struct hw_recorder *r, uint8_t *p)
{
    static const char appl[] = "capbox";
    uint8_t *start = p;
    /* SHB: type, length, byte-order magic, version 1.0, section length unknown, shb_userappl */
    uint32_t shb_len = 24 + 4 + 8 + 4 + 4;
    put32(p, 0x0A0D0D0A);
    put32(p + 4, shb_len);
    put32(p + 8, 0x1A2B3C4D);
    put16(p + 12, 1);
    put16(p + 14, 0);
    memset(p + 16, 0xff, 8);
    put16(p + 24, 4);                 /* shb_userappl */
    put16(p + 26, sizeof appl - 1);
    memset(p + 28, 0, 8);
    memcpy(p + 28, appl, sizeof appl - 1);
    put32(p + 36, 0);                 /* opt_endofopt */
    put32(p + 40, shb_len);
    p += shb_len;
    /* IDB: linktype, snaplen, if_name, if_tsresol (nanoseconds) */
    size_t name = strlen(r->if_name);
    uint32_t name_pad = (uint32_t)((name + 3) & ~(size_t)3);
    uint32_t idb_len = 16 + (name ? 4 + name_pad : 0) + 8 + 4 + 4;
    put32(p, 1);
    put32(p + 4, idb_len);
    put16(p + 8, (uint16_t)r->linktype);
    put16(p + 10, 0);
    put32(p + 12, r->cfg.snaplen);
    uint8_t *o = p + 16;
    if (name) {
        put16(o, 2);                  /* if_name */
        put16(o + 2, (uint16_t)name);
        memset(o + 4, 0, name_pad);
        memcpy(o + 4, r->if_name, name);
        o += 4 + name_pad;
    }
    put16(o, 9);                      /* if_tsresol: 10^-9 */
    put16(o + 2, 1);
    put32(o + 4, 0);
    o[4] = 9;
    put32(o + 8, 0);                  /* opt_endofopt */
    put32(o + 12, idb_len);
    p += idb_len;
    return (uint32_t)(p - start);
}

/* ---- the capture side ------------------------------------------------------- */

/* The next free buffer, or NULL (wait when lossless or `wait`). */
static struct rec_buf *acquire(struct hw_recorder *r, int wait)
{
    pthread_mutex_lock(&r->mu);
    while (r->handed - r->done >= r->n) {
        if (!wait) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        pthread_cond_wait(&r->to_capture, &r->mu);
    }
    struct rec_buf *b = &r->bufs[r->handed % r->n];
    pthread_mutex_unlock(&r->mu);
    b->len = b->packets = 0;
    b->begins_file = b->ends_file = 0;
    b->first_mono_ns = 0;
    return b;
}

static void hand_on(struct hw_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    r->handed++;
    pthread_cond_signal(&r->to_writer);
    pthread_mutex_unlock(&r->mu);
    r->cur = NULL;
}

/* End the open file: its last buffer is marked and handed on. */
static void end_file(struct hw_recorder *r, int wait)
{
    if (!r->file_open) return;
    if (!r->cur) r->cur = acquire(r, wait);
    if (!r->cur) return; /* live and no buffer: the next buffer will end it */
    r->cur->ends_file = 1;
    hand_on(r);
    r->file_open = 0;
}

static void begin_file(struct hw_recorder *r, uint64_t ts)
{
    struct rec_buf *b = r->cur;
    b->begins_file = 1;
    b->encrypted = r->has_key;
    if (r->has_key) memcpy(b->key, r->key, HW_REC_KEY_SIZE);
    b->len = file_preamble(r, b->mem + CHUNK_HEADER);
    r->file_open = 1;
    r->file_bytes = b->len;
    r->file_packets = 0;
    r->file_start_ts = ts;
}

/* The filter of a packet: the one for what its innermost tunnel carries,
 * unless bpf_outer (or the filter does not compile for that link). */
static int passes(const struct hw_recorder *r, const struct hw_pkt *pkt, const struct hw_meta *m)
{
    if (m && m->inner) {
        const struct bpf_program *prog = m->inner_link == HW_DLT_EN10MB ? (r->has_eth ? &r->prog_eth : NULL)
                                                                       : (r->has_raw ? &r->prog_raw : NULL);
        if (prog) {
            struct pcap_pkthdr h = {{0, 0}, m->inner_cap, m->inner_cap};
            return pcap_offline_filter(prog, &h, m->inner) != 0;
        }
    }
    struct pcap_pkthdr h = {{0, 0}, pkt->caplen, pkt->wirelen > pkt->caplen ? pkt->wirelen : pkt->caplen};
    return pcap_offline_filter(&r->prog, &h, pkt->data) != 0;
}

static void record_packet(struct hw_recorder *r, const struct hw_pkt *pkt, const struct hw_meta *m)
{
    if (r->has_filter) {
        if (!passes(r, pkt, m)) {
            r->filtered++;
            return;
        }
    }
    uint32_t cap = pkt->caplen;
    if (r->cfg.snaplen && cap > r->cfg.snaplen) cap = r->cfg.snaplen;
    if (cap > r->max_packet) cap = r->max_packet; /* a packet larger than a buffer keeps what fits */
    uint32_t pad = (cap + 3) & ~3u, need = EPB_OVERHEAD + pad;
    if (HW_UNLIKELY(atomic_exchange(&r->reopen, 0))) r->file_open = 0;
    if (!r->cur && !(r->cur = acquire(r, r->cfg.lossless))) {
        r->dropped++;
        return;
    }
    if (r->file_open && r->file_packets &&
        ((r->cfg.rotate_bytes && r->file_bytes + need > r->cfg.rotate_bytes) ||
         (r->cfg.rotate_s && pkt->ts_ns >= r->file_start_ts + (uint64_t)r->cfg.rotate_s * HW_NS))) {
        end_file(r, r->cfg.lossless);
        if (!r->cur && !(r->cur = acquire(r, r->cfg.lossless))) {
            r->dropped++;
            return;
        }
    }
    if (!r->file_open) {
        if (r->cur->len) { /* a buffer of a file that ended without it: finish that one first */
            r->cur->ends_file = 1;
            hand_on(r);
            if (!(r->cur = acquire(r, r->cfg.lossless))) {
                r->dropped++;
                return;
            }
        }
        begin_file(r, pkt->ts_ns);
    }
    if (r->cur->len + need > r->cap) {
        hand_on(r);
        if (!(r->cur = acquire(r, r->cfg.lossless))) {
            r->dropped++;
            return;
        }
    }
    struct rec_buf *b = r->cur;
    uint8_t *p = b->mem + CHUNK_HEADER + b->len;
    put32(p, 6);
    put32(p + 4, need);
    put32(p + 8, 0);
    put32(p + 12, (uint32_t)(pkt->ts_ns >> 32));
    put32(p + 16, (uint32_t)pkt->ts_ns);
    put32(p + 20, cap);
    put32(p + 24, pkt->wirelen > pkt->caplen ? pkt->wirelen : pkt->caplen);
    memcpy(p + 28, pkt->data, cap);
    memset(p + 28 + cap, 0, pad - cap);
    put32(p + 28 + pad, need);
    if (!b->first_mono_ns) b->first_mono_ns = hwint_mono_ns();
    b->len += need;
    b->packets++;
    r->file_bytes += need;
    r->file_packets++;
    r->packets++;
    r->bytes += cap;
}

void hwint_rec_batch(struct hw_recorder *r, const struct hw_batch *b, const struct hw_meta *meta)
{
    for (int i = 0; i < b->n; i++) record_packet(r, &b->pkt[i], meta ? &meta[i] : NULL);
}

/* After each batch: a buffer waiting longer than flush_ms goes to the writer. */
void hwint_rec_tick(struct hw_recorder *r)
{
    if (r->cur && r->cur->packets && hwint_mono_ns() - r->cur->first_mono_ns >= (uint64_t)r->cfg.flush_ms * 1000000ULL)
        hand_on(r);
}

/* ---- the writer --------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void sync_dir(struct hw_recorder *r)
{
    int d = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
}

static void close_file(struct hw_recorder *r)
{
    if (r->fd < 0) return;
    if (r->cfg.fsync && fsync(r->fd) < 0) set_error(r, "fsync", errno);
    close(r->fd);
    if (r->cfg.fsync) sync_dir(r);
    r->fd = -1;
    pthread_mutex_lock(&r->mu);
    r->st.files_closed++;
    r->st.current[0] = 0;
    pthread_mutex_unlock(&r->mu);
}

/* The file is lost for writing: close it and have the capture side start another. */
static void abandon_file(struct hw_recorder *r, const char *what, int err)
{
    set_error(r, what, err);
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    pthread_mutex_lock(&r->mu);
    r->st.current[0] = 0;
    pthread_mutex_unlock(&r->mu);
    atomic_store(&r->reopen, 1);
}

static int open_file(struct hw_recorder *r, const struct rec_buf *b)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[20];
    if (!strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm)) stamp[0] = 0;
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(r->path, sizeof r->path, "%s/%s-%s-%06u.pcapng%s", r->dir, r->prefix, stamp, ++r->seq,
                 b->encrypted ? ".enc" : "");
        r->fd = open(r->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (r->fd >= 0 || errno != EEXIST) break;
    }
    if (r->fd < 0) {
        set_error(r, "open", errno);
        return -1;
    }
    r->file_encrypted = b->encrypted;
    r->chunk_index = 0;
    if (b->encrypted) {
        uint8_t *h = r->header;
        memcpy(h, ENC_MAGIC, 8);
        h[8] = ENC_VERSION;
        h[9] = ENC_AES_256_GCM;
        h[10] = 0;
        h[11] = ENC_HEADER;
        put32be(h + 12, r->cap);
        key_id(b->key, h + 16);
        if (getrandom(h + 24, 16, 0) != 16) {
            abandon_file(r, "getrandom", errno);
            return -1;
        }
        put64be(h + 40, (uint64_t)now.tv_sec * HW_NS + (uint64_t)now.tv_nsec);
        if (EVP_EncryptInit_ex(r->ctx, EVP_aes_256_gcm(), NULL, b->key, NULL) != 1) {
            abandon_file(r, "cipher", EINVAL);
            return -1;
        }
        int rc = write_all(r->fd, h, ENC_HEADER);
        if (rc) {
            abandon_file(r, "write", -rc);
            return -1;
        }
    }
    pthread_mutex_lock(&r->mu);
    r->st.files++;
    r->st.file_bytes += b->encrypted ? ENC_HEADER : 0;
    snprintf(r->st.current, sizeof r->st.current, "%s", r->path);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* AES-256-GCM over the buffer in place; the chunk header goes in front, the tag behind. */
static int seal(struct hw_recorder *r, struct rec_buf *b, uint32_t flags)
{
    uint8_t *hdr = b->mem, *data = b->mem + CHUNK_HEADER, aad[ENC_HEADER + 16];
    put32be(hdr, b->len);
    put32be(hdr + 4, flags);
    if (getrandom(hdr + 8, NONCE, 0) != NONCE) return -1;
    memcpy(aad, r->header, ENC_HEADER);
    put64be(aad + ENC_HEADER, r->chunk_index);
    put32be(aad + ENC_HEADER + 8, b->len);
    put32be(aad + ENC_HEADER + 12, flags);
    int n = 0;
    if (EVP_EncryptInit_ex(r->ctx, NULL, NULL, NULL, hdr + 8) != 1 ||
        EVP_EncryptUpdate(r->ctx, NULL, &n, aad, (int)sizeof aad) != 1 ||
        (b->len && EVP_EncryptUpdate(r->ctx, data, &n, data, (int)b->len) != 1) ||
        EVP_EncryptFinal_ex(r->ctx, data + b->len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_GCM_GET_TAG, TAG, data + b->len) != 1)
        return -1;
    return 0;
}

static void write_buffer(struct hw_recorder *r, struct rec_buf *b)
{
    if (b->begins_file) {
        if (r->fd >= 0) close_file(r); /* cannot happen unless a file lost its end */
        if (open_file(r, b) < 0) {
            atomic_store(&r->reopen, 1);
            goto lost;
        }
    }
    if (r->fd < 0) goto lost;
    const uint8_t *p = b->mem + CHUNK_HEADER;
    size_t n = b->len;
    if (r->file_encrypted) {
        if (seal(r, b, b->ends_file ? CHUNK_FINAL : 0) < 0) {
            abandon_file(r, "encrypt", EIO);
            goto lost;
        }
        p = b->mem;
        n = CHUNK_HEADER + (size_t)b->len + TAG;
        r->chunk_index++;
    } else if (!n) {
        goto done;
    }
    int rc = write_all(r->fd, p, n);
    if (rc) {
        abandon_file(r, "write", -rc);
        goto lost;
    }
    pthread_mutex_lock(&r->mu);
    r->st.file_bytes += n;
    if (r->file_encrypted) r->st.chunks++;
    pthread_mutex_unlock(&r->mu);
done:
    if (b->ends_file) close_file(r);
    return;
lost:
    pthread_mutex_lock(&r->mu);
    r->st.dropped += b->packets;
    pthread_mutex_unlock(&r->mu);
}

struct old_file {
    char name[256];
    time_t mtime;
    off_t size;
};

static int by_mtime(const void *a, const void *b)
{
    const struct old_file *x = a, *y = b;
    if (x->mtime != y->mtime) return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The highest sequence number among this prefix's recordings in the directory
 * ("PREFIX-YYYYmmddTHHMMSSZ-NNNNNN.pcapng[.enc]"): a recorder started again goes
 * on from it, so that (second, sequence) in the names orders files as they were
 * opened, across restarts too (modification times do not: a file gets its last
 * block after the next one was opened). */
static uint32_t last_seq(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint32_t best = 0;
    size_t plen = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        unsigned seq;
        char stamp[17], rest[8];
        if (strncmp(nm, prefix, plen) || nm[plen] != '-') continue;
        if (sscanf(nm + plen, "-%16[0-9TZ]-%6u.pcapng%7s", stamp, &seq, rest) >= 2 && seq > best) best = seq;
    }
    closedir(d);
    return best;
}

/* Oldest first, delete this prefix's files while over keep_bytes or older than keep_s. */
static void retention(struct hw_recorder *r)
{
    if (!r->cfg.keep_bytes && !r->cfg.keep_s) return;
    DIR *d = opendir(r->dir);
    if (!d) return;
    size_t n = 0, cap = 64, plen = strlen(r->prefix);
    struct old_file *files = malloc(cap * sizeof *files);
    uint64_t total = 0;
    struct dirent *de;
    const char *current = r->fd >= 0 ? strrchr(r->path, '/') + 1 : "";
    while (files && (de = readdir(d))) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (strncmp(nm, r->prefix, plen) || nm[plen] != '-' || len >= sizeof files->name) continue;
        if (!(len > 7 && !strcmp(nm + len - 7, ".pcapng")) && !(len > 11 && !strcmp(nm + len - 11, ".pcapng.enc")))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode)) continue;
        total += (uint64_t)sb.st_size;
        if (!strcmp(nm, current)) continue; /* never the file being written */
        if (n == cap) {
            struct old_file *more = realloc(files, 2 * cap * sizeof *files);
            if (!more) break;
            files = more;
            cap *= 2;
        }
        snprintf(files[n].name, sizeof files[n].name, "%s", nm);
        files[n].mtime = sb.st_mtime;
        files[n].size = sb.st_size;
        n++;
    }
    if (files) {
        qsort(files, n, sizeof *files, by_mtime);
        time_t now = time(NULL);
        uint64_t deleted = 0;
        for (size_t i = 0; i < n; i++) {
            int too_big = r->cfg.keep_bytes && total > r->cfg.keep_bytes;
            int too_old = r->cfg.keep_s && now - files[i].mtime > (time_t)r->cfg.keep_s;
            if (!too_big && !too_old) break;
            if (unlinkat(dirfd(d), files[i].name, 0) == 0 || errno == ENOENT) {
                total -= (uint64_t)files[i].size;
                deleted++;
            }
        }
        pthread_mutex_lock(&r->mu);
        r->st.files_deleted += deleted;
        pthread_mutex_unlock(&r->mu);
    }
    free(files);
    closedir(d);
}

static void *writer_main(void *arg)
{
    struct hw_recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->done == r->handed && !r->stopping) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_sec += 1;
            pthread_cond_timedwait(&r->to_writer, &r->mu, &t);
            if (r->done == r->handed && hwint_mono_ns() - r->last_retention_ns >= RETENTION_EVERY_NS) {
                pthread_mutex_unlock(&r->mu);
                retention(r);
                r->last_retention_ns = hwint_mono_ns();
                pthread_mutex_lock(&r->mu);
            }
        }
        if (r->done == r->handed) break; /* stopping, and everything is written */
        struct rec_buf *b = &r->bufs[r->done % r->n];
        pthread_mutex_unlock(&r->mu);
        int closes = b->ends_file;
        write_buffer(r, b);
        if (closes) {
            retention(r);
            r->last_retention_ns = hwint_mono_ns();
        }
        struct timespec cpu;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
        pthread_mutex_lock(&r->mu);
        r->st.writer_cpu_ns = (uint64_t)cpu.tv_sec * HW_NS + (uint64_t)cpu.tv_nsec;
        r->done++;
        pthread_cond_signal(&r->to_capture);
    }
    pthread_mutex_unlock(&r->mu);
    if (r->fd >= 0) close_file(r); /* a file whose end was never handed on */
    return NULL;
}

/* ---- lifetime --------------------------------------------------------------- */

void hw_record_config_init(struct hw_record_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->prefix = "capbox";
    cfg->rotate_bytes = 100ULL << 20;
    cfg->buffer_kb = 1024;
    cfg->buffers = 8;
    cfg->flush_ms = 1000;
    cfg->fsync = 1;
}

/* Let the writer write what it was handed, then end it. */
void hwint_rec_stop(struct hw_recorder *r)
{
    if (!r->writer_started) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->to_writer);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->writer, NULL);
    r->writer_started = 0;
    r->st.active = 0;
}

void hwint_rec_destroy(struct hw_recorder *r)
{
    if (!r) return;
    hwint_rec_stop(r);
    if (r->has_filter) pcap_freecode(&r->prog);
    if (r->has_eth) pcap_freecode(&r->prog_eth);
    if (r->has_raw) pcap_freecode(&r->prog_raw);
    if (r->bufs) {
        for (uint32_t i = 0; i < r->n; i++) {
            if (!r->bufs[i].mem) continue;
            OPENSSL_cleanse(r->bufs[i].key, sizeof r->bufs[i].key);
            free(r->bufs[i].mem);
        }
        free(r->bufs);
    }
    if (r->ctx) EVP_CIPHER_CTX_free(r->ctx);
    OPENSSL_cleanse(r->key, sizeof r->key);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->to_writer);
    pthread_cond_destroy(&r->to_capture);
    free(r);
}

int hwint_rec_create(const struct hw_record_config *cfg, int linktype, struct hw_recorder **out, char *errbuf)
{
    *out = NULL;
    if (!cfg->dir || !*cfg->dir) return hwint_err(errbuf, HW_E_ARG, "no directory for the recording");
    if (strlen(cfg->dir) >= sizeof ((struct hw_recorder *)0)->dir - 1)
        return hwint_err(errbuf, HW_E_ARG, "recording directory path too long");
    const char *prefix = cfg->prefix && *cfg->prefix ? cfg->prefix : "capbox";
    if (strlen(prefix) >= 64 || strchr(prefix, '/') || prefix[0] == '.')
        return hwint_err(errbuf, HW_E_ARG, "bad file name prefix \"%s\"", prefix);
    if (cfg->buffer_kb < 64 || cfg->buffer_kb > 65536)
        return hwint_err(errbuf, HW_E_ARG, "buffer_kb %u out of range 64..65536", cfg->buffer_kb);
    if (cfg->buffers < 2 || cfg->buffers > 256)
        return hwint_err(errbuf, HW_E_ARG, "buffers %u out of range 2..256", cfg->buffers);
    if (cfg->snaplen && (cfg->snaplen < 64 || cfg->snaplen > HW_MAX_CAPLEN))
        return hwint_err(errbuf, HW_E_ARG, "snaplen %u out of range 64..%u", cfg->snaplen, HW_MAX_CAPLEN);
    if (cfg->rotate_bytes && cfg->rotate_bytes < 65536)
        return hwint_err(errbuf, HW_E_ARG, "rotate_bytes below 64 kB");
    struct stat sb;
    if (stat(cfg->dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return hwint_err(errbuf, HW_E_OPEN, "no directory %s", cfg->dir);
    if (access(cfg->dir, W_OK) < 0)
        return hwint_err(errbuf, HW_E_PERM, "cannot write to %s: %s", cfg->dir, strerror(errno));

    struct hw_recorder *r = calloc(1, sizeof *r);
    if (!r) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->to_writer, NULL);
    pthread_cond_init(&r->to_capture, NULL);
    r->fd = -1;
    r->cfg = *cfg;
    snprintf(r->dir, sizeof r->dir, "%s", cfg->dir);
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    snprintf(r->if_name, sizeof r->if_name, "%s", cfg->if_name ? cfg->if_name : "");
    r->cfg.dir = r->dir;
    r->cfg.prefix = r->prefix;
    r->cfg.if_name = r->if_name;
    r->cfg.bpf = NULL;
    r->cfg.key = NULL;
    r->seq = last_seq(r->dir, r->prefix);
    r->linktype = linktype;
    r->cap = cfg->buffer_kb * 1024;
    r->max_packet = r->cap - EPB_OVERHEAD - 1024; /* 1024: room for the largest preamble */
    int rc;
    if (cfg->bpf && *cfg->bpf) {
        rc = hwint_bpf_compile(linktype, cfg->snaplen, cfg->bpf, &r->prog, errbuf);
        if (rc) {
            hwint_rec_destroy(r);
            return rc;
        }
        r->has_filter = 1;
        char ignored[HW_ERRBUF_SIZE];
        if (!cfg->bpf_outer) { /* where it does not compile for the inner link, the outer packet meets it */
            r->has_eth = hwint_bpf_compile(HW_DLT_EN10MB, cfg->snaplen, cfg->bpf, &r->prog_eth, ignored) == 0;
            r->has_raw = hwint_bpf_compile(HW_DLT_RAW, cfg->snaplen, cfg->bpf, &r->prog_raw, ignored) == 0;
        }
    }
    if (cfg->key) {
        r->has_key = 1;
        memcpy(r->key, cfg->key, HW_REC_KEY_SIZE);
    }
    r->n = cfg->buffers;
    r->bufs = calloc(r->n, sizeof *r->bufs);
    r->ctx = EVP_CIPHER_CTX_new();
    if (!r->bufs || !r->ctx) {
        hwint_rec_destroy(r);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < r->n; i++) {
        r->bufs[i].mem = malloc(CHUNK_HEADER + (size_t)r->cap + TAG);
        if (!r->bufs[i].mem) {
            hwint_rec_destroy(r);
            return hwint_err(errbuf, HW_E_NOMEM, "out of memory for %u recording buffers of %u kB", r->n,
                             cfg->buffer_kb);
        }
    }
    r->st.active = 1;
    r->st.encrypted = r->has_key;
    if (r->has_key) key_id(r->key, r->st.key_id);
    if (pthread_create(&r->writer, NULL, writer_main, r)) {
        hwint_rec_destroy(r);
        return hwint_err(errbuf, HW_E_NOMEM, "cannot start the recording's writer thread");
    }
    r->writer_started = 1;
    *out = r;
    return HW_OK;
}

/* Capture side, under the session lock. */
void hwint_rec_end_file(struct hw_recorder *r) { end_file(r, 1); }

void hwint_rec_set_key(struct hw_recorder *r, const uint8_t *key)
{
    end_file(r, 1);
    r->has_key = key != NULL;
    if (key) memcpy(r->key, key, HW_REC_KEY_SIZE);
    else OPENSSL_cleanse(r->key, sizeof r->key);
    pthread_mutex_lock(&r->mu);
    r->st.encrypted = r->has_key;
    memset(r->st.key_id, 0, sizeof r->st.key_id);
    if (key) key_id(key, r->st.key_id);
    pthread_mutex_unlock(&r->mu);
}

void hwint_rec_stats(struct hw_recorder *r, struct hw_record_stats *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
    /* counted by the capture side (the caller holds the session lock) */
    out->packets = r->packets;
    out->bytes = r->bytes;
    out->filtered = r->filtered;
    out->dropped += r->dropped;
}
