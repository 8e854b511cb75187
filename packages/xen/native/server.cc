// The ioreq server: open and restrict the handles, create an unbuffered server, map its page, enable
// it, bind one event channel per vCPU, claim ports 0x100-0x10B, and service requests from a libuv
// poll on the event-channel fd, on the JS thread.
//
// Every request that reaches us is completed (IORESP_READY, then notify), whatever it contains:
// a vCPU whose request is never completed stays blocked. Only three kinds reach JS (see RequestKind);
// their slot stays INPROCESS until JS calls complete(). Everything in a slot is the guest's or
// Xen's to choose, so it is read once into a Request and checked before use.

#include "server.h"

#include <poll.h>
#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace vmsb {

namespace {

constexpr unsigned kDrainBatch = 64;  // events handled per poll wake-up before yielding to the loop

uint64_t SizeMask(uint32_t size) {
  return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

void Fence() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

}  // namespace

Napi::Function Server::Define(Napi::Env env) {
  return DefineClass(env, "Server",
                     {
                         InstanceMethod<&Server::Complete>("complete"),
                         InstanceMethod<&Server::Pause>("pause"),
                         InstanceMethod<&Server::Sweep>("sweep"),
                         InstanceMethod<&Server::Close>("close"),
                         InstanceAccessor<&Server::Vcpus>("vcpus"),
                         InstanceAccessor<&Server::Id>("id"),
                         InstanceAccessor<&Server::Legacy>("legacyMapping"),
                     });
}

Server::Server(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Server>(info), env_(info.Env()) {
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsFunction() || !info[2].IsFunction())
    throw Napi::TypeError::New(env_, "new Server(domid, onRequest, onLog)");
  const double domid = info[0].As<Napi::Number>().DoubleValue();
  // Domain 0 cannot be an HVM guest, and ids from DOMID_FIRST_RESERVED up are special.
  if (!(domid >= 1 && domid < DOMID_FIRST_RESERVED) || domid != static_cast<double>(static_cast<uint32_t>(domid)))
    throw Napi::RangeError::New(env_, "domid must be an integer from 1 to 32751");
  domid_ = static_cast<domid_t>(domid);
  on_request_ = Napi::Persistent(info[1].As<Napi::Function>());
  on_log_ = Napi::Persistent(info[2].As<Napi::Function>());
  async_context_ = std::make_unique<Napi::AsyncContext>(env_, "vmsb:xen-ioreq");
  Open();
  napi_add_env_cleanup_hook(env_, &Server::CleanupHook, this);
  cleanup_hook_ = true;
  Ref();  // the poll handle refers to this object until close()
}

Server::~Server() {
  if (cleanup_hook_)
    napi_remove_env_cleanup_hook(env_, &Server::CleanupHook, this);
  quiet_ = true;
  Teardown();
}

// The environment is going away (process exit, worker end) with the server still open: release the
// domain's server rather than leave it enabled with nobody servicing it.
void Server::CleanupHook(void* arg) {
  auto* self = static_cast<Server*>(arg);
  self->cleanup_hook_ = false;
  self->quiet_ = true;
  self->Teardown();
}

// Fails with errno as the failed call left it (read first, before anything can change it).
void Server::Fail(const char* call) {
  const int err = errno;
  Fail(std::string(call), err);
}

void Server::Fail(const std::string& call, int err) {
  std::string detail = logger_.last;
  quiet_ = true;
  Teardown();
  quiet_ = false;
  throw SystemError(env_, call, err, detail);
}

void Server::Open() {
  // The handles are restricted to the domain at once, as varstored does (xentoolcore_restrict_all
  // right after opening): a compromised daemon can then reach no other domain.
  if (!(dmod_ = xendevicemodel_open(&logger_.base, 0)))
    Fail("xendevicemodel_open");
  if (!(fmem_ = xenforeignmemory_open(&logger_.base, 0)))
    Fail("xenforeignmemory_open");
  if (!(xce_ = xenevtchn_open(&logger_.base, 0)))
    Fail("xenevtchn_open");
  if (xendevicemodel_restrict(dmod_, domid_) < 0)
    Fail("xendevicemodel_restrict");
  if (xenforeignmemory_restrict(fmem_, domid_) < 0)
    Fail("xenforeignmemory_restrict");
  if (xenevtchn_restrict(xce_, domid_) < 0)
    Fail("xenevtchn_restrict");

  unsigned int vcpus = 0;
  if (xendevicemodel_nr_vcpus(dmod_, domid_, &vcpus) < 0)
    Fail("xendevicemodel_nr_vcpus");
  if (vcpus == 0 || vcpus > kMaxVcpus) {
    Teardown();
    throw Napi::RangeError::New(env_, Format("xendevicemodel_nr_vcpus reported %u vCPUs; an ioreq page holds 1 to %u",
                                             vcpus, kMaxVcpus));
  }
  vcpus_ = vcpus;
  ports_.assign(vcpus_, 0);
  bound_.assign(vcpus_, false);
  slots_.assign(vcpus_, Slot{});
  buffers_.resize(vcpus_);

  // No buffered ioreqs: every request is synchronous and there is no buffered ring to map.
  if (xendevicemodel_create_ioreq_server(dmod_, domid_, HVM_IOREQSRV_BUFIOREQ_OFF, &id_) < 0)
    Fail("xendevicemodel_create_ioreq_server");
  created_ = true;

  // Resource mapping first. Asking for the page's guest frame first would place the page in the guest
  // and make Xen refuse the resource mapping, so the legacy call is only the fallback when resource
  // mapping is not implemented by the kernel or Xen.
  void* addr = nullptr;
  resource_ = xenforeignmemory_map_resource(fmem_, domid_, XENMEM_resource_ioreq_server, id_,
                                            XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
                                            PROT_READ | PROT_WRITE, 0);
  if (resource_) {
    page_ = addr;
  } else if (errno == EOPNOTSUPP) {
    xen_pfn_t gfn = 0;
    if (xendevicemodel_get_ioreq_server_info(dmod_, domid_, id_, &gfn, nullptr, nullptr) < 0)
      Fail("xendevicemodel_get_ioreq_server_info");
    page_ = xenforeignmemory_map(fmem_, domid_, PROT_READ | PROT_WRITE, 1, &gfn, nullptr);
    if (!page_)
      Fail("xenforeignmemory_map (ioreq page)");
    legacy_page_ = true;
  } else {
    Fail("xenforeignmemory_map_resource");
  }

  // Xen writes each vCPU's event channel into the page when the server is enabled.
  if (xendevicemodel_set_ioreq_server_state(dmod_, domid_, id_, 1) < 0)
    Fail("xendevicemodel_set_ioreq_server_state");
  enabled_ = true;

  for (unsigned v = 0; v < vcpus_; v++) {
    const evtchn_port_t remote = SlotOf(v)->vp_eport;
    const xenevtchn_port_or_error_t local = xenevtchn_bind_interdomain(xce_, domid_, remote);
    if (local < 0) {
      const int err = errno;  // before formatting can change it
      Fail(Format("xenevtchn_bind_interdomain (vCPU %u, port %u)", v, remote), err);
    }
    ports_[v] = static_cast<evtchn_port_t>(local);
    bound_[v] = true;
  }

  // Claimed last, so no request can arrive on an unbound channel.
  if (xendevicemodel_map_io_range_to_ioreq_server(dmod_, domid_, id_, 0, kPortBase, kPortLast) < 0)
    Fail("xendevicemodel_map_io_range_to_ioreq_server");
  range_mapped_ = true;

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env_, &loop) != napi_ok || !loop) {
    Teardown();
    throw Napi::Error::New(env_, "no libuv loop for this environment");
  }
  poll_ = new uv_poll_t;
  // uv_poll_init makes the fd non-blocking; xenevtchn_pending() then reports EAGAIN when empty.
  int rc = uv_poll_init(loop, poll_, xenevtchn_fd(xce_));
  if (rc == 0) {
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, &Server::OnPoll);
    if (rc < 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
  } else {
    delete poll_;
    poll_ = nullptr;
  }
  if (rc < 0) {
    Teardown();
    throw Napi::Error::New(env_, std::string("cannot watch the event channel: ") + uv_strerror(rc));
  }
}

