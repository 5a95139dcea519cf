/* hw-pcapfile.c - capture files.
 *
 * Classic pcap (micro- or nanosecond, either byte order) is read in large
 * windows (one pread each) that slide over the file: packets are handed on
 * in place, with no per-packet copy or call into a library, and the bytes
 * ahead are prefetched, which is what lets the whole core beat
 * `tcpdump -r -w /dev/null`.  Windows are read, not mapped: a file cut
 * short while it is replayed is a short read and an error, where a mapping
 * would kill the process with SIGBUS.  pcapng, pipes and anything else go through
 * libpcap.  Optional replay at the recorded pace and looping, for demos. */
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"

#define ARENA_BYTES (4u << 20)        /* libpcap path: packet copies for one batch */
#define WINDOW_BYTES (4u << 20)       /* read at a time: one pread per 4 MB, and a small heap */
#define PREFETCH_BYTES 4096           /* how far ahead of the parser the file is fetched */
#define PACE_MAX_GAP_NS (5 * HW_NS)   /* longer silences in a paced replay are skipped */

struct pf {
    char *path;
    int linktype;
    /* classic pcap: [win_off, win_off + win_len) of the file is at win (buf, buf_cap bytes) */
    int fd;
    const uint8_t *win;
    uint8_t *buf;
    size_t buf_cap;
    size_t win_off, win_len;
    size_t size, off, next_off;
    const uint8_t *prefetched; /* bytes before this are on their way to the cache */
    int swapped, nsec;
    /* libpcap */
    pcap_t *pc;
    uint8_t *arena;
    size_t arena_used;
    int have_cur;
    struct pcap_pkthdr *cur_hdr;
    const u_char *cur_data;
    /* filter */
    struct hw_ufilter filter;
    /* replay */
    double pace;
    int loop;
    uint64_t ts_offset, first_raw, max_raw, pass_records;
    uint64_t pace_wall0, pace_ts0, prev_ts;
    int pacing_started;
    /* stats and deferred errors */
    uint64_t records, filtered;
    int pending_rc;
    char pending_err[HW_ERRBUF_SIZE];
};

static uint32_t rd32(const struct pf *f, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return f->swapped ? __builtin_bswap32(v) : v;
}

/* The file itself opened before (or is standard input), so whatever libpcap
 * refuses is its content: a format error. */
static int open_pcap(struct pf *f, char *errbuf)
{
    char perr[PCAP_ERRBUF_SIZE];
    f->pc = pcap_open_offline_with_tstamp_precision(f->path, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!f->pc) return hwint_err(errbuf, HW_E_FORMAT, "%s: %s", f->path, perr);
    f->linktype = pcap_datalink(f->pc);
    f->have_cur = 0;
    return HW_OK;
}

/* Classic pcap header in a mapping; 1 when it is one, 0 when not. */
static int open_mapped(struct pf *f, int fd, size_t size, char *errbuf, int *rc)
{
    if (size < 4) {
        *rc = hwint_err(errbuf, HW_E_FORMAT, "%s: not a capture file (%zu bytes)", f->path, size);
        return 1;
    }
    uint8_t magic[4];
    if (pread(fd, magic, 4, 0) != 4) return 0;
    uint32_t m;
    memcpy(&m, magic, 4);
    switch (m) {
    case 0xa1b2c3d4: f->swapped = 0, f->nsec = 0; break;
    case 0xa1b23c4d: f->swapped = 0, f->nsec = 1; break;
    case 0xd4c3b2a1: f->swapped = 1, f->nsec = 0; break;
    case 0x4d3cb2a1: f->swapped = 1, f->nsec = 1; break;
    default: return 0; /* pcapng and friends: libpcap's job */
    }
    if (size < 24) {
        *rc = hwint_err(errbuf, HW_E_TRUNCATED, "%s: file ends inside the pcap header", f->path);
        return 1;
    }
    uint8_t hdr[24];
    if (pread(fd, hdr, 24, 0) != 24) return 0;
    f->fd = dup(fd);
    if (f->fd < 0) return 0;
    f->size = size;
    f->off = 24;
    f->linktype = (int)(rd32(f, hdr + 20) & 0xffff);
    *rc = HW_OK;
    return 1;
}

