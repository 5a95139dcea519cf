/* ipfix.c - flow export: IPFIX (RFC 7011/7012; RFC 5103 biflows), NetFlow v9
 * (RFC 3954) and NetFlow v5, over UDP (IPFIX also over TCP).
 *
 * An exporter builds one message at a time in a buffer allocated when it is
 * added; a flow record leaving the flow table is encoded straight into it
 * (one data record per direction that saw packets, or one biflow record),
 * and the message leaves when it is full, when export_interval_ms has passed
 * since its first record, or on flush.  Templates are driven by one table
 * per template, which both the template set and the record encoder read, so
 * what is announced is what is sent.  Over UDP templates go out with the
 * first message, then every template_refresh_s or template_refresh_packets;
 * over TCP once per connection.  Nothing here allocates per flow, and the
 * capture path never waits on a socket unless the exporter is lossless
 * (offline export): a full socket drops the message and counts its records.
 *
 * Times: IPFIX carries flowStart/EndMilliseconds; v9 and v5 carry
 * sysUpTime-relative milliseconds, with the "boot" of the exporter put at
 * the session's first packet (less a second), so the collector rebuilds
 * absolute times from the header.  The export clock is the session's packet
 * clock (live: wall time), so an offline export carries the capture's times. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hw.h"

#define PEN_REVERSE 29305          /* RFC 5103: reverse information elements */
#define TMPL_V4 256
#define TMPL_V6 257
#define TMPL_BI_V4 258
#define TMPL_BI_V6 259
#define TMPL_SAMPLING 260
#define V5_MAX_RECORDS 30
#define V5_HEADER 24
#define V5_RECORD 48
#define V9_HEADER 20
#define IPFIX_HEADER 16
#define TCP_MESSAGE 16384          /* IPFIX over TCP: messages up to this size */
#define TCP_QUEUE (1u << 20)       /* bytes of stream waiting for the socket */
#define CONNECT_TIMEOUT_MS 1000
#define RECONNECT_NS (5 * HW_NS)
#define LOSSLESS_WAIT_MS 5000      /* a lossless exporter gives up on a dead socket after this */
#define SAMPLING_DETERMINISTIC 1   /* samplingAlgorithm: 1 = deterministic (1 in N) */

/* One field of a template: what the template set announces and what the
 * encoder writes, from the same table. */
struct field {
    uint16_t id, len;
    uint32_t pen; /* 0, or PEN_REVERSE for a reverse element */
};

#define F(id, len) {id, len, 0}
#define R(id, len) {id, len, PEN_REVERSE}
/* Information element ids (IPFIX; v9 uses the same numbers for these) */
enum {
    IE_OCTETS = 1, IE_PACKETS = 2, IE_PROTO = 4, IE_TCP_FLAGS = 6, IE_SPORT = 7, IE_SRC4 = 8,
    IE_DPORT = 11, IE_DST4 = 12, IE_LAST_UP = 21, IE_FIRST_UP = 22, IE_SRC6 = 27, IE_DST6 = 28,
    IE_ICMP4 = 32, IE_ICMP6 = 139,
    IE_SAMPLING_INTERVAL = 34, IE_SAMPLING_ALGORITHM = 35, IE_VLAN = 58, IE_END_REASON = 136,
    IE_DOMAIN = 149, IE_START_MS = 152, IE_END_MS = 153, IE_BIFLOW_DIRECTION = 239,
    IE_CUSTOMER_VLAN = 245,  /* dot1qCustomerVlanId: QinQ's inner tag */
    IE_L2_SEGMENT = 351,     /* layer2SegmentId: the overlay's type (0x01 VXLAN) in the top byte, its VNI below */
    V9_SCOPE_SYSTEM = 1,
};

