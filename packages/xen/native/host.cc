// The host binding (vmsb_host): what varstored and the varstore tools need from the kernel that Node
// does not offer, without the Xen libraries, so it loads on any Linux host.
//   lock(path, create, mode)  an exclusive lockf() lock on a file, held until its fd is closed
//   openDirectory, createLockedAt, claimAt, renameAt, unlinkAtIfSame
//                             a directory kept open by descriptor, so that a file in it can be
//                             published (renamed) and removed after a chroot made its path unreachable
//   enterSandbox(options)     chroot, groups/gid/uid, rlimits, no-new-privs and the seccomp filter
//   trimMemory()              gives an idle process's memory back: V8's full compacting collection,
//                             then glibc's malloc_trim
#include <napi.h>
#include <v8.h>

#include <malloc.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "sandbox.h"

namespace vmsb {

namespace {

// Takes an exclusive lockf(F_TLOCK) lock on the regular file open as `fd`. True when locked (and
// `opened` is its stat); otherwise `fd` is closed and `held` is { heldBy: the holder's pid, 0 if it
// cannot be named }. Throws, with `fd` closed, when it is not a regular file or lockf fails otherwise.
bool LockOpened(Napi::Env env, int fd, const std::string& label, struct stat* opened, Napi::Value* held) {
  if (fstat(fd, opened) < 0 || !S_ISREG(opened->st_mode)) {
    close(fd);
    throw Napi::Error::New(env, label + " is not a regular file");
  }
  if (lockf(fd, F_TLOCK, 0) == 0)
    return true;
  const int err = errno;
  if (err != EACCES && err != EAGAIN) {
    close(fd);
    throw SystemError(env, "lockf", err, label);
  }
  struct flock query = {};
  query.l_type = F_WRLCK;
  query.l_whence = SEEK_SET;
  pid_t holder = 0;
  if (fcntl(fd, F_GETLK, &query) == 0 && query.l_type != F_UNLCK)
    holder = query.l_pid;
  close(fd);
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("heldBy", Napi::Number::New(env, holder));
  *held = answer;
  return false;
}

// lock(path: string, create: boolean, mode: number): number | { heldBy: number }
// Opens `path` for writing (lockf needs it), never through a symbolic link, and takes an exclusive
// lockf(F_TLOCK) lock on the whole file: the fd (the caller keeps it open for as long as it holds the
// lock; closing any fd of this process on that file releases it, as fcntl locks do), or, when another
// process holds it, that process's pid (0 if it cannot be named, e.g. from another pid namespace).
Napi::Value Lock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "lock(path, create, mode)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "a lock file path is non-empty and has no NUL");
  const bool create = info[1].As<Napi::Boolean>().Value();
  const mode_t mode = static_cast<mode_t>(info[2].As<Napi::Number>().Uint32Value() & 07777);

  // A holder that removes the file (a daemon cleaning up its pidfile) between our open and our lock
  // leaves us holding an inode nobody else will open: check that the path still names what we
  // locked, and start again if not.
  for (int attempt = 0; attempt < 16; attempt++) {
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), mode);
    if (fd < 0) {
      const int err = errno;
      throw SystemError(env, "open", err, path);
    }
    struct stat opened;
    Napi::Value held;
    if (!LockOpened(env, fd, path, &opened, &held))
      return held;
    struct stat named;
    if (stat(path.c_str(), &named) == 0 && named.st_dev == opened.st_dev && named.st_ino == opened.st_ino)
      return Napi::Number::New(env, fd);
    close(fd);
  }
  throw Napi::Error::New(env, path + " keeps being replaced while it is being locked");
}

// A name inside a directory held by descriptor: one path component, so nothing is reached through
// another directory.
std::string EntryName(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsString())
    throw Napi::TypeError::New(info.Env(), "a directory entry name is a string");
  const std::string name = info[index].As<Napi::String>().Utf8Value();
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), "a directory entry name is one non-empty path component");
  return name;
}

int FdArgument(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber())
    throw Napi::TypeError::New(info.Env(), "a file descriptor is a number");
  const int32_t fd = info[index].As<Napi::Number>().Int32Value();
  if (fd < 0)
    throw Napi::TypeError::New(info.Env(), "a file descriptor is not negative");
  return fd;
}

// openDirectory(path): number. O_PATH: the descriptor names the directory for the *at() calls below
// and grants no reading of it.
Napi::Value OpenDirectory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(env, "openDirectory(path)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "a directory path is non-empty and has no NUL");
  const int fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw SystemError(env, "open", err, path);
  }
  return Napi::Number::New(env, fd);
}

// createLockedAt(dirfd, name, mode): number. A new file (O_EXCL, never through a symbolic link),
// locked with lockf(F_TLOCK) before anyone else can know it is there.
Napi::Value CreateLockedAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dirfd = FdArgument(info, 0);
  const std::string name = EntryName(info, 1);
  if (info.Length() < 3 || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "createLockedAt(dirfd, name, mode)");
  const mode_t mode = static_cast<mode_t>(info[2].As<Napi::Number>().Uint32Value() & 07777);
  const int fd = openat(dirfd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    const int err = errno;
    throw SystemError(env, "openat", err, name);
  }
  if (lockf(fd, F_TLOCK, 0) < 0) {
    const int err = errno;
    unlinkat(dirfd, name.c_str(), 0);
    close(fd);
    throw SystemError(env, "lockf", err, name);
  }
  return Napi::Number::New(env, fd);
}

