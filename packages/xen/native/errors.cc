// ErrnoName and SystemError (see errors.h).
#include "errors.h"

#include <cerrno>
#include <cstring>

namespace vmsb {

std::string ErrnoName(int err) {
  switch (err) {
#define VMSB_ERRNO(name) \
  case name:             \
    return #name;
    VMSB_ERRNO(EPERM)
    VMSB_ERRNO(ENOENT)
    VMSB_ERRNO(ESRCH)
    VMSB_ERRNO(EINTR)
    VMSB_ERRNO(EIO)
    VMSB_ERRNO(ENXIO)
    VMSB_ERRNO(E2BIG)
    VMSB_ERRNO(ENOEXEC)
    VMSB_ERRNO(EBADF)
    VMSB_ERRNO(ECHILD)
    VMSB_ERRNO(EAGAIN)
    VMSB_ERRNO(ENOMEM)
    VMSB_ERRNO(EACCES)
    VMSB_ERRNO(EFAULT)
    VMSB_ERRNO(EBUSY)
    VMSB_ERRNO(EEXIST)
    VMSB_ERRNO(EXDEV)
    VMSB_ERRNO(ENODEV)
    VMSB_ERRNO(ENOTDIR)
    VMSB_ERRNO(EISDIR)
    VMSB_ERRNO(EINVAL)
    VMSB_ERRNO(ENFILE)
    VMSB_ERRNO(EMFILE)
    VMSB_ERRNO(ENOTTY)
    VMSB_ERRNO(EFBIG)
    VMSB_ERRNO(ENOSPC)
    VMSB_ERRNO(ESPIPE)
    VMSB_ERRNO(EROFS)
    VMSB_ERRNO(EMLINK)
    VMSB_ERRNO(EPIPE)
    VMSB_ERRNO(ERANGE)
    VMSB_ERRNO(EDEADLK)
    VMSB_ERRNO(ENAMETOOLONG)
    VMSB_ERRNO(ENOLCK)
    VMSB_ERRNO(ENOSYS)
    VMSB_ERRNO(ENOTEMPTY)
    VMSB_ERRNO(ELOOP)
    VMSB_ERRNO(ENODATA)
    VMSB_ERRNO(ETIME)
    VMSB_ERRNO(EOVERFLOW)
    VMSB_ERRNO(ENOTSOCK)
    VMSB_ERRNO(EOPNOTSUPP)
    VMSB_ERRNO(EADDRINUSE)
    VMSB_ERRNO(ECONNREFUSED)
    VMSB_ERRNO(ECONNRESET)
    VMSB_ERRNO(ETIMEDOUT)
    VMSB_ERRNO(EALREADY)
    VMSB_ERRNO(EINPROGRESS)
    VMSB_ERRNO(ESTALE)
    VMSB_ERRNO(EDQUOT)
    VMSB_ERRNO(ECANCELED)
#undef VMSB_ERRNO
    default:
      return "E" + std::to_string(err);
  }
}

Napi::Error SystemError(Napi::Env env, const std::string& call, int err, const std::string& detail) {
  std::string message = call + " failed: " + strerror(err);
  if (!detail.empty())
    message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, call));
  return error;
}

}  // namespace vmsb