static const struct field ipfix_v4[] = {
    F(IE_SRC4, 4), F(IE_DST4, 4), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP4, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), F(IE_START_MS, 8), F(IE_END_MS, 8), F(IE_END_REASON, 1),
    F(IE_CUSTOMER_VLAN, 2), F(IE_L2_SEGMENT, 8),
};
static const struct field ipfix_v6[] = {
    F(IE_SRC6, 16), F(IE_DST6, 16), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP6, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), F(IE_START_MS, 8), F(IE_END_MS, 8), F(IE_END_REASON, 1),
    F(IE_CUSTOMER_VLAN, 2), F(IE_L2_SEGMENT, 8),
};
static const struct field ipfix_bi_v4[] = {
    F(IE_SRC4, 4), F(IE_DST4, 4), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP4, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), R(IE_TCP_FLAGS, 1), R(IE_PACKETS, 8), R(IE_OCTETS, 8),
    F(IE_START_MS, 8), F(IE_END_MS, 8), F(IE_END_REASON, 1), F(IE_BIFLOW_DIRECTION, 1),
    F(IE_CUSTOMER_VLAN, 2), F(IE_L2_SEGMENT, 8),
};
static const struct field ipfix_bi_v6[] = {
    F(IE_SRC6, 16), F(IE_DST6, 16), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP6, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), R(IE_TCP_FLAGS, 1), R(IE_PACKETS, 8), R(IE_OCTETS, 8),
    F(IE_START_MS, 8), F(IE_END_MS, 8), F(IE_END_REASON, 1), F(IE_BIFLOW_DIRECTION, 1),
    F(IE_CUSTOMER_VLAN, 2), F(IE_L2_SEGMENT, 8),
};
static const struct field v9_v4[] = {
    F(IE_SRC4, 4), F(IE_DST4, 4), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP4, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), F(IE_FIRST_UP, 4), F(IE_LAST_UP, 4),
};
static const struct field v9_v6[] = {
    F(IE_SRC6, 16), F(IE_DST6, 16), F(IE_SPORT, 2), F(IE_DPORT, 2), F(IE_PROTO, 1), F(IE_TCP_FLAGS, 1),
    F(IE_VLAN, 2), F(IE_ICMP4, 2), F(IE_PACKETS, 8), F(IE_OCTETS, 8), F(IE_FIRST_UP, 4), F(IE_LAST_UP, 4),
};
/* sampling options: one scope field, then the interval and the algorithm */
static const struct field ipfix_sampling[] = {
    F(IE_DOMAIN, 4), F(IE_SAMPLING_INTERVAL, 4), F(IE_SAMPLING_ALGORITHM, 1),
};
static const struct field v9_sampling[] = {
    F(V9_SCOPE_SYSTEM, 4), F(IE_SAMPLING_INTERVAL, 4), F(IE_SAMPLING_ALGORITHM, 1),
};

struct tmpl {
    uint16_t id;
    const struct field *f;
    int n;
    uint16_t size; /* record bytes */
};

#define TMPL(tid, arr) {tid, arr, (int)(sizeof arr / sizeof arr[0]), 0}

/* One direction (or both, for a biflow) of a flow record, as the encoder sees it. */
struct view {
    const uint8_t *src, *dst;
    uint16_t sport, dport, vlan, icmp, vlan_inner;
    uint8_t proto, flags, rflags, reason;
    uint64_t segment;
    uint64_t packets, bytes, rpackets, rbytes;
    uint64_t start_ms, end_ms;
    uint32_t first_up, last_up;
};

struct hw_exporter {
    struct hw_export_config cfg;
    char host[64];
    int id;
    int fd;
    struct sockaddr_storage sa;
    socklen_t salen;
    uint32_t sample_rate;
    struct tmpl t[5];              /* v4, v6 (uni or bi) and sampling; unused for v5 */
    int nt;
    uint32_t limit;                /* largest message */
    uint8_t *msg;                  /* the message being built */
    uint32_t len;                  /* 0: none open */
    uint32_t set_off;              /* offset of the open set's header; 0: none */
    uint16_t set_id;
    uint32_t msg_records;          /* flow data records in msg */
    uint32_t msg_options;          /* options data records in msg (IPFIX counts them in the sequence) */
    uint32_t msg_count;            /* v9: every record (templates too); v5: flow records */
    uint64_t msg_start_ns;
    uint64_t boot_ms;              /* v5/v9 sysUpTime origin (Unix ms), fixed at the first record */
    uint32_t seq;
    uint64_t tmpl_ns;              /* export time the templates last went out */
    uint32_t since_tmpl;           /* messages since */
    int tmpl_due;
    /* TCP */
    uint8_t *q;
    uint32_t q_len;
    int connected, connecting;
    uint64_t retry_ns;             /* monotonic time of the next connection attempt */
    struct hw_export_stats st;
};

static inline uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static inline uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    return put32(p + 4, (uint32_t)v);
}

static void fail(struct hw_exporter *e, int err, const char *what)
{
    e->st.last_errno = err;
    snprintf(e->st.last_error, sizeof e->st.last_error, "%s: %s", what, strerror(err));
}

