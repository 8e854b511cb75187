/*
 * A fake Xen for tests: the hypervisor side of libvmsbfakexen.
 *
 * The library implements, against the real Xen 4.17 headers, the subset of libxendevicemodel,
 * libxenforeignmemory, libxenevtchn and libxenstore that the vmsb binding calls (the "dom0" side),
 * and simulates what Xen does for one HVM domain (this file's API, the "hypervisor" side): guest RAM,
 * ioreq servers and their shared pages, per-vCPU event channels, vCPUs doing port I/O, and a small
 * xenstore.
 *
 * Everything lives in a directory named by VMSB_FAKE_XEN, so the two sides may be different
 * processes (a daemon started with LD_PRELOAD=libvmsbfakexen.so, driven by a test) or the same one:
 *   hv            this header's struct fx_shared, then one 4 KiB ioreq page per ioreq server
 *   ram           guest RAM, page n at offset n * 4096
 *   evtchn-<id>   a FIFO per open event-channel handle: the driver's queue of pending local ports
 * State shared between processes is guarded by a process-shared, robust mutex; a vCPU waits on a
 * process-shared condition variable that xenevtchn_notify() signals.
 */
#ifndef VMSB_FAKEXEN_H
#define VMSB_FAKEXEN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FX_PAGE_SIZE 4096u
#define FX_MAX_SERVERS 8u          /* MAX_NR_IOREQ_SERVERS */
#define FX_MAX_VCPUS 128u          /* HVM_MAX_VCPUS: 128 ioreq_t fill the 4 KiB page */
#define FX_MAX_RANGES 16u
#define FX_XS_ENTRIES 64u
#define FX_XS_PATH_MAX 1024u
#define FX_XS_VALUE_MAX 1024u
#define FX_REMOTE_PORT_BASE 1000u  /* guest-side port of server s, vCPU v: base + s * 128 + v */
#define FX_FIRST_LOCAL_PORT 50u
#define FX_LEGACY_GFN_BASE 0xfeff0ull /* legacy ioreq page frame of server s: base + s (outside RAM) */

/* Fault injection (fxhv_set_faults). */
#define FX_FAULT_NO_MAP_RESOURCE 0x1u /* map_resource fails with EOPNOTSUPP (old kernel or Xen) */
#define FX_FAULT_BAD_VCPUS 0x2u       /* nr_vcpus reports 4096 vCPUs */
#define FX_FAULT_FAIL_BIND 0x4u       /* binding the last vCPU's event channel fails with ENOMEM */
#define FX_FAULT_RANGE_BUSY 0x8u      /* mapping an I/O range fails with EEXIST */

struct fx_range {
    uint32_t is_mmio;
    uint32_t pad;
    uint64_t start; /* inclusive */
    uint64_t end;   /* inclusive */
};

/* One vCPU's event channel of one ioreq server: the guest-side port Xen allocated, and its dom0 binding. */
struct fx_chan {
    uint32_t remote_port;
    uint32_t bound;
    uint32_t local_port;
    uint32_t handle_id; /* the event-channel handle (FIFO) it is bound through */
    uint32_t masked;
    uint32_t pending;   /* raised while masked: delivered again on unmask */
    uint64_t notifies;  /* xenevtchn_notify() count: what a blocked vCPU waits for */
};

struct fx_server {
    uint32_t used;
    uint32_t enabled;
    uint32_t gfn_published;  /* get_ioreq_server_info handed out the page frame (legacy path) */
    uint32_t resource_maps;  /* live map_resource mappings of the page */
    uint32_t nranges;
    uint32_t pad;
    struct fx_range ranges[FX_MAX_RANGES];
    struct fx_chan chans[FX_MAX_VCPUS];
};

struct fx_xs_entry {
    uint32_t used;
    uint32_t len;
    char path[FX_XS_PATH_MAX];
    char value[FX_XS_VALUE_MAX];
};

/* What tests inspect: handles open now, mappings live now, restrictions applied. */
struct fx_counters {
    int32_t dm_open, fm_open, ev_open, xs_open;
    int32_t dm_restricted, fm_restricted, ev_restricted; /* domid of the last restrict call, -1 none */
    int32_t pad;
    int64_t foreign_pages;   /* guest pages mapped now through xenforeignmemory_map */
    uint64_t foreign_maps;   /* successful xenforeignmemory_map calls */
    uint64_t deliveries;     /* events written to a dom0 queue */
    uint64_t notifies;       /* xenevtchn_notify calls */
    uint64_t xs_writes;
};

