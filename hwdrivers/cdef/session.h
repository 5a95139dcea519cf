/* session.h - a capture session: one backend feeding the parser, the flow
 * table and the event ring.  Declarations Python calls through cffi; the C
 * sources include this same file (hwdrivers/include/hw.h), so there is one
 * copy of every type.  Written in the subset of C that cffi's cdef parses:
 * no #if, only integer #defines. */

#define HW_ERRBUF_SIZE 256

/* Return codes: 0 or a positive count is success, negatives are errors. */
#define HW_OK 0
#define HW_E_ARG -1          /* a bad argument or configuration value */
#define HW_E_NOMEM -2
#define HW_E_OPEN -3         /* file or interface could not be opened */
#define HW_E_FORMAT -4       /* not a capture file, or a corrupt record */
#define HW_E_TRUNCATED -5    /* the file ends in the middle of a record */
#define HW_E_PERM -6         /* needs privileges (CAP_NET_RAW) */
#define HW_E_FILTER -7       /* BPF expression does not compile */
#define HW_E_BACKEND -8      /* unknown backend name */
#define HW_E_UNSUPPORTED -9  /* the backend lacks the capability asked for */
#define HW_E_IO -10          /* read or socket error while capturing */
#define HW_E_NODEV -11       /* no such interface */
#define HW_E_STATE -12       /* call not valid in the session's state */

/* Backend capability flags. */
#define HW_CAP_FILE 1        /* reads a capture file */
#define HW_CAP_LIVE 2        /* captures from an interface */
#define HW_CAP_BPF 4         /* kernel or library BPF filter */
#define HW_CAP_PROMISC 8
#define HW_CAP_FANOUT 16     /* PACKET_FANOUT groups */
#define HW_CAP_PACE 32       /* replay at the recorded pace, loop */
#define HW_CAP_BUFFER 64     /* buffer_size_mb is honoured */
#define HW_CAP_HWTSTAMP 128  /* hardware timestamps */
#define HW_CAP_FLOWOFFLOAD 256 /* flows metered by the hardware (hw_session_offload_flows) */

/* What hw_session_run stopped for. */
#define HW_RUN_BUDGET 1      /* processed max_packets */
#define HW_RUN_TIMEOUT 2     /* timeout_ms passed */
#define HW_RUN_EOF 3         /* the source has no more packets */
#define HW_RUN_DRAIN 4       /* lossless mode: a ring needs draining */
#define HW_RUN_BREAK 5       /* hw_session_break was called */

/* Event kinds (bit n of event_mask enables kind n). */
#define HW_EV_DNS 0
#define HW_EV_ARP 1
#define HW_EV_TLS 2
#define HW_EV_HTTP 3
#define HW_EV_SIP 4
#define HW_EV_TCP_SRC 5     /* a TCP source's SYNs and RSTs, counted in C (records.h hw_rec_tcpsrc) */
#define HW_EV_TOKEN 6       /* a registered honeytoken in a payload (tokens.h) */
#define HW_EV_NDP 7         /* ICMPv6 router/neighbour discovery (types 133-137) */
#define HW_EV_DHCP 8        /* DHCPv4 (UDP 67/68) and DHCPv6 (UDP 546/547) */
#define HW_EV_COUNT 9

/* Malformed packets: a header the flow key needs is cut short or impossible.
 * Counted by reason; the packet is not metered beyond the totals. */
#define HW_MAL_LINK 0        /* link header (Ethernet, SLL, NULL) cut short */
#define HW_MAL_VLAN 1        /* 802.1Q/QinQ tag cut short or too many tags */
#define HW_MAL_MPLS 2        /* MPLS label stack cut short or too deep */
#define HW_MAL_PPPOE 3       /* PPPoE session header cut short or bad */
#define HW_MAL_IPV4_HDR 4    /* IPv4 header cut short, bad version or IHL */
#define HW_MAL_IPV4_LEN 5    /* IPv4 total length below the header length */
#define HW_MAL_IPV6_HDR 6    /* IPv6 header cut short or bad version */
#define HW_MAL_IPV6_EXT 7    /* IPv6 extension header chain cut short or bad */
#define HW_MAL_TCP 8         /* TCP header cut short or bad data offset */
#define HW_MAL_UDP 9         /* UDP (or SCTP) header cut short, or UDP length below 8 */
#define HW_MAL_ICMP 10       /* ICMP/ICMPv6 header cut short */
#define HW_MAL_ARP 11        /* ARP cut short or bad lengths */
#define HW_MAL_LINKTYPE 12   /* link type the parser does not know */
#define HW_MAL_RECORD 13     /* record with a zero captured length */
#define HW_MAL_GRE 14        /* GRE header cut short, routing present or unknown version */
#define HW_MAL_ERSPAN 15     /* ERSPAN header cut short, bad version or frame type */
#define HW_MAL_VXLAN 16      /* VXLAN header cut short or without a valid VNI */
#define HW_MAL_GENEVE 17     /* Geneve header or options cut short, or unknown version */
#define HW_MAL_GTP 18        /* GTP-U header or extensions cut short, or not IP inside */
#define HW_MAL_TUNNEL_DEPTH 19 /* more tunnels nested than tunnel_depth */
#define HW_MAL_COUNT 20