/* ---- sockets -------------------------------------------------------------- */

static int open_socket(struct hw_exporter *e)
{
    int type = e->cfg.transport == HW_EXP_TCP ? SOCK_STREAM : SOCK_DGRAM;
    e->fd = socket(e->sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (e->fd < 0) return -errno;
    if (type == SOCK_DGRAM) {
        int buf = 1 << 20;
        setsockopt(e->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    }
    return 0;
}

static void close_socket(struct hw_exporter *e)
{
    if (e->fd >= 0) close(e->fd);
    e->fd = -1;
    e->connected = e->connecting = 0;
    e->st.connected = 0;
}

/* TCP: a non-blocking connect, finished by poll_connect. */
static int start_connect(struct hw_exporter *e)
{
    close_socket(e);
    int rc = open_socket(e);
    if (rc) return rc;
    if (connect(e->fd, (struct sockaddr *)&e->sa, e->salen) == 0) {
        e->connected = 1;
    } else if (errno == EINPROGRESS) {
        e->connecting = 1;
    } else {
        rc = -errno;
        close_socket(e);
        return rc;
    }
    return 0;
}

/* 1 connected, 0 still connecting, negative errno when it failed. */
static int poll_connect(struct hw_exporter *e, int timeout_ms)
{
    struct pollfd pfd = {e->fd, POLLOUT, 0};
    int n = poll(&pfd, 1, timeout_ms);
    if (n == 0) return 0;
    if (n < 0) return -errno;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) return -err;
    e->connecting = 0;
    e->connected = 1;
    return 1;
}

static void on_connected(struct hw_exporter *e)
{
    e->st.connected = 1;
    e->tmpl_due = 1; /* a new transport session learns the templates first */
    e->q_len = 0;
}

static void disconnect(struct hw_exporter *e, int err, const char *what)
{
    fail(e, err, what);
    close_socket(e);
    e->q_len = 0;
    e->retry_ns = hwint_mono_ns() + RECONNECT_NS;
}

static int wait_writable(struct hw_exporter *e)
{
    struct pollfd pfd = {e->fd, POLLOUT, 0};
    return poll(&pfd, 1, LOSSLESS_WAIT_MS) > 0;
}

/* TCP: push the queued stream into the socket; 0, or -1 when the connection died. */
static int pump(struct hw_exporter *e, int wait)
{
    while (e->q_len) {
        ssize_t k = send(e->fd, e->q, e->q_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            memmove(e->q, e->q + k, e->q_len - (uint32_t)k);
            e->q_len -= (uint32_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait && wait_writable(e)) continue;
            return 0;
        }
        e->st.send_errors++;
        disconnect(e, k < 0 ? errno : EPIPE, "send");
        return -1;
    }
    return 0;
}

static void transmit(struct hw_exporter *e, const uint8_t *buf, uint32_t n, uint32_t records)
{
    if (e->cfg.transport == HW_EXP_TCP) {
        if (!e->connected) {
            e->st.records_dropped += records;
            return;
        }
        if (e->q_len + n > TCP_QUEUE && pump(e, e->cfg.lossless) < 0) {
            e->st.records_dropped += records;
            return;
        }
        if (e->q_len + n > TCP_QUEUE) { /* the collector does not keep up: drop whole messages */
            e->st.records_dropped += records;
            return;
        }
        memcpy(e->q + e->q_len, buf, n);
        e->q_len += n;
        e->st.messages++;
        e->st.bytes += n;
        e->st.records += records;
        pump(e, 0);
        return;
    }
    for (;;) {
        ssize_t k = send(e->fd, buf, n, MSG_DONTWAIT);
        if (k == (ssize_t)n) {
            e->st.messages++;
            e->st.bytes += n;
            e->st.records += records;
            return;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) && e->cfg.lossless &&
            wait_writable(e))
            continue;
        e->st.send_errors++;
        fail(e, k < 0 ? errno : EMSGSIZE, "send");
        e->st.records_dropped += records;
        return;
    }
}

/* ---- messages ------------------------------------------------------------- */

static uint32_t header_size(const struct hw_exporter *e)
{
    return e->cfg.version == HW_EXP_IPFIX ? IPFIX_HEADER : e->cfg.version == HW_EXP_V9 ? V9_HEADER : V5_HEADER;
}

