// The sandbox varstored enters at its drop point, after the C daemon's order (Xen handles opened and
// restricted, ioreq server up, auth files and xenstore read): everything here applies to the whole
// process although Node already runs several threads, which is why it is done here and not earlier:
//   - chroot changes the fs_struct, which all threads of a process share;
//   - setgroups/setresgid/setresuid: glibc applies them to every thread (it signals each one);
//   - rlimits are per process;
//   - the seccomp filter is installed on every thread at once (SECCOMP_FILTER_FLAG_TSYNC), and
//     threads created later inherit it; PR_SET_NO_NEW_PRIVS is inherited the same way and is set on
//     every thread by the synchronised filter load.
// The namespaces are the exception: unshare() of the mount, IPC, network and UTS namespaces changes
// only the calling thread, so they are entered by the launcher (launch.c) before Node starts.
#include "sandbox.h"

#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#ifdef VMSB_HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "errors.h"

namespace vmsb {

namespace {

[[noreturn]] void ThrowErrno(Napi::Env env, const char* call, const std::string& detail = "") {
  const int err = errno;
  throw SystemError(env, call, err, detail);
}

void SetLimit(Napi::Env env, int resource, rlim_t value, const char* name) {
  const struct rlimit limit = {value, value};
  if (setrlimit(resource, &limit) < 0)
    ThrowErrno(env, "setrlimit", name);
}

#ifdef VMSB_HAVE_SECCOMP

// Older libseccomp (before 2.4) has no KILL_PROCESS; KILL there ends only the calling thread.
#ifdef SCMP_ACT_KILL_PROCESS
const uint32_t kKill = SCMP_ACT_KILL_PROCESS;
#else
const uint32_t kKill = SCMP_ACT_KILL;
#endif

// Calls that end the process (SIGSYS): the C varstored's deny-list and the calls a
// compromised daemon could use to leave the sandbox, gain privileges or reach the kernel's
// rarely-used surface. Names the kernel or libseccomp of this host does not know are skipped.
const char* const kKilled[] = {
    // new programs and processes (clone is handled below: threads stay allowed)
    "execve", "execveat", "fork", "vfork",
    // other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    // the filesystem view
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    // identities and capabilities
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
    "capset", "setpgid", "setsid",
    // namespaces
    "unshare", "setns",
    // the machine
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon",
    "swapoff", "syslog", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "iopl", "ioperm", "quotactl", "vhangup",
    // kernel surface a variable store never needs
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "personality",
    "modify_ldt",
    // scheduling of others (the C daemon kills every sched_* call; a threaded runtime needs
    // sched_yield and sched_getaffinity, so only the calls that change scheduling are listed)
    "sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr", "setpriority", "ioprio_set",
    "migrate_pages", "move_pages", "mbind", "set_mempolicy",
    // obsolete calls (as the C varstored)
    "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "lookup_dcookie", "create_module", "get_kernel_syms",
    "query_module", "afs_syscall", "getpmsg", "putpmsg", "security", "tuxcall", "vserver",
};

// Calls answered with an error instead, because the C library or libuv falls back gracefully:
// clone3 → ENOSYS makes glibc's pthread_create use clone (checked above); io_uring_setup → ENOSYS
// keeps file I/O on libuv's thread pool (io_uring requests are not seen by seccomp).
const char* const kNotImplemented[] = {"clone3", "io_uring_setup"};

scmp_filter_ctx BuildFilter(Napi::Env env) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx)
    throw Napi::Error::New(env, "seccomp_init failed");
  auto fail = [&](const char* call, int rc, const std::string& what) {
    seccomp_release(ctx);
    throw SystemError(env, call, -rc, what);
  };
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc < 0)
    fail("seccomp_attr_set", rc, "SCMP_FLTATR_CTL_TSYNC");
  rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
  if (rc < 0)
    fail("seccomp_attr_set", rc, "SCMP_FLTATR_CTL_NNP");
  // A call through another ABI (i386's int 0x80) ends the process; x32 calls, which share the
  // x86_64 architecture number, get the same rules as native ones.
  rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kKill);
  if (rc < 0)
    fail("seccomp_attr_set", rc, "SCMP_FLTATR_ACT_BADARCH");
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
    if (rc < 0 && rc != -EEXIST)
      fail("seccomp_arch_add", rc, "x32");
  }
  for (const char* name : kKilled) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
      continue;
    rc = seccomp_rule_add(ctx, kKill, nr, 0);
    if (rc < 0)
      fail("seccomp_rule_add", rc, name);
  }
  for (const char* name : kNotImplemented) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
      continue;
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    if (rc < 0)
      fail("seccomp_rule_add", rc, name);
  }
  // clone: a new thread (CLONE_THREAD set) is allowed, a new process is not.
  rc = seccomp_rule_add(ctx, kKill, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
  if (rc < 0)
    fail("seccomp_rule_add", rc, "clone without CLONE_THREAD");
  return ctx;
}

void LoadFilter(Napi::Env env) {
  scmp_filter_ctx ctx = BuildFilter(env);
  const int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc < 0)
    throw SystemError(env, "seccomp_load", -rc, "with SECCOMP_FILTER_FLAG_TSYNC");
}

#endif  // VMSB_HAVE_SECCOMP