/* Read the window that holds [f->off, end) of the file. */
static int map_window(struct pf *f, size_t end, char *errbuf)
{
    f->win = NULL;
    size_t start = f->off & ~(size_t)4095;
    size_t len = end - start > WINDOW_BYTES ? end - start : WINDOW_BYTES;
    if (len > f->size - start) len = f->size - start;
    if (len > f->buf_cap) {
        uint8_t *nb = realloc(f->buf, len);
        if (!nb) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
        f->buf = nb, f->buf_cap = len;
    }
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(f->fd, f->buf + got, len - got, (off_t)(start + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return hwint_err(errbuf, HW_E_IO, "%s: read: %s", f->path, strerror(errno));
        if (n == 0)
            return hwint_err(errbuf, HW_E_TRUNCATED, "%s: the file was cut short while it was read "
                             "(%zu bytes now, %zu when opened)", f->path, start + got, f->size);
        got += (size_t)n;
    }
    f->win = f->buf;
    f->win_off = start;
    f->win_len = len;
    f->prefetched = f->win + (f->off - start);
    return HW_OK;
}

static int pf_available(char *errbuf)
{
    (void)errbuf;
    return HW_OK;
}

static void pf_close(void *st)
{
    struct pf *f = st;
    free(f->buf);
    if (f->fd >= 0) close(f->fd);
    if (f->pc) pcap_close(f->pc);
    hwint_ufilter_free(&f->filter);
    free(f->arena);
    free(f->path);
    free(f);
}

static int pf_set_filter(void *st, const char *bpf, char *errbuf)
{
    struct pf *f = st;
    return hwint_ufilter_set(&f->filter, f->linktype, bpf, errbuf);
}

static int pf_open(const struct hw_config *cfg, void **out, int *linktype, char *errbuf)
{
    struct pf *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(cfg->source))) {
        free(f);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    f->fd = -1;
    f->pace = cfg->pace;
    f->loop = cfg->loop;
    int rc = HW_OK, mapped = 0;
    if (strcmp(f->path, "-") != 0) {
        int fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = hwint_err(errbuf, errno == EACCES ? HW_E_PERM : HW_E_OPEN, "%s: %s", f->path, strerror(errno));
            pf_close(f);
            return rc;
        }
        struct stat sb;
        if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode))
            rc = hwint_err(errbuf, HW_E_OPEN, "%s: is a directory", f->path), mapped = 1;
        else if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
            mapped = open_mapped(f, fd, (size_t)sb.st_size, errbuf, &rc);
        close(fd);
    }
    if (!mapped) {
        rc = open_pcap(f, errbuf);
        if (rc == HW_OK && !(f->arena = malloc(ARENA_BYTES)))
            rc = hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    if (rc == HW_OK && cfg->bpf && *cfg->bpf) rc = pf_set_filter(f, cfg->bpf, errbuf);
    if (rc != HW_OK) {
        pf_close(f);
        return rc;
    }
    *linktype = f->linktype;
    *out = f;
    return HW_OK;
}

static int pf_start(void *st, char *errbuf)
{
    (void)st, (void)errbuf;
    return HW_OK;
}

#define PEEK_LATER 2 /* the record is beyond the window and the batch still points into it */

/* A pointer to [f->off, f->off + n) of the file, mapping another window if
 * allowed; NULL with *rc set otherwise. */
static const uint8_t *at(struct pf *f, size_t n, int may_remap, int *rc, char *errbuf)
{
    if (f->win && f->off >= f->win_off && f->off + n <= f->win_off + f->win_len)
        return f->win + (f->off - f->win_off);
    if (!may_remap) {
        *rc = PEEK_LATER;
        return NULL;
    }
    if ((*rc = map_window(f, f->off + n, errbuf)) < 0) return NULL;
    return f->win + (f->off - f->win_off);
}

