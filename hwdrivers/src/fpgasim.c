/* fpgasim.c - a software model of the capture card, behind the card's
 * register map (fpga_regs.h) in a shared-memory file, so the fpga driver
 * runs against it exactly as it would against the card's BAR.
 *
 * The model boots with no firmware.  It takes an image through the firmware
 * mailbox in chunks and runs it only when target, length and CRC-32 check
 * out.  With firmware running and DMA enabled it takes frames from its
 * source (a capture file through the pcapfile backend, or an interface
 * through pcap), stamps them (the recorded time, or the kernel's for an
 * interface), copies them into the data ring, writes a descriptor per frame,
 * meters each conversation in the flow cache and raises an interrupt (a
 * futex wake on IRQ_COUNT when the driver armed it).  A full ring holds the
 * source back.  Faults are armed through the SIM_FAULT registers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"
#include "fpga_regs.h"

#define SIM_HW_VERSION 0x00010002u
#define IDLE_WAIT_US 1000       /* nothing to do: sleep on the doorbell this long at most */
#define FULL_WAIT_US 50         /* ring full: look again this soon */
#define FC_PROBE 64             /* flow-cache probe run before a packet counts as overflow */
#define ALIVE_CHECK_NS (50 * 1000000ULL)

struct hw_fpgasim {
    char *device, *source;
    int live, loop;
    double pace;
    int fd;
    uint8_t *map, *bar, *data;
    size_t map_size;
    struct fpga_desc *desc;
    struct fpga_flow *fc;
    uint32_t ndesc, data_size, fc_entries;
    char target[FPGA_TARGET_LEN + 1];
    _Atomic int stop;
    /* DMA engine */
    uint32_t ctrl_seen;
    uint32_t head, data_head;       /* free-running */
    uint64_t frames;                /* frames taken from the source since DMA was enabled */
    int stalled;
    uint64_t link_back_ns;          /* a dropped link comes back then (monotonic), 0 when up */
    int fault_kind;
    uint64_t fault_at;
    uint32_t fault_arg;
    int fw_crc_fault;
    /* firmware being received */
    uint8_t *fw;
    uint32_t fw_len, fw_got, fw_crc, fw_args[FPGA_MBOX_ARGS];
    int fw_open;
    /* source */
    const struct hw_backend_ops *ops;
    void *src;
    int linktype, src_eof, eof_pending;
    struct hw_batch batch;
    int batch_pos;
    /* the batch parsed for the flow cache as it arrives, its table slots fetched ahead */
    struct hw_meta meta[HW_BATCH_MAX];
    uint32_t hash[HW_BATCH_MAX];
    uint8_t is_ip[HW_BATCH_MAX];
    struct hw_frags *frags;
    struct hw_counters scratch;     /* the parser's counters, unused */
};

static int pow2(uint64_t v) { return v && !(v & (v - 1)); }
static size_t page_up(size_t v) { return (v + 4095) & ~(size_t)4095; }

/* ---- interrupts --------------------------------------------------------- */

static void raise_irq(struct hw_fpgasim *s, uint32_t bits)
{
    fpga_or(s->bar, FPGA_REG_IRQ_STATUS, bits);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the driver arms, then re-reads the ring: store-load */
    if (fpga_rd(s->bar, FPGA_REG_IRQ_ARMED)) {
        fpga_wr(s->bar, FPGA_REG_IRQ_ARMED, 0);
        __atomic_fetch_add((uint32_t *)(s->bar + FPGA_REG_IRQ_COUNT), 1, __ATOMIC_SEQ_CST);
        fpga_wake(s->bar, FPGA_REG_IRQ_COUNT);
    }
}

/* ---- the source ---------------------------------------------------------- */

static int open_source(struct hw_fpgasim *s, char *errbuf)
{
    struct hw_config cfg;
    hw_config_init(&cfg);
    cfg.backend = s->live ? "pcap" : "pcapfile";
    cfg.source = s->source;
    cfg.pace = s->pace;
    cfg.loop = s->loop;
    s->ops = s->live ? &hw_pcap_ops : &hw_pcapfile_ops;
    int rc = s->ops->open(&cfg, &s->src, &s->linktype, errbuf);
    if (rc == HW_OK && (rc = s->ops->start(s->src, errbuf)) != HW_OK) {
        s->ops->close(s->src);
        s->src = NULL;
    }
    s->batch.n = s->batch_pos = 0;
    s->src_eof = s->eof_pending = 0;
    return rc;
}

