/* hw-fpga.c - the FPGA capture card's driver (backend "fpga").
 *
 * The source is the card's device path: a file whose mapping is the card's
 * BAR0 followed by its DMA window (fpga_regs.h; the software model creates
 * one, /dev/shm/capbox-fpga0 by default).  The driver refuses to capture
 * until firmware runs on the card, and firmware goes in only through
 * hw_fpga_load, which the agent calls with the payload of an image that
 * verified.  Frames are handed to the core in place in the data ring, with
 * the card's hardware timestamps; descriptors are given back on the next
 * poll.  Faults are reported as errors once and recovered from: a corrupt
 * descriptor is skipped (counted as an interface drop), a stalled DMA
 * engine is reset, a dropped link is waited out. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"
#include "fpga_regs.h"

#define ANSWER_MS 2000          /* the longest the card may take to answer a control or mailbox write */
#define STALL_NS (500 * 1000000ULL) /* a heartbeat frozen this long with DMA on: the engine hangs */
#define IRQ_WAIT_MAX_MS 50

struct dev {
    int fd;
    uint8_t *map, *bar;
    size_t size;
};

struct fp {
    char *path;
    struct dev d;
    struct fpga_desc *desc;
    uint8_t *data;
    struct fpga_flow *fc;
    uint32_t ndesc, data_size, fc_entries;
    int linktype;
    int owner;                  /* this session holds the card's lock and switched DMA on */
    uint32_t tail, data_tail;   /* descriptors and data handed on; given back on the next poll */
    uint64_t link_downs_seen, dropped0;
    uint32_t hb_last;
    uint64_t hb_since;
    struct hw_ufilter filter;
    uint64_t delivered, filtered, desc_errors;
    int pending_rc;
    char pending_err[HW_ERRBUF_SIZE];
};

/* ---- CRC-32 (IEEE), for the firmware mailbox ----------------------------- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t hwint_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- the device mapping ---------------------------------------------------- */

static void dev_close(struct dev *d)
{
    if (d->map) munmap(d->map, d->size);
    if (d->fd >= 0) close(d->fd);
    d->map = NULL;
    d->fd = -1;
}

/* Map the card at `path` and check that it is one, with a sane geometry. */
static int dev_open(const char *path, struct dev *d, char *errbuf)
{
    d->fd = -1;
    d->map = NULL;
    if (!path || !*path) return hwint_err(errbuf, HW_E_ARG, "no card device path given");
    d->fd = open(path, O_RDWR | O_CLOEXEC);
    if (d->fd < 0) {
        int e = errno;
        return hwint_err(errbuf, e == ENOENT ? HW_E_NODEV : e == EACCES ? HW_E_PERM : HW_E_OPEN,
                         "%s: %s%s", path, strerror(e), e == ENOENT ? " (no card there; is fpga-sim running?)" : "");
    }
    struct stat sb;
    if (fstat(d->fd, &sb) < 0 || (size_t)sb.st_size < FPGA_BAR_SIZE) {
        dev_close(d);
        return hwint_err(errbuf, HW_E_NODEV, "%s: not a capture card (too small for its registers)", path);
    }
    d->size = (size_t)sb.st_size;
    d->map = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (d->map == MAP_FAILED) {
        d->map = NULL;
        dev_close(d);
        return hwint_err(errbuf, HW_E_OPEN, "%s: mmap: %s", path, strerror(errno));
    }
    d->bar = d->map;
    uint8_t *b = d->bar;
    uint32_t id = fpga_rd(b, FPGA_REG_ID);
    if (id != FPGA_ID) {
        dev_close(d);
        return hwint_err(errbuf, HW_E_NODEV, "%s: not a capbox capture card (id %08x)", path, id);
    }
    uint64_t desc_end = (uint64_t)fpga_rd(b, FPGA_REG_DESC_OFF) + (uint64_t)fpga_rd(b, FPGA_REG_DESC_COUNT) * sizeof(struct fpga_desc);
    uint64_t data_end = (uint64_t)fpga_rd(b, FPGA_REG_DATA_OFF) + fpga_rd(b, FPGA_REG_DATA_SIZE);
    uint64_t fc_end = (uint64_t)fpga_rd(b, FPGA_REG_FC_OFF) + (uint64_t)fpga_rd(b, FPGA_REG_FC_ENTRIES) * sizeof(struct fpga_flow);
    uint32_t n = fpga_rd(b, FPGA_REG_DESC_COUNT), ds = fpga_rd(b, FPGA_REG_DATA_SIZE), fe = fpga_rd(b, FPGA_REG_FC_ENTRIES);
    if (fpga_rd(b, FPGA_REG_MAP_SIZE) != d->size || desc_end > d->size || data_end > d->size || fc_end > d->size ||
        fpga_rd(b, FPGA_REG_DESC_OFF) < FPGA_BAR_SIZE || !n || (n & (n - 1)) || ds < (1u << 20) || (ds & (ds - 1)) ||
        (fe & (fe - 1))) {
        dev_close(d);
        return hwint_err(errbuf, HW_E_NODEV, "%s: the card's DMA window does not fit its mapping", path);
    }
    return HW_OK;
}

