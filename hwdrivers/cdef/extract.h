/* extract.h - packets out of recordings.  Each recording gets a block index
 * (hw_pcap_index_file: byte ranges of whole blocks, or one per encrypted
 * chunk, with the earliest and latest packet time in each); extraction reads
 * only the ranges a time window needs, runs libpcap's BPF over their packets
 * and writes one pcapng of the matching ones to a descriptor. */

struct hw_pcap_mark {
    uint64_t offset;             /* bytes [offset, end) of the file: whole blocks, or one encrypted chunk */
    uint64_t end;
    uint64_t chunk;              /* encrypted: the chunk's index (authenticated with it); plain: 0 */
    uint64_t first_ns;           /* earliest packet time in the range (UINT64_MAX: no packet) */
    uint64_t last_ns;            /* latest */
    uint32_t packets;
};

struct hw_pcap_index {
    struct hw_pcap_mark *marks;  /* owned: hw_pcap_index_free */
    uint32_t n;
    uint64_t first_ns, last_ns;  /* over the whole file (first_ns UINT64_MAX: no packet) */
    uint64_t packets;
    uint64_t size;               /* bytes indexed: whole blocks (or chunks) from the start */
    int complete;                /* plain: the file ends with a whole block; encrypted: its final chunk */
};

struct hw_pcap_source {
    const char *path;
    const uint8_t *key;          /* HW_REC_KEY_SIZE bytes for an encrypted recording, else NULL */
    const struct hw_pcap_mark *marks;  /* the ranges to read, from its index */
    uint32_t n_marks;
};

struct hw_pcap_extract_stats {
    uint64_t packets;            /* written */
    uint64_t examined;           /* packets read from the ranges */
    uint64_t bytes_read;         /* bytes of the ranges read */
    uint64_t bytes_out;
    uint64_t ranges;
    uint64_t files;
};

/* Index a recording (key: NULL for plain pcapng), one mark per span bytes of blocks
 * (plain) or per chunk (encrypted).  A torn end is left out (complete = 0). */
int hw_pcap_index_file(const char *path, const uint8_t *key, uint32_t span, struct hw_pcap_index *out, char *errbuf);
void hw_pcap_index_free(struct hw_pcap_index *ix);
/* The packets with since_ns <= time <= until_ns that match bpf ("" or NULL: all) in the
 * sources' ranges, in order, as one pcapng section written to fd. */
int hw_pcap_extract(const struct hw_pcap_source *src, uint32_t n, uint64_t since_ns, uint64_t until_ns,
                    const char *bpf, int fd, struct hw_pcap_extract_stats *st, char *errbuf);
