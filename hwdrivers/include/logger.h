/* logger.h - what the log line makers share (logs.c: dns, conn and the
 * logger; logconn.c: conn; loghttp.c: http; logtls.c: tls): the start and end of a line in the logger's
 * buffers.  Called with the logger's lock held. */
#ifndef LOGGER_H
#define LOGGER_H

#include "hw.h"
#include "logjson.h"

/* The lines of one kind being made. */
struct hwint_jbuf *hwint_log_buf(struct hw_logger *lg, int kind);
/* {"ts":...,"uid":...,"id.orig_h":...,"proto":...,"community_id":...: the start of every line with a flow.
 * A port < 0 is left out; null_uid: write "uid":null for flow 0 (else leave it out, as a compacted record);
 * cid: the community ID made beforehand ("" for none), NULL to make it here. */
void hwint_log_head(struct hw_logger *lg, int kind, uint64_t ts_ns, uint64_t flow_id, int family,
                    const uint8_t *orig, int orig_p, const uint8_t *resp, int resp_p, uint8_t proto, int null_uid,
                    const char *cid);
/* The line begun at start of the kind's buffer ends (or is dropped and counted: no memory, or bytes_max held). */
void hwint_log_end(struct hw_logger *lg, int kind, size_t start);
/* A half-made record went out early: its table was full. */
void hwint_log_early(struct hw_logger *lg);
/* Zeroed hash buckets of entry_size bytes, a power of two of them at least twice max (mask: their count - 1). */
void *hwint_log_buckets(uint32_t max, size_t entry_size, uint32_t *mask);

/* logconn.c: the conn line of a flow; 0 when it has none (no IP addresses).  cid: its community ID made
 * beforehand ("" for none), NULL to make it here. */
int hwint_conn_line(struct hw_logger *lg, const struct hw_flow_record *f, const char *cid);
void hwint_conn_names(void);       /* (once, before the first line: the names' lengths) */

/* communityid.c: the community IDs' SHA-1 of two flows at once (hw_community_id's, rc[k] its return) */
struct hwint_cid_key {
    int family;
    const uint8_t *src, *dst;
    uint8_t proto;
    uint16_t sport, dport, seed;
};
void hwint_community_md2(const struct hwint_cid_key key[2], uint8_t md[2][20], int rc[2]);   /* their SHA-1s */
int hwint_community_md(const struct hwint_cid_key *k, uint8_t *md);     /* one (alone: OpenSSL's) */
void hwint_cid_encode(const uint8_t *md, char *out);    /* "1:" and the SHA-1's base64: 28 characters, a NUL */
/* A flow's SHA-1 kept in its entry: 0 when none was made (all zero: a real one of 2^-160 is made again) */
static inline int hwint_cid_kept(const uint8_t *md)
{
    uint64_t a, b;
    uint32_t c;
    memcpy(&a, md, 8), memcpy(&b, md + 8, 8), memcpy(&c, md + 16, 4);
    return (a | b | c) != 0;
}

/* loghttp.c: requests wait for their responses in a table of at most max flows */
struct hwint_http;
struct hwint_http *hwint_http_new(uint32_t max);
void hwint_http_free(struct hwint_http *h);
void hwint_http_event(struct hw_logger *lg, struct hwint_http *h, const struct hw_event *e);
void hwint_http_ended(struct hw_logger *lg, struct hwint_http *h, uint64_t flow_id);   /* the flow left */
void hwint_http_prefetch(const struct hwint_http *h, uint64_t flow_id);    /* its bucket, ahead of its event */
void hwint_http_prefetch_ended(const struct hwint_http *h, uint64_t flow_id, int stage);   /* ahead of its end */
void hwint_http_flush(struct hw_logger *lg, struct hwint_http *h);

/* logtls.c: a connection's handshake gathers in a table of at most max flows */
struct hwint_tls;
struct hwint_tls *hwint_tls_new(uint32_t max);
void hwint_tls_free(struct hwint_tls *t);
int hwint_tls_suite(struct hwint_tls *t, uint16_t code, const char *name);
void hwint_tls_event(struct hw_logger *lg, struct hwint_tls *t, const struct hw_event *e);
void hwint_tls_ended(struct hw_logger *lg, struct hwint_tls *t, uint64_t flow_id);
void hwint_tls_expire(struct hw_logger *lg, struct hwint_tls *t, uint64_t now_ns, uint64_t wait_ns);
void hwint_tls_flush(struct hw_logger *lg, struct hwint_tls *t);

#endif