static void doorbell(uint8_t *bar)
{
    __atomic_fetch_add((uint32_t *)(bar + FPGA_REG_DOORBELL), 1, __ATOMIC_SEQ_CST);
    fpga_wake(bar, FPGA_REG_DOORBELL);
}

/* Wait until (reg & mask) == want; the card has ANSWER_MS to get there. */
static int await(const char *path, uint8_t *bar, uint32_t reg, uint32_t mask, uint32_t want, const char *what,
                 char *errbuf)
{
    uint64_t end = hwint_mono_ns() + ANSWER_MS * 1000000ULL;
    doorbell(bar);
    while ((fpga_rd(bar, reg) & mask) != want) {
        if (hwint_mono_ns() > end)
            return hwint_err(errbuf, HW_E_IO, "%s: the card does not answer (%s); is fpga-sim running?", path, what);
        struct timespec t = {0, 50000};
        nanosleep(&t, NULL);
    }
    return HW_OK;
}

/* ---- identity and firmware --------------------------------------------------- */

int hw_fpga_info(const char *device, struct hw_fpga_info *out, char *errbuf)
{
    struct dev d;
    int rc = dev_open(device, &d, errbuf);
    if (rc) return rc;
    uint8_t *b = d.bar;
    memset(out, 0, sizeof *out);
    out->id = fpga_rd(b, FPGA_REG_ID);
    out->hw_version = fpga_rd(b, FPGA_REG_HW_VERSION);
    out->caps = fpga_rd(b, FPGA_REG_CAPS);
    out->linktype = fpga_rd(b, FPGA_REG_LINKTYPE);
    memcpy(out->target, b + FPGA_REG_TARGET, FPGA_TARGET_LEN);
    out->target[FPGA_TARGET_LEN] = 0;
    out->model = (out->caps & FPGA_CAP_MODEL) != 0;
    uint32_t st = fpga_rd(b, FPGA_REG_STATUS);
    out->fw_state = (int)fpga_rd(b, FPGA_REG_FW_STATE);
    out->fw_error = (int)fpga_rd(b, FPGA_REG_FW_ERROR);
    out->fw_major = fpga_rd(b, FPGA_REG_FW_VERSION_MAJOR);
    out->fw_minor = fpga_rd(b, FPGA_REG_FW_VERSION_MINOR) >> 16;
    out->fw_patch = fpga_rd(b, FPGA_REG_FW_VERSION_MINOR) & 0xffff;
    out->fw_rollback = fpga_rd(b, FPGA_REG_FW_ROLLBACK);
    out->fw_crc = fpga_rd(b, FPGA_REG_FW_CRC);
    out->fw_length = fpga_rd(b, FPGA_REG_FW_LENGTH);
    out->fw_loads = fpga_rd(b, FPGA_REG_FW_LOADS);
    out->link_up = (st & FPGA_ST_LINK_UP) != 0;
    out->dma_running = (st & FPGA_ST_DMA_RUNNING) != 0;
    out->end_of_stream = (st & FPGA_ST_EOS) != 0;
    out->rx_packets = fpga_rd64(b, FPGA_REG_RX_PACKETS);
    out->rx_bytes = fpga_rd64(b, FPGA_REG_RX_BYTES);
    out->rx_dropped = fpga_rd64(b, FPGA_REG_RX_DROPPED);
    out->link_downs = fpga_rd64(b, FPGA_REG_LINK_DOWNS);
    out->dma_resets = fpga_rd64(b, FPGA_REG_DMA_RESETS);
    out->faults_fired = fpga_rd(b, FPGA_REG_SIM_FAULTS);
    out->ts_now_ns = fpga_rd64(b, FPGA_REG_TS_NOW);
    out->flowcache_entries = fpga_rd(b, FPGA_REG_FC_ENTRIES);
    out->flowcache_used = fpga_rd(b, FPGA_REG_FC_USED);
    out->flowcache_overflow = fpga_rd64(b, FPGA_REG_FC_OVERFLOW);
    out->desc_count = fpga_rd(b, FPGA_REG_DESC_COUNT);
    out->data_size = fpga_rd(b, FPGA_REG_DATA_SIZE);
    dev_close(&d);
    return HW_OK;
}

