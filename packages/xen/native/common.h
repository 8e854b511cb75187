// Shared by the binding's translation units: the Xen headers (C, without extern "C" guards of their
// own) and the error and logging utilities.
#pragma once

extern "C" {
#include <xentoollog.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xenevtchn.h>
#include <xenstore.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>
}

#include <napi.h>

#include <string>

namespace vmsb {

// Receives the Xen libraries' log messages, which they would otherwise print to stderr, and keeps the
// last warning or error so a failure can say what the library saw.
struct CaptureLogger {
  xentoollog_logger base;  // first: the libraries call through a pointer to it
  std::string last;
  CaptureLogger();
  CaptureLogger(const CaptureLogger&) = delete;
  CaptureLogger& operator=(const CaptureLogger&) = delete;
};

// "ENOENT" for ENOENT; "E<n>" when the C library has no name for it.
std::string ErrnoName(int err);

// An Error whose message names the failed call and errno, with `code`, `errno` and `syscall` set.
Napi::Error SystemError(Napi::Env env, const std::string& call, int err, const std::string& detail = "");

}  // namespace vmsb