// Undoes whatever Open() did, in varstored's order. Idempotent; never calls JS.
std::vector<std::string> Server::Teardown() {
  std::vector<std::string> problems;
  auto check = [&](int rc, const char* what) {
    if (rc < 0) {
      const int err = errno;
      problems.push_back(std::string(what) + ": " + strerror(err));
    }
  };
  if (poll_) {
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  // A request JS never completed would leave its vCPU blocked: complete it without effect.
  if (page_ && xce_) {
    for (unsigned v = 0; v < slots_.size(); v++) {
      if (slots_[v].mapped && fmem_) {
        xenforeignmemory_unmap(fmem_, slots_[v].mapped, kBufferPages);
        slots_[v].mapped = nullptr;
      }
      if (slots_[v].kind != Pending::None && bound_[v]) {
        const bool read = slots_[v].kind == Pending::PpiRead;
        slots_[v] = Slot{};
        Finish(v, read, 0);
      }
    }
  }
  if (range_mapped_) {
    check(xendevicemodel_unmap_io_range_from_ioreq_server(dmod_, domid_, id_, 0, kPortBase, kPortLast),
          "xendevicemodel_unmap_io_range_from_ioreq_server");
    range_mapped_ = false;
  }
  for (unsigned v = 0; v < bound_.size(); v++) {
    if (bound_[v]) {
      check(xenevtchn_unbind(xce_, ports_[v]), "xenevtchn_unbind");
      bound_[v] = false;
    }
  }
  if (enabled_) {
    check(xendevicemodel_set_ioreq_server_state(dmod_, domid_, id_, 0), "xendevicemodel_set_ioreq_server_state");
    enabled_ = false;
  }
  if (resource_) {
    check(xenforeignmemory_unmap_resource(fmem_, resource_), "xenforeignmemory_unmap_resource");
    resource_ = nullptr;
  } else if (legacy_page_ && page_) {
    check(xenforeignmemory_unmap(fmem_, page_, 1), "xenforeignmemory_unmap (ioreq page)");
  }
  page_ = nullptr;
  legacy_page_ = false;
  if (created_) {
    check(xendevicemodel_destroy_ioreq_server(dmod_, domid_, id_), "xendevicemodel_destroy_ioreq_server");
    created_ = false;
  }
  if (xce_) {
    xenevtchn_close(xce_);
    xce_ = nullptr;
  }
  if (fmem_) {
    xenforeignmemory_close(fmem_);
    fmem_ = nullptr;
  }
  if (dmod_) {
    xendevicemodel_close(dmod_);
    dmod_ = nullptr;
  }
  return problems;
}

volatile ioreq_t* Server::SlotOf(unsigned vcpu) const {
  // shared_iopage_t declares one slot; the page really holds one per vCPU.
  return static_cast<volatile ioreq_t*>(page_) + vcpu;
}

int Server::VcpuOf(evtchn_port_t port) const {
  for (unsigned v = 0; v < vcpus_; v++)
    if (bound_[v] && ports_[v] == port)
      return static_cast<int>(v);
  return -1;
}

void Server::Log(const char* level, const std::string& message, bool guest_caused) {
  if (quiet_ || on_log_.IsEmpty())
    return;
  Napi::HandleScope scope(env_);
  depth_++;
  try {
    on_log_.MakeCallback(Value(), {Napi::String::New(env_, level), Napi::String::New(env_, message),
                                   Napi::Boolean::New(env_, guest_caused)},
                         *async_context_);
  } catch (const Napi::Error&) {
    // A failing logger must not take the request path down with it.
  }
  depth_--;
}

Napi::Value Server::Emit(RequestKind kind, unsigned vcpu, napi_value a, napi_value b, napi_value c) {
  Napi::Value undefined = env_.Undefined();
  Napi::Value returned;
  depth_++;
  try {
    returned = on_request_.MakeCallback(Value(),
                                        {Napi::Number::New(env_, kind), Napi::Number::New(env_, vcpu),
                                         a ? a : undefined, b ? b : undefined, c ? c : undefined},
                                        *async_context_);
  } catch (...) {
    depth_--;
    throw;
  }
  depth_--;
  return returned;
}

void Server::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Server*>(handle->data);
  if (!self)
    return;
  Napi::HandleScope scope(self->env_);
  if (status < 0) {
    self->Log("error", std::string("event channel poll failed: ") + uv_strerror(status), false);
    return;
  }
  self->Drain();
}