/* The next record without consuming it: 1, 0 at the end, PEEK_LATER, or an error. */
static int peek(struct pf *f, struct hw_pkt *p, int may_remap, char *errbuf)
{
    if (f->fd >= 0) {
        int rc = 0;
        if (f->off == f->size) return 0;
        if (f->size - f->off < 16)
            return hwint_err(errbuf, HW_E_TRUNCATED, "%s: file ends inside the header of packet %llu",
                             f->path, (unsigned long long)f->records + 1);
        const uint8_t *h = at(f, 16, may_remap, &rc, errbuf);
        if (!h) return rc;
        uint32_t sec = rd32(f, h), frac = rd32(f, h + 4), caplen = rd32(f, h + 8), len = rd32(f, h + 12);
        if (caplen > HW_MAX_CAPLEN)
            return hwint_err(errbuf, HW_E_FORMAT,
                             "%s: corrupt record %llu at offset %zu: captured length %u exceeds %u",
                             f->path, (unsigned long long)f->records + 1, f->off, caplen, HW_MAX_CAPLEN);
        if (f->size - f->off - 16 < caplen)
            return hwint_err(errbuf, HW_E_TRUNCATED,
                             "%s: file ends in the middle of packet %llu (%u of %u bytes present)",
                             f->path, (unsigned long long)f->records + 1,
                             (unsigned)(f->size - f->off - 16), caplen);
        if (!(h = at(f, 16 + (size_t)caplen, may_remap, &rc, errbuf))) return rc;
        /* records are read in file order: fetch the bytes ahead of the parser */
        const uint8_t *ahead = h + PREFETCH_BYTES, *end = f->win + f->win_len;
        for (; f->prefetched < ahead && f->prefetched < end; f->prefetched += 64) __builtin_prefetch(f->prefetched);
        p->data = h + 16;
        p->caplen = caplen;
        p->wirelen = len;
        p->ts_ns = (uint64_t)sec * HW_NS + (f->nsec ? frac : (uint64_t)frac * 1000);
        f->next_off = f->off + 16 + caplen;
        return 1;
    }
    if (!f->have_cur) {
        int rc = pcap_next_ex(f->pc, &f->cur_hdr, &f->cur_data);
        if (rc == PCAP_ERROR_BREAK) return 0;
        if (rc < 0) {
            const char *e = pcap_geterr(f->pc);
            return hwint_err(errbuf, strstr(e, "truncated") ? HW_E_TRUNCATED : HW_E_FORMAT,
                             "%s: after packet %llu: %s", f->path, (unsigned long long)f->records, e);
        }
        f->have_cur = 1;
    }
    p->data = f->cur_data;
    p->caplen = f->cur_hdr->caplen;
    p->wirelen = f->cur_hdr->len;
    p->ts_ns = (uint64_t)f->cur_hdr->ts.tv_sec * HW_NS + (uint64_t)f->cur_hdr->ts.tv_usec;
    return 1;
}

static void consume(struct pf *f)
{
    if (f->fd >= 0) f->off = f->next_off;
    else f->have_cur = 0;
    f->records++;
    f->pass_records++;
}

/* Start over for looping; time keeps running forward across passes. */
static int rewind_file(struct pf *f, char *errbuf)
{
    f->ts_offset += f->max_raw - f->first_raw + HW_NS / 1000;
    f->pass_records = 0;
    if (f->fd >= 0) {
        f->off = 24;
        f->win = NULL; /* each pass reads the file again: one cut short meanwhile ends the capture */
        return HW_OK;
    }
    pcap_close(f->pc);
    f->pc = NULL;
    return open_pcap(f, errbuf);
}