static void close_source(struct hw_fpgasim *s)
{
    if (s->src) s->ops->close(s->src);
    s->src = NULL;
}

/* ---- the flow cache ------------------------------------------------------ */

static void fc_clear(struct hw_fpgasim *s)
{
    memset(s->fc, 0, (size_t)s->fc_entries * sizeof *s->fc);
    fpga_wr(s->bar, FPGA_REG_FC_USED, 0);
    fpga_wr64(s->bar, FPGA_REG_FC_OVERFLOW, 0);
}

/* Parse a fresh batch in order (fragments take their first fragment's ports)
 * and fetch each frame's flow-cache slot before it is needed. */
static void fc_prepare(struct hw_fpgasim *s)
{
    for (int i = 0; i < s->batch.n; i++) {
        const struct hw_pkt *p = &s->batch.pkt[i];
        uint32_t wirelen = p->wirelen > p->caplen ? p->wirelen : p->caplen;
        struct hw_meta *m = &s->meta[i];
        s->is_ip[i] = hwint_parse(s->linktype, p->data, p->caplen, wirelen, m, &s->scratch, NULL) == HW_P_IP;
        if (!s->is_ip[i]) continue;
        if (m->frag) hwint_frag_ports(s->frags, m, p->ts_ns);
        s->hash[i] = hwint_ft_hash(m);
        __builtin_prefetch(&s->fc[s->hash[i] & (s->fc_entries - 1)], 1);
    }
}

static void fc_meter(struct hw_fpgasim *s, int i, uint32_t wirelen)
{
    if (!s->is_ip[i]) return;
    const struct hw_pkt *p = &s->batch.pkt[i];
    const struct hw_meta *m = &s->meta[i];
    int cmp = memcmp(m->src, m->dst, 16);
    int swap = cmp > 0 || (cmp == 0 && m->sport > m->dport);
    const uint8_t *a = swap ? m->dst : m->src, *b = swap ? m->src : m->dst;
    uint16_t pa = swap ? m->dport : m->sport, pb = swap ? m->sport : m->dport;
    uint32_t h = s->hash[i], mask = s->fc_entries - 1;
    for (uint32_t k = 0; k < FC_PROBE; k++) {
        struct fpga_flow *e = &s->fc[(h + k) & mask];
        int fresh = !e->used;
        if (!fresh && !(e->proto == m->proto && e->family == m->family && e->vlan == m->vlan && e->port_a == pa &&
                        e->port_b == pb && !memcmp(e->addr_a, a, 16) && !memcmp(e->addr_b, b, 16)))
            continue;
        /* seqlock: odd while written, so the driver never reads half an entry */
        uint32_t seq = e->seq;
        __atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        if (fresh) {
            e->used = 1, e->family = m->family, e->proto = m->proto, e->vlan = m->vlan;
            e->port_a = pa, e->port_b = pb;
            memcpy(e->addr_a, a, 16);
            memcpy(e->addr_b, b, 16);
            e->first_ns = p->ts_ns;
            fpga_wr(s->bar, FPGA_REG_FC_USED, fpga_rd(s->bar, FPGA_REG_FC_USED) + 1);
        }
        e->packets++;
        e->bytes += wirelen;
        if (p->ts_ns > e->last_ns) e->last_ns = p->ts_ns;
        if (p->ts_ns < e->first_ns) e->first_ns = p->ts_ns;
        __atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
        return;
    }
    fpga_add64(s->bar, FPGA_REG_FC_OVERFLOW, 1);
}

/* ---- DMA ------------------------------------------------------------------ */

static void set_status(struct hw_fpgasim *s, uint32_t bits, int on)
{
    if (on) fpga_or(s->bar, FPGA_REG_STATUS, bits);
    else fpga_clear(s->bar, FPGA_REG_STATUS, bits);
}

static void dma_zero(struct hw_fpgasim *s)
{
    s->head = s->data_head = 0;
    fpga_wr(s->bar, FPGA_REG_DESC_HEAD, 0);
    fpga_wr(s->bar, FPGA_REG_DESC_TAIL, 0);
    fpga_wr(s->bar, FPGA_REG_DATA_TAIL, 0);
}