// claimAt(dirfd, name): null | number | { heldBy }. The file `name` when nobody holds its lockf()
// lock: locked by us (the descriptor; closing it drops that lock) and checked to be still what the
// name refers to, so it can be replaced or removed without taking a live daemon's file. null when
// there is no such file; the holder's pid (0 if it cannot be named) when it is locked.
Napi::Value ClaimAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dirfd = FdArgument(info, 0);
  const std::string name = EntryName(info, 1);
  for (int attempt = 0; attempt < 16; attempt++) {
    const int fd = openat(dirfd, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT)
        return env.Null();
      throw SystemError(env, "openat", err, name);
    }
    struct stat opened;
    Napi::Value held;
    if (!LockOpened(env, fd, name, &opened, &held))
      return held;
    struct stat named;
    if (fstatat(dirfd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_dev == opened.st_dev &&
        named.st_ino == opened.st_ino)
      return Napi::Number::New(env, fd);
    close(fd);
  }
  throw Napi::Error::New(env, name + " keeps being replaced while it is being locked");
}

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

// renameAt(dirfd, from, to, noReplace): boolean. rename within the directory; with noReplace
// (RENAME_NOREPLACE) false when `to` exists. Through the system call: glibc has renameat2 only
// from 2.28, XCP-ng 8.x's is older.
Napi::Value RenameAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dirfd = FdArgument(info, 0);
  const std::string from = EntryName(info, 1);
  const std::string to = EntryName(info, 2);
  if (info.Length() < 4 || !info[3].IsBoolean())
    throw Napi::TypeError::New(env, "renameAt(dirfd, from, to, noReplace)");
  const bool noReplace = info[3].As<Napi::Boolean>().Value();
  const long rc = noReplace ? syscall(SYS_renameat2, dirfd, from.c_str(), dirfd, to.c_str(), RENAME_NOREPLACE)
                            : renameat(dirfd, from.c_str(), dirfd, to.c_str());
  if (rc < 0) {
    const int err = errno;
    if (noReplace && err == EEXIST)
      return Napi::Boolean::New(env, false);
    throw SystemError(env, noReplace ? "renameat2" : "renameat", err, from + " -> " + to);
  }
  return Napi::Boolean::New(env, true);
}

// unlinkAtIfSame(dirfd, name, fd): boolean. Removes `name` only while it is the file open as `fd`
// (a daemon removes its own pidfile, never one that replaced it).
Napi::Value UnlinkAtIfSame(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dirfd = FdArgument(info, 0);
  const std::string name = EntryName(info, 1);
  const int fd = FdArgument(info, 2);
  struct stat own;
  struct stat named;
  if (fstat(fd, &own) < 0) {
    const int err = errno;
    throw SystemError(env, "fstat", err, name);
  }
  if (fstatat(dirfd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) < 0) {
    const int err = errno;
    if (err == ENOENT)
      return Napi::Boolean::New(env, false);
    throw SystemError(env, "fstatat", err, name);
  }
  if (named.st_dev != own.st_dev || named.st_ino != own.st_ino)
    return Napi::Boolean::New(env, false);
  if (unlinkat(dirfd, name.c_str(), 0) < 0) {
    const int err = errno;
    if (err == ENOENT)
      return Napi::Boolean::New(env, false);
    throw SystemError(env, "unlinkat", err, name);
  }
  return Napi::Boolean::New(env, true);
}

// trimMemory(): { heapBefore, heapAfter, mallocReleased }. Returns memory a process no longer uses to
// the kernel, for a daemon that has gone idle: V8's low-memory collection (full, compacting, every
// generation, repeated until nothing more is freed; it releases emptied pages), then malloc_trim(0),
// which hands the free parts of every glibc arena back (madvise(MADV_DONTNEED) and brk, both outside
// the seccomp filter of sandbox.cc). heapBefore/heapAfter: V8's total heap size in bytes;
// mallocReleased: whether malloc_trim released memory. Must run on the JavaScript thread.
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::HeapStatistics before;
  v8::HeapStatistics after;
  if (isolate != nullptr) {
    isolate->GetHeapStatistics(&before);
    isolate->LowMemoryNotification();
    isolate->GetHeapStatistics(&after);
  }
  const bool released = malloc_trim(0) == 1;
  Napi::Object result = Napi::Object::New(env);
  result.Set("heapBefore", Napi::Number::New(env, static_cast<double>(before.total_heap_size())));
  result.Set("heapAfter", Napi::Number::New(env, static_cast<double>(after.total_heap_size())));
  result.Set("mallocReleased", Napi::Boolean::New(env, released));
  return result;
}

}  // namespace

Napi::Object InitHost(Napi::Env env, Napi::Object exports) {
  exports.Set("lock", Napi::Function::New(env, Lock, "lock"));
  exports.Set("openDirectory", Napi::Function::New(env, OpenDirectory, "openDirectory"));
  exports.Set("createLockedAt", Napi::Function::New(env, CreateLockedAt, "createLockedAt"));
  exports.Set("claimAt", Napi::Function::New(env, ClaimAt, "claimAt"));
  exports.Set("renameAt", Napi::Function::New(env, RenameAt, "renameAt"));
  exports.Set("unlinkAtIfSame", Napi::Function::New(env, UnlinkAtIfSame, "unlinkAtIfSame"));
  exports.Set("enterSandbox", Napi::Function::New(env, EnterSandbox, "enterSandbox"));
  exports.Set("filterText", Napi::Function::New(env, FilterText, "filterText"));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
  exports.Set("seccompAvailable", Napi::Boolean::New(env, SeccompAvailable()));
  return exports;
}

}  // namespace vmsb

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return vmsb::InitHost(env, exports);
}

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
