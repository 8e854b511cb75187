/*
 * The guest side of the Xen benchmarks, on the fake hypervisor of packages/xen/fake: plays one
 * vCPU doing what OVMF's XenVariable driver does for each call (serialise the request at the start
 * of its 16-page buffer, OUT the buffer's frame number to port 0x100, read the reply) and checks
 * every reply. Written in C so that the guest costs the same, and little, against every server.
 *   guest create <dir> <domid> <vcpus> <ram-pages>
 *   guest run <dir> <domid> <frames> <replies> [--wait]
 * <frames> and <replies> hold guest-simulation frames (u32 LE n, then n bytes); reply i must match
 * the first n bytes of the buffer after call i. --wait first waits for the server's readiness
 * (xenstore /local/domain/<domid>/varstored-pid, as xenopsd does). `run` prints
 * "<ready> <first> <last> <start>": CLOCK_MONOTONIC nanoseconds when readiness was seen, when the
 * first reply and the last reply arrived, and when the first request was sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fakexen.h"

#define GFN 0x20u
#define BUFFER (16u * FX_PAGE_SIZE)

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "create")) {
        int rc = fxhv_create(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]), strtoull(argv[5], NULL, 0));
        if (rc < 0) {
            fprintf(stderr, "guest: fxhv_create: %s\n", strerror(-rc));
            return 1;
        }
        return 0;
    }
    if (argc < 6 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: guest create <dir> <domid> <vcpus> <ram-pages> | guest run <dir> <domid> <frames> <replies> [--wait]\n");
        return 2;
    }
    struct fxhv *hv = fxhv_attach(argv[2]);
    if (!hv) {
        perror("guest: fxhv_attach");
        return 1;
    }
    uint64_t pages = 0;
    uint8_t *ram = fxhv_ram(hv, &pages);
    if (pages < GFN + 16) {
        fprintf(stderr, "guest: the domain needs at least %u pages of RAM\n", GFN + 16);
        return 1;
    }
    size_t flen, rlen;
    uint8_t *frames = slurp(argv[4], &flen);
    uint8_t *replies = slurp(argv[5], &rlen);
    uint8_t *buffer = ram + (size_t)GFN * FX_PAGE_SIZE;
    uint64_t ready = 0;
    if (argc > 6 && !strcmp(argv[6], "--wait")) {
        char key[64], value[32];
        size_t len;
        snprintf(key, sizeof(key), "/local/domain/%s/varstored-pid", argv[3]);
        const uint64_t deadline = now_ns() + 30000000000ull;
        while (fxhv_xs_read(hv, key, value, sizeof(value), &len) != 0) {
            if (now_ns() > deadline) {
                fprintf(stderr, "guest: no readiness after 30 s\n");
                return 1;
            }
            usleep(100);
        }
    }
    ready = now_ns();
    uint64_t start = ready, first = 0;
    size_t fat = 0, rat = 0;
    unsigned call = 0;
    while (fat + 4 <= flen) {
        uint32_t n = u32(frames + fat);
        if (fat + 4 + n > flen || n > BUFFER || rat + 4 > rlen) {
            fprintf(stderr, "guest: malformed trace at call %u\n", call);
            return 1;
        }
        uint32_t m = u32(replies + rat);
        if (rat + 4 + m > rlen || m > BUFFER) {
            fprintf(stderr, "guest: malformed replies at call %u\n", call);
            return 1;
        }
        memcpy(buffer, frames + fat + 4, n);
        struct fxhv_io io = {.addr = 0x100, .data = GFN, .count = 1, .size = 4, .dir = 0 /* IOREQ_WRITE */, .type = 0};
        struct fxhv_io_result r;
        if (call == 0) start = now_ns();
        int rc = fxhv_guest_io(hv, 0, &io, 10000, &r);
        if (rc < 0 || r.outcome != FXHV_COMPLETED) {
            fprintf(stderr, "guest: call %u: %s (outcome %d)\n", call, rc < 0 ? strerror(-rc) : "not completed", r.outcome);
            return 1;
        }
        if (memcmp(buffer, replies + rat + 4, m) != 0) {
            fprintf(stderr, "guest: call %u: the reply differs from the expected one (%u bytes)\n", call, m);
            return 1;
        }
        if (call == 0) first = now_ns();
        fat += 4 + n;
        rat += 4 + m;
        call++;
    }
    uint64_t last = now_ns();
    printf("%llu %llu %llu %llu %u\n", (unsigned long long)ready, (unsigned long long)first, (unsigned long long)last,
           (unsigned long long)start, call);
    fxhv_release(hv);
    return 0;
}
