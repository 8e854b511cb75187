/*
 * The cheapest peer of the Xen transport: a minimal ioreq server for one domain, written against
 * the Xen libraries' API exactly as varstored and vmsb use it (devicemodel, foreignmemory, evtchn,
 * xenstore). It claims ports 0x100-0x10B; for a 32-bit write of a frame number to 0x100 it maps
 * the guest's 16-page buffer, writes a fixed reply (EFI_SUCCESS and 20 bytes of zeros, 28 bytes)
 * and completes the request; everything else is completed at once. It announces readiness as
 * varstored does (xenstore /local/domain/<domid>/varstored-pid). Run it under the same fake
 * hypervisor as the daemon: LD_PRELOAD=libvmsbfakexen.so VMSB_FAKE_XEN=<dir>.
 *   responder <domid>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenstore.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#define PAGES 16
#define MAX_VCPUS 128

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
    fprintf(stderr, "responder: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: responder <domid>\n");
        return 2;
    }
    const domid_t domid = (domid_t)atoi(argv[1]);
    static const uint8_t reply[28] = {0}; /* status 0 (EFI_SUCCESS), then zeros */
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    if (!dm || !fm || !xce) die("open");
    if (xendevicemodel_restrict(dm, domid) < 0 || xenforeignmemory_restrict(fm, domid) < 0 ||
        xenevtchn_restrict(xce, domid) < 0)
        die("restrict");
    unsigned vcpus = 0;
    if (xendevicemodel_nr_vcpus(dm, domid, &vcpus) < 0 || vcpus == 0 || vcpus > MAX_VCPUS) die("nr_vcpus");
    ioservid_t id;
    if (xendevicemodel_create_ioreq_server(dm, domid, HVM_IOREQSRV_BUFIOREQ_OFF, &id) < 0) die("create");
    void *addr = NULL;
    xenforeignmemory_resource_handle *res = xenforeignmemory_map_resource(
        fm, domid, XENMEM_resource_ioreq_server, id, XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
        PROT_READ | PROT_WRITE, 0);
    if (!res) die("map_resource");
    volatile ioreq_t *page = addr;
    if (xendevicemodel_set_ioreq_server_state(dm, domid, id, 1) < 0) die("enable");
    evtchn_port_t ports[MAX_VCPUS];
    for (unsigned v = 0; v < vcpus; v++) {
        xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(xce, domid, page[v].vp_eport);
        if (p < 0) die("bind");
        ports[v] = (evtchn_port_t)p;
    }
    if (xendevicemodel_map_io_range_to_ioreq_server(dm, domid, id, 0, 0x100, 0x10b) < 0) die("map range");
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct xs_handle *xs = xs_open(0);
    if (!xs) die("xs_open");
    char key[64], pid[16];
    snprintf(key, sizeof(key), "/local/domain/%u/varstored-pid", domid);
    int n = snprintf(pid, sizeof(pid), "%d", getpid());
    if (!xs_write(xs, XBT_NULL, key, pid, (unsigned)n)) die("xs_write");
    const int fd = xenevtchn_fd(xce);
    while (!stop) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, -1) <= 0) continue;
        xenevtchn_port_or_error_t port = xenevtchn_pending(xce);
        if (port < 0) continue;
        xenevtchn_unmask(xce, (evtchn_port_t)port);
        unsigned v = 0;
        while (v < vcpus && ports[v] != (evtchn_port_t)port) v++;
        if (v == vcpus) continue;
        volatile ioreq_t *slot = &page[v];
        if (slot->state != STATE_IOREQ_READY) continue;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        slot->state = STATE_IOREQ_INPROCESS;
        if (slot->type == IOREQ_TYPE_PIO && slot->dir == IOREQ_WRITE && slot->addr == 0x100 && slot->size == 4 &&
            !slot->data_is_ptr) {
            xen_pfn_t pfns[PAGES];
            for (unsigned i = 0; i < PAGES; i++) pfns[i] = (xen_pfn_t)(uint32_t)slot->data + i;
            void *buf = xenforeignmemory_map(fm, domid, PROT_READ | PROT_WRITE, PAGES, pfns, NULL);
            if (buf) {
                memcpy(buf, reply, sizeof(reply));
                xenforeignmemory_unmap(fm, buf, PAGES);
            }
        } else if (slot->dir == IOREQ_READ && !slot->data_is_ptr) {
            slot->data = 0;
        }
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        slot->state = STATE_IORESP_READY;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        xenevtchn_notify(xce, ports[v]);
    }
    xendevicemodel_unmap_io_range_from_ioreq_server(dm, domid, id, 0, 0x100, 0x10b);
    for (unsigned v = 0; v < vcpus; v++) xenevtchn_unbind(xce, ports[v]);
    xendevicemodel_set_ioreq_server_state(dm, domid, id, 0);
    xenforeignmemory_unmap_resource(fm, res);
    xendevicemodel_destroy_ioreq_server(dm, domid, id);
    xs_close(xs);
    xenevtchn_close(xce);
    xenforeignmemory_close(fm);
    xendevicemodel_close(dm);
    return 0;
}
