/* hw-pcap.c - live capture through libpcap: any interface libpcap can open,
 * with its BPF filter, snap length, buffer size and promiscuous mode.  The
 * portable path; afpacket is the fast one on Linux. */
#include <poll.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define ARENA_BYTES (8u << 20)

struct lp {
    pcap_t *pc;
    int fd;
    uint8_t *arena;
    size_t arena_used;
    struct hw_batch *b;
    uint64_t ps_recv, ps_drop, ps_ifdrop; /* pcap_stats wraps at 32 bits: widen */
    struct pcap_stat last;
};

static int map_pcap_error(int rc)
{
    switch (rc) {
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED: return HW_E_PERM;
    case PCAP_ERROR_NO_SUCH_DEVICE: return HW_E_NODEV;
    default: return HW_E_OPEN;
    }
}

static int lp_available(char *errbuf)
{
    char perr[PCAP_ERRBUF_SIZE];
    pcap_if_t *all = NULL;
    if (pcap_findalldevs(&all, perr) < 0) return hwint_err(errbuf, HW_E_OPEN, "libpcap: %s", perr);
    int any = all != NULL;
    pcap_freealldevs(all);
    return any ? HW_OK : hwint_err(errbuf, HW_E_PERM, "libpcap lists no interfaces (needs CAP_NET_RAW)");
}

static void lp_close(void *st)
{
    struct lp *l = st;
    if (l->pc) pcap_close(l->pc);
    free(l->arena);
    free(l);
}

static int lp_set_filter(void *st, const char *bpf, char *errbuf)
{
    struct lp *l = st;
    struct bpf_program prog;
    if (pcap_compile(l->pc, &prog, bpf && *bpf ? bpf : "", 1, PCAP_NETMASK_UNKNOWN) < 0)
        return hwint_err(errbuf, HW_E_FILTER, "bad filter \"%s\": %s", bpf, pcap_geterr(l->pc));
    int rc = pcap_setfilter(l->pc, &prog);
    pcap_freecode(&prog);
    if (rc < 0) return hwint_err(errbuf, HW_E_FILTER, "setfilter: %s", pcap_geterr(l->pc));
    return HW_OK;
}

static int lp_open(const struct hw_config *cfg, void **out, int *linktype, char *errbuf)
{
    char perr[PCAP_ERRBUF_SIZE];
    struct lp *l = calloc(1, sizeof *l);
    if (!l || !(l->arena = malloc(ARENA_BYTES))) {
        free(l);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    l->pc = pcap_create(cfg->source, perr);
    if (!l->pc) {
        lp_close(l);
        return hwint_err(errbuf, HW_E_OPEN, "%s: %s", cfg->source, perr);
    }
    pcap_set_snaplen(l->pc, (int)cfg->snaplen);
    pcap_set_promisc(l->pc, cfg->promisc);
    pcap_set_buffer_size(l->pc, (int)(cfg->buffer_size_mb << 20));
    pcap_set_timeout(l->pc, 10);
    pcap_set_tstamp_precision(l->pc, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(l->pc);
    if (rc < 0) {
        int code = map_pcap_error(rc);
        hwint_err(errbuf, code, "%s: %s", cfg->source,
                  rc == PCAP_ERROR ? pcap_geterr(l->pc) : pcap_statustostr(rc));
        lp_close(l);
        return code;
    }
    if (pcap_setnonblock(l->pc, 1, perr) < 0 || (l->fd = pcap_get_selectable_fd(l->pc)) < 0) {
        lp_close(l);
        return hwint_err(errbuf, HW_E_OPEN, "%s: no selectable descriptor", cfg->source);
    }
    if (cfg->bpf && *cfg->bpf && (rc = lp_set_filter(l, cfg->bpf, errbuf)) < 0) {
        lp_close(l);
        return rc;
    }
    *linktype = pcap_datalink(l->pc);
    *out = l;
    return HW_OK;
}

static int lp_start(void *st, char *errbuf)
{
    (void)st, (void)errbuf;
    return HW_OK;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct lp *l = (struct lp *)user;
    struct hw_batch *b = l->b;
    if (b->n == b->cap || l->arena_used + h->caplen > ARENA_BYTES) return; /* cannot happen: cnt bounds it */
    memcpy(l->arena + l->arena_used, data, h->caplen);
    struct hw_pkt *p = &b->pkt[b->n++];
    p->data = l->arena + l->arena_used;
    p->caplen = h->caplen;
    p->wirelen = h->len;
    p->ts_ns = (uint64_t)h->ts.tv_sec * HW_NS + (uint64_t)h->ts.tv_usec;
    l->arena_used += h->caplen;
}

static int lp_poll(void *st, struct hw_batch *b, int timeout_ms, char *errbuf)
{
    struct lp *l = st;
    l->b = b;
    l->arena_used = 0;
    /* at most as many packets as fit the arena at the largest snap length */
    int room = (int)(ARENA_BYTES / (uint32_t)pcap_snapshot(l->pc));
    int cnt = room < b->cap ? room : b->cap;
    if (cnt < 1) cnt = 1;
    int rc = pcap_dispatch(l->pc, cnt, on_packet, (u_char *)l);
    if (rc == 0 && timeout_ms > 0) {
        struct pollfd pfd = {l->fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) > 0) rc = pcap_dispatch(l->pc, cnt, on_packet, (u_char *)l);
    }
    if (rc == PCAP_ERROR) return hwint_err(errbuf, HW_E_IO, "capture: %s", pcap_geterr(l->pc));
    return b->n;
}

static void lp_stats(void *st, struct hw_counters *c)
{
    struct lp *l = st;
    struct pcap_stat ps;
    if (pcap_stats(l->pc, &ps) == 0) {
        l->ps_recv += (uint32_t)(ps.ps_recv - l->last.ps_recv);
        l->ps_drop += (uint32_t)(ps.ps_drop - l->last.ps_drop);
        l->ps_ifdrop += (uint32_t)(ps.ps_ifdrop - l->last.ps_ifdrop);
        l->last = ps;
    }
    c->backend_received += l->ps_recv;
    c->backend_dropped += l->ps_drop;
    c->backend_if_dropped += l->ps_ifdrop;
}

const struct hw_backend_ops hw_pcap_ops = {
    .name = "pcap",
    .description = "live interface through libpcap",
    .caps = HW_CAP_LIVE | HW_CAP_BPF | HW_CAP_PROMISC | HW_CAP_BUFFER,
    .available = lp_available,
    .open = lp_open,
    .start = lp_start,
    .poll = lp_poll,
    .stats = lp_stats,
    .set_filter = lp_set_filter,
    .close = lp_close,
};