/* A reset empties the rings (frames still queued are lost) and unsticks the engine. */
static void dma_reset(struct hw_fpgasim *s)
{
    uint32_t queued = s->head - fpga_rd(s->bar, FPGA_REG_DESC_TAIL);
    fpga_add64(s->bar, FPGA_REG_RX_DROPPED, queued);
    fpga_add64(s->bar, FPGA_REG_DMA_RESETS, 1);
    dma_zero(s);
    s->stalled = 0;
}

static int dma_start(struct hw_fpgasim *s, char *errbuf)
{
    int rc = open_source(s, errbuf);
    if (rc) return rc;
    struct hw_frags *fresh = hwint_frags_create(); /* a capture's fragments are its own */
    if (!fresh) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    hwint_frags_destroy(s->frags);
    s->frags = fresh;
    dma_zero(s);
    s->frames = 0;
    s->stalled = 0;
    fc_clear(s);
    fpga_wr(s->bar, FPGA_REG_LINKTYPE, (uint32_t)s->linktype);
    fpga_wr64(s->bar, FPGA_REG_TS_FIRST, 0);
    set_status(s, FPGA_ST_EOS, 0);
    set_status(s, FPGA_ST_DMA_RUNNING, 1);
    return HW_OK;
}

static void dma_stop(struct hw_fpgasim *s)
{
    close_source(s);
    set_status(s, FPGA_ST_DMA_RUNNING, 0);
}

static void fire_fault(struct hw_fpgasim *s, int kind)
{
    s->fault_kind = FPGA_FAULT_NONE;
    fpga_wr(s->bar, FPGA_REG_SIM_FAULTS, fpga_rd(s->bar, FPGA_REG_SIM_FAULTS) + 1);
    if (kind == FPGA_FAULT_STALL) {
        s->stalled = 1;
    } else if (kind == FPGA_FAULT_LINK) {
        set_status(s, FPGA_ST_LINK_UP, 0);
        fpga_add64(s->bar, FPGA_REG_LINK_DOWNS, 1);
        s->link_back_ns = hwint_mono_ns() + (uint64_t)s->fault_arg * 1000000ULL;
        raise_irq(s, FPGA_IRQ_LINK);
    }
}

/* Move frames from the source into the rings; returns how many, or -1 when
 * the ring is full. */
static int pump(struct hw_fpgasim *s)
{
    uint32_t st = fpga_rd(s->bar, FPGA_REG_STATUS);
    if (!s->src || s->stalled || s->src_eof || !(st & FPGA_ST_FW_RUNNING) || !(st & FPGA_ST_LINK_UP)) return 0;
    if (s->batch_pos == s->batch.n && !s->eof_pending) {
        char err[HW_ERRBUF_SIZE];
        s->batch.n = s->batch_pos = 0;
        s->batch.eof = 0;
        s->batch.cap = HW_BATCH_MAX;
        int rc = s->ops->poll(s->src, &s->batch, s->live ? 1 : 0, err);
        /* a damaged file ends the stream where the damage starts */
        if (rc < 0 || s->batch.eof) s->eof_pending = 1;
        if (rc < 0) s->batch.n = 0;
        if (fpga_rd(s->bar, FPGA_REG_CONTROL) & FPGA_CTRL_FLOWCACHE) fc_prepare(s);
        else memset(s->is_ip, 0, (size_t)s->batch.n);
    }
    uint32_t tail = fpga_rd(s->bar, FPGA_REG_DESC_TAIL), dtail = fpga_rd(s->bar, FPGA_REG_DATA_TAIL);
    uint32_t dmask = s->data_size - 1, moved = 0, full = 0;
    uint64_t bytes = 0, ts = 0;
    while (s->batch_pos < s->batch.n) {
        const struct hw_pkt *p = &s->batch.pkt[s->batch_pos];
        int corrupt = 0;
        if (s->fault_kind && s->frames >= s->fault_at) {
            int kind = s->fault_kind;
            if (kind == FPGA_FAULT_CORRUPT) {
                corrupt = 1;
                fire_fault(s, kind);
            } else if (kind == FPGA_FAULT_STALL || kind == FPGA_FAULT_LINK) {
                fire_fault(s, kind);
                break;
            }
        }
        if (s->head - tail >= s->ndesc) { full = 1; break; }
        uint32_t need = (p->caplen + FPGA_FRAME_ALIGN - 1) & ~(FPGA_FRAME_ALIGN - 1);
        uint32_t pos = s->data_head, off = pos & dmask;
        if (off + need > s->data_size) pos += s->data_size - off; /* frames never wrap: skip to the start */
        if (pos + need - dtail > s->data_size) { full = 1; break; }
        memcpy(s->data + (pos & dmask), p->data, p->caplen);
        uint32_t wirelen = p->wirelen > p->caplen ? p->wirelen : p->caplen;
        struct fpga_desc *d = &s->desc[s->head & (s->ndesc - 1)];
        d->ts_ns = p->ts_ns;
        d->data_pos = pos;
        d->caplen = p->caplen;
        d->wirelen = wirelen;
        d->seq = s->head + 1;
        d->flags = 0;
        d->check = fpga_desc_check(d) ^ (corrupt ? 0x5A5A5A5Au : 0);
        s->data_head = pos + need;
        s->head++;
        fc_meter(s, s->batch_pos, wirelen);
        bytes += wirelen;
        ts = p->ts_ns;
        s->batch_pos++;
        s->frames++;
        moved++;
    }
    if (moved) {
        fpga_wr(s->bar, FPGA_REG_DESC_HEAD, s->head); /* release: the frames and descriptors first */
        fpga_add64(s->bar, FPGA_REG_RX_PACKETS, moved);
        fpga_add64(s->bar, FPGA_REG_RX_BYTES, bytes);
        if (!fpga_rd64(s->bar, FPGA_REG_TS_FIRST)) fpga_wr64(s->bar, FPGA_REG_TS_FIRST, s->batch.pkt[0].ts_ns);
        fpga_wr64(s->bar, FPGA_REG_TS_NOW, ts);
        raise_irq(s, FPGA_IRQ_RX);
    }
    if (s->eof_pending && s->batch_pos == s->batch.n && !s->src_eof) {
        s->src_eof = 1;
        set_status(s, FPGA_ST_EOS, 1);
        raise_irq(s, FPGA_IRQ_EOS);
    }
    return full && !moved ? -1 : (int)moved;
}