static void close_set(struct hw_exporter *e)
{
    if (!e->set_off) return;
    /* v9 flowsets end on a 4-byte boundary (RFC 3954 5.3); IPFIX sets need no padding */
    if (e->cfg.version == HW_EXP_V9)
        while ((e->len - e->set_off) & 3) e->msg[e->len++] = 0;
    put16(e->msg + e->set_off + 2, (uint16_t)(e->len - e->set_off));
    e->set_off = 0;
    e->set_id = 0;
}

static void open_set(struct hw_exporter *e, uint16_t id)
{
    e->set_off = e->len;
    e->set_id = id;
    put16(e->msg + e->len, id);
    e->len += 4;
}

/* sysUpTime of a Unix time in ms.  The collector rebuilds the boot time as
 * the header's Unix time minus its sysUpTime, so the header's uptime is taken
 * from the very seconds (v9) or nanoseconds (v5) the header carries. */
static uint32_t up_ms(const struct hw_exporter *e, uint64_t ms)
{
    return ms > e->boot_ms ? (uint32_t)(ms - e->boot_ms) : 0;
}

static void set_boot(struct hw_exporter *e, uint64_t first_ns, uint64_t now)
{
    if (!e->boot_ms) e->boot_ms = first_ns / 1000000ULL > 1000 ? first_ns / 1000000ULL - 1000 : 1;
    /* sysUpTime is 32 bits of ms (49.7 days): near the wrap the exporter
     * "reboots" to 24.8 days of uptime; earlier times then read as the boot */
    uint64_t now_ms = now / 1000000ULL;
    if (now_ms > e->boot_ms && now_ms - e->boot_ms >= 0xF0000000ULL) e->boot_ms = now_ms - 0x80000000ULL;
}

static uint8_t *encode(const struct tmpl *t, const struct view *v, uint8_t *p)
{
    for (int i = 0; i < t->n; i++) {
        const struct field *f = &t->f[i];
        int rev = f->pen == PEN_REVERSE;
        switch (f->id) {
        case IE_SRC4: memcpy(p, v->src, 4); p += 4; break;
        case IE_DST4: memcpy(p, v->dst, 4); p += 4; break;
        case IE_SRC6: memcpy(p, v->src, 16); p += 16; break;
        case IE_DST6: memcpy(p, v->dst, 16); p += 16; break;
        case IE_SPORT: p = put16(p, v->sport); break;
        case IE_DPORT: p = put16(p, v->dport); break;
        case IE_PROTO: *p++ = v->proto; break;
        case IE_TCP_FLAGS: *p++ = rev ? v->rflags : v->flags; break;
        case IE_VLAN: p = put16(p, v->vlan); break;
        case IE_ICMP4:
        case IE_ICMP6: p = put16(p, v->icmp); break;
        case IE_PACKETS: p = put64(p, rev ? v->rpackets : v->packets); break;
        case IE_OCTETS: p = put64(p, rev ? v->rbytes : v->bytes); break;
        case IE_START_MS: p = put64(p, v->start_ms); break;
        case IE_END_MS: p = put64(p, v->end_ms); break;
        case IE_FIRST_UP: p = put32(p, v->first_up); break;
        case IE_LAST_UP: p = put32(p, v->last_up); break;
        case IE_END_REASON: *p++ = v->reason; break;
        case IE_BIFLOW_DIRECTION: *p++ = 1; break; /* the source is the initiator */
        case IE_CUSTOMER_VLAN: p = put16(p, v->vlan_inner); break;
        case IE_L2_SEGMENT: p = put64(p, v->segment); break;
        default: memset(p, 0, f->len); p += f->len; break;
        }
    }
    return p;
}