static const char *const fw_errors[][2] = {
    [FPGA_FWERR_TARGET] = {"target", "built for another hardware target"},
    [FPGA_FWERR_LENGTH] = {"length", "length mismatch"},
    [FPGA_FWERR_CRC] = {"crc", "CRC-32 mismatch (the transfer was damaged)"},
    [FPGA_FWERR_SEQUENCE] = {"sequence", "chunk out of sequence"},
    [FPGA_FWERR_COMMAND] = {"command", "unknown mailbox command"},
};

const char *hw_fpga_fw_error_name(int code)
{
    return code > 0 && code <= FPGA_FWERR_COMMAND ? fw_errors[code][0] : NULL;
}

static const char *fw_error_text(uint32_t e)
{
    return e > 0 && e <= FPGA_FWERR_COMMAND ? fw_errors[e][1] : "unknown error";
}

/* One mailbox command; 0, or HW_E_* with the card's reason. */
static int mbox(const char *path, uint8_t *b, uint32_t cmd, const uint32_t *args, int nargs, const void *data,
                uint32_t len, char *errbuf)
{
    for (int i = 0; i < nargs; i++) fpga_wr(b, FPGA_REG_MBOX_ARG0 + 4 * (uint32_t)i, args[i]);
    if (len) memcpy(b + FPGA_MBOX_DATA, data, len);
    fpga_wr(b, FPGA_REG_MBOX_CMD, cmd);
    uint32_t seq = fpga_rd(b, FPGA_REG_MBOX_ACK) + 1;
    fpga_wr(b, FPGA_REG_MBOX_SEQ, seq);
    int rc = await(path, b, FPGA_REG_MBOX_ACK, 0xffffffffu, seq, "firmware mailbox", errbuf);
    if (rc) return rc;
    uint32_t status = fpga_rd(b, FPGA_REG_MBOX_STATUS);
    if (status == FPGA_FWERR_NONE) return HW_OK;
    return hwint_err(errbuf, status == FPGA_FWERR_CRC || status == FPGA_FWERR_SEQUENCE ? HW_E_IO : HW_E_ARG,
                     "%s: the card refused the firmware: %s", path, fw_error_text(status));
}

int hw_fpga_load(const char *device, const char *target, uint32_t major, uint32_t minor, uint32_t patch,
                 uint32_t rollback, const uint8_t *payload, uint32_t len, char *errbuf)
{
    if (!payload || !len || len > FPGA_FW_MAX)
        return hwint_err(errbuf, HW_E_ARG, "firmware payload of %u bytes: must be 1..%u", len, FPGA_FW_MAX);
    if (!target || !*target || strlen(target) > FPGA_TARGET_LEN || major > 0xffff || minor > 0xffff || patch > 0xffff)
        return hwint_err(errbuf, HW_E_ARG, "bad firmware target or version");
    struct dev d;
    int rc = dev_open(device, &d, errbuf);
    if (rc) return rc;
    uint8_t *b = d.bar;
    /* a capture session holds the card's lock too: no load under a running capture */
    if (flock(d.fd, LOCK_EX | LOCK_NB) < 0) {
        rc = hwint_err(errbuf, HW_E_STATE, "%s: a capture or another load is using the card; stop it first", device);
    } else {
        char name[FPGA_TARGET_LEN] = {0};
        memcpy(name, target, strlen(target));
        uint32_t begin[FPGA_MBOX_ARGS] = {len, hwint_crc32(0, payload, len), major, minor << 16 | patch, rollback};
        rc = mbox(device, b, FPGA_MBOX_BEGIN, begin, FPGA_MBOX_ARGS, name, sizeof name, errbuf);
        for (uint32_t off = 0; rc == HW_OK && off < len; off += FPGA_MBOX_DATA_SIZE) {
            uint32_t n = len - off < FPGA_MBOX_DATA_SIZE ? len - off : FPGA_MBOX_DATA_SIZE;
            uint32_t chunk[2] = {off, n};
            rc = mbox(device, b, FPGA_MBOX_CHUNK, chunk, 2, payload + off, n, errbuf);
        }
        if (rc == HW_OK) rc = mbox(device, b, FPGA_MBOX_COMMIT, NULL, 0, NULL, 0, errbuf);
    }
    flock(d.fd, LOCK_UN);
    dev_close(&d);
    return rc;
}