void Server::Drain() {
  const int fd = xenevtchn_fd(xce_);
  for (unsigned i = 0; i < kDrainBatch && poll_ && !closed_; i++) {
    // libuv may wake us spuriously; and on old kernels the fd ignores O_NONBLOCK, so make sure a
    // port is queued before reading one.
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
      break;
    const xenevtchn_port_or_error_t port = xenevtchn_pending(xce_);
    if (port < 0) {
      const int err = errno;
      if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
        Log("error", std::string("xenevtchn_pending failed: ") + strerror(err), false);
      break;
    }
    const int vcpu = VcpuOf(static_cast<evtchn_port_t>(port));
    if (vcpu < 0) {
      Log("warn", Format("event on port %d, which no vCPU of this server is bound to", port), false);
      continue;
    }
    // Unmask before looking at the slot, so an event raised from now on is not lost.
    if (xenevtchn_unmask(xce_, static_cast<evtchn_port_t>(port)) < 0)
      Log("error", Format("xenevtchn_unmask(%d) failed: %s", port, strerror(errno)), false);
    Service(static_cast<unsigned>(vcpu));
  }
}

void Server::Service(unsigned vcpu) {
  volatile ioreq_t* slot = SlotOf(vcpu);
  if (slot->state != STATE_IOREQ_READY)
    return;  // a spurious event, or one for a request already taken
  if (slots_[vcpu].kind != Pending::None) {
    // Xen never readies a slot whose request is still in process; leave it alone rather than lose track.
    Log("warn", Format("vCPU %u: a new request while one is in process; ignored", vcpu), false);
    return;
  }
  Fence();  // read the request only after seeing READY
  Request req;
  req.addr = slot->addr;
  req.data = slot->data;
  req.count = slot->count;
  req.size = slot->size;
  req.dir = slot->dir;
  req.type = slot->type;
  req.data_is_ptr = slot->data_is_ptr;
  req.df = slot->df;
  slot->state = STATE_IOREQ_INPROCESS;
  try {
    Dispatch(vcpu, req);
  } catch (const std::exception& e) {
    // Whatever failed, the vCPU must be released.
    const bool read = req.dir == IOREQ_READ && !req.data_is_ptr;
    if (slots_[vcpu].kind != Pending::None || slot->state == STATE_IOREQ_INPROCESS) {
      slots_[vcpu] = Slot{};
      Finish(vcpu, read, 0);
    }
    Log("error", Format("vCPU %u: request failed: %s", vcpu, e.what()), false);
  }
}