uint32_t IdOption(Napi::Env env, Napi::Object options, const char* key) {
  Napi::Value v = options.Get(key);
  if (v.IsUndefined())
    return 0;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 0xfffffffe) || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::RangeError::New(env, std::string(key) + " must be an integer from 0 to 4294967294");
  return static_cast<uint32_t>(d);
}

}  // namespace

// filterText(): the filter enterSandbox loads, in libseccomp's pseudo-filter-code form (for tests and
// for administrators who want to see it); undefined without libseccomp.
Napi::Value FilterText(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef VMSB_HAVE_SECCOMP
  scmp_filter_ctx ctx = BuildFilter(env);
  FILE* out = tmpfile();
  if (!out) {
    const int err = errno;
    seccomp_release(ctx);
    throw SystemError(env, "tmpfile", err);
  }
  const int rc = seccomp_export_pfc(ctx, fileno(out));
  seccomp_release(ctx);
  std::string text;
  if (rc == 0) {
    rewind(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), out)) > 0)
      text.append(buf, n);
  }
  fclose(out);
  if (rc < 0)
    throw SystemError(env, "seccomp_export_pfc", -rc);
  return Napi::String::New(env, text);
#else
  return env.Undefined();
#endif
}

bool SeccompAvailable() {
#ifdef VMSB_HAVE_SECCOMP
  return true;
#else
  return false;
#endif
}

// enterSandbox({ chroot?: string, uid?: number, gid?: number, depriv: boolean, fileSizeLimit?: number })
// In varstored's order: chroot, groups and gid, uid, prove root cannot be regained; then, under
// depriv: the rlimits, no new privileges and the seccomp filter. uid/gid 0 mean "unchanged".
Napi::Value EnterSandbox(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "enterSandbox(options)");
  Napi::Object options = info[0].As<Napi::Object>();
  const uint32_t uid = IdOption(env, options, "uid");
  const uint32_t gid = IdOption(env, options, "gid");
  Napi::Value depriv_value = options.Get("depriv");
  if (!depriv_value.IsBoolean())
    throw Napi::TypeError::New(env, "depriv must be a boolean");
  const bool depriv = depriv_value.As<Napi::Boolean>().Value();
  Napi::Value chroot_dir = options.Get("chroot");
  double file_size_limit = 0;
  if (depriv) {
    Napi::Value v = options.Get("fileSizeLimit");
    file_size_limit = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(file_size_limit >= 4096 && file_size_limit <= 1 << 30) || file_size_limit != static_cast<double>(static_cast<int64_t>(file_size_limit)))
      throw Napi::RangeError::New(env, "fileSizeLimit must be an integer from 4096 to 2^30 under depriv");
#ifndef VMSB_HAVE_SECCOMP
    throw Napi::Error::New(env, "depriv needs the seccomp filter, but the host binding was built without libseccomp (install libseccomp-dev and rebuild)");
#endif
  }

  if (!chroot_dir.IsUndefined()) {
    if (!chroot_dir.IsString())
      throw Napi::TypeError::New(env, "chroot is a directory path");
    const std::string dir = chroot_dir.As<Napi::String>().Utf8Value();
    if (dir.empty() || dir.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, "chroot is a non-empty directory path");
    if (chroot(dir.c_str()) < 0)
      ThrowErrno(env, "chroot", dir);
    // Without this the working directory would still point outside the new root.
    if (chdir("/") < 0)
      ThrowErrno(env, "chdir", "/ in the chroot");
  }
  if (gid) {
    const gid_t groups[1] = {gid};
    if (setgroups(1, groups) < 0)
      ThrowErrno(env, "setgroups");
    if (setresgid(gid, gid, gid) < 0)
      ThrowErrno(env, "setresgid");
  } else if (uid) {
    // Dropping the uid without a gid still drops root's supplementary groups.
    if (setgroups(0, nullptr) < 0)
      ThrowErrno(env, "setgroups");
  }
  if (uid) {
    if (setresuid(uid, uid, uid) < 0)
      ThrowErrno(env, "setresuid");
    if (setuid(0) == 0 || seteuid(0) == 0)
      throw Napi::Error::New(env, "root could be regained after dropping to uid " + std::to_string(uid));
    if (gid && (setgid(0) == 0 || setegid(0) == 0))
      throw Napi::Error::New(env, "gid 0 could be regained after dropping to gid " + std::to_string(gid));
  }
  if (!depriv)
    return env.Undefined();

  // No file may grow past the largest one the daemon writes (the NVRAM, the save file). A write
  // beyond it fails with EFBIG instead of killing the process with SIGXFSZ, so a failed save is
  // reported and rolled back like any other persistence failure.
  signal(SIGXFSZ, SIG_IGN);
  SetLimit(env, RLIMIT_FSIZE, static_cast<rlim_t>(file_size_limit), "RLIMIT_FSIZE");
  // No new task for this user: every thread the process needs exists already (the caller starts
  // libuv's pool first). The kernel does not apply this to root; the filter below does.
  SetLimit(env, RLIMIT_NPROC, 0, "RLIMIT_NPROC");
  SetLimit(env, RLIMIT_CORE, 0, "RLIMIT_CORE");
  // No exec could gain privileges any more (setuid binaries, file capabilities); set here for the
  // calling thread and by the synchronised filter load for every other one.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    ThrowErrno(env, "prctl", "PR_SET_NO_NEW_PRIVS");
#ifdef VMSB_HAVE_SECCOMP
  LoadFilter(env);
#endif
  return env.Undefined();
}

}  // namespace vmsb
