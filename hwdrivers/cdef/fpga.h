/* fpga.h - the FPGA capture card: what Python asks of the card directly
 * (identity, state, firmware load, the flow-cache offload) and the card's
 * software model (fpga-sim).  Capture itself goes through a session with
 * backend "fpga" and the card's device path as its source. */

#define HW_FPGA_TARGET_MAX 32

#define HW_FPGA_FAULT_STALL 1        /* the DMA engine hangs until the driver resets it */
#define HW_FPGA_FAULT_CORRUPT 2      /* one descriptor is written with a bad check word */
#define HW_FPGA_FAULT_LINK 3         /* the link drops for `arg` ms */
#define HW_FPGA_FAULT_FW_CRC 4       /* the next firmware chunk is damaged on its way in */

#define HW_FPGA_FW_NONE 0
#define HW_FPGA_FW_LOADING 1
#define HW_FPGA_FW_RUNNING 2
#define HW_FPGA_FW_FAILED 3

struct hw_fpga_info {
    uint32_t id, hw_version, caps, linktype;
    char target[33];
    int model;                   /* 1: the software model */
    int fw_state;                /* HW_FPGA_FW_* */
    int fw_error;                /* why the last load failed (FPGA_FWERR_*), 0 for none */
    uint32_t fw_major, fw_minor, fw_patch, fw_rollback, fw_crc, fw_length, fw_loads;
    int link_up, dma_running, end_of_stream;
    uint64_t rx_packets, rx_bytes, rx_dropped, link_downs, dma_resets, faults_fired;
    uint64_t ts_now_ns;
    uint32_t flowcache_entries, flowcache_used;
    uint64_t flowcache_overflow;
    uint32_t desc_count, data_size;
};

/* A conversation from the card's flow cache: endpoints in canonical order. */
struct hw_offload_flow {
    uint8_t addr_a[16], addr_b[16];
    uint16_t port_a, port_b, vlan;
    uint8_t family, proto;
    uint64_t packets, bytes, first_ns, last_ns;
};

/* Why the card refused the last firmware load (hw_fpga_info's fw_error):
 * "target", "length", "crc", "sequence", "command"; NULL for 0 or unknown. */
const char *hw_fpga_fw_error_name(int code);
/* Identity and state of the card at `device` (its mapping). */
int hw_fpga_info(const char *device, struct hw_fpga_info *out, char *errbuf);
/* Load a payload through the firmware mailbox in chunks; the card checks
 * target, length and CRC-32 and runs it.  Call only with a payload whose
 * image verified (firmware/): the card trusts what it is given. */
int hw_fpga_load(const char *device, const char *target, uint32_t major, uint32_t minor, uint32_t patch,
                 uint32_t rollback, const uint8_t *payload, uint32_t len, char *errbuf);
/* Ask the model to misbehave: `kind` before frame number `at_packet`. */
int hw_fpga_fault(const char *device, int kind, uint64_t at_packet, uint32_t arg, char *errbuf);
/* The card's flow cache, through a session on the fpga backend
 * (HW_E_UNSUPPORTED on a backend without one). */
int hw_session_offload_flows(struct hw_session *s, struct hw_offload_flow *out, int max);

/* The card's software model, behind the same register map in a shared-memory file. */
struct hw_fpgasim_config {
    const char *device;          /* the file to create, e.g. /dev/shm/capbox-fpga0 */
    const char *source;          /* a capture file, or an interface */
    const char *target;          /* the hardware target the card reports */
    int live;                    /* 1: source is an interface (backend pcap) */
    double pace;                 /* files: 0 = as fast as the ring drains, 1 = recorded pace */
    int loop;                    /* files: start over at the end */
    uint32_t desc_count;         /* descriptors, power of two */
    uint32_t data_mb;            /* packet data ring, MiB, power of two */
    uint32_t flow_entries;       /* flow-cache entries, power of two */
};
struct hw_fpgasim;

void hw_fpgasim_config_init(struct hw_fpgasim_config *cfg);
int hw_fpgasim_create(const struct hw_fpgasim_config *cfg, struct hw_fpgasim **out, char *errbuf);
/* Run the card until hw_fpgasim_stop (from another thread) or timeout_ms
 * (-1: none); returns 0, or an error of its source. */
int hw_fpgasim_run(struct hw_fpgasim *sim, int timeout_ms, char *errbuf);
void hw_fpgasim_stop(struct hw_fpgasim *sim);
/* Unmap and remove the device file. */
void hw_fpgasim_destroy(struct hw_fpgasim *sim);
