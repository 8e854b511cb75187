// The daemon's sandbox, applied at the drop point (see sandbox.cc).
#pragma once

#include <napi.h>

namespace vmsb {

// enterSandbox({ chroot?, uid?, gid?, depriv, fileSizeLimit? })
Napi::Value EnterSandbox(const Napi::CallbackInfo& info);

// filterText(): the filter as libseccomp prints it (PFC)
Napi::Value FilterText(const Napi::CallbackInfo& info);

// Whether the filter can be built (the binding was compiled against libseccomp).
bool SeccompAvailable();

}  // namespace vmsb
