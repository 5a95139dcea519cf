/* windows.h - traffic windows: what the C core saw in each fixed slice of
 * packet time.  Window 0 starts at the session's first packet; a window is
 * [start_ns, end_ns).  Counters are the session's counters' change over the
 * window; the rest (talkers, sources, RTT samples, notable flows) is kept by
 * the core as flows and handshakes happen, never per packet in Python. */

#define HW_WIN_TALKERS 10    /* top_src_bytes and top_dst_bytes */
#define HW_WIN_SOURCES 8     /* initiators with the most new flows */
#define HW_WIN_FLOWS 16      /* notable flows: lossy, long-lived, protocol on another port */
#define HW_WIN_SAMPLES 512   /* RTT and response-time samples (a reservoir beyond that) */
#define HW_WIN_SKETCH 4      /* 64-bit words of a distinct-count sketch (256 bits) */

#define HW_WF_LOSS 1         /* retransmitted a large share of its segments */
#define HW_WF_LONG 2         /* open longer than long_flow_s */
#define HW_WF_PORT 4         /* a payload signature of another protocol than its port says */

struct hw_win_host {
    uint8_t addr[16];
    uint8_t family;
    uint64_t bytes;
};

struct hw_win_source {
    uint8_t addr[16];
    uint8_t family;
    uint32_t new_flows;       /* flows it opened in the window */
    uint32_t tcp_syn_flows;   /* of those, TCP flows opened by a SYN */
    uint32_t odd_flag_flows;  /* TCP flows opened by FIN, NULL or Xmas probes */
    uint32_t rst_received;    /* RSTs its peers answered with */
    uint32_t unreachable_received; /* ICMP destination unreachable sent to it */
    uint32_t udp_flows;
    uint32_t hosts;           /* distinct destination hosts (estimated above ~100) */
    uint32_t ports;           /* distinct destination ports (estimated above ~100) */
};

struct hw_win_flow {
    uint8_t src[16], dst[16];
    uint8_t family, proto, kind, app, port_app;
    uint16_t sport, dport;
    uint64_t first_ns, last_ns;
    uint64_t packets, bytes;
    uint32_t segments, retransmissions; /* data segments sent, of them retransmitted (both ways) */
};

struct hw_window {
    uint64_t index;
    uint64_t start_ns, end_ns;
    uint64_t first_packet_ns, last_packet_ns;  /* 0 when the window saw no packet */
    uint64_t skipped_before;  /* empty windows left out before this one (a jump in time) */
    uint64_t packets, bytes, malformed;
    uint64_t layer_packets[HW_L_COUNT], layer_bytes[HW_L_COUNT];
    uint64_t app_packets[HW_APP_COUNT], app_bytes[HW_APP_COUNT];
    uint64_t new_flows, new_flows_tcp, new_flows_udp, new_flows_icmp, new_flows_other;
    uint64_t flows_active;    /* in the table at the window's end */
    uint64_t tcp_syn, tcp_synack, tcp_rst, tcp_fin;
    uint64_t tcp_segments, tcp_retransmissions;
    uint64_t rtt_count, rtt_sum_ns, rtt_max_ns;      /* handshakes completed: SYN -> ACK */
    uint64_t resp_count, resp_sum_ns, resp_max_ns;   /* first request byte -> first response byte */
    uint32_t rtt_samples, resp_samples;
    uint32_t rtt_us[HW_WIN_SAMPLES], resp_us[HW_WIN_SAMPLES];
    uint32_t n_top_src, n_top_dst, n_sources, n_flows;
    uint32_t sources_dropped;  /* more initiators than the window's table holds */
    struct hw_win_host top_src[HW_WIN_TALKERS], top_dst[HW_WIN_TALKERS];
    struct hw_win_source sources[HW_WIN_SOURCES];
    struct hw_win_flow flows[HW_WIN_FLOWS];
};

/* Closed windows, oldest first (when window_s > 0). */
int hw_windows_read(struct hw_session *s, struct hw_window *out, int max);
/* Close the current window now (end of input). */
int hw_windows_flush(struct hw_session *s);
