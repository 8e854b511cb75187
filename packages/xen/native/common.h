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

#include "errors.h"

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

}  // namespace vmsb
