/* logconn.c - the conn log line of an expired flow (cdef/logs.h): Zeek's
 * history letters and conn_state from the TCP flags each side sent; the
 * fields, their order and their text are those agent.logs.records writes
 * (Builder._conn), byte for byte. */
#include <pthread.h>
#include <string.h>

#include "logger.h"

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define ACK 0x10

/* the letters into out; how many */
static size_t history(uint8_t fwd, uint8_t rev, char *out)
{
    char *o = out;
    if (fwd & SYN) *o++ = 'S';
    if (rev & SYN) *o++ = rev & ACK ? 'h' : 's';
    if (fwd & ACK) *o++ = 'A';
    if (rev & ACK && !(rev & SYN)) *o++ = 'a';
    if (fwd & FIN) *o++ = 'F';
    if (rev & FIN) *o++ = 'f';
    if (fwd & RST) *o++ = 'R';
    if (rev & RST) *o++ = 'r';
    return (size_t)(o - out);
}

/* conn_state's name, its length in *n known where it is compiled (no strlen a line) */
#define STATE(s) do { *n = sizeof(s) - 1; return s; } while (0)
static const char *conn_state(uint8_t proto, uint8_t fwd, uint8_t rev, uint64_t packets_rev, size_t *n)
{
    if (proto != 6) {
        if (packets_rev) STATE("SF");
        STATE("S0");
    }
    if (!(fwd & SYN)) STATE("OTH");
    if (!rev) STATE("S0");
    if (rev & RST && !(rev & SYN)) STATE("REJ");
    if (fwd & RST) STATE("RSTO");
    if (rev & RST) STATE("RSTR");
    if (fwd & FIN && rev & FIN) STATE("SF");
    if (fwd & FIN) STATE("S2");
    if (rev & FIN) STATE("S3");
    STATE("S1");
}
#undef STATE

/* The names a conn line writes by number, with their lengths (no strlen a line: three a line were 2 % of it) */
struct name {
    const char *s;
    size_t n;
};
static struct name apps[HW_APP_COUNT], ends[HW_END_EVICTED + 1], states[HW_TCP_RESET + 1];
static pthread_once_t named = PTHREAD_ONCE_INIT;

static struct name of(const char *s) { return (struct name){s ? s : "", s ? strlen(s) : 0}; }

static void name_lengths(void)
{
    for (int i = 0; i < HW_APP_COUNT; i++) apps[i] = of(hw_app_name(i));
    for (int i = 0; i <= HW_END_EVICTED; i++) ends[i] = of(hw_end_name(i));
    for (int i = 0; i <= HW_TCP_RESET; i++) states[i] = of(hw_tcp_state_name(i));
}

void hwint_conn_names(void) { pthread_once(&named, name_lengths); }

/* More than the fields after the head take but the names: 179 bytes of keys, two floats (48 at most, repr's
 * longest), five counts (20 digits), the vlan, conn_state, history and ten quotes. */
#define CONN_MAX 512

/* ,"key":"name" at o, a name from a table */
static char *name_at(char *o, const char *key, size_t key_len, const char *name, size_t n)
{
    memcpy(o, key, key_len);
    return hwint_j_plain_at(o + key_len, name, n);
}
#define NAME_AT(o, key, name, n) name_at((o), (key), sizeof(key) - 1, (name), (n))

int hwint_conn_line(struct hw_logger *lg, const struct hw_flow_record *f, const char *cid)
{
    if (f->family != 4 && f->family != 6) return 0;     /* (ICMP's have no community ID: no ports, as Python's) */
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_CONN);
    size_t start = b->len;
    int ports = f->proto == 6 || f->proto == 17 || f->proto == 132;
    hwint_log_head(lg, HW_LOG_CONN, f->first_ns, f->id, f->family, f->src, ports ? f->sport : -1, f->dst,
                   ports ? f->dport : -1, f->proto, 0, cid);
    static const struct name none = {"", 0};
    /* (no app is named "unknown", Python's Builder's other case) */
    const struct name app = f->app < HW_APP_COUNT ? apps[f->app] : none;
    const struct name end = f->end_reason <= HW_END_EVICTED ? ends[f->end_reason] : none;
    const struct name state = f->proto == 6 && f->state <= HW_TCP_RESET ? states[f->state] : none;
    const char *tun = f->tun_type ? hw_tunnel_name(f->tun_type) : NULL;
    size_t tun_n = tun ? strlen(tun) : 0;
    char *o = hwint_j_room(b, CONN_MAX + app.n + end.n + state.n + tun_n);
    if (!o) {
        hwint_log_end(lg, HW_LOG_CONN, start);      /* (failed: dropped and counted) */
        return 1;
    }
    if (app.n) o = NAME_AT(o, ",\"service\":", app.s, app.n);
    o = hwint_j_secs_at(b, HWINT_J_PUT(o, ",\"duration\":"), f->last_ns - f->first_ns);
    o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"orig_pkts\":"), f->packets[0]);
    o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"orig_ip_bytes\":"), f->bytes[0]);
    o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"resp_pkts\":"), f->packets[1]);
    o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"resp_ip_bytes\":"), f->bytes[1]);
    size_t n;
    const char *cs = conn_state(f->proto, f->tcp_flags[0], f->tcp_flags[1], f->packets[1], &n);
    o = NAME_AT(o, ",\"conn_state\":", cs, n);
    if (f->proto == 6) {
        char h[16];
        o = NAME_AT(o, ",\"history\":", h, history(f->tcp_flags[0], f->tcp_flags[1], h));
    }
    if (f->rtt_ns)
        o = hwint_j_round6_at(b, HWINT_J_PUT(o, ",\"rtt\":"), hwint_j_round((double)f->rtt_ns / 1e6, 3) / 1000);
    o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"retransmissions\":"),
                       (uint64_t)f->retransmissions[0] + f->retransmissions[1]);
    o = NAME_AT(o, ",\"end_reason\":", end.s, end.n);
    if (state.n) o = NAME_AT(o, ",\"tcp_state\":", state.s, state.n);
    if (f->vlan) o = hwint_j_u64_at(HWINT_J_PUT(o, ",\"vlan\":"), f->vlan);
    if (tun) o = NAME_AT(o, ",\"tunnel\":", tun, tun_n);
    hwint_j_done(b, o);
    hwint_log_end(lg, HW_LOG_CONN, start);
    return 1;
}
