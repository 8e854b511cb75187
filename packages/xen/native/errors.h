// Errors shared by every native target (the Xen binding and the host binding): no Xen headers here.
#pragma once

#include <napi.h>

#include <string>

namespace vmsb {

// "ENOENT" for ENOENT; "E<n>" for a number the table does not know. A table rather than glibc's
// strerrorname_np (2.32 and later only), so the binding builds against the older glibc of XCP-ng 8.x.
std::string ErrnoName(int err);

// An Error whose message names the failed call and errno, with `code`, `errno` and `syscall` set.
Napi::Error SystemError(Napi::Env env, const std::string& call, int err, const std::string& detail = "");

}  // namespace vmsb