/* ---- firmware mailbox ------------------------------------------------------ */

static uint32_t mbox_command(struct hw_fpgasim *s, uint32_t cmd)
{
    uint32_t a[FPGA_MBOX_ARGS];
    for (int i = 0; i < FPGA_MBOX_ARGS; i++) a[i] = fpga_rd(s->bar, FPGA_REG_MBOX_ARG0 + 4 * i);
    const uint8_t *win = s->bar + FPGA_MBOX_DATA;
    switch (cmd) {
    case FPGA_MBOX_BEGIN: {
        free(s->fw);
        s->fw = NULL;
        s->fw_open = 0;
        if (a[0] == 0 || a[0] > FPGA_FW_MAX) return FPGA_FWERR_LENGTH;
        char target[FPGA_TARGET_LEN + 1] = {0};
        memcpy(target, win, FPGA_TARGET_LEN);
        if (strcmp(target, s->target) != 0) return FPGA_FWERR_TARGET;
        if (!(s->fw = malloc(a[0]))) return FPGA_FWERR_LENGTH;
        s->fw_len = a[0];
        s->fw_got = 0;
        s->fw_crc = a[1];
        memcpy(s->fw_args, a, sizeof a);
        s->fw_open = 1;
        fpga_wr(s->bar, FPGA_REG_FW_STATE, FPGA_FW_LOADING);
        return FPGA_FWERR_NONE;
    }
    case FPGA_MBOX_CHUNK:
        if (!s->fw_open || a[0] != s->fw_got) return FPGA_FWERR_SEQUENCE;
        if (a[1] == 0 || a[1] > FPGA_MBOX_DATA_SIZE || a[1] > s->fw_len - s->fw_got) return FPGA_FWERR_LENGTH;
        memcpy(s->fw + s->fw_got, win, a[1]);
        if (s->fw_crc_fault) { /* damaged on the bus */
            s->fw[s->fw_got] ^= 0x10;
            s->fw_crc_fault = 0;
            fpga_wr(s->bar, FPGA_REG_SIM_FAULTS, fpga_rd(s->bar, FPGA_REG_SIM_FAULTS) + 1);
        }
        s->fw_got += a[1];
        return FPGA_FWERR_NONE;
    case FPGA_MBOX_COMMIT:
        if (!s->fw_open) return FPGA_FWERR_SEQUENCE;
        if (s->fw_got != s->fw_len) return FPGA_FWERR_LENGTH;
        if (hwint_crc32(0, s->fw, s->fw_len) != s->fw_crc) return FPGA_FWERR_CRC;
        fpga_wr(s->bar, FPGA_REG_FW_VERSION_MAJOR, s->fw_args[2]);
        fpga_wr(s->bar, FPGA_REG_FW_VERSION_MINOR, s->fw_args[3]);
        fpga_wr(s->bar, FPGA_REG_FW_ROLLBACK, s->fw_args[4]);
        fpga_wr(s->bar, FPGA_REG_FW_CRC, s->fw_crc);
        fpga_wr(s->bar, FPGA_REG_FW_LENGTH, s->fw_len);
        fpga_wr(s->bar, FPGA_REG_FW_LOADS, fpga_rd(s->bar, FPGA_REG_FW_LOADS) + 1);
        fpga_wr(s->bar, FPGA_REG_FW_STATE, FPGA_FW_RUNNING);
        set_status(s, FPGA_ST_FW_RUNNING, 1);
        free(s->fw);
        s->fw = NULL;
        s->fw_open = 0;
        return FPGA_FWERR_NONE;
    case FPGA_MBOX_ABORT:
        free(s->fw);
        s->fw = NULL;
        s->fw_open = 0;
        return FPGA_FWERR_NONE;
    default:
        return FPGA_FWERR_COMMAND;
    }
}

