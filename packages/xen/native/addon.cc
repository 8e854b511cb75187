// The module: the ioreq server class, the availability probe and xenstore.
#include "common.h"
#include "server.h"

namespace vmsb {

Napi::Value Probe(const Napi::CallbackInfo& info);
Napi::Value XenstoreRead(const Napi::CallbackInfo& info);
Napi::Value XenstoreWrite(const Napi::CallbackInfo& info);
Napi::Value XenstoreClose(const Napi::CallbackInfo& info);

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Server", Server::Define(env));
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("xenstoreRead", Napi::Function::New(env, XenstoreRead, "xenstoreRead"));
  exports.Set("xenstoreWrite", Napi::Function::New(env, XenstoreWrite, "xenstoreWrite"));
  exports.Set("xenstoreClose", Napi::Function::New(env, XenstoreClose, "xenstoreClose"));
  return exports;
}

}  // namespace vmsb

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return vmsb::Init(env, exports);
}

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