void Server::Dispatch(unsigned vcpu, const Request& req) {
  const bool read = req.dir == IOREQ_READ;
  if (req.type != IOREQ_TYPE_PIO) {
    // INVALIDATE is broadcast when guest memory is removed: nothing is cached here, so just complete.
    // Other types are never routed to a port-only server; complete them as an absent device would.
    if (req.type != IOREQ_TYPE_INVALIDATE)
      Log("debug", Format("vCPU %u: ioreq of type %u completed without effect", vcpu, req.type), true);
    return Finish(vcpu, read && !req.data_is_ptr, SizeMask(req.size));
  }
  if (req.data_is_ptr || req.count != 1) {
    // String I/O (rep ins/outs): neither varstored nor OVMF uses it. Complete it without reading or
    // writing guest memory; `data` is a guest address here, so it is left as it is.
    Log("debug",
        Format("vCPU %u: string port I/O at 0x%" PRIx64 " (count %u, size %u) completed without effect", vcpu,
               req.addr, req.count, req.size),
        true);
    return Finish(vcpu, false, 0);
  }
  if (req.size != 1 && req.size != 2 && req.size != 4) {
    Log("debug", Format("vCPU %u: port I/O of size %u completed without effect", vcpu, req.size), true);
    return Finish(vcpu, read, 0);
  }
  if (req.addr < kPortBase || req.addr > kPortLast + 1 - req.size) {
    // Outside the claimed range (Xen routes only accesses entirely inside it): not ours.
    Log("debug", Format("vCPU %u: port 0x%" PRIx64 " is not ours", vcpu, req.addr), true);
    return Finish(vcpu, read, SizeMask(req.size));
  }
  const uint64_t offset = req.addr - kPortBase;
  const unsigned port = static_cast<unsigned>(offset / 4);
  const unsigned within = static_cast<unsigned>(offset % 4);
  if (within + req.size > 4)
    return Finish(vcpu, read, 0);  // straddles two ports: dropped, as varstored does
  const uint32_t value = static_cast<uint32_t>(req.data & SizeMask(req.size));
  switch (port) {
    case 0:  // command: a 32-bit write of the buffer's frame number; reads return 0
      if (!read && within == 0 && req.size == 4)
        return BeginCommand(vcpu, value);
      if (!read)
        Log("debug", Format("vCPU %u: command port write of size %u at offset %u ignored", vcpu, req.size, within),
            true);
      return Finish(vcpu, read, 0);
    case 1:  // PPI index: 32-bit writes only; reads return 0
      if (!read && within == 0 && req.size == 4)
        ppi_index_ = value;
      return Finish(vcpu, read, 0);
    default: {  // PPI data at index + offset within the port; the store bounds the index
      const double index = static_cast<double>(ppi_index_) + within;
      slots_[vcpu] = Slot{read ? Pending::PpiRead : Pending::PpiWrite, 0, req.size};
      if (read)
        Emit(kPpiRead, vcpu, Napi::Number::New(env_, index), Napi::Number::New(env_, req.size));
      else
        Emit(kPpiWrite, vcpu, Napi::Number::New(env_, index), Napi::Number::New(env_, req.size),
             Napi::Number::New(env_, value));
      return;
    }
  }
}