static void mailbox(struct hw_fpgasim *s)
{
    uint32_t seq = fpga_rd(s->bar, FPGA_REG_MBOX_SEQ);
    if (seq == fpga_rd(s->bar, FPGA_REG_MBOX_ACK)) return;
    uint32_t status = mbox_command(s, fpga_rd(s->bar, FPGA_REG_MBOX_CMD));
    if (status != FPGA_FWERR_NONE) {
        /* a failed load leaves what ran before running: images are staged */
        free(s->fw);
        s->fw = NULL;
        s->fw_open = 0;
        fpga_wr(s->bar, FPGA_REG_FW_ERROR, status);
        uint32_t running = fpga_rd(s->bar, FPGA_REG_STATUS) & FPGA_ST_FW_RUNNING;
        fpga_wr(s->bar, FPGA_REG_FW_STATE, running ? FPGA_FW_RUNNING : FPGA_FW_FAILED);
    }
    fpga_wr(s->bar, FPGA_REG_MBOX_STATUS, status);
    fpga_wr(s->bar, FPGA_REG_MBOX_ACK, seq);
    raise_irq(s, FPGA_IRQ_MBOX);
}

/* ---- control, faults, link --------------------------------------------------- */

static int control(struct hw_fpgasim *s, char *errbuf)
{
    uint32_t kind = fpga_rd(s->bar, FPGA_REG_SIM_FAULT);
    if (kind) {
        if (kind == FPGA_FAULT_FW_CRC) {
            s->fw_crc_fault = 1;
        } else {
            s->fault_kind = (int)kind;
            s->fault_at = fpga_rd64(s->bar, FPGA_REG_SIM_FAULT_AT);
            s->fault_arg = fpga_rd(s->bar, FPGA_REG_SIM_FAULT_ARG);
        }
        fpga_wr(s->bar, FPGA_REG_SIM_FAULT, 0);
    }
    if (s->link_back_ns && hwint_mono_ns() >= s->link_back_ns) {
        s->link_back_ns = 0;
        set_status(s, FPGA_ST_LINK_UP, 1);
        raise_irq(s, FPGA_IRQ_LINK);
    }
    uint32_t ctrl = fpga_rd(s->bar, FPGA_REG_CONTROL);
    if (ctrl & FPGA_CTRL_RESET) {
        dma_reset(s);
        fpga_clear(s->bar, FPGA_REG_CONTROL, FPGA_CTRL_RESET);
    }
    int on = (ctrl & FPGA_CTRL_DMA_ENABLE) != 0, was = (s->ctrl_seen & FPGA_CTRL_DMA_ENABLE) != 0;
    s->ctrl_seen = ctrl & ~FPGA_CTRL_RESET;
    if (on && !was) return dma_start(s, errbuf);
    if (!on && was) dma_stop(s);
    return HW_OK;
}