/* What the last xenevtchn_notify() for a vCPU's channel showed: the slot as the vCPU finds it on waking.
 * Kept per vCPU, outside the servers, so destroying a server cannot lose a wake-up already sent. */
struct fx_wake {
    uint64_t count;
    uint32_t server;
    uint32_t state;
    uint64_t data;
};

struct fx_shared {
    uint64_t magic;
    uint32_t version;
    uint32_t size;            /* bytes of the hv file */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t domid;
    uint32_t nr_vcpus;
    uint64_t ram_pages;
    uint32_t faults;
    uint32_t next_local_port;
    uint32_t next_handle_id;
    uint32_t pad;
    struct fx_counters c;
    struct fx_server servers[FX_MAX_SERVERS];
    struct fx_wake wakes[FX_MAX_VCPUS];
    struct fx_xs_entry xs[FX_XS_ENTRIES];
};

/* ---- hypervisor side ---- */

struct fxhv;

/* What a vCPU asks Xen to emulate. route FXHV_ROUTE_PORT selects the server whose port range holds
 * the whole access, as Xen does for port I/O; FXHV_ROUTE_ANY hands the request as given to the first
 * enabled server (as a broadcast like INVALIDATE reaches every server), for hostile-request tests. */
struct fxhv_io {
    uint64_t addr;
    uint64_t data;
    uint32_t count;
    uint32_t size;
    uint8_t dir;          /* IOREQ_READ / IOREQ_WRITE */
    uint8_t type;         /* IOREQ_TYPE_* */
    uint8_t data_is_ptr;
    uint8_t df;
    uint32_t route;
};
#define FXHV_ROUTE_PORT 0u
#define FXHV_ROUTE_ANY 1u

enum fxhv_outcome {
    FXHV_COMPLETED = 0,  /* the emulator set IORESP_READY and notified */
    FXHV_UNCLAIMED = 1,  /* no server claims the whole access: Xen answers itself (reads all ones) */
    FXHV_TIMEOUT = 2,    /* never completed: a real vCPU would stay blocked */
    FXHV_BAD_STATE = 3,  /* the emulator moved the state backwards: Xen would crash the domain */
    FXHV_BUSY = 4,       /* the slot was not idle, or the page's event channel was altered */
    FXHV_NO_SERVER = 5,  /* FXHV_ROUTE_ANY with no enabled server */
};

struct fxhv_io_result {
    int32_t outcome;
    int32_t server;
    uint64_t data;       /* the slot's data when completed (all ones when unclaimed) */
};

/* Creates a fresh hypervisor in an existing directory. Returns 0 or -errno. */
int fxhv_create(const char *dir, uint32_t domid, uint32_t nr_vcpus, uint64_t ram_pages);
/* Attaches to one; NULL with errno on failure. The handle is reference counted. */
struct fxhv *fxhv_attach(const char *dir);
void fxhv_retain(struct fxhv *hv);
void fxhv_release(struct fxhv *hv);

uint8_t *fxhv_ram(struct fxhv *hv, uint64_t *pages);
/* Plays vCPU `vcpu` doing `io` and blocks until Xen would resume it (or timeout_ms). Returns 0 or -errno. */
int fxhv_guest_io(struct fxhv *hv, uint32_t vcpu, const struct fxhv_io *io, int timeout_ms,
                  struct fxhv_io_result *result);
/* Raises vCPU `vcpu`'s event channel of the first enabled server without a request (a spurious event). */
int fxhv_kick(struct fxhv *hv, uint32_t vcpu);
int fxhv_set_faults(struct fxhv *hv, uint32_t faults);
/* Returns 0, -ENOENT when absent, -ENOSPC when cap is too small; *len excludes the NUL. */
int fxhv_xs_read(struct fxhv *hv, const char *path, char *out, size_t cap, size_t *len);
int fxhv_xs_write(struct fxhv *hv, const char *path, const char *value, size_t len);
/* The state field of a vCPU's ioreq slot (STATE_IOREQ_*), or -errno. */
int fxhv_slot_state(struct fxhv *hv, uint32_t server, uint32_t vcpu);
/* A consistent copy of the shared state (the mutex and condition variable are not meaningful). */
void fxhv_snapshot(struct fxhv *hv, struct fx_shared *out);

#ifdef __cplusplus
}
#endif

#endif
