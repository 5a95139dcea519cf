/* logconn.c - the conn log line of an expired flow (cdef/logs.h): Zeek's
 * history letters and conn_state from the TCP flags each side sent; the
 * fields, their order and their text are those agent.logs.records writes
 * (Builder._conn), byte for byte. */
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

/* conn_state written as a quoted name, its length known where it is compiled (no strlen a line) */
#define STATE(s) do { hwint_j_plain(b, s, sizeof(s) - 1); return; } while (0)
static void conn_state(struct hwint_jbuf *b, uint8_t proto, uint8_t fwd, uint8_t rev, uint64_t packets_rev)
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

int hwint_conn_line(struct hw_logger *lg, const struct hw_flow_record *f, const char *cid)
{
    if (f->family != 4 && f->family != 6) return 0;     /* (ICMP's have no community ID: no ports, as Python's) */
    struct hwint_jbuf *b = hwint_log_buf(lg, HW_LOG_CONN);
    size_t start = b->len;
    int ports = f->proto == 6 || f->proto == 17 || f->proto == 132;
    hwint_log_head(lg, HW_LOG_CONN, f->first_ns, f->id, f->family, f->src, ports ? f->sport : -1, f->dst,
                   ports ? f->dport : -1, f->proto, 0, cid);
    const char *app = hw_app_name(f->app);     /* (no app is named "unknown", Python's Builder's other case) */
    if (app && *app) hwint_j_key(b, "service"), hwint_j_name(b, app);
    hwint_j_key(b, "duration");
    hwint_j_round6(b, (double)(f->last_ns - f->first_ns) / 1e9);
    hwint_j_key(b, "orig_pkts"), hwint_j_u64(b, f->packets[0]);
    hwint_j_key(b, "orig_ip_bytes"), hwint_j_u64(b, f->bytes[0]);
    hwint_j_key(b, "resp_pkts"), hwint_j_u64(b, f->packets[1]);
    hwint_j_key(b, "resp_ip_bytes"), hwint_j_u64(b, f->bytes[1]);
    hwint_j_key(b, "conn_state"), conn_state(b, f->proto, f->tcp_flags[0], f->tcp_flags[1], f->packets[1]);
    char h[16];
    if (f->proto == 6) hwint_j_key(b, "history"), hwint_j_plain(b, h, history(f->tcp_flags[0], f->tcp_flags[1], h));
    if (f->rtt_ns) {
        hwint_j_key(b, "rtt");
        hwint_j_round6(b, hwint_j_round((double)f->rtt_ns / 1e6, 3) / 1000);
    }
    hwint_j_key(b, "retransmissions");
    hwint_j_u64(b, (uint64_t)f->retransmissions[0] + f->retransmissions[1]);
    hwint_j_key(b, "end_reason"), hwint_j_name(b, hw_end_name(f->end_reason));
    const char *state = f->proto == 6 ? hw_tcp_state_name(f->state) : NULL;
    if (state && *state) hwint_j_key(b, "tcp_state"), hwint_j_name(b, state);
    if (f->vlan) hwint_j_key(b, "vlan"), hwint_j_u64(b, f->vlan);
    const char *tun = f->tun_type ? hw_tunnel_name(f->tun_type) : NULL;
    if (tun) hwint_j_key(b, "tunnel"), hwint_j_name(b, tun);
    hwint_log_end(lg, HW_LOG_CONN, start);
    return 1;
}