int hw_fpgasim_run(struct hw_fpgasim *s, int timeout_ms, char *errbuf)
{
    uint64_t deadline = timeout_ms >= 0 ? hwint_mono_ns() + (uint64_t)timeout_ms * 1000000ULL : 0;
    while (!atomic_load(&s->stop)) {
        if (deadline && hwint_mono_ns() >= deadline) return HW_OK;
        if (!s->stalled) fpga_wr(s->bar, FPGA_REG_HEARTBEAT, fpga_rd(s->bar, FPGA_REG_HEARTBEAT) + 1);
        int rc = control(s, errbuf);
        if (rc) return rc;
        mailbox(s);
        int moved = pump(s);
        if (moved <= 0) {
            uint32_t bell = fpga_rd(s->bar, FPGA_REG_DOORBELL);
            fpga_wait(s->bar, FPGA_REG_DOORBELL, bell, moved < 0 ? FULL_WAIT_US : IDLE_WAIT_US);
        }
    }
    atomic_store(&s->stop, 0);
    return HW_OK;
}

void hw_fpgasim_stop(struct hw_fpgasim *s)
{
    atomic_store(&s->stop, 1);
    fpga_wake(s->bar, FPGA_REG_DOORBELL);
}

/* ---- creation ----------------------------------------------------------------- */

void hw_fpgasim_config_init(struct hw_fpgasim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->device = FPGA_DEFAULT_DEVICE;
    cfg->target = "capbox-fpga1";
    cfg->desc_count = 16384;
    cfg->data_mb = 64;
    cfg->flow_entries = 1u << 19;
}

void hw_fpgasim_destroy(struct hw_fpgasim *s)
{
    if (!s) return;
    close_source(s);
    if (s->map) {
        fpga_wr(s->bar, FPGA_REG_STATUS, 0); /* a driver still mapping it sees a dead card */
        munmap(s->map, s->map_size);
    }
    if (s->fd >= 0) {
        unlink(s->device);
        close(s->fd);
    }
    hwint_frags_destroy(s->frags);
    free(s->fw);
    free(s->device);
    free(s->source);
    free(s);
}

/* A device file left by a model that is gone (its heartbeat stands still)
 * is replaced; one whose heartbeat moves belongs to a running model, and a
 * file that is no card at all is never touched. */
static int claim_device(const char *path, char *errbuf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? HW_OK : hwint_err(errbuf, HW_E_OPEN, "%s: %s", path, strerror(errno));
    struct stat sb;
    int card = 0, alive = 0;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size >= FPGA_BAR_SIZE) {
        uint8_t *bar = mmap(NULL, FPGA_BAR_SIZE, PROT_READ, MAP_SHARED, fd, 0);
        if (bar != MAP_FAILED) {
            card = fpga_rd(bar, FPGA_REG_ID) == FPGA_ID;
            uint32_t hb = fpga_rd(bar, FPGA_REG_HEARTBEAT);
            struct timespec t = {0, (long)ALIVE_CHECK_NS};
            if (card) nanosleep(&t, NULL);
            alive = card && fpga_rd(bar, FPGA_REG_HEARTBEAT) != hb;
            munmap(bar, FPGA_BAR_SIZE);
        }
    }
    close(fd);
    if (!card) return hwint_err(errbuf, HW_E_OPEN, "%s exists and is not a card's device file; not replacing it", path);
    if (alive) return hwint_err(errbuf, HW_E_STATE, "%s: another fpga-sim runs this card", path);
    unlink(path);
    return HW_OK;
}