/* Template (and options template) sets, then the sampling options record. */
static void write_templates(struct hw_exporter *e)
{
    int ipfix = e->cfg.version == HW_EXP_IPFIX;
    close_set(e);
    open_set(e, ipfix ? 2 : 0);
    for (int i = 0; i < e->nt; i++) {
        const struct tmpl *t = &e->t[i];
        if (t->id == TMPL_SAMPLING) continue;
        uint8_t *p = put16(put16(e->msg + e->len, t->id), (uint16_t)t->n);
        for (int k = 0; k < t->n; k++) {
            p = put16(p, (uint16_t)(t->f[k].id | (t->f[k].pen ? 0x8000 : 0)));
            p = put16(p, t->f[k].len);
            if (t->f[k].pen) p = put32(p, t->f[k].pen);
        }
        e->len = (uint32_t)(p - e->msg);
        e->msg_count++;
    }
    close_set(e);
    if (e->sample_rate > 1) {
        const struct tmpl *t = &e->t[e->nt - 1];
        open_set(e, ipfix ? 3 : 1);
        uint8_t *p = put16(e->msg + e->len, t->id);
        if (ipfix) { /* field count, scope field count */
            p = put16(put16(p, (uint16_t)t->n), 1);
        } else {     /* scope bytes, option bytes */
            p = put16(put16(p, 4), (uint16_t)(4 * (t->n - 1)));
        }
        for (int k = 0; k < t->n; k++) p = put16(put16(p, t->f[k].id), t->f[k].len);
        e->len = (uint32_t)(p - e->msg);
        e->msg_count++;
        close_set(e);
        open_set(e, t->id);
        p = e->msg + e->len;
        p = put32(p, e->cfg.observation_domain);
        p = put32(p, e->sample_rate);
        *p++ = SAMPLING_DETERMINISTIC;
        e->len = (uint32_t)(p - e->msg);
        e->msg_count++;
        e->msg_options++;
        close_set(e);
    }
    e->st.template_sends++;
    e->since_tmpl = 0;
    e->tmpl_due = 0;
}

static void begin_message(struct hw_exporter *e, uint64_t now, uint64_t first_ns)
{
    set_boot(e, first_ns, now);
    e->len = header_size(e);
    e->msg_records = e->msg_count = e->msg_options = 0;
    e->set_off = 0;
    e->msg_start_ns = now;
    if (e->cfg.version == HW_EXP_V5) return;
    int udp = e->cfg.transport == HW_EXP_UDP;
    if (e->tmpl_due || (udp && (!e->st.template_sends ||
                                now >= e->tmpl_ns + (uint64_t)e->cfg.template_refresh_s * HW_NS ||
                                e->since_tmpl >= e->cfg.template_refresh_packets))) {
        write_templates(e);
        e->tmpl_ns = now;
    }
}

static void send_message(struct hw_exporter *e, uint64_t now)
{
    if (!e->len) return;
    close_set(e);
    uint8_t *h = e->msg;
    switch (e->cfg.version) {
    case HW_EXP_IPFIX:
        put16(h, 10);
        put16(h + 2, (uint16_t)e->len);
        put32(h + 4, (uint32_t)(now / HW_NS));
        put32(h + 8, e->seq);
        put32(h + 12, e->cfg.observation_domain);
        e->seq += e->msg_records + e->msg_options; /* data records before the next message */
        break;
    case HW_EXP_V9:
        put16(h, 9);
        put16(h + 2, (uint16_t)e->msg_count);
        put32(h + 4, up_ms(e, now / HW_NS * 1000));
        put32(h + 8, (uint32_t)(now / HW_NS));
        put32(h + 12, e->seq);
        put32(h + 16, e->cfg.observation_domain);
        e->seq++; /* export packets */
        break;
    default:
        put16(h, 5);
        put16(h + 2, (uint16_t)e->msg_count);
        put32(h + 4, up_ms(e, now / 1000000ULL));
        put32(h + 8, (uint32_t)(now / HW_NS));
        put32(h + 12, (uint32_t)(now / 1000000ULL % 1000 * 1000000ULL));
        put32(h + 16, e->seq);
        h[20] = 0; /* engine type */
        h[21] = (uint8_t)e->cfg.observation_domain;
        /* two bits of mode (01: packet interval), fourteen of interval */
        put16(h + 22, e->sample_rate > 1 ? (uint16_t)(1u << 14 | (e->sample_rate & 0x3fff)) : 0);
        e->seq += e->msg_count; /* flows before the next packet */
        break;
    }
    e->st.sequence = e->seq;
    e->since_tmpl++;
    transmit(e, e->msg, e->len, e->msg_records);
    e->len = 0;
}

/* Room for one record of `size` bytes in data set `set_id`. */
static uint8_t *room(struct hw_exporter *e, uint16_t set_id, uint32_t size, uint64_t now, uint64_t first_ns)
{
    if (e->len) {
        uint32_t need = size + (e->set_off && e->set_id == set_id ? 0 : 4 + 3);
        if (e->cfg.version == HW_EXP_V5) need = e->msg_count < V5_MAX_RECORDS ? size : e->limit;
        if (e->len + need > e->limit) send_message(e, now);
    }
    if (!e->len) begin_message(e, now, first_ns);
    if (e->cfg.version != HW_EXP_V5 && (!e->set_off || e->set_id != set_id)) {
        close_set(e);
        open_set(e, set_id);
    }
    uint8_t *p = e->msg + e->len;
    e->len += size;
    e->msg_records++;
    e->msg_count++;
    return p;
}