void Server::BeginCommand(unsigned vcpu, uint32_t gfn) {
  xen_pfn_t pfns[kBufferPages];
  for (unsigned i = 0; i < kBufferPages; i++)
    pfns[i] = static_cast<xen_pfn_t>(gfn) + i;
  // All or nothing (err == NULL): a buffer running past guest RAM is refused whole. Mapped writable
  // so that an answer given synchronously goes back through the same mapping.
  void* mapped = xenforeignmemory_map(fmem_, domid_, PROT_READ | PROT_WRITE, kBufferPages, pfns, nullptr);
  if (!mapped) {
    Log("warn", Format("vCPU %u: cannot map the guest buffer at frame 0x%x: %s", vcpu, gfn, strerror(errno)), true);
    return Finish(vcpu, false, 0);
  }
  // One copy into private memory; everything after parses the copy, never the guest's pages. A plain
  // Uint8Array, not a Node Buffer: Buffer's slice() makes a view, Uint8Array's a copy, and what the
  // store keeps of a request it keeps with slice(). The slot holds the mapping before anything can
  // throw, so that the unmapping below always finds it.
  slots_[vcpu] = Slot{Pending::Command, gfn, 4, mapped};
  try {
    Napi::Uint8Array copy = RequestBuffer(vcpu);
    memcpy(copy.Data(), mapped, kBufferSize);
    // A handler that answers at once returns the response: it is written back and the request
    // completed here, without a second call from JS (complete()) per request.
    Napi::Value answer = Emit(kCommand, vcpu, copy);
    if (slots_[vcpu].kind == Pending::Command && !answer.IsUndefined())
      AnswerCommand(vcpu, answer);
  } catch (...) {
    Unmap(vcpu);
    throw;
  }
  // Not answered within the callback: the answer will come through a fresh mapping.
  Unmap(vcpu);
}

Napi::Uint8Array Server::RequestBuffer(unsigned vcpu) {
  if (!buffers_[vcpu].IsEmpty())
    return buffers_[vcpu].Value();
  Napi::ArrayBuffer memory = Napi::ArrayBuffer::New(env_, kBufferSize);
  Napi::Uint8Array buffer = Napi::Uint8Array::New(env_, kBufferSize, memory, 0);
  buffers_[vcpu] = Napi::Persistent(buffer);
  return buffer;
}

void Server::Unmap(unsigned vcpu) {
  void* mapped = slots_[vcpu].mapped;
  if (!mapped)
    return;
  slots_[vcpu].mapped = nullptr;
  if (xenforeignmemory_unmap(fmem_, mapped, kBufferPages) < 0) {
    const int err = errno;
    Log("error", std::string("xenforeignmemory_unmap failed: ") + strerror(err), false);
  }
}

void Server::Finish(unsigned vcpu, bool set_data, uint64_t data) {
  volatile ioreq_t* slot = SlotOf(vcpu);
  if (set_data)
    slot->data = data;
  Fence();  // the response is visible before the state says so
  slot->state = STATE_IORESP_READY;
  Fence();
  if (xenevtchn_notify(xce_, ports_[vcpu]) < 0)
    Log("error", Format("xenevtchn_notify(vCPU %u) failed: %s", vcpu, strerror(errno)), false);
}