int hw_fpga_fault(const char *device, int kind, uint64_t at_packet, uint32_t arg, char *errbuf)
{
    if (kind < HW_FPGA_FAULT_STALL || kind > HW_FPGA_FAULT_FW_CRC) return hwint_err(errbuf, HW_E_ARG, "unknown fault %d", kind);
    struct dev d;
    int rc = dev_open(device, &d, errbuf);
    if (rc) return rc;
    if (!(fpga_rd(d.bar, FPGA_REG_CAPS) & FPGA_CAP_MODEL)) {
        rc = hwint_err(errbuf, HW_E_UNSUPPORTED, "%s: faults can be injected into fpga-sim only", device);
    } else {
        fpga_wr64(d.bar, FPGA_REG_SIM_FAULT_AT, at_packet);
        fpga_wr(d.bar, FPGA_REG_SIM_FAULT_ARG, arg);
        fpga_wr(d.bar, FPGA_REG_SIM_FAULT, (uint32_t)kind);
        rc = await(device, d.bar, FPGA_REG_SIM_FAULT, 0xffffffffu, 0, "fault injection", errbuf);
    }
    dev_close(&d);
    return rc;
}

/* ---- the backend ---------------------------------------------------------------- */

static int fp_available(char *errbuf)
{
    struct dev d;
    int rc = dev_open(FPGA_DEFAULT_DEVICE, &d, errbuf);
    if (rc == HW_OK) dev_close(&d);
    return rc;
}

static void fp_close(void *st)
{
    struct fp *f = st;
    if (f->d.map && f->owner) {
        fpga_clear(f->d.bar, FPGA_REG_CONTROL, FPGA_CTRL_DMA_ENABLE | FPGA_CTRL_FLOWCACHE);
        doorbell(f->d.bar);
    }
    dev_close(&f->d);
    hwint_ufilter_free(&f->filter);
    free(f->path);
    free(f);
}

static int fp_set_filter(void *st, const char *bpf, char *errbuf)
{
    struct fp *f = st;
    return hwint_ufilter_set(&f->filter, f->linktype, bpf, errbuf);
}

static int fp_open(const struct hw_config *cfg, void **out, int *linktype, char *errbuf)
{
    struct fp *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(cfg->source))) {
        free(f);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    int rc = dev_open(f->path, &f->d, errbuf);
    if (rc) {
        f->d.map = NULL;
        fp_close(f);
        return rc;
    }
    uint8_t *b = f->d.bar;
    if (!(fpga_rd(b, FPGA_REG_STATUS) & FPGA_ST_FW_RUNNING)) {
        fp_close(f);
        return hwint_err(errbuf, HW_E_STATE, "%s: no verified firmware runs on the card: load one first "
                         "(capbox fw load IMAGE)", cfg->source);
    }
    /* one capture session at a time; DMA left on by a session that died is switched off */
    if (flock(f->d.fd, LOCK_EX | LOCK_NB) < 0) {
        fp_close(f);
        return hwint_err(errbuf, HW_E_STATE, "%s: the card is in use by another capture or a firmware load",
                         cfg->source);
    }
    f->owner = 1;
    fpga_wr(b, FPGA_REG_CONTROL, 0);
    rc = await(f->path, b, FPGA_REG_STATUS, FPGA_ST_DMA_RUNNING, 0, "DMA disable", errbuf);
    if (rc) {
        fp_close(f);
        return rc;
    }
    f->desc = (struct fpga_desc *)(f->d.map + fpga_rd(b, FPGA_REG_DESC_OFF));
    f->ndesc = fpga_rd(b, FPGA_REG_DESC_COUNT);
    f->data = f->d.map + fpga_rd(b, FPGA_REG_DATA_OFF);
    f->data_size = fpga_rd(b, FPGA_REG_DATA_SIZE);
    f->fc = (struct fpga_flow *)(f->d.map + fpga_rd(b, FPGA_REG_FC_OFF));
    f->fc_entries = fpga_rd(b, FPGA_REG_FC_ENTRIES);
    f->link_downs_seen = fpga_rd64(b, FPGA_REG_LINK_DOWNS);
    f->dropped0 = fpga_rd64(b, FPGA_REG_RX_DROPPED);
    /* a rising edge of DMA_ENABLE starts a new capture: rings at 0, source from its start */
    fpga_wr(b, FPGA_REG_CONTROL, FPGA_CTRL_DMA_ENABLE | FPGA_CTRL_FLOWCACHE);
    rc = await(f->path, b, FPGA_REG_STATUS, FPGA_ST_DMA_RUNNING, FPGA_ST_DMA_RUNNING, "DMA enable", errbuf);
    f->linktype = (int)fpga_rd(b, FPGA_REG_LINKTYPE);
    if (rc == HW_OK && cfg->bpf && *cfg->bpf) rc = fp_set_filter(f, cfg->bpf, errbuf);
    if (rc) {
        fp_close(f);
        return rc;
    }
    f->hb_last = fpga_rd(b, FPGA_REG_HEARTBEAT);
    f->hb_since = hwint_mono_ns();
    *linktype = f->linktype;
    *out = f;
    return HW_OK;
}