/* ---- records ---------------------------------------------------------------- */

/* RFC 5102 flowEndReason: 1 idle, 2 active, 3 end of flow detected, 4 forced end, 5 lack of resources */
static uint8_t end_reason(const struct hw_flow_record *r)
{
    if (r->proto == 6 && (r->state == HW_TCP_CLOSED || r->state == HW_TCP_RESET) && r->end_reason != HW_END_ACTIVE)
        return 3;
    switch (r->end_reason) {
    case HW_END_IDLE: return 1;
    case HW_END_ACTIVE: return 2;
    case HW_END_TCP: return 3;
    case HW_END_EVICTED: return 5;
    default: return 4;
    }
}

/* One direction of r (dir 0: the initiator's), or both for a biflow (dir -1). */
static void view_of(const struct hw_exporter *e, const struct hw_flow_record *r, int dir, struct view *v)
{
    int d = dir > 0;
    v->src = d ? r->dst : r->src;
    v->dst = d ? r->src : r->dst;
    v->sport = d ? r->dport : r->sport;
    v->dport = d ? r->sport : r->dport;
    v->icmp = 0;
    if (r->proto == 1 || r->proto == 58) { /* ICMP: type and code, also in the destination port (Cisco's way) */
        v->icmp = r->icmp_type_code[d];
        v->sport = 0;
        v->dport = v->icmp;
    }
    v->vlan = r->vlan;
    v->vlan_inner = r->vlan_inner;
    v->segment = r->tun_type == HW_TUN_VXLAN ? 1ULL << 56 | r->tun_id[d] : 0;
    v->proto = r->proto;
    v->flags = r->proto == 6 ? r->tcp_flags[d] : 0;
    v->rflags = r->proto == 6 ? r->tcp_flags[1] : 0;
    v->packets = r->packets[d];
    v->bytes = r->bytes[d];
    v->rpackets = r->packets[1];
    v->rbytes = r->bytes[1];
    v->start_ms = r->first_ns / 1000000ULL;
    v->end_ms = r->last_ns / 1000000ULL;
    v->first_up = up_ms(e, v->start_ms);
    v->last_up = up_ms(e, v->end_ms);
    v->reason = end_reason(r);
}

static void v5_record(struct hw_exporter *e, const struct view *v, uint32_t packets, uint32_t bytes,
                      uint64_t now, uint64_t first_ns)
{
    uint8_t *p = room(e, 0, V5_RECORD, now, first_ns);
    memset(p, 0, V5_RECORD);
    memcpy(p, v->src, 4);
    memcpy(p + 4, v->dst, 4);
    /* nexthop, input and output interfaces: 0 */
    put32(p + 16, packets);
    put32(p + 20, bytes);
    put32(p + 24, v->first_up);
    put32(p + 28, v->last_up);
    put16(p + 32, v->sport);
    put16(p + 34, v->dport);
    p[37] = v->flags;
    p[38] = v->proto;
    /* tos, AS numbers and masks: 0 */
}

/* v5 counts are 32 bits: a direction beyond that is split into several records. */
static void v5_direction(struct hw_exporter *e, const struct view *v, uint64_t now, uint64_t first_ns)
{
    uint64_t parts = 1, lim = UINT32_MAX;
    if (v->packets > lim || v->bytes > lim) {
        uint64_t a = (v->packets + lim - 1) / lim, b = (v->bytes + lim - 1) / lim;
        parts = (a > b ? a : b) + 1;
    }
    uint64_t p_left = v->packets, b_left = v->bytes;
    for (uint64_t i = parts; i > 0; i--) {
        uint64_t pk = p_left / i, by = b_left / i;
        v5_record(e, v, (uint32_t)pk, (uint32_t)by, now, first_ns);
        p_left -= pk;
        b_left -= by;
    }
}