/* 1 when the packet stamped ts is due; otherwise waits up to timeout_ms. */
static int due(struct pf *f, uint64_t ts, int may_wait, int timeout_ms)
{
    uint64_t now = hwint_mono_ns();
    if (!f->pacing_started || ts < f->prev_ts || ts - f->prev_ts > PACE_MAX_GAP_NS) {
        f->pacing_started = 1;
        f->pace_wall0 = now;
        f->pace_ts0 = ts;
        f->prev_ts = ts;
    }
    uint64_t at = f->pace_wall0 + (uint64_t)((double)(ts - f->pace_ts0) / f->pace);
    if (at <= now) return 1;
    if (!may_wait || timeout_ms <= 0) return 0;
    uint64_t wait = at - now, cap = (uint64_t)timeout_ms * 1000000ULL;
    if (wait > cap) wait = cap;
    struct timespec t = {(time_t)(wait / HW_NS), (long)(wait % HW_NS)};
    nanosleep(&t, NULL);
    return hwint_mono_ns() >= at;
}

static int pf_poll(void *st, struct hw_batch *b, int timeout_ms, char *errbuf)
{
    struct pf *f = st;
    if (f->pending_rc) {
        int rc = f->pending_rc;
        f->pending_rc = 0;
        memcpy(errbuf, f->pending_err, HW_ERRBUF_SIZE);
        return rc;
    }
    f->arena_used = 0;
    /* A poll ends within its slice even when the filter drops every record of a
     * looping file: the caller checks its stop flag between polls. */
    uint64_t t0 = hwint_mono_ns(), slice = (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000000ULL;
    unsigned examined = 0;
    while (b->n < b->cap) {
        if ((++examined & 1023) == 0 && hwint_mono_ns() - t0 >= slice) break;
        struct hw_pkt p;
        int rc = peek(f, &p, b->n == 0, b->n ? f->pending_err : errbuf);
        if (rc == PEEK_LATER) break;
        if (rc < 0) {
            if (!b->n) return rc;
            f->pending_rc = rc; /* hand on what came before the damage first */
            break;
        }
        if (rc == 0) {
            if (f->loop && f->pass_records) {
                if ((rc = rewind_file(f, errbuf)) < 0) return rc;
                continue;
            }
            b->eof = 1;
            break;
        }
        if (f->arena && f->arena_used + p.caplen > ARENA_BYTES) break;
        if (f->records == 0 || p.ts_ns < f->first_raw) f->first_raw = p.ts_ns;
        if (p.ts_ns > f->max_raw) f->max_raw = p.ts_ns;
        p.ts_ns += f->ts_offset;
        if (f->pace > 0) {
            if (!due(f, p.ts_ns, examined == 1, timeout_ms)) break; /* one wait per poll */
            f->prev_ts = p.ts_ns;
        }
        if (!hwint_ufilter_pass(&f->filter, &p)) {
            consume(f);
            f->filtered++;
            continue;
        }
        if (f->arena) { /* libpcap reuses its buffer on the next read */
            memcpy(f->arena + f->arena_used, p.data, p.caplen);
            p.data = f->arena + f->arena_used;
            f->arena_used += p.caplen;
        }
        consume(f);
        b->pkt[b->n++] = p;
    }
    return b->n;
}

static void pf_stats(void *st, struct hw_counters *c)
{
    struct pf *f = st;
    c->backend_received += f->records;
    c->backend_filtered += f->filtered;
}

const struct hw_backend_ops hw_pcapfile_ops = {
    .name = "pcapfile",
    .description = "pcap and pcapng files (classic pcap memory-mapped, pcapng through libpcap)",
    .caps = HW_CAP_FILE | HW_CAP_BPF | HW_CAP_PACE,
    .available = pf_available,
    .open = pf_open,
    .start = pf_start,
    .poll = pf_poll,
    .stats = pf_stats,
    .set_filter = pf_set_filter,
    .close = pf_close,
};