int hw_fpgasim_create(const struct hw_fpgasim_config *cfg, struct hw_fpgasim **out, char *errbuf)
{
    *out = NULL;
    if (!cfg->device || !*cfg->device) return hwint_err(errbuf, HW_E_ARG, "no device path given");
    if (!cfg->source || !*cfg->source) return hwint_err(errbuf, HW_E_ARG, "no source given");
    if (!cfg->target || !*cfg->target || strlen(cfg->target) > FPGA_TARGET_LEN)
        return hwint_err(errbuf, HW_E_ARG, "target must be 1 to %d characters", FPGA_TARGET_LEN);
    if (!pow2(cfg->desc_count) || cfg->desc_count < 1024 || cfg->desc_count > (1u << 20))
        return hwint_err(errbuf, HW_E_ARG, "desc_count %u: a power of two in 1024..%u", cfg->desc_count, 1u << 20);
    if (!pow2(cfg->data_mb) || cfg->data_mb > 1024)
        return hwint_err(errbuf, HW_E_ARG, "data_mb %u: a power of two in 1..1024", cfg->data_mb);
    if (!pow2(cfg->flow_entries) || cfg->flow_entries < 1024 || cfg->flow_entries > (1u << 24))
        return hwint_err(errbuf, HW_E_ARG, "flow_entries %u: a power of two in 1024..%u", cfg->flow_entries,
                         1u << 24);
    if (cfg->pace < 0 || cfg->pace > 1000) return hwint_err(errbuf, HW_E_ARG, "pace %g out of range 0..1000", cfg->pace);
    struct hw_fpgasim *s = calloc(1, sizeof *s);
    if (!s) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    s->fd = -1;
    s->live = cfg->live;
    s->pace = cfg->pace;
    s->loop = cfg->loop;
    snprintf(s->target, sizeof s->target, "%s", cfg->target);
    s->device = strdup(cfg->device);
    s->source = strdup(cfg->source);
    s->frags = hwint_frags_create();
    if (!s->device || !s->source || !s->frags) {
        hw_fpgasim_destroy(s);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    /* the source must open now, not at the first capture */
    int rc = open_source(s, errbuf);
    close_source(s);
    if (rc == HW_OK) rc = claim_device(s->device, errbuf);
    if (rc) {
        hw_fpgasim_destroy(s);
        return rc;
    }
    s->ndesc = cfg->desc_count;
    s->data_size = cfg->data_mb << 20;
    s->fc_entries = cfg->flow_entries;
    size_t desc_off = FPGA_BAR_SIZE, data_off = page_up(desc_off + (size_t)s->ndesc * sizeof(struct fpga_desc));
    size_t fc_off = data_off + s->data_size;
    s->map_size = page_up(fc_off + (size_t)s->fc_entries * sizeof(struct fpga_flow));
    s->fd = open(s->device, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        rc = hwint_err(errbuf, errno == EACCES ? HW_E_PERM : HW_E_OPEN, "%s: %s", s->device, strerror(errno));
        hw_fpgasim_destroy(s);
        return rc;
    }
    if (ftruncate(s->fd, (off_t)s->map_size) < 0 ||
        (s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0)) == MAP_FAILED) {
        s->map = NULL;
        rc = hwint_err(errbuf, HW_E_NOMEM, "%s: %zu bytes: %s", s->device, s->map_size, strerror(errno));
        hw_fpgasim_destroy(s);
        return rc;
    }
    s->bar = s->map;
    s->desc = (struct fpga_desc *)(s->map + desc_off);
    s->data = s->map + data_off;
    s->fc = (struct fpga_flow *)(s->map + fc_off);
    uint8_t *b = s->bar;
    memcpy(b + FPGA_REG_TARGET, s->target, strlen(s->target));
    fpga_wr(b, FPGA_REG_HW_VERSION, SIM_HW_VERSION);
    fpga_wr(b, FPGA_REG_CAPS, FPGA_CAP_HWTSTAMP | FPGA_CAP_FLOWCACHE | FPGA_CAP_MODEL);
    fpga_wr(b, FPGA_REG_LINKTYPE, (uint32_t)s->linktype);
    fpga_wr(b, FPGA_REG_DESC_OFF, (uint32_t)desc_off);
    fpga_wr(b, FPGA_REG_DESC_COUNT, s->ndesc);
    fpga_wr(b, FPGA_REG_DATA_OFF, (uint32_t)data_off);
    fpga_wr(b, FPGA_REG_DATA_SIZE, s->data_size);
    fpga_wr(b, FPGA_REG_FC_OFF, (uint32_t)fc_off);
    fpga_wr(b, FPGA_REG_FC_ENTRIES, s->fc_entries);
    fpga_wr(b, FPGA_REG_MAP_SIZE, (uint32_t)s->map_size);
    fpga_wr(b, FPGA_REG_FW_STATE, FPGA_FW_NONE);
    fpga_wr(b, FPGA_REG_STATUS, FPGA_ST_LINK_UP);
    fpga_wr(b, FPGA_REG_ID, FPGA_ID); /* last: the card is there once its id reads */
    *out = s;
    return HW_OK;
}
