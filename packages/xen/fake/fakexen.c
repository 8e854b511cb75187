/*
 * libvmsbfakexen: a fake Xen for tests. See fakexen.h for the layout and the hypervisor side.
 *
 * The dom0 side below implements the Xen 4.17 library calls the vmsb binding makes, with the
 * prototypes from the real headers, so a signature change there fails to compile here. Behaviour
 * follows Xen and Linux where tests rely on it:
 *  - every *_open fails with ENOENT when no hypervisor is configured (as without /dev/xen);
 *  - privcmd handles restrict once to a domid (again to another: EINVAL), then refuse other
 *    domains (EPERM); an event-channel handle restricts once (again: EACCES), never to domain 0;
 *  - an unknown domain is ESRCH; a missing server ENOENT; overlapping ranges EEXIST; a ninth server
 *    ENOSPC;
 *  - the ioreq page maps only as resource frame 1 with BUFIOREQ_OFF (frame 0: ENOENT), and not at
 *    all once its frame was published to the guest (EPERM); vp_eport is written at enable;
 *  - xenforeignmemory_map with err == NULL is all-or-nothing (EINVAL for a frame outside RAM);
 *  - a delivered event masks its port until xenevtchn_unmask, which redelivers one raised meanwhile;
 *    an empty queue read returns EAGAIN on a non-blocking fd, as /dev/xen/evtchn does;
 *  - notify or unbind of a port this handle did not bind is ENOTCONN.
 * Only BUFIOREQ_OFF servers and port-I/O ranges are modelled: that is all varstored uses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xentoollog.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xenevtchn.h>
#include <xenstore.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "fakexen.h"

#define FX_MAGIC 0x6e6578656b616676ull /* "vfakexen" */
#define FX_VERSION 2u
#define FX_ENV "VMSB_FAKE_XEN"

_Static_assert(sizeof(ioreq_t) == 32, "ioreq_t layout");
_Static_assert(FX_MAX_VCPUS * sizeof(ioreq_t) == FX_PAGE_SIZE, "one ioreq page holds HVM_MAX_VCPUS slots");

static size_t fx_shared_pages_bytes(void) {
    return (sizeof(struct fx_shared) + FX_PAGE_SIZE - 1) / FX_PAGE_SIZE * FX_PAGE_SIZE;
}

static size_t fx_ioreq_offset(uint32_t server) {
    return fx_shared_pages_bytes() + (size_t)server * FX_PAGE_SIZE;
}

static size_t fx_file_size(void) {
    return fx_ioreq_offset(FX_MAX_SERVERS);
}

/* ---- connection to the hypervisor directory ---- */

struct fx_conn {
    int fd;
    struct fx_shared *sh;
    char dir[PATH_MAX];
};

static void fx_lock(struct fx_shared *sh) {
    /* Robust: a test process that dies holding the lock must not wedge the other side. */
    if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&sh->lock);
}

static void fx_unlock(struct fx_shared *sh) {
    pthread_mutex_unlock(&sh->lock);
}