/* Tunnels the parser decapsulates (bit n of tunnel_off switches type n off). */
#define HW_TUN_NONE 0
#define HW_TUN_GRE 1         /* GRE: IPv4, IPv6, transparent Ethernet, PPTP's PPP */
#define HW_TUN_ERSPAN 2      /* ERSPAN I, II and III in GRE */
#define HW_TUN_VXLAN 3       /* VXLAN on vxlan_ports */
#define HW_TUN_GENEVE 4      /* Geneve on geneve_ports */
#define HW_TUN_GTP 5         /* GTP-U v1 on gtp_ports */
#define HW_TUN_IPIP 6        /* IPv4 or IPv6 in IPv4 or IPv6 */
#define HW_TUN_COUNT 7
#define HW_TUN_PORTS 4       /* UDP ports per tunnel type */
#define HW_TUN_DEPTH_MAX 8

/* Truncated packets: the flow key is intact but the bytes stop before the
 * lengths in the headers say.  Counted by reason and metered. */
#define HW_TRUNC_SNAPLEN 0   /* captured length below the wire length */
#define HW_TRUNC_IP_LEN 1    /* IP length runs past the frame */
#define HW_TRUNC_L4_LEN 2    /* UDP length runs past the IP payload */
#define HW_TRUNC_COUNT 3

/* Application protocols, classified per flow by port and first payload. */
#define HW_APP_OTHER 0
#define HW_APP_COUNT 24

/* Link/network/transport layer counters (protocol mix). */
#define HW_L_IPV4 0
#define HW_L_IPV6 1
#define HW_L_ARP 2
#define HW_L_OTHER_L3 3
#define HW_L_TCP 4
#define HW_L_UDP 5
#define HW_L_ICMP 6
#define HW_L_ICMP6 7
#define HW_L_OTHER_L4 8
#define HW_L_VLAN 9
#define HW_L_MPLS 10
#define HW_L_PPPOE 11
#define HW_L_FRAGMENT 12
#define HW_L_COUNT 13

struct hw_config {
    const char *backend;        /* "pcapfile", "pcap", "afpacket" */
    const char *source;         /* file path or interface name */
    const char *bpf;            /* NULL or "" for none */
    uint32_t snaplen;           /* live capture snap length */
    uint32_t buffer_size_mb;    /* live capture buffer (ring) size */
    int promisc;
    int fanout_group;           /* afpacket: -1 for none */
    int fanout_mode;            /* afpacket: PACKET_FANOUT_* (0 = hash) */
    int block_size_kb;          /* afpacket: TPACKET_V3 block size, 0 = auto */
    int block_timeout_ms;       /* afpacket: block retire timeout */
    double pace;                /* pcapfile: 0 = as fast as possible, 1 = recorded pace */
    int loop;                   /* pcapfile: start over at the end of the file */
    uint32_t max_flows;         /* flow table entries */
    uint32_t max_hosts;         /* talker table entries */
    uint32_t idle_timeout_s;    /* 0 = never */
    uint32_t active_timeout_s;  /* 0 = never */
    uint32_t event_mask;        /* 1 << HW_EV_* */
    uint32_t event_ring;        /* event ring records (power of two) */
    uint32_t flow_ring;         /* expired-flow ring records (power of two), 0 = off */
    uint32_t sample_rate;       /* meter one IP packet in N (systematic, count-based); 0 or 1 = all */
    int lossless;               /* return HW_RUN_DRAIN instead of dropping */
    uint32_t window_s;          /* traffic windows of this many seconds, 0 = off */
    uint32_t window_ring;       /* closed-window records queued for Python */
    uint32_t long_flow_s;       /* a flow open this long is reported in its window */
    uint32_t tunnel_off;        /* 1 << HW_TUN_*: types not decapsulated */
    uint32_t tunnel_depth;      /* tunnels peeled per packet before it is malformed (<= HW_TUN_DEPTH_MAX) */
    uint16_t vxlan_ports[HW_TUN_PORTS];  /* 0 = unused slot */
    uint16_t geneve_ports[HW_TUN_PORTS];
    uint16_t gtp_ports[HW_TUN_PORTS];
    int tunnel_outer;           /* also meter each packet's tunnel as a flow of its own */
};

struct hw_backend_info {
    const char *name;
    const char *description;
    uint32_t caps;
};