void hwint_exp_flow(struct hw_exporter *e, const struct hw_flow_record *r, uint64_t now, uint64_t first_ns)
{
    struct view v;
    e->st.flows++;
    if (e->cfg.transport == HW_EXP_TCP && !e->connected) {
        e->st.records_dropped += e->cfg.biflow ? 1 : (r->packets[0] > 0) + (r->packets[1] > 0);
        return;
    }
    if (!e->boot_ms) set_boot(e, first_ns, now);
    if (e->cfg.version == HW_EXP_V5) {
        for (int d = 0; d < 2; d++) {
            if (!r->packets[d]) continue;
            if (r->family != 4) {
                e->st.records_skipped++;
                continue;
            }
            view_of(e, r, d, &v);
            v5_direction(e, &v, now, first_ns);
        }
        return;
    }
    const struct tmpl *t = &e->t[r->family == 6];
    if (e->cfg.biflow) {
        view_of(e, r, -1, &v);
        encode(t, &v, room(e, t->id, t->size, now, first_ns));
        return;
    }
    for (int d = 0; d < 2; d++) {
        if (!r->packets[d]) continue;
        view_of(e, r, d, &v);
        encode(t, &v, room(e, t->id, t->size, now, first_ns));
    }
}

/* After every batch: partly filled messages that waited long enough, and TCP upkeep. */
void hwint_exp_tick(struct hw_exporter *e, uint64_t now)
{
    if (e->len && now >= e->msg_start_ns + (uint64_t)e->cfg.export_interval_ms * 1000000ULL)
        send_message(e, now);
    if (e->cfg.transport != HW_EXP_TCP) return;
    if (e->connected) {
        if (e->q_len) pump(e, 0);
        return;
    }
    if (e->connecting) {
        int rc = poll_connect(e, 0);
        if (rc > 0) {
            e->st.reconnects++;
            on_connected(e);
        } else if (rc < 0) {
            disconnect(e, -rc, "connect");
        }
        return;
    }
    if (hwint_mono_ns() >= e->retry_ns) {
        int rc = start_connect(e);
        if (rc < 0) {
            disconnect(e, -rc, "connect");
        } else if (e->connected) {
            e->st.reconnects++;
            on_connected(e);
        }
    }
}

void hwint_exp_flush(struct hw_exporter *e, uint64_t now)
{
    send_message(e, now);
    if (e->cfg.transport == HW_EXP_TCP && e->connected) pump(e, 1);
}

/* ---- lifetime ------------------------------------------------------------- */

static void add_template(struct hw_exporter *e, struct tmpl t)
{
    uint32_t size = 0;
    for (int i = 0; i < t.n; i++) size += t.f[i].len;
    t.size = (uint16_t)size;
    e->t[e->nt++] = t;
}

void hw_export_config_init(struct hw_export_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 9995;
    cfg->version = HW_EXP_IPFIX;
    cfg->transport = HW_EXP_UDP;
    cfg->export_interval_ms = 60000;
    cfg->template_refresh_s = 60;
    cfg->template_refresh_packets = 20;
    cfg->mtu = 1400;
}

int hwint_exp_create(const struct hw_export_config *cfg, int id, uint32_t sample_rate,
                     struct hw_exporter **out, char *errbuf)
{
    *out = NULL;
    if (cfg->version != HW_EXP_V5 && cfg->version != HW_EXP_V9 && cfg->version != HW_EXP_IPFIX)
        return hwint_err(errbuf, HW_E_ARG, "unknown export version %u (5, 9 or 10)", cfg->version);
    if (cfg->transport != HW_EXP_UDP && cfg->transport != HW_EXP_TCP)
        return hwint_err(errbuf, HW_E_ARG, "unknown transport %u", cfg->transport);
    if (cfg->transport == HW_EXP_TCP && cfg->version != HW_EXP_IPFIX)
        return hwint_err(errbuf, HW_E_ARG, "only IPFIX is exported over TCP");
    if (cfg->biflow && cfg->version != HW_EXP_IPFIX)
        return hwint_err(errbuf, HW_E_ARG, "biflow records are IPFIX only (RFC 5103)");
    if (!cfg->port) return hwint_err(errbuf, HW_E_ARG, "collector port 0");
    if (cfg->transport == HW_EXP_UDP && (cfg->mtu < 576 || cfg->mtu > 65507))
        return hwint_err(errbuf, HW_E_ARG, "mtu %u out of range 576..65507", cfg->mtu);
    if (cfg->export_interval_ms > 3600000)
        return hwint_err(errbuf, HW_E_ARG, "export interval %u ms over an hour", cfg->export_interval_ms);

