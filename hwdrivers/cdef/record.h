/* record.h - packet recording: every captured packet (or those matching the
 * recording's own BPF filter) written as pcapng (one interface, nanosecond
 * timestamps) into rotating files, optionally AES-256-GCM encrypted in
 * chunks (docs/RECORDING.md).  The capture thread only copies packets into
 * buffers; a writer thread in C encrypts, writes, rotates, fsyncs and applies
 * retention, so the capture path never waits on a disk. */

#define HW_REC_KEY_SIZE 32       /* AES-256 */
#define HW_REC_KEY_ID_SIZE 8     /* SHA-256 of the key, first bytes: names the key in a file's header */

struct hw_record_config {
    const char *dir;             /* where the files go (must exist) */
    const char *prefix;          /* names: <prefix>-<UTC>-<seq>.pcapng, .pcapng.enc when encrypted */
    const char *bpf;             /* the recording's own filter; NULL or "" records every packet */
    int bpf_outer;               /* the filter sees a tunnel's outer packet, not the packet inside */
    const char *if_name;         /* the interface description's name (the source) */
    uint32_t snaplen;            /* bytes kept of each packet; 0 = whole packets */
    uint64_t rotate_bytes;       /* start a new file before one grows past this; 0 = never */
    uint32_t rotate_s;           /* or once a file spans this many seconds of packet time; 0 = never */
    uint64_t keep_bytes;         /* retention: the prefix's files together at most this; 0 = no limit */
    uint32_t keep_s;             /* retention: files older than this go; 0 = no limit */
    uint32_t buffer_kb;          /* one write, and one encrypted chunk: 64..65536 */
    uint32_t buffers;            /* buffers between the capture and the writer thread: 2..256 */
    uint32_t flush_ms;           /* a buffered packet reaches its file at most this late */
    int lossless;                /* wait for the writer instead of dropping packets (offline) */
    int fsync;                   /* fsync every file (and its directory) as it is closed */
    const uint8_t *key;          /* HW_REC_KEY_SIZE bytes: encrypt; NULL: plain pcapng */
};

struct hw_record_stats {
    int active;
    int encrypted;               /* the current (or next) file is encrypted */
    uint8_t key_id[HW_REC_KEY_ID_SIZE];
    uint64_t packets;            /* recorded */
    uint64_t bytes;              /* captured bytes of the recorded packets */
    uint64_t filtered;           /* did not match the recording's filter */
    uint64_t dropped;            /* lost: the writer fell behind, or a write failed */
    uint64_t file_bytes;         /* bytes written to files */
    uint64_t files;              /* files opened */
    uint64_t files_closed;       /* files completed (and fsynced) */
    uint64_t files_deleted;      /* removed by retention */
    uint64_t chunks;             /* encrypted chunks written */
    uint64_t write_errors;
    uint64_t writer_cpu_ns;      /* CPU time of the writer thread (encryption, writes, fsync, retention) */
    char current[512];           /* the file being written, "" between files */
    char last_error[192];
};

void hw_record_config_init(struct hw_record_config *cfg);
/* Start recording this session's packets; HW_E_STATE when it already records. */
int hw_record_start(struct hw_session *s, const struct hw_record_config *cfg, char *errbuf);
/* Close the current file (final chunk, fsync) and stop; waits for the writer. */
int hw_record_stop(struct hw_session *s, char *errbuf);
/* Close the current file; the next packet starts a new one. */
int hw_record_rotate(struct hw_session *s, char *errbuf);
/* A new key (NULL: plain pcapng) for the files from now on: closes the current file. */
int hw_record_set_key(struct hw_session *s, const uint8_t *key, char *errbuf);
int hw_record_stats(struct hw_session *s, struct hw_record_stats *out);
