// Logging, the availability probe and xenstore. (Dropping privileges is in the host binding: sandbox.cc.)

#include "common.h"


#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vmsb {

namespace {

void CaptureMessage(xentoollog_logger* logger, xentoollog_level level, int errnoval, const char* context,
                    const char* format, va_list al) {
  auto* self = reinterpret_cast<CaptureLogger*>(logger);
  if (level < XTL_WARN)
    return;
  char buf[512];
  vsnprintf(buf, sizeof(buf), format, al);
  self->last = context ? std::string(context) + ": " + buf : std::string(buf);
}

void CaptureDestroy(xentoollog_logger*) {}

}  // namespace

CaptureLogger::CaptureLogger() {
  base.vmessage = &CaptureMessage;
  base.progress = nullptr;
  base.destroy = &CaptureDestroy;
}

namespace {

// A SystemError for errno as the failed call left it: read before any argument is built.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* call, const char* detail = "") {
  const int err = errno;
  throw SystemError(env, call, err, detail);
}

}  // namespace

// probe(): opens and closes the three handles an ioreq server needs, with the libraries' messages
// captured. { ok: true } or { ok: false, call, errno, code, detail }.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CaptureLogger logger;
  Napi::Object result = Napi::Object::New(env);
  auto fail = [&](const char* call, int err) {
    result.Set("ok", Napi::Boolean::New(env, false));
    result.Set("call", Napi::String::New(env, call));
    result.Set("errno", Napi::Number::New(env, err));
    result.Set("code", Napi::String::New(env, ErrnoName(err)));
    result.Set("detail", Napi::String::New(env, logger.last));
    return result;
  };
  xendevicemodel_handle* dmod = xendevicemodel_open(&logger.base, 0);
  if (!dmod)
    return fail("xendevicemodel_open", errno);
  xendevicemodel_close(dmod);
  xenforeignmemory_handle* fmem = xenforeignmemory_open(&logger.base, 0);
  if (!fmem)
    return fail("xenforeignmemory_open", errno);
  xenforeignmemory_close(fmem);
  xenevtchn_handle* xce = xenevtchn_open(&logger.base, 0);
  if (!xce)
    return fail("xenevtchn_open", errno);
  xenevtchn_close(xce);
  result.Set("ok", Napi::Boolean::New(env, true));
  return result;
}

namespace {

// One connection for the life of the process, opened by the first call. The daemon reads its
// platform keys before dropping privileges and announces readiness (varstored-pid) only after
// loading NVRAM, which happens inside the chroot, where xenstored's socket and /dev/xen/xenbus are
// out of reach: the connection made before the drop is the one that writes the key.
struct xs_handle* g_xenstore = nullptr;

struct xs_handle* OpenXenstore(Napi::Env env) {
  if (g_xenstore)
    return g_xenstore;
  g_xenstore = xs_open(0);
  if (!g_xenstore)
    ThrowErrno(env, "xs_open", "cannot reach xenstored through its socket or /dev/xen/xenbus");
  return g_xenstore;
}

std::string PathArgument(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "a xenstore path is a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), "a xenstore path is non-empty and has no NUL");
  return path;
}

}  // namespace

// xenstoreRead(path): the value, or undefined when the node does not exist.
Napi::Value XenstoreRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = PathArgument(info);
  struct xs_handle* xsh = OpenXenstore(env);
  unsigned int len = 0;
  void* value = xs_read(xsh, XBT_NULL, path.c_str(), &len);
  const int err = errno;
  if (!value) {
    if (err == ENOENT)
      return env.Undefined();
    throw SystemError(env, "xs_read", err, path);
  }
  Napi::String out = Napi::String::New(env, static_cast<const char*>(value), len);
  free(value);
  return out;
}

// xenstoreWrite(path, value)
Napi::Value XenstoreWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = PathArgument(info);
  if (info.Length() < 2 || !info[1].IsString())
    throw Napi::TypeError::New(env, "a xenstore value is a string");
  const std::string value = info[1].As<Napi::String>().Utf8Value();
  struct xs_handle* xsh = OpenXenstore(env);
  const bool ok = xs_write(xsh, XBT_NULL, path.c_str(), value.data(), static_cast<unsigned int>(value.size()));
  const int err = errno;
  if (!ok)
    throw SystemError(env, "xs_write", err, path);
  return env.Undefined();
}

// xenstoreClose(): drops the connection; the next read or write opens a new one.
Napi::Value XenstoreClose(const Napi::CallbackInfo& info) {
  if (g_xenstore) {
    xs_close(g_xenstore);
    g_xenstore = nullptr;
  }
  return info.Env().Undefined();
}

}  // namespace vmsb
