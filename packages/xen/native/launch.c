/*
 * vmsb-launch: starts varstored, entering its private namespaces first when it runs with --depriv.
 *
 *   vmsb-launch <node> <script> [varstored options...]
 *
 * unshare() of the mount, IPC, network and UTS namespaces applies only to the calling thread, and
 * Node starts threads before any JavaScript runs (and cannot exec itself in place), so no step inside
 * Node can move the whole daemon into new namespaces. This program is single-threaded: it enters
 * them, makes every mount private to the new mount namespace (nothing the daemon does can propagate
 * back to the host), then execs Node with the daemon. exec keeps the pid, so the pidfile and
 * xenstore's varstored-pid name the daemon itself. The rest of the sandbox (chroot, ids, rlimits,
 * seccomp) is applied later by the daemon, after the C daemon's start-up order (sandbox.cc).
 *
 * Path-based unix sockets (the guest-simulation socket, xenstored's socket, the XAPI guard socket)
 * and /dev/xen keep working in a new network namespace; only abstract sockets and network
 * interfaces are left behind.
 *
 * Whether --depriv is given is decided with getopt_long over varstored's own option table (the
 * same long options, argument rules and unambiguous prefixes as apps/varstored/src/args.ts). The
 * daemon checks the outcome: VMSB_DEPRIV_NAMESPACES names the namespaces entered here, and under
 * --depriv the daemon refuses to start unless it is inside exactly those.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define NAMESPACES_ENV "VMSB_DEPRIV_NAMESPACES"

static const struct option varstored_options[] = {
    {"domain", required_argument, NULL, 0},  {"resume", no_argument, NULL, 0},
    {"nonpersistent", no_argument, NULL, 0}, {"depriv", no_argument, NULL, 'D'},
    {"uid", required_argument, NULL, 0},     {"gid", required_argument, NULL, 0},
    {"chroot", required_argument, NULL, 0},  {"pidfile", required_argument, NULL, 0},
    {"backend", required_argument, NULL, 0}, {"arg", required_argument, NULL, 0},
    {"transport", required_argument, NULL, 0}, {"platform", required_argument, NULL, 0},
    {"log-level", required_argument, NULL, 0}, {"help", no_argument, NULL, 0},
    {NULL, 0, NULL, 0},
};

static int wants_depriv(int argc, char** argv) {
  /* getopt_long permutes its argv: scan a copy. "+" stops at the first non-option, as args.ts does. */
  char** copy = calloc((size_t)argc + 1, sizeof(char*));
  if (!copy)
    return -1;
  copy[0] = "varstored";
  for (int i = 1; i < argc; i++)
    copy[i] = argv[i];
  int depriv = 0, c;
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, copy, "+", varstored_options, NULL)) != -1) {
    if (c == 'D')
      depriv = 1;
  }
  free(copy);
  return depriv;
}

/* "net:[4026531840] ipc:[...] uts:[...] mnt:[...]": what the daemon compares with its own. */
static int describe_namespaces(char* out, size_t size) {
  static const char* const kinds[] = {"net", "ipc", "uts", "mnt"};
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    char path[64], link[128];
    snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
      return -1;
    link[n] = '\0';
    int w = snprintf(out + used, size - used, "%s%s", used ? " " : "", link);
    if (w < 0 || (size_t)w >= size - used)
      return -1;
    used += (size_t)w;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <node> <script> [varstored options...]\n", argv[0]);
    return 2;
  }
  unsetenv(NAMESPACES_ENV);
  /* argv[2] plays argv[0] for the scan: the options follow it. */
  const int depriv = wants_depriv(argc - 2, argv + 2);
  if (depriv < 0) {
    fprintf(stderr, "error: varstored: out of memory\n");
    return 1;
  }
  if (depriv) {
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS) < 0) {
      fprintf(stderr, "error: varstored: --depriv: cannot enter new mount, IPC, network and UTS namespaces: %s%s\n",
              strerror(errno), errno == EPERM ? " (varstored must start as root)" : "");
      return 1;
    }
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
      fprintf(stderr, "error: varstored: --depriv: cannot make the mounts private: %s\n", strerror(errno));
      return 1;
    }
    char described[512];
    if (describe_namespaces(described, sizeof(described)) < 0 || setenv(NAMESPACES_ENV, described, 1) < 0) {
      fprintf(stderr, "error: varstored: --depriv: cannot read /proc/self/ns: %s\n", strerror(errno));
      return 1;
    }
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "error: varstored: cannot run %s: %s\n", argv[1], strerror(errno));
  return 127;
}