    struct hw_exporter *e = calloc(1, sizeof *e);
    if (!e) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    e->fd = -1;
    e->cfg = *cfg;
    snprintf(e->host, sizeof e->host, "%s", cfg->host ? cfg->host : "");
    e->cfg.host = e->host;
    if (!e->cfg.template_refresh_packets) e->cfg.template_refresh_packets = UINT32_MAX;
    if (!e->cfg.template_refresh_s) e->cfg.template_refresh_s = UINT32_MAX / 2;
    e->id = id;
    e->sample_rate = sample_rate > 1 ? sample_rate : 1;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&e->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->sa;
    if (inet_pton(AF_INET, e->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(cfg->port);
        e->salen = sizeof *s4;
    } else if (inet_pton(AF_INET6, e->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(cfg->port);
        e->salen = sizeof *s6;
    } else {
        free(e);
        return hwint_err(errbuf, HW_E_ARG, "collector \"%s\" is not a numeric IPv4 or IPv6 address",
                         cfg->host ? cfg->host : "");
    }
    if (cfg->version == HW_EXP_IPFIX && cfg->biflow) {
        add_template(e, (struct tmpl)TMPL(TMPL_BI_V4, ipfix_bi_v4));
        add_template(e, (struct tmpl)TMPL(TMPL_BI_V6, ipfix_bi_v6));
    } else if (cfg->version == HW_EXP_IPFIX) {
        add_template(e, (struct tmpl)TMPL(TMPL_V4, ipfix_v4));
        add_template(e, (struct tmpl)TMPL(TMPL_V6, ipfix_v6));
    } else if (cfg->version == HW_EXP_V9) {
        add_template(e, (struct tmpl)TMPL(TMPL_V4, v9_v4));
        add_template(e, (struct tmpl)TMPL(TMPL_V6, v9_v6));
    }
    if (cfg->version != HW_EXP_V5 && e->sample_rate > 1)
        add_template(e, cfg->version == HW_EXP_IPFIX ? (struct tmpl)TMPL(TMPL_SAMPLING, ipfix_sampling)
                                                     : (struct tmpl)TMPL(TMPL_SAMPLING, v9_sampling));
    e->limit = cfg->transport == HW_EXP_TCP ? TCP_MESSAGE
             : cfg->version == HW_EXP_V5 ? V5_HEADER + V5_MAX_RECORDS * V5_RECORD : cfg->mtu;
    if (cfg->version == HW_EXP_V5 && e->limit > cfg->mtu) e->limit = V5_HEADER + (cfg->mtu - V5_HEADER) / V5_RECORD * V5_RECORD;
    e->msg = malloc(e->limit);
    e->q = cfg->transport == HW_EXP_TCP ? malloc(TCP_QUEUE) : NULL;
    if (!e->msg || (cfg->transport == HW_EXP_TCP && !e->q)) {
        hwint_exp_destroy(e);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    }
    int rc;
    if (cfg->transport == HW_EXP_TCP) {
        rc = start_connect(e);
        if (rc == 0 && e->connecting) {
            rc = poll_connect(e, CONNECT_TIMEOUT_MS);
            if (rc == 0) rc = -ETIMEDOUT;
            else if (rc > 0) rc = 0;
        }
        if (rc == 0) on_connected(e);
    } else {
        rc = open_socket(e);
        if (rc == 0 && connect(e->fd, (struct sockaddr *)&e->sa, e->salen) < 0) rc = -errno;
    }
    if (rc < 0) {
        hwint_exp_destroy(e);
        return hwint_err(errbuf, HW_E_OPEN, "cannot %s collector %s port %u: %s",
                         cfg->transport == HW_EXP_TCP ? "connect to" : "reach", cfg->host, cfg->port, strerror(-rc));
    }
    e->st.id = id;
    e->st.version = cfg->version;
    e->st.transport = cfg->transport;
    e->st.biflow = cfg->biflow;
    e->st.port = cfg->port;
    e->st.observation_domain = cfg->observation_domain;
    e->st.sample_rate = e->sample_rate;
    e->st.connected = cfg->transport == HW_EXP_TCP ? (uint8_t)e->connected : 1;
    snprintf(e->st.host, sizeof e->st.host, "%s", e->host);
    *out = e;
    return HW_OK;
}

void hwint_exp_stats(const struct hw_exporter *e, struct hw_export_stats *out) { *out = e->st; }

int hwint_exp_id(const struct hw_exporter *e) { return e->id; }

void hwint_exp_destroy(struct hw_exporter *e)
{
    if (!e) return;
    close_socket(e);
    free(e->msg);
    free(e->q);
    free(e);
}