static int fp_start(void *st, char *errbuf)
{
    (void)st, (void)errbuf;
    return HW_OK;
}

/* The DMA engine hangs: reset it (what was queued is lost and counted) and go on. */
static int recover_stall(struct fp *f, uint64_t frozen_ns, char *errbuf)
{
    uint8_t *b = f->d.bar;
    uint32_t queued = fpga_rd(b, FPGA_REG_DESC_HEAD) - f->tail;
    fpga_or(b, FPGA_REG_CONTROL, FPGA_CTRL_RESET);
    int rc = await(f->path, b, FPGA_REG_CONTROL, FPGA_CTRL_RESET, 0, "DMA reset", errbuf);
    if (rc) return rc;
    f->tail = f->data_tail = 0;
    f->hb_since = hwint_mono_ns();
    return hwint_err(errbuf, HW_E_IO, "%s: the card's DMA engine stalled (no progress for %llu ms); "
                     "reset it, %u queued frames lost", f->path, (unsigned long long)(frozen_ns / 1000000ULL), queued);
}

/* Nothing in the ring: end of stream, a stall, or sleep until the card interrupts. */
static int wait_frames(struct fp *f, int timeout_ms, char *errbuf)
{
    uint8_t *b = f->d.bar;
    uint32_t st = fpga_rd(b, FPGA_REG_STATUS);
    if (!(st & FPGA_ST_FW_RUNNING) || !(st & FPGA_ST_DMA_RUNNING))
        return hwint_err(errbuf, HW_E_IO, "%s: the card stopped (firmware %s, DMA %s)", f->path,
                         st & FPGA_ST_FW_RUNNING ? "running" : "gone", st & FPGA_ST_DMA_RUNNING ? "on" : "off");
    uint64_t now = hwint_mono_ns();
    uint32_t hb = fpga_rd(b, FPGA_REG_HEARTBEAT);
    if (hb != f->hb_last) {
        f->hb_last = hb;
        f->hb_since = now;
    } else if (!(st & FPGA_ST_EOS) && now - f->hb_since > STALL_NS) {
        return recover_stall(f, now - f->hb_since, errbuf);
    }
    if (timeout_ms <= 0) return HW_OK;
    uint32_t count = fpga_rd(b, FPGA_REG_IRQ_COUNT);
    fpga_wr(b, FPGA_REG_IRQ_ARMED, 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* armed before the ring is looked at again */
    if (fpga_rd(b, FPGA_REG_DESC_HEAD) == f->tail && !(fpga_rd(b, FPGA_REG_STATUS) & FPGA_ST_EOS))
        fpga_wait(b, FPGA_REG_IRQ_COUNT, count, (timeout_ms < IRQ_WAIT_MAX_MS ? timeout_ms : IRQ_WAIT_MAX_MS) * 1000);
    return HW_OK;
}

static int fp_poll(void *st, struct hw_batch *b, int timeout_ms, char *errbuf)
{
    struct fp *f = st;
    uint8_t *bar = f->d.bar;
    /* the previous batch is done with: give its descriptors and data back */
    fpga_wr(bar, FPGA_REG_DATA_TAIL, f->data_tail);
    fpga_wr(bar, FPGA_REG_DESC_TAIL, f->tail);
    if (f->pending_rc) {
        int rc = f->pending_rc;
        f->pending_rc = 0;
        memcpy(errbuf, f->pending_err, HW_ERRBUF_SIZE);
        return rc;
    }
    uint64_t downs = fpga_rd64(bar, FPGA_REG_LINK_DOWNS);
    if (downs != f->link_downs_seen) {
        f->link_downs_seen = downs;
        return hwint_err(errbuf, HW_E_IO, "%s: link down (%llu times since power-on); capture goes on when it is back",
                         f->path, (unsigned long long)downs);
    }
    uint32_t head = fpga_rd(bar, FPGA_REG_DESC_HEAD);
    if (head == f->tail) {
        int eos = (fpga_rd(bar, FPGA_REG_STATUS) & FPGA_ST_EOS) != 0;
        head = fpga_rd(bar, FPGA_REG_DESC_HEAD); /* the end of stream is set after the last head */
        if (head == f->tail && eos) {
            b->eof = 1;
            return 0;
        }
        if (head == f->tail) {
            int rc = wait_frames(f, timeout_ms, errbuf);
            if (rc) return rc;
            head = fpga_rd(bar, FPGA_REG_DESC_HEAD);
        }
    }
    uint32_t dmask = f->data_size - 1;
    while (b->n < b->cap && f->tail != head) {
        struct fpga_desc d = f->desc[f->tail & (f->ndesc - 1)];
        uint32_t off = d.data_pos & dmask;
        if (HW_UNLIKELY(d.check != fpga_desc_check(&d) || d.seq != f->tail + 1 || d.caplen > HW_MAX_CAPLEN ||
                        (uint64_t)off + d.caplen > f->data_size)) {
            f->tail++;
            f->desc_errors++;
            char *eb = b->n ? f->pending_err : errbuf;
            int rc = hwint_err(eb, HW_E_IO, "%s: corrupt DMA descriptor %u (seq %u, %u bytes at %u); frame dropped",
                               f->path, f->tail - 1, d.seq, d.caplen, d.data_pos);
            if (!b->n) return rc;
            f->pending_rc = rc; /* hand on the frames before it first */
            break;
        }
        f->tail++;
        f->data_tail = d.data_pos + ((d.caplen + FPGA_FRAME_ALIGN - 1) & ~(FPGA_FRAME_ALIGN - 1));
        struct hw_pkt p = {f->data + off, d.caplen, d.wirelen, d.ts_ns};
        if (!hwint_ufilter_pass(&f->filter, &p)) {
            f->filtered++;
            continue;
        }
        b->pkt[b->n++] = p;
    }
    f->delivered += (uint64_t)b->n;
    return b->n;
}

static void fp_stats(void *st, struct hw_counters *c)
{
    struct fp *f = st;
    c->backend_received += f->delivered + f->filtered + f->desc_errors;
    c->backend_dropped += fpga_rd64(f->d.bar, FPGA_REG_RX_DROPPED) - f->dropped0;
    c->backend_if_dropped += f->desc_errors;
    c->backend_filtered += f->filtered;
}

static int fp_offload_flows(void *st, struct hw_offload_flow *out, int max)
{
    struct fp *f = st;
    int n = 0;
    for (uint32_t i = 0; i < f->fc_entries && n < max; i++) {
        struct fpga_flow *e = &f->fc[i], copy;
        for (int tries = 0; tries < 16; tries++) {
            uint32_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
            memcpy(&copy, e, sizeof copy);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (!(s1 & 1) && __atomic_load_n(&e->seq, __ATOMIC_RELAXED) == s1) break;
            copy.used = 0;
        }
        if (!copy.used) continue;
        struct hw_offload_flow *o = &out[n++];
        memcpy(o->addr_a, copy.addr_a, 16);
        memcpy(o->addr_b, copy.addr_b, 16);
        o->port_a = copy.port_a;
        o->port_b = copy.port_b;
        o->vlan = copy.vlan;
        o->family = copy.family;
        o->proto = copy.proto;
        o->packets = copy.packets;
        o->bytes = copy.bytes;
        o->first_ns = copy.first_ns;
        o->last_ns = copy.last_ns;
    }
    return n;
}

const struct hw_backend_ops hw_fpga_ops = {
    .name = "fpga",
    .description = "the FPGA capture card (or fpga-sim) at a device path: DMA ring, hardware timestamps, flow cache",
    .caps = HW_CAP_BPF | HW_CAP_HWTSTAMP | HW_CAP_FLOWOFFLOAD,
    .available = fp_available,
    .open = fp_open,
    .start = fp_start,
    .poll = fp_poll,
    .stats = fp_stats,
    .set_filter = fp_set_filter,
    .close = fp_close,
    .offload_flows = fp_offload_flows,
};
