// An ioreq server for one HVM domain, serviced on the JS thread.
#pragma once

#include "common.h"

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

namespace vmsb {

// The ports varstored claims: 0x100 command (the guest writes its buffer's frame number), 0x104 TPM
// PPI index, 0x108 TPM PPI data; three 32-bit ports.
constexpr uint64_t kPortBase = 0x100;
constexpr uint64_t kPortLast = 0x10B;  // inclusive, as the dm_op takes it
constexpr unsigned kBufferPages = 16;  // the guest's 64 KiB communication buffer
constexpr size_t kBufferSize = kBufferPages * 4096;
constexpr unsigned kMaxVcpus = 4096 / sizeof(ioreq_t);  // one shared page holds every vCPU's slot

// Requests handed to JS: (kind, vcpu, ...). Everything else is completed here.
enum RequestKind : uint32_t {
  kCommand = 0,   // (vcpu, Uint8Array: private copy of the 16 pages); may return the response
  kPpiRead = 1,   // (vcpu, index, size)
  kPpiWrite = 2,  // (vcpu, index, size, value)
};

class Server : public Napi::ObjectWrap<Server> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new Server(domid, onRequest(kind, vcpu, a, b, c), onLog(level, message, guestCaused))
  explicit Server(const Napi::CallbackInfo& info);
  ~Server() override;

 private:
  enum class Pending : uint8_t { None, Command, PpiRead, PpiWrite };
  struct Slot {
    Pending kind = Pending::None;
    uint64_t gfn = 0;   // the buffer a command answers into, as the guest gave it
    uint32_t size = 0;  // access size, for masking a read's value
    // The guest buffer's mapping while the handler runs synchronously inside the request's
    // callback: an answer given there is written through it (one mapping per call, as varstored
    // does); it is unmapped as soon as the callback returns.
    void* mapped = nullptr;
  };
  // A snapshot of one ioreq, taken once: the page is shared and only this copy is trusted.
  struct Request {
    uint64_t addr, data;
    uint32_t count, size;
    uint8_t dir, type, data_is_ptr, df;
  };

  Napi::Value Complete(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Sweep(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Vcpus(const Napi::CallbackInfo& info);
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value Legacy(const Napi::CallbackInfo& info);

  static void CleanupHook(void* arg);
  void Open();
  [[noreturn]] void Fail(const char* call);
  [[noreturn]] void Fail(const std::string& call, int err);
  std::vector<std::string> Teardown();
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void Drain();
  void Service(unsigned vcpu);
  void Dispatch(unsigned vcpu, const Request& req);
  void BeginCommand(unsigned vcpu, uint32_t gfn);
  void Finish(unsigned vcpu, bool set_data, uint64_t data);
  void Unmap(unsigned vcpu);
  void AnswerCommand(unsigned vcpu, Napi::Value result);
  Napi::Uint8Array RequestBuffer(unsigned vcpu);
  volatile ioreq_t* SlotOf(unsigned vcpu) const;
  int VcpuOf(evtchn_port_t port) const;
  void Log(const char* level, const std::string& message, bool guest_caused);
  Napi::Value Emit(RequestKind kind, unsigned vcpu, napi_value a, napi_value b = nullptr, napi_value c = nullptr);

  Napi::Env env_;
  domid_t domid_ = 0;
  Napi::FunctionReference on_request_;
  Napi::FunctionReference on_log_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  CaptureLogger logger_;

  xendevicemodel_handle* dmod_ = nullptr;
  xenforeignmemory_handle* fmem_ = nullptr;
  xenevtchn_handle* xce_ = nullptr;
  xenforeignmemory_resource_handle* resource_ = nullptr;
  void* page_ = nullptr;
  bool legacy_page_ = false;
  ioservid_t id_ = 0;
  bool created_ = false;
  bool enabled_ = false;
  bool range_mapped_ = false;
  unsigned vcpus_ = 0;
  std::vector<evtchn_port_t> ports_;  // local port per vCPU
  std::vector<bool> bound_;
  std::vector<Slot> slots_;
  // Each vCPU's private copy of its command: one 64 KiB buffer per vCPU, allocated at its first
  // command and rewritten by each later one (a vCPU has one request at a time, so the buffer is
  // never rewritten while its request is in process). A fresh buffer per call cost an allocation, its
  // zeroing and, later, its freeing on every request (BENCHMARKS.md, xen-trace). The handler keeps
  // nothing of a request: what a store keeps it copies (slice()).
  std::vector<Napi::Reference<Napi::Uint8Array>> buffers_;
  uint32_t ppi_index_ = 0;
  uv_poll_t* poll_ = nullptr;
  bool cleanup_hook_ = false;
  bool closed_ = false;
  bool quiet_ = false;  // no JS calls: tearing down
  int depth_ = 0;  // > 0 while a request or log callback runs
};

}  // namespace vmsb
