/*
 * The cheapest peer of the unix transport: reads each guest-simulation frame (u32 LE n, then n
 * bytes) and writes the same frame back, with blocking reads and writes and no allocation per
 * frame. With `--durable <file> --size <bytes>`, a frame that is a non-volatile SetVariable is
 * answered only after a raw durable replace of a file of that size (write, fsync, rename,
 * directory fsync), the least a persistent store must do.
 *   echo <socket> [--durable <file> --size <bytes>]
 * Prints "ready" once it listens; serves one connection at a time until SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static uint8_t frame[4 + 65536];
static uint8_t *blob;
static size_t blob_size;
static const char *durable;
static char temp[4096], dir[4096];

static int read_full(int fd, uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

/* Whether the request is SetVariable with NON_VOLATILE (the only field parsed: its attributes). */
static int is_nv_set(const uint8_t *f, size_t n) {
    if (n < 8 || u32(f) != 1 || u32(f + 4) != 1) return 0;
    size_t at = 8;
    if (at + 8 > n) return 0;
    uint64_t len = u64(f + at);
    if (len > n) return 0;
    at += 8 + len + 16;
    if (at + 8 > n) return 0;
    len = u64(f + at);
    if (len > n) return 0;
    at += 8 + len;
    return at + 4 <= n && (u32(f + at) & 1) != 0;
}

static void replace_durably(void) {
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_full(fd, blob, blob_size) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(temp, durable) < 0) {
        perror("echo: durable replace");
        exit(1);
    }
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 || fsync(d) < 0 || close(d) < 0) {
        perror("echo: directory fsync");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: echo <socket> [--durable <file> --size <bytes>]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--durable")) durable = argv[++i];
        else if (!strcmp(argv[i], "--size")) blob_size = strtoul(argv[++i], NULL, 10);
    }
    if (durable) {
        blob = malloc(blob_size ? blob_size : 1);
        memset(blob, 0x5a, blob_size);
        snprintf(temp, sizeof(temp), "%s.tmp", durable);
        char path[4096];
        snprintf(path, sizeof(path), "%s", durable);
        snprintf(dir, sizeof(dir), "%s", dirname(path)); /* dirname() may modify its argument */
    }
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "echo: socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(s, 4) < 0) {
        perror("echo: listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR) continue;
            perror("echo: accept");
            return 1;
        }
        for (;;) {
            if (read_full(c, frame, 4) < 0) break;
            uint32_t n = u32(frame);
            if (n > 65536 || read_full(c, frame + 4, n) < 0) break;
            if (durable && is_nv_set(frame + 4, n)) replace_durably();
            if (write_full(c, frame, 4 + (size_t)n) < 0) break;
        }
        close(c);
    }
}
