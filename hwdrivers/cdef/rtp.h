/* rtp.h - RTP and RTCP on the endpoints Python names (addresses and ports
 * learned from SDP): per-SSRC sequence, loss and RFC 3550 interarrival
 * jitter, updated per packet in the C core.  Nothing is tracked until
 * hw_rtp_init; with no endpoint registered a packet costs one branch. */

#define HW_RTP_RTP 1
#define HW_RTP_RTCP 2
#define HW_RTP_DYN 32           /* dynamic payload types 96..127 */

/* An address and port that carries RTP (or RTCP): packets to or from it,
 * from from_ns on, are analysed. */
struct hw_rtp_endpoint {
    uint8_t addr[16];           /* IPv4 in the first 4 bytes */
    uint8_t family;             /* 4 or 6 */
    uint8_t kind;               /* HW_RTP_RTP or HW_RTP_RTCP */
    uint16_t port;
    uint32_t tag;               /* Python's name for the call it belongs to; not 0 */
    uint64_t from_ns;           /* packets stamped before this are not its (the SDP came later) */
    uint32_t clock[HW_RTP_DYN]; /* clock rate of payload types 96..127 (a=rtpmap); 0: unknown or telephone-event */
};

/* One direction of one SSRC on one 5-tuple, for one tag.  Loss and jitter
 * follow Wireshark's RTP stream analysis (tshark -z rtp,streams). */
struct hw_rtp_stream {
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint8_t family;
    uint8_t kind;               /* HW_RTP_RTP or HW_RTP_RTCP */
    uint8_t last_pt;
    uint8_t payload_types;      /* how many different payload types were seen */
    uint32_t ssrc;
    uint32_t tag;
    uint64_t first_ns, last_ns;
    uint64_t packets, bytes;    /* bytes: on the wire */
    uint64_t expected;          /* first to highest sequence number, wraps counted (RTP) */
    int64_t lost;               /* expected - packets: negative when duplicates came */
    uint32_t seq_errors;        /* packets whose sequence number did not follow: gaps, late, duplicates */
    uint32_t markers;
    uint32_t clock_rate;        /* the last known clock rate; 0: none was (no jitter) */
    uint32_t pt_mask[4];        /* bit n: payload type n was seen */
    double jitter_ms;           /* the interarrival jitter after the last packet */
    double max_jitter_ms;
    double mean_jitter_ms;
    double max_delta_ms;        /* the longest gap between consecutive packets */
    double mean_delta_ms;
};

struct hw_rtp_stats {
    uint32_t endpoints, streams;
    uint32_t max_endpoints, max_streams;
    uint64_t rtp_packets, rtcp_packets;
    uint64_t other_packets;     /* on an endpoint, but not RTP version 2 (T.38, STUN...) */
    uint64_t streams_full;      /* packets of new streams the full table could not take */
};

/* Allocate the tables (once per session; after that the packet path never allocates). */
int hw_rtp_init(struct hw_session *s, uint32_t max_endpoints, uint32_t max_streams, char *errbuf);
/* Add an endpoint; the same address, port, kind and tag again keeps the
 * earlier from_ns and takes the new clock rates. */
int hw_rtp_watch(struct hw_session *s, const struct hw_rtp_endpoint *e, char *errbuf);
/* Drop the endpoints and streams of a tag (a call that ended). */
int hw_rtp_forget(struct hw_session *s, uint32_t tag);
/* Streams of a tag (0: all), up to max; returns how many were copied. */
int hw_rtp_read(struct hw_session *s, uint32_t tag, struct hw_rtp_stream *out, int max);
int hw_rtp_stats(struct hw_session *s, struct hw_rtp_stats *out);