struct hw_counters {
    uint64_t packets;           /* every record the backend delivered */
    uint64_t bytes;             /* sum of wire lengths */
    uint64_t captured_bytes;    /* sum of captured lengths */
    uint64_t first_ns, last_ns; /* packet time span */
    /* every packet is exactly one of: malformed, ip, arp, other_l2 */
    uint64_t ip_packets;        /* parsed to a flow key; metered unless the table was full */
    uint64_t arp_packets;
    uint64_t other_packets;     /* well-formed, neither IP nor ARP (STP, LLDP, MPLS non-IP...) */
    uint64_t malformed;
    uint64_t malformed_by[HW_MAL_COUNT];
    uint64_t truncated;
    uint64_t truncated_by[HW_TRUNC_COUNT];
    uint64_t layer_packets[HW_L_COUNT];
    uint64_t layer_bytes[HW_L_COUNT];
    uint64_t app_packets[HW_APP_COUNT];
    uint64_t app_bytes[HW_APP_COUNT];
    uint64_t flows_created;     /* new conversations */
    uint64_t flows_tcp, flows_udp, flows_icmp, flows_other; /* flows_created by protocol */
    uint64_t flows_active;
    uint64_t flows_expired_idle;
    uint64_t flows_expired_active;
    uint64_t flows_expired_end; /* TCP closed then reused, or flushed at the end */
    uint64_t flows_evicted;     /* pushed out because the table was full */
    uint64_t flows_not_metered; /* table full and no entry could be evicted */
    uint64_t packets_not_metered; /* IP packets of those */
    uint64_t frag_orphans;      /* later fragments whose first was not seen */
    uint64_t tcp_syn, tcp_synack, tcp_rst, tcp_fin; /* TCP packets with these flags */
    uint64_t tcp_segments;      /* TCP packets carrying data */
    uint64_t tcp_retransmissions, tcp_out_of_order;
    uint64_t windows_closed, windows_dropped;
    uint64_t packets_unsampled; /* IP packets 1-in-N sampling kept out of the flow table */
    uint64_t events[HW_EV_COUNT];         /* pushed to the event ring */
    uint64_t events_dropped[HW_EV_COUNT]; /* ring full */
    uint64_t tcp_source_syns;   /* SYNs counted into TCP source summaries (HW_EV_TCP_SRC) */
    uint64_t tcp_sources_evicted; /* sources pushed out of the full summary table (their summary sent early) */
    uint64_t flow_records;      /* pushed to the flow ring */
    uint64_t flow_records_dropped;
    uint64_t hosts_dropped;     /* talker table full */
    /* from the backend */
    uint64_t backend_received;  /* kernel/library packet count */
    uint64_t backend_dropped;   /* dropped by the kernel: buffer full */
    uint64_t backend_if_dropped;/* dropped by the interface/driver */
    uint64_t backend_filtered;  /* did not pass the BPF filter (where known) */
    uint64_t polls;
    uint64_t empty_polls;
    uint64_t tunnel_packets[HW_TUN_COUNT]; /* tunnels peeled, by type (a packet counts once per tunnel) */
};

struct hw_session;

int hw_backend_count(void);
int hw_backend_info(int index, struct hw_backend_info *out);
/* 0 when the backend can run here, else an error code and a reason. */
int hw_backend_available(const char *name, char *errbuf);

void hw_config_init(struct hw_config *cfg);
int hw_session_open(const struct hw_config *cfg, struct hw_session **out, char *errbuf);
/* Process packets until max_packets (0 = no limit), timeout_ms (-1 = none),
 * end of input, a ring to drain (lossless) or hw_session_break.  Returns a
 * HW_RUN_* reason, or a negative error with errbuf set. */
int hw_session_run(struct hw_session *s, uint64_t max_packets, int timeout_ms, char *errbuf);
/* Feed one packet through the parser and flow table (tests, fuzzing). */
int hw_session_inject(struct hw_session *s, int linktype, const uint8_t *data,
                      uint32_t caplen, uint32_t wirelen, uint64_t ts_ns);
void hw_session_break(struct hw_session *s);
int hw_session_set_filter(struct hw_session *s, const char *bpf, char *errbuf);
/* 0 when a BPF expression compiles for a link type, else HW_E_FILTER with errbuf. */
int hw_bpf_check(int linktype, const char *bpf, char *errbuf);
/* Expire every flow (end of input or stop); records go to the flow ring. */
int hw_session_flush(struct hw_session *s);
int hw_session_counters(struct hw_session *s, struct hw_counters *out);
int hw_session_linktype(struct hw_session *s);
void hw_session_close(struct hw_session *s);

const char *hw_malformed_name(int reason);
const char *hw_truncated_name(int reason);
const char *hw_layer_name(int layer);
const char *hw_tunnel_name(int type);
const char *hw_app_name(int app);
const char *hw_event_name(int kind);