// Writes a command's response (a Uint8Array of at most 64 KiB; undefined or null leaves the buffer as
// it is) into the guest's buffer and completes the request. Throws, completing nothing, for a result
// of the wrong type or size.
void Server::AnswerCommand(unsigned vcpu, Napi::Value result) {
  const Slot slot = slots_[vcpu];
  if (!result.IsUndefined() && !result.IsNull()) {
    if (!result.IsTypedArray() || result.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env_, "a command's result is a Uint8Array");
    auto bytes = result.As<Napi::Uint8Array>();
    if (bytes.ByteLength() > kBufferSize)
      throw Napi::RangeError::New(env_, "a response is at most 65536 bytes");
    if (slot.mapped) {
      // Answered inside the request's callback: through the mapping it was read from.
      memcpy(slot.mapped, bytes.Data(), bytes.ByteLength());
    } else {
      // Write back through a fresh mapping of the frame the guest named when it asked.
      xen_pfn_t pfns[kBufferPages];
      for (unsigned i = 0; i < kBufferPages; i++)
        pfns[i] = static_cast<xen_pfn_t>(slot.gfn) + i;
      void* mapped = xenforeignmemory_map(fmem_, domid_, PROT_READ | PROT_WRITE, kBufferPages, pfns, nullptr);
      if (!mapped) {
        Log("warn",
            Format("vCPU %u: cannot map the guest buffer at frame 0x%" PRIx64 " to answer: %s", vcpu, slot.gfn,
                   strerror(errno)),
            true);
      } else {
        memcpy(mapped, bytes.Data(), bytes.ByteLength());
        if (xenforeignmemory_unmap(fmem_, mapped, kBufferPages) < 0) {
          const int err = errno;
          Log("error", std::string("xenforeignmemory_unmap failed: ") + strerror(err), false);
        }
      }
    }
  }
  Unmap(vcpu);
  slots_[vcpu] = Slot{};
  Finish(vcpu, false, 0);
}

// complete(vcpu, result): result is the response bytes for a command (or undefined to leave the
// buffer as it is), the value for a PPI read, ignored for a PPI write. Returns false when the server
// has closed.
Napi::Value Server::Complete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || !page_)
    return Napi::Boolean::New(env, false);
  if (info.Length() < 1 || !info[0].IsNumber())
    throw Napi::TypeError::New(env, "complete(vcpu, result)");
  const uint32_t vcpu = info[0].As<Napi::Number>().Uint32Value();
  if (vcpu >= vcpus_ || slots_[vcpu].kind == Pending::None)
    throw Napi::Error::New(env, Format("vCPU %u has no request in process", vcpu));
  const Slot slot = slots_[vcpu];
  Napi::Value result = info.Length() > 1 ? info[1] : env.Undefined();
  switch (slot.kind) {
    case Pending::Command:
      AnswerCommand(vcpu, result);
      break;
    case Pending::PpiRead: {
      const uint32_t value = result.IsNumber() ? result.As<Napi::Number>().Uint32Value() : 0;
      slots_[vcpu] = Slot{};
      Finish(vcpu, true, value & SizeMask(slot.size));
      break;
    }
    case Pending::PpiWrite:
    case Pending::None:
      slots_[vcpu] = Slot{};
      Finish(vcpu, false, 0);
      break;
  }
  return Napi::Boolean::New(env, true);
}

// Stops taking events; requests already taken can still be completed.
Napi::Value Server::Pause(const Napi::CallbackInfo& info) {
  if (poll_) {
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  return info.Env().Undefined();
}

// Takes every request left READY, whether or not its event was seen (used while closing).
Napi::Value Server::Sweep(const Napi::CallbackInfo& info) {
  if (!closed_ && page_) {
    for (unsigned v = 0; v < vcpus_; v++)
      Service(v);
  }
  return info.Env().Undefined();
}

// close(force?): tears down; returns the teardown steps that failed (as strings). Only a process that
// is exiting (force) may tear down from inside a request callback: nothing runs after it.
Napi::Value Server::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool force = info.Length() > 0 && info[0].ToBoolean().Value();
  if (depth_ > 0 && !force)
    throw Napi::Error::New(env, "close() cannot run inside a request callback");
  Napi::Array problems = Napi::Array::New(env);
  if (closed_)
    return problems;
  closed_ = true;
  quiet_ = true;
  const auto failed = Teardown();
  buffers_.clear();
  for (size_t i = 0; i < failed.size(); i++)
    problems.Set(static_cast<uint32_t>(i), Napi::String::New(env, failed[i]));
  if (cleanup_hook_) {
    napi_remove_env_cleanup_hook(env_, &Server::CleanupHook, this);
    cleanup_hook_ = false;
  }
  Unref();
  return problems;
}

Napi::Value Server::Vcpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), vcpus_);
}

Napi::Value Server::Id(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), id_);
}

Napi::Value Server::Legacy(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), legacy_page_);
}

}  // namespace vmsb