static void fx_log(struct xentoollog_logger *logger, int errnoval, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fx_log(struct xentoollog_logger *logger, int errnoval, const char *context, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (logger && logger->vmessage) {
        logger->vmessage(logger, XTL_ERROR, errnoval, context, fmt, ap);
    } else {
        /* The real libraries log to stderr when given no logger. */
        fprintf(stderr, "%s: error: ", context);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

static int fx_map_file(struct fx_conn *c, const char *dir) {
    if (strlen(dir) >= sizeof(c->dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/hv", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size != fx_file_size()) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    void *p = mmap(NULL, fx_file_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct fx_shared *sh = p;
    if (sh->magic != FX_MAGIC || sh->version != FX_VERSION) {
        munmap(p, fx_file_size());
        close(fd);
        errno = EINVAL;
        return -1;
    }
    c->fd = fd;
    c->sh = sh;
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    return 0;
}

/* Opens the configured hypervisor the way the real libraries open a device node. */
static int fx_connect(struct fx_conn *c, struct xentoollog_logger *logger, const char *context, const char *node) {
    const char *dir = getenv(FX_ENV);
    if (!dir || !*dir) {
        fx_log(logger, ENOENT, context, "Could not obtain handle on %s: %s", node, strerror(ENOENT));
        errno = ENOENT;
        return -1;
    }
    if (fx_map_file(c, dir) < 0) {
        int e = errno;
        fx_log(logger, e, context, "Could not obtain handle on %s: %s", node, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

static void fx_disconnect(struct fx_conn *c) {
    if (c->sh)
        munmap(c->sh, fx_file_size());
    if (c->fd >= 0)
        close(c->fd);
    c->sh = NULL;
    c->fd = -1;
}

static volatile ioreq_t *fx_page(struct fx_shared *sh, uint32_t server) {
    return (volatile ioreq_t *)((char *)sh + fx_ioreq_offset(server));
}

/* A dm_op / privcmd-style domain check: restricted handles only reach their domain. */
static int fx_check_domain(struct fx_shared *sh, int32_t restricted, uint32_t domid) {
    if (restricted >= 0 && (uint32_t)restricted != domid)
        return EPERM;
    if (domid != sh->domid)
        return ESRCH;
    return 0;
}

static struct fx_server *fx_server(struct fx_shared *sh, uint32_t id) {
    if (id >= FX_MAX_SERVERS || !sh->servers[id].used)
        return NULL;
    return &sh->servers[id];
}

static void fx_fifo_path(const char *dir, uint32_t handle_id, char *out, size_t cap) {
    snprintf(out, cap, "%s/evtchn-%u", dir, handle_id);
}

/* Queues `local_port` on the handle's FIFO, as the kernel driver queues a fired port. */
static void fx_fifo_push(const char *dir, uint32_t handle_id, uint32_t local_port) {
    char path[PATH_MAX + 32];
    fx_fifo_path(dir, handle_id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return; /* nobody has the handle open: the event is lost, as with a closed fd */
    ssize_t n = write(fd, &local_port, sizeof(local_port));
    (void)n;
    close(fd);
}

/* Raises an event channel (lock held): masked ports remember it, others are delivered and masked. */
static void fx_raise_locked(struct fx_conn *c, struct fx_chan *ch) {
    if (!ch->bound)
        return;
    if (ch->masked) {
        ch->pending = 1;
        return;
    }
    ch->masked = 1;
    c->sh->c.deliveries++;
    fx_fifo_push(c->dir, ch->handle_id, ch->local_port);
}

static struct fx_chan *fx_find_local(struct fx_shared *sh, uint32_t handle_id, uint32_t local_port) {
    for (uint32_t s = 0; s < FX_MAX_SERVERS; s++) {
        if (!sh->servers[s].used)
            continue;
        for (uint32_t v = 0; v < sh->nr_vcpus; v++) {
            struct fx_chan *ch = &sh->servers[s].chans[v];
            if (ch->bound && ch->handle_id == handle_id && ch->local_port == local_port)
                return ch;
        }
    }
    return NULL;
}

/* ==== libxendevicemodel ==== */

struct xendevicemodel_handle {
    struct fx_conn c;
    int32_t restricted;
};

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger, unsigned int open_flags) {
    xendevicemodel_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->c.fd = -1;
    h->restricted = -1;
    if (fx_connect(&h->c, logger, "xencall", "privileged command interface") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    fx_lock(h->c.sh);
    h->c.sh->c.dm_open++;
    fx_unlock(h->c.sh);
    return h;
}

int xendevicemodel_close(xendevicemodel_handle *dmod) {
    if (!dmod)
        return 0;
    fx_lock(dmod->c.sh);
    dmod->c.sh->c.dm_open--;
    fx_unlock(dmod->c.sh);
    fx_disconnect(&dmod->c);
    free(dmod);
    return 0;
}

int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid) {
    if (dmod->restricted >= 0 && (uint32_t)dmod->restricted != domid) {
        errno = EINVAL;
        return -1;
    }
    dmod->restricted = domid;
    fx_lock(dmod->c.sh);
    dmod->c.sh->c.dm_restricted = domid;
    fx_unlock(dmod->c.sh);
    return 0;
}

/* Runs a dm_op body under the lock after the domain check; the body sets rc_ to an errno value on failure. */
#define FX_DM_OP(dmod, domid, ...)                                         \
    do {                                                                   \
        struct fx_shared *sh = (dmod)->c.sh;                               \
        int rc_;                                                           \
        fx_lock(sh);                                                       \
        rc_ = fx_check_domain(sh, (dmod)->restricted, (domid));            \
        if (rc_ == 0) {                                                    \
            __VA_ARGS__                                                    \
        }                                                                  \
        fx_unlock(sh);                                                     \
        if (rc_ != 0) {                                                    \
            errno = rc_;                                                   \
            return -1;                                                     \
        }                                                                  \
        return 0;                                                          \
    } while (0)

int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid, unsigned int *vcpus) {
    FX_DM_OP(dmod, domid, { *vcpus = (sh->faults & FX_FAULT_BAD_VCPUS) ? 4096u : sh->nr_vcpus; });
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, int handle_bufioreq,
                                       ioservid_t *id) {
    FX_DM_OP(dmod, domid, {
        if (handle_bufioreq != HVM_IOREQSRV_BUFIOREQ_OFF) {
            rc_ = EINVAL; /* only unbuffered servers are modelled */
        } else {
            uint32_t s = 0;
            while (s < FX_MAX_SERVERS && sh->servers[s].used)
                s++;
            if (s == FX_MAX_SERVERS) {
                rc_ = ENOSPC;
            } else {
                struct fx_server *srv = &sh->servers[s];
                memset(srv, 0, sizeof(*srv));
                srv->used = 1;
                for (uint32_t v = 0; v < sh->nr_vcpus; v++)
                    srv->chans[v].remote_port = FX_REMOTE_PORT_BASE + s * FX_MAX_VCPUS + v;
                memset((void *)fx_page(sh, s), 0, FX_PAGE_SIZE);
                *id = (ioservid_t)s;
            }
        }
    });
}

int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                         xen_pfn_t *ioreq_gfn, xen_pfn_t *bufioreq_gfn,
                                         evtchn_port_t *bufioreq_port) {
    FX_DM_OP(dmod, domid, {
        struct fx_server *srv = fx_server(sh, id);
        if (!srv) {
            rc_ = ENOENT;
        } else {
            if (ioreq_gfn || bufioreq_gfn) {
                srv->gfn_published = 1;
                if (ioreq_gfn)
                    *ioreq_gfn = (xen_pfn_t)(FX_LEGACY_GFN_BASE + id);
                if (bufioreq_gfn)
                    *bufioreq_gfn = 0;
            }
            if (bufioreq_port)
                *bufioreq_port = 0;
        }
    });
}

static bool fx_overlaps(const struct fx_server *srv, int is_mmio, uint64_t start, uint64_t end) {
    for (uint32_t i = 0; i < srv->nranges; i++) {
        const struct fx_range *r = &srv->ranges[i];
        if (r->is_mmio == (uint32_t)!!is_mmio && start <= r->end && r->start <= end)
            return true;
    }
    return false;
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                int is_mmio, uint64_t start, uint64_t end) {
    FX_DM_OP(dmod, domid, {
        struct fx_server *srv = fx_server(sh, id);
        if (!srv)
            rc_ = ENOENT;
        else if (start > end)
            rc_ = EINVAL;
        else if ((sh->faults & FX_FAULT_RANGE_BUSY) || fx_overlaps(srv, is_mmio, start, end))
            rc_ = EEXIST;
        else if (srv->nranges == FX_MAX_RANGES)
            rc_ = ENOSPC;
        else
            srv->ranges[srv->nranges++] = (struct fx_range){ .is_mmio = (uint32_t)!!is_mmio, .start = start, .end = end };
    });
}

int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id,
                                                    int is_mmio, uint64_t start, uint64_t end) {
    FX_DM_OP(dmod, domid, {
        struct fx_server *srv = fx_server(sh, id);
        rc_ = ENOENT;
        for (uint32_t i = 0; srv && i < srv->nranges; i++) {
            struct fx_range *r = &srv->ranges[i];
            if (r->is_mmio == (uint32_t)!!is_mmio && r->start == start && r->end == end) {
                *r = srv->ranges[--srv->nranges];
                rc_ = 0;
                break;
            }
        }
    });
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int enabled) {
    FX_DM_OP(dmod, domid, {
        struct fx_server *srv = fx_server(sh, id);
        if (!srv) {
            rc_ = ENOENT;
        } else {
            srv->enabled = !!enabled;
            /* Xen publishes each vCPU's event channel in the page when the server is enabled. */
            if (enabled) {
                volatile ioreq_t *page = fx_page(sh, id);
                for (uint32_t v = 0; v < sh->nr_vcpus; v++)
                    page[v].vp_eport = srv->chans[v].remote_port;
            }
        }
    });
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id) {
    FX_DM_OP(dmod, domid, {
        struct fx_server *srv = fx_server(sh, id);
        if (!srv)
            rc_ = ENOENT;
        else
            memset(srv, 0, sizeof(*srv)); /* ranges go with it, as dm_op.h says */
    });
}

/* ==== libxenforeignmemory ==== */

struct xenforeignmemory_handle {
    struct fx_conn c;
    int32_t restricted;
    int ramfd;
};

struct xenforeignmemory_resource_handle {
    void *addr;
    size_t bytes;
    uint32_t server;
    struct fx_shared *sh;
};

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger, unsigned open_flags) {
    xenforeignmemory_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->c.fd = -1;
    h->ramfd = -1;
    h->restricted = -1;
    if (fx_connect(&h->c, logger, "xenforeignmemory", "privcmd device") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/ram", h->c.dir);
    h->ramfd = open(path, O_RDWR | O_CLOEXEC);
    if (h->ramfd < 0) {
        int e = errno;
        fx_disconnect(&h->c);
        free(h);
        errno = e;
        return NULL;
    }
    fx_lock(h->c.sh);
    h->c.sh->c.fm_open++;
    fx_unlock(h->c.sh);
    return h;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem) {
    if (!fmem)
        return 0;
    fx_lock(fmem->c.sh);
    fmem->c.sh->c.fm_open--;
    fx_unlock(fmem->c.sh);
    close(fmem->ramfd);
    fx_disconnect(&fmem->c);
    free(fmem);
    return 0;
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid) {
    if (fmem->restricted >= 0 && (uint32_t)fmem->restricted != domid) {
        errno = EINVAL;
        return -1;
    }
    fmem->restricted = domid;
    fx_lock(fmem->c.sh);
    fmem->c.sh->c.fm_restricted = domid;
    fx_unlock(fmem->c.sh);
    return 0;
}

/* Maps one frame at `at` (lock held): guest RAM, or a server's page published by the legacy call. */
static int fx_map_frame(xenforeignmemory_handle *fmem, void *at, int prot, xen_pfn_t gfn) {
    struct fx_shared *sh = fmem->c.sh;
    int fd;
    off_t off;
    if (gfn < sh->ram_pages) {
        fd = fmem->ramfd;
        off = (off_t)gfn * FX_PAGE_SIZE;
    } else if (gfn >= FX_LEGACY_GFN_BASE && gfn < FX_LEGACY_GFN_BASE + FX_MAX_SERVERS &&
               sh->servers[gfn - FX_LEGACY_GFN_BASE].used &&
               sh->servers[gfn - FX_LEGACY_GFN_BASE].gfn_published) {
        fd = fmem->c.fd;
        off = (off_t)fx_ioreq_offset((uint32_t)(gfn - FX_LEGACY_GFN_BASE));
    } else {
        return EINVAL;
    }
    if (mmap(at, FX_PAGE_SIZE, prot, MAP_SHARED | MAP_FIXED, fd, off) == MAP_FAILED)
        return errno;
    return 0;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages,
                           const xen_pfn_t arr[], int err[]) {
    struct fx_shared *sh = fmem->c.sh;
    if (pages == 0 || pages > (SIZE_MAX / FX_PAGE_SIZE)) {
        errno = EINVAL;
        return NULL;
    }
    fx_lock(sh);
    int rc = fx_check_domain(sh, fmem->restricted, dom);
    if (rc) {
        fx_unlock(sh);
        errno = rc;
        return NULL;
    }
    /* Reserve the range, then place each frame, as privcmd's mmap + MMAPBATCH_V2 does. */
    char *base = mmap(NULL, pages * FX_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        fx_unlock(sh);
        errno = e;
        return NULL;
    }
    int first_error = 0;
    for (size_t i = 0; i < pages; i++) {
        int e = fx_map_frame(fmem, base + i * FX_PAGE_SIZE, prot, arr[i]);
        if (err)
            err[i] = -e;
        if (e && !first_error)
            first_error = e;
    }
    if (first_error && !err) {
        munmap(base, pages * FX_PAGE_SIZE);
        fx_unlock(sh);
        errno = first_error;
        return NULL;
    }
    sh->c.foreign_pages += (int64_t)pages;
    sh->c.foreign_maps++;
    fx_unlock(sh);
    return base;
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages) {
    if (munmap(addr, pages * FX_PAGE_SIZE) < 0)
        return -1;
    fx_lock(fmem->c.sh);
    fmem->c.sh->c.foreign_pages -= (int64_t)pages;
    fx_unlock(fmem->c.sh);
    return 0;
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(xenforeignmemory_handle *fmem, domid_t domid,
                                                                 unsigned int type, unsigned int id,
                                                                 unsigned long frame, unsigned long nr_frames,
                                                                 void **paddr, int prot, int flags) {
    struct fx_shared *sh = fmem->c.sh;
    fx_lock(sh);
    int rc = fx_check_domain(sh, fmem->restricted, domid);
    struct fx_server *srv = NULL;
    if (!rc && (sh->faults & FX_FAULT_NO_MAP_RESOURCE))
        rc = EOPNOTSUPP;
    if (!rc && type != XENMEM_resource_ioreq_server)
        rc = EINVAL;
    if (!rc && !(srv = fx_server(sh, id)))
        rc = ENOENT;
    if (!rc && srv->gfn_published)
        rc = EPERM; /* the page already lives in a guest frame */
    if (!rc && frame == XENMEM_resource_ioreq_server_frame_bufioreq)
        rc = ENOENT; /* no buffered ring without BUFIOREQ */
    if (!rc && (frame != XENMEM_resource_ioreq_server_frame_ioreq(0) || nr_frames != 1))
        rc = EINVAL;
    xenforeignmemory_resource_handle *res = NULL;
    if (!rc) {
        res = calloc(1, sizeof(*res));
        if (!res)
            rc = ENOMEM;
    }
    if (!rc) {
        void *p = mmap(*paddr, FX_PAGE_SIZE, prot, MAP_SHARED | flags, fmem->c.fd, (off_t)fx_ioreq_offset(id));
        if (p == MAP_FAILED) {
            rc = errno;
            free(res);
            res = NULL;
        } else {
            *res = (xenforeignmemory_resource_handle){ .addr = p, .bytes = FX_PAGE_SIZE, .server = id, .sh = sh };
            *paddr = p;
            srv->resource_maps++;
        }
    }
    fx_unlock(sh);
    if (rc)
        errno = rc;
    return res;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem, xenforeignmemory_resource_handle *fres) {
    if (!fres)
        return 0;
    munmap(fres->addr, fres->bytes);
    fx_lock(fmem->c.sh);
    if (fres->server < FX_MAX_SERVERS && fmem->c.sh->servers[fres->server].resource_maps > 0)
        fmem->c.sh->servers[fres->server].resource_maps--;
    fx_unlock(fmem->c.sh);
    free(fres);
    return 0;
}

/* ==== libxenevtchn ==== */

struct xenevtchn_handle {
    struct fx_conn c;
    int32_t restricted;
    int fd;
    uint32_t id;
    char fifo[PATH_MAX + 32];
};

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int flags) {
    xenevtchn_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->c.fd = -1;
    h->fd = -1;
    h->restricted = -1;
    if (fx_connect(&h->c, logger, "xenevtchn", "/dev/xen/evtchn") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    fx_lock(h->c.sh);
    h->id = h->c.sh->next_handle_id++;
    fx_unlock(h->c.sh);
    fx_fifo_path(h->c.dir, h->id, h->fifo, sizeof(h->fifo));
    unlink(h->fifo);
    /* O_RDWR keeps the FIFO open for both ends: no EOF, and unmask can requeue a port itself. */
    if (mkfifo(h->fifo, 0600) < 0 ||
        (h->fd = open(h->fifo, O_RDWR | ((flags & XENEVTCHN_NO_CLOEXEC) ? 0 : O_CLOEXEC))) < 0) {
        int e = errno;
        unlink(h->fifo);
        fx_disconnect(&h->c);
        free(h);
        errno = e;
        return NULL;
    }
    fx_lock(h->c.sh);
    h->c.sh->c.ev_open++;
    fx_unlock(h->c.sh);
    return h;
}

int xenevtchn_close(xenevtchn_handle *xce) {
    if (!xce)
        return 0;
    struct fx_shared *sh = xce->c.sh;
    fx_lock(sh);
    /* Closing the device unbinds every port bound through it. */
    for (uint32_t s = 0; s < FX_MAX_SERVERS; s++)
        for (uint32_t v = 0; v < FX_MAX_VCPUS; v++) {
            struct fx_chan *ch = &sh->servers[s].chans[v];
            if (ch->bound && ch->handle_id == xce->id)
                ch->bound = ch->masked = ch->pending = 0;
        }
    sh->c.ev_open--;
    fx_unlock(sh);
    close(xce->fd);
    unlink(xce->fifo);
    fx_disconnect(&xce->c);
    free(xce);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce) {
    return xce->fd;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid) {
    if (xce->restricted >= 0) {
        errno = EACCES;
        return -1;
    }
    if (domid == 0 || domid >= DOMID_FIRST_RESERVED) {
        errno = EINVAL;
        return -1;
    }
    xce->restricted = domid;
    fx_lock(xce->c.sh);
    xce->c.sh->c.ev_restricted = domid;
    fx_unlock(xce->c.sh);
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port) {
    struct fx_shared *sh = xce->c.sh;
    int rc = 0;
    xenevtchn_port_or_error_t local = -1;
    fx_lock(sh);
    if (xce->restricted >= 0 && (uint32_t)xce->restricted != domid)
        rc = EACCES;
    else if (domid != sh->domid)
        rc = ESRCH;
    struct fx_chan *ch = NULL;
    for (uint32_t s = 0; !rc && !ch && s < FX_MAX_SERVERS; s++) {
        if (!sh->servers[s].used)
            continue;
        for (uint32_t v = 0; v < sh->nr_vcpus; v++)
            if (sh->servers[s].chans[v].remote_port == remote_port) {
                ch = &sh->servers[s].chans[v];
                if ((sh->faults & FX_FAULT_FAIL_BIND) && v + 1 == sh->nr_vcpus)
                    rc = ENOMEM;
                break;
            }
    }
    if (!rc && (!ch || ch->bound))
        rc = EINVAL; /* not an unbound port offered to us */
    if (!rc) {
        ch->bound = 1;
        ch->masked = 0;
        ch->pending = 0;
        ch->handle_id = xce->id;
        ch->local_port = sh->next_local_port++;
        local = (xenevtchn_port_or_error_t)ch->local_port;
    }
    fx_unlock(sh);
    if (rc)
        errno = rc;
    return local;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port) {
    struct fx_shared *sh = xce->c.sh;
    fx_lock(sh);
    struct fx_chan *ch = fx_find_local(sh, xce->id, port);
    if (ch)
        ch->bound = ch->masked = ch->pending = 0;
    fx_unlock(sh);
    if (!ch) {
        errno = ENOTCONN;
        return -1;
    }
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce) {
    uint32_t port;
    ssize_t n = read(xce->fd, &port, sizeof(port));
    if (n == (ssize_t)sizeof(port))
        return (xenevtchn_port_or_error_t)port;
    if (n >= 0)
        errno = EIO; /* the queue holds whole ports only */
    return -1;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port) {
    struct fx_shared *sh = xce->c.sh;
    fx_lock(sh);
    struct fx_chan *ch = fx_find_local(sh, xce->id, port);
    if (ch) {
        ch->masked = 0;
        if (ch->pending) {
            ch->pending = 0;
            ch->masked = 1;
            sh->c.deliveries++;
            ssize_t n = write(xce->fd, &port, sizeof(port));
            (void)n;
        }
    }
    fx_unlock(sh);
    if (!ch) {
        errno = ENOTCONN;
        return -1;
    }
    return 0;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port) {
    struct fx_shared *sh = xce->c.sh;
    fx_lock(sh);
    struct fx_chan *ch = fx_find_local(sh, xce->id, port);
    if (ch) {
        /* The vCPU behind this channel wakes and reads its slot. */
        uint32_t s = (uint32_t)(((char *)ch - (char *)sh->servers) / sizeof(struct fx_server));
        uint32_t v = (uint32_t)(ch - sh->servers[s].chans);
        volatile ioreq_t *slot = &fx_page(sh, s)[v];
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        struct fx_wake *w = &sh->wakes[v];
        w->server = s;
        w->state = slot->state;
        w->data = slot->data;
        w->count++;
        ch->notifies++;
        sh->c.notifies++;
        pthread_cond_broadcast(&sh->cond);
    }
    fx_unlock(sh);
    if (!ch) {
        errno = ENOTCONN;
        return -1;
    }
    return 0;
}

/* ==== libxenstore ==== */

struct xs_handle {
    struct fx_conn c;
};

struct xs_handle *xs_open(unsigned long flags) {
    struct xs_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->c.fd = -1;
    const char *dir = getenv(FX_ENV);
    if (!dir || !*dir || fx_map_file(&h->c, dir) < 0) {
        free(h);
        errno = ENOENT; /* as when neither the xenstored socket nor /dev/xen/xenbus exists */
        return NULL;
    }
    fx_lock(h->c.sh);
    h->c.sh->c.xs_open++;
    fx_unlock(h->c.sh);
    return h;
}

void xs_close(struct xs_handle *xsh) {
    if (!xsh)
        return;
    fx_lock(xsh->c.sh);
    xsh->c.sh->c.xs_open--;
    fx_unlock(xsh->c.sh);
    fx_disconnect(&xsh->c);
    free(xsh);
}

static struct fx_xs_entry *fx_xs_find(struct fx_shared *sh, const char *path) {
    for (uint32_t i = 0; i < FX_XS_ENTRIES; i++)
        if (sh->xs[i].used && strcmp(sh->xs[i].path, path) == 0)
            return &sh->xs[i];
    return NULL;
}

static int fx_xs_store(struct fx_shared *sh, const char *path, const void *data, size_t len) {
    if (strlen(path) >= FX_XS_PATH_MAX)
        return EINVAL;
    if (len >= FX_XS_VALUE_MAX)
        return E2BIG;
    struct fx_xs_entry *e = fx_xs_find(sh, path);
    for (uint32_t i = 0; !e && i < FX_XS_ENTRIES; i++)
        if (!sh->xs[i].used)
            e = &sh->xs[i];
    if (!e)
        return ENOSPC;
    e->used = 1;
    snprintf(e->path, sizeof(e->path), "%s", path);
    memcpy(e->value, data, len);
    e->value[len] = 0;
    e->len = (uint32_t)len;
    sh->c.xs_writes++;
    return 0;
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len) {
    struct fx_shared *sh = h->c.sh;
    fx_lock(sh);
    struct fx_xs_entry *e = fx_xs_find(sh, path);
    char *out = NULL;
    int rc = ENOENT;
    if (e) {
        out = malloc(e->len + 1);
        rc = out ? 0 : ENOMEM;
        if (out) {
            memcpy(out, e->value, e->len + 1);
            if (len)
                *len = e->len;
        }
    }
    fx_unlock(sh);
    if (rc)
        errno = rc;
    return out;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data, unsigned int len) {
    struct fx_shared *sh = h->c.sh;
    fx_lock(sh);
    int rc = fx_xs_store(sh, path, data, len);
    fx_unlock(sh);
    if (rc) {
        errno = rc;
        return false;
    }
    return true;
}

/* ==== hypervisor side ==== */

struct fxhv {
    struct fx_conn c;
    int ramfd;
    uint8_t *ram;
    uint64_t ram_pages;
    int refs;
};

int fxhv_create(const char *dir, uint32_t domid, uint32_t nr_vcpus, uint64_t ram_pages) {
    if (domid == 0 || domid >= DOMID_FIRST_RESERVED || nr_vcpus == 0 || nr_vcpus > FX_MAX_VCPUS || ram_pages == 0 ||
        ram_pages >= FX_LEGACY_GFN_BASE)
        return -EINVAL;
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/ram", dir);
    int rfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (rfd < 0)
        return -errno;
    if (ftruncate(rfd, (off_t)(ram_pages * FX_PAGE_SIZE)) < 0) {
        int e = errno;
        close(rfd);
        return -e;
    }
    close(rfd);
    snprintf(path, sizeof(path), "%s/hv", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)fx_file_size()) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct fx_shared *sh = mmap(NULL, fx_file_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (sh == MAP_FAILED)
        return -errno;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->cond, &ca);
    pthread_condattr_destroy(&ca);
    sh->size = (uint32_t)fx_file_size();
    sh->domid = domid;
    sh->nr_vcpus = nr_vcpus;
    sh->ram_pages = ram_pages;
    sh->next_local_port = FX_FIRST_LOCAL_PORT;
    sh->next_handle_id = 1;
    sh->c.dm_restricted = sh->c.fm_restricted = sh->c.ev_restricted = -1;
    sh->version = FX_VERSION;
    __atomic_store_n(&sh->magic, FX_MAGIC, __ATOMIC_RELEASE);
    munmap(sh, fx_file_size());
    return 0;
}

struct fxhv *fxhv_attach(const char *dir) {
    struct fxhv *hv = calloc(1, sizeof(*hv));
    if (!hv)
        return NULL;
    hv->c.fd = -1;
    if (fx_map_file(&hv->c, dir) < 0) {
        int e = errno;
        free(hv);
        errno = e;
        return NULL;
    }
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/ram", dir);
    hv->ram_pages = hv->c.sh->ram_pages;
    hv->ramfd = open(path, O_RDWR | O_CLOEXEC);
    void *ram = hv->ramfd < 0 ? MAP_FAILED
                              : mmap(NULL, hv->ram_pages * FX_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, hv->ramfd, 0);
    if (ram == MAP_FAILED) {
        int e = errno;
        if (hv->ramfd >= 0)
            close(hv->ramfd);
        fx_disconnect(&hv->c);
        free(hv);
        errno = e;
        return NULL;
    }
    hv->ram = ram;
    hv->refs = 1;
    return hv;
}

void fxhv_retain(struct fxhv *hv) {
    __atomic_add_fetch(&hv->refs, 1, __ATOMIC_ACQ_REL);
}

void fxhv_release(struct fxhv *hv) {
    if (__atomic_sub_fetch(&hv->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    munmap(hv->ram, hv->ram_pages * FX_PAGE_SIZE);
    close(hv->ramfd);
    fx_disconnect(&hv->c);
    free(hv);
}

uint8_t *fxhv_ram(struct fxhv *hv, uint64_t *pages) {
    if (pages)
        *pages = hv->ram_pages;
    return hv->ram;
}

int fxhv_set_faults(struct fxhv *hv, uint32_t faults) {
    fx_lock(hv->c.sh);
    hv->c.sh->faults = faults;
    fx_unlock(hv->c.sh);
    return 0;
}

/* The server Xen would hand a port access to: enabled, with one range holding the whole access. */
static int fx_select_port_server(struct fx_shared *sh, uint64_t addr, uint32_t size) {
    if (size == 0)
        return -1;
    uint64_t last = addr + size - 1;
    for (uint32_t s = 0; s < FX_MAX_SERVERS; s++) {
        const struct fx_server *srv = &sh->servers[s];
        if (!srv->used || !srv->enabled)
            continue;
        for (uint32_t i = 0; i < srv->nranges; i++)
            if (!srv->ranges[i].is_mmio && srv->ranges[i].start <= addr && last <= srv->ranges[i].end)
                return (int)s;
    }
    return -1;
}

static int fx_first_enabled(struct fx_shared *sh) {
    for (uint32_t s = 0; s < FX_MAX_SERVERS; s++)
        if (sh->servers[s].used && sh->servers[s].enabled)
            return (int)s;
    return -1;
}

static uint64_t fx_size_mask(uint32_t size) {
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

int fxhv_guest_io(struct fxhv *hv, uint32_t vcpu, const struct fxhv_io *io, int timeout_ms,
                  struct fxhv_io_result *result) {
    struct fx_shared *sh = hv->c.sh;
    if (vcpu >= sh->nr_vcpus)
        return -EINVAL;
    memset(result, 0, sizeof(*result));
    result->server = -1;
    fx_lock(sh);
    int s = io->route == FXHV_ROUTE_ANY ? fx_first_enabled(sh) : fx_select_port_server(sh, io->addr, io->size);
    if (s < 0) {
        fx_unlock(sh);
        result->outcome = io->route == FXHV_ROUTE_ANY ? FXHV_NO_SERVER : FXHV_UNCLAIMED;
        result->data = ~0ull;
        return 0;
    }
    result->server = s;
    struct fx_chan *ch = &sh->servers[s].chans[vcpu];
    volatile ioreq_t *slot = &fx_page(sh, (uint32_t)s)[vcpu];
    /* ioreq_send(): the slot must be idle and still carry the port Xen published. */
    if (slot->state != STATE_IOREQ_NONE || slot->vp_eport != ch->remote_port) {
        fx_unlock(sh);
        result->outcome = FXHV_BUSY;
        return 0;
    }
    slot->addr = io->addr;
    /* Port writes carry the value zero-extended from `size` bytes; hostile routes carry it as given. */
    slot->data = (io->route == FXHV_ROUTE_PORT && !io->data_is_ptr) ? io->data & fx_size_mask(io->size) : io->data;
    slot->count = io->count;
    slot->size = io->size;
    slot->dir = io->dir & 1;
    slot->df = io->df & 1;
    slot->data_is_ptr = io->data_is_ptr & 1;
    slot->type = io->type;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    slot->state = STATE_IOREQ_READY;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    struct fx_wake *wake = &sh->wakes[vcpu];
    uint64_t seen = wake->count;
    fx_raise_locked(&hv->c, ch);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    result->outcome = FXHV_TIMEOUT;
    for (;;) {
        if (wake->count != seen) {
            seen = wake->count;
            if (wake->server != (uint32_t)s)
                continue; /* another server's channel for this vCPU */
            if (wake->state == STATE_IORESP_READY) {
                result->data = wake->data;
                /* Xen takes the response and frees the slot (unless the server is gone meanwhile). */
                if (sh->servers[s].used && slot->state == STATE_IORESP_READY)
                    slot->state = STATE_IOREQ_NONE;
                result->outcome = FXHV_COMPLETED;
                break;
            }
            if (wake->state != STATE_IOREQ_READY && wake->state != STATE_IOREQ_INPROCESS) {
                result->outcome = FXHV_BAD_STATE;
                break;
            }
            continue; /* notified before completion: keep waiting, as Xen does */
        }
        int rc = pthread_cond_timedwait(&sh->cond, &sh->lock, &deadline);
        if (rc == EOWNERDEAD)
            pthread_mutex_consistent(&sh->lock);
        else if (rc == ETIMEDOUT && wake->count == seen)
            break;
    }
    fx_unlock(sh);
    return 0;
}

int fxhv_kick(struct fxhv *hv, uint32_t vcpu) {
    struct fx_shared *sh = hv->c.sh;
    if (vcpu >= sh->nr_vcpus)
        return -EINVAL;
    fx_lock(sh);
    int s = fx_first_enabled(sh);
    if (s >= 0)
        fx_raise_locked(&hv->c, &sh->servers[s].chans[vcpu]);
    fx_unlock(sh);
    return s < 0 ? -ENOENT : 0;
}

int fxhv_xs_read(struct fxhv *hv, const char *path, char *out, size_t cap, size_t *len) {
    struct fx_shared *sh = hv->c.sh;
    fx_lock(sh);
    struct fx_xs_entry *e = fx_xs_find(sh, path);
    int rc = -ENOENT;
    if (e) {
        rc = e->len + 1 > cap ? -ENOSPC : 0;
        if (!rc) {
            memcpy(out, e->value, e->len + 1);
            *len = e->len;
        }
    }
    fx_unlock(sh);
    return rc;
}

int fxhv_xs_write(struct fxhv *hv, const char *path, const char *value, size_t len) {
    struct fx_shared *sh = hv->c.sh;
    fx_lock(sh);
    int rc = fx_xs_store(sh, path, value, len);
    fx_unlock(sh);
    return -rc;
}

int fxhv_slot_state(struct fxhv *hv, uint32_t server, uint32_t vcpu) {
    struct fx_shared *sh = hv->c.sh;
    if (server >= FX_MAX_SERVERS || vcpu >= sh->nr_vcpus)
        return -EINVAL;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return fx_page(sh, server)[vcpu].state;
}

void fxhv_snapshot(struct fxhv *hv, struct fx_shared *out) {
    struct fx_shared *sh = hv->c.sh;
    fx_lock(sh);
    memcpy(out, sh, sizeof(*out));
    fx_unlock(sh);
}
