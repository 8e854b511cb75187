// The host binding (vmsb_host): what varstored and the varstore tools need from the kernel that Node
// does not offer, without the Xen libraries, so it loads on any Linux host.
//   lock(path, create, mode)  an exclusive lockf() lock on a file, held until its fd is closed
//   enterSandbox(options)     chroot, groups/gid/uid, rlimits, no-new-privs and the seccomp filter
#include <napi.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "sandbox.h"

namespace vmsb {

namespace {

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
    if (fstat(fd, &opened) < 0 || !S_ISREG(opened.st_mode)) {
      close(fd);
      throw Napi::Error::New(env, path + " is not a regular file");
    }
    if (lockf(fd, F_TLOCK, 0) < 0) {
      const int err = errno;
      if (err != EACCES && err != EAGAIN) {
        close(fd);
        throw SystemError(env, "lockf", err, path);
      }
      struct flock query = {};
      query.l_type = F_WRLCK;
      query.l_whence = SEEK_SET;
      pid_t holder = 0;
      if (fcntl(fd, F_GETLK, &query) == 0 && query.l_type != F_UNLCK)
        holder = query.l_pid;
      close(fd);
      Napi::Object held = Napi::Object::New(env);
      held.Set("heldBy", Napi::Number::New(env, holder));
      return held;
    }
    struct stat named;
    if (stat(path.c_str(), &named) == 0 && named.st_dev == opened.st_dev && named.st_ino == opened.st_ino)
      return Napi::Number::New(env, fd);
    close(fd);
  }
  throw Napi::Error::New(env, path + " keeps being replaced while it is being locked");
}

}  // namespace

Napi::Object InitHost(Napi::Env env, Napi::Object exports) {
  exports.Set("lock", Napi::Function::New(env, Lock, "lock"));
  exports.Set("enterSandbox", Napi::Function::New(env, EnterSandbox, "enterSandbox"));
  exports.Set("filterText", Napi::Function::New(env, FilterText, "filterText"));
  exports.Set("seccompAvailable", Napi::Boolean::New(env, SeccompAvailable()));
  return exports;
}

}  // namespace vmsb

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return vmsb::InitHost(env, exports);
}

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
