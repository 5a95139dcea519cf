/* logs.h - protocol log lines made in C: the dns and conn records of
 * agent.logs (Zeek's field names, json.dumps's formatting), paired and
 * written as JSON lines here, so Python writes whole buffers instead of
 * building a dict per record (http: an HTTP request paired with its response; tls: a connection's
 * hellos and certificates).  A logger attached to a session logs its DNS
 * messages in the capture path; flows are fed the raw records Python drains
 * from a session, and what it does not log (ICMP flows) it hands back by
 * index.  Its calls are thread-safe (the capture thread makes, another
 * takes).  arp, ndp, dhcp, sip and rtp
 * stay in Python (agent.logs.records). */

#define HW_LOG_DNS 0
#define HW_LOG_CONN 1
#define HW_LOG_HTTP 2
#define HW_LOG_TLS 3
#define HW_LOG_KINDS 4

struct hw_logger;

struct hw_logger_stats {
    uint64_t records[4];        /* lines made, by HW_LOG_* */
    uint64_t held_early;        /* queries logged alone because the pending table was full */
    uint64_t dropped[4];        /* lines dropped, by HW_LOG_*: bytes_max held untaken, or no memory */
    uint64_t pending;           /* queries waiting for their answer now */
    uint64_t now_ns;            /* the newest event time seen */
};

/* kinds: bit HW_LOG_* of the types to make; salt: 16 bytes keying the uids; pending_max: DNS queries held at
 * once (the oldest goes out alone when full); bytes_max: bytes of lines of one kind held until the next take
 * (past it a line is dropped and counted; 0: no bound, for a file read in batches: a lossless session then
 * returns HW_RUN_DRAIN while the logger holds over 1 MB, so take the lines after every run); path: each line starts
 * with Zeek's "_path" (its type), as `capbox logs --json` writes them.  NULL when out of memory. */
struct hw_logger *hw_logger_new(uint32_t kinds, const uint8_t *salt, uint32_t pending_max, size_t bytes_max,
                                int path);
void hw_logger_free(struct hw_logger *lg);
/* The logger sees a session's DNS messages, HTTP heads and TLS handshakes as the core parses them (in the
 * capture thread, whether or not Python asked for those events): no event is copied for it.  NULL detaches;
 * lg must outlive the session or be detached first, and serves one session at a time (a dns line's community ID
 * is kept in its flow's entry).  Call before the capture runs, or its first packets are not logged. */
int hw_session_set_logger(struct hw_session *s, struct hw_logger *lg);
/* The attached logger is handed the session's expired flows as they leave the table (hw_logger_flows in the
 * capture thread: no copy through the flow ring and back); only those it leaves (no IP addresses) go to the
 * flow ring.  Until the logger is detached.  HW_E_ARG without a logger. */
int hw_session_log_flows(struct hw_session *s);
/* n expired flows: the conn line of each, and the http and tls lines of what still waits for them; those it
 * leaves (no IP addresses) go to rest. */
int hw_logger_flows(struct hw_logger *lg, const struct hw_flow_record *f, int n, int32_t *rest);
/* A flow left the table (when its records are not fed to hw_logger_flows): what waits for it is logged. */
void hw_logger_ended(struct hw_logger *lg, uint64_t flow_id);
/* A cipher suite's IANA name for the tls lines (NULL-terminated; copied); unnamed ones are written 0x%04x. */
int hw_logger_suite(struct hw_logger *lg, uint16_t code, const char *name);
/* Queries unanswered (and TLS handshakes untold) for wait_ns of packet time before now_ns (or the newest event,
 * if later) are logged alone. */
void hw_logger_expire(struct hw_logger *lg, uint64_t now_ns, uint64_t wait_ns);
/* Every query and request still held is logged alone (the end of a capture). */
void hw_logger_flush(struct hw_logger *lg);
/* The lines of one kind made since the last take ('\n' after each); valid until the next take of that kind. */
const char *hw_logger_take(struct hw_logger *lg, int kind, size_t *len);
void hw_logger_stats(struct hw_logger *lg, struct hw_logger_stats *out);
/* A Zeek-like uid: 'C' + 17 hex digits and a NUL into out (19 bytes), keyed by the 16-byte salt. */
void hw_log_uid(const uint8_t *salt, uint64_t flow_id, char *out);
/* The log index's keys of '\n'-separated JSON lines (agent.logs.index; logindex.c), at most max of them: each
 * line's "ts" into ts[i] (0.0 when it has none), and '\n'-ended entries: its search text (the string values of
 * the NUL-separated key field names in fields, ended by an empty name, space-joined, lower case) into keys_out,
 * its two addresses (hosts(), "" for none) into hosts_out, its "community_id" ("" for none) into cids_out; each
 * output needs len + 2 * max + 16 bytes, out_lens[3] their lengths.  py[i] = 1: line i is for Python to read
 * (its entries empty).  The number of lines, as str.splitlines() counts them, or -1 when Python must read them
 * all (a byte past ASCII, a line break splitlines() knows and '\n' does not, more than max lines). */
int hw_log_index(const char *buf, size_t len, const char *fields, uint32_t max, double *ts, uint8_t *py,
                 char *keys_out, char *hosts_out, char *cids_out, size_t *out_lens);
