// Test hooks for the hypervisor side of the fake Xen: create a domain, play its vCPUs, read and write
// its RAM and xenstore, inject faults, and inspect what the dom0 side did.

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "fakexen.h"

namespace {

Napi::Error Errno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

uint64_t U64(Napi::Env env, Napi::Value v, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless)
      throw Napi::RangeError::New(env, std::string(name) + " does not fit in 64 bits");
    return out;
  }
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw Napi::RangeError::New(env, std::string(name) + " is not a safe unsigned integer");
    return static_cast<uint64_t>(d);
  }
  if (v.IsUndefined())
    return 0;
  throw Napi::TypeError::New(env, std::string(name) + " must be a number or bigint");
}

const char* OutcomeName(int outcome) {
  switch (outcome) {
    case FXHV_COMPLETED: return "completed";
    case FXHV_UNCLAIMED: return "unclaimed";
    case FXHV_TIMEOUT: return "timeout";
    case FXHV_BAD_STATE: return "bad-state";
    case FXHV_BUSY: return "busy";
    case FXHV_NO_SERVER: return "no-server";
  }
  return "unknown";
}

class Hypervisor : public Napi::ObjectWrap<Hypervisor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Hypervisor",
                       {
                           StaticMethod<&Hypervisor::Create>("create"),
                           InstanceMethod<&Hypervisor::Io>("io"),
                           InstanceMethod<&Hypervisor::Kick>("kick"),
                           InstanceMethod<&Hypervisor::SetFaults>("setFaults"),
                           InstanceMethod<&Hypervisor::RamRead>("ramRead"),
                           InstanceMethod<&Hypervisor::RamWrite>("ramWrite"),
                           InstanceMethod<&Hypervisor::XsRead>("xenstoreRead"),
                           InstanceMethod<&Hypervisor::XsWrite>("xenstoreWrite"),
                           InstanceMethod<&Hypervisor::Snapshot>("snapshot"),
                           InstanceMethod<&Hypervisor::Close>("close"),
                       });
  }

  explicit Hypervisor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Hypervisor>(info) {
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(info.Env(), "new Hypervisor(dir)");
    hv_ = fxhv_attach(info[0].As<Napi::String>().Utf8Value().c_str());
    if (!hv_)
      throw Errno(info.Env(), "fxhv_attach", errno);
  }

  ~Hypervisor() override {
    if (hv_)
      fxhv_release(hv_);
  }

 private:
  fxhv* Live(Napi::Env env) {
    if (!hv_)
      throw Napi::Error::New(env, "the hypervisor handle is closed");
    return hv_;
  }

  // create(dir, domid, vcpus, ramPages)
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString())
      throw Napi::TypeError::New(env, "create(dir, domid, vcpus, ramPages)");
    const int rc = fxhv_create(info[0].As<Napi::String>().Utf8Value().c_str(), info[1].As<Napi::Number>().Uint32Value(),
                               info[2].As<Napi::Number>().Uint32Value(), U64(env, info[3], "ramPages"));
    if (rc < 0)
      throw Errno(env, "fxhv_create", -rc);
    return env.Undefined();
  }

  // io(vcpu, { addr, data, count, size, dir, type, dataIsPtr, df, route }, timeoutMs)
  //   -> Promise<{ outcome, server, data: bigint }>, resolved when Xen would resume the vCPU.
  Napi::Value Io(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fxhv* hv = Live(env);
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "io(vcpu, request, timeoutMs)");
    Napi::Object r = info[1].As<Napi::Object>();
    struct Job {
      fxhv* hv;
      uint32_t vcpu;
      fxhv_io io;
      int timeout;
      fxhv_io_result result;
      int rc;
      Napi::Promise::Deferred deferred;
    };
    auto job = std::make_unique<Job>(Job{hv, info[0].As<Napi::Number>().Uint32Value(), {}, info[2].As<Napi::Number>().Int32Value(),
                                         {}, 0, Napi::Promise::Deferred::New(env)});
    job->io.addr = U64(env, r.Get("addr"), "addr");
    job->io.data = U64(env, r.Get("data"), "data");
    job->io.count = static_cast<uint32_t>(U64(env, r.Get("count"), "count"));
    job->io.size = static_cast<uint32_t>(U64(env, r.Get("size"), "size"));
    job->io.dir = static_cast<uint8_t>(U64(env, r.Get("dir"), "dir"));
    job->io.type = static_cast<uint8_t>(U64(env, r.Get("type"), "type"));
    job->io.data_is_ptr = static_cast<uint8_t>(U64(env, r.Get("dataIsPtr"), "dataIsPtr"));
    job->io.df = static_cast<uint8_t>(U64(env, r.Get("df"), "df"));
    job->io.route = static_cast<uint32_t>(U64(env, r.Get("route"), "route"));
    Napi::Promise promise = job->deferred.Promise();

    // The vCPU blocks, so it runs on its own thread (not libuv's pool, which the code under test may
    // need meanwhile), and reports back to the JS thread.
    auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                              "fakexen-vcpu", 0, 1);
    fxhv_retain(hv);
    Job* raw = job.release();
    std::thread([raw, tsfn]() mutable {
      raw->rc = fxhv_guest_io(raw->hv, raw->vcpu, &raw->io, raw->timeout, &raw->result);
      fxhv_release(raw->hv);
      tsfn.BlockingCall(raw, [](Napi::Env env, Napi::Function, Job* job) {
        std::unique_ptr<Job> owned(job);
        if (job->rc < 0) {
          job->deferred.Reject(Errno(env, "fxhv_guest_io", -job->rc).Value());
          return;
        }
        Napi::Object out = Napi::Object::New(env);
        out.Set("outcome", Napi::String::New(env, OutcomeName(job->result.outcome)));
        out.Set("server", Napi::Number::New(env, job->result.server));
        out.Set("data", Napi::BigInt::New(env, static_cast<uint64_t>(job->result.data)));
        job->deferred.Resolve(out);
      });
      tsfn.Release();
    }).detach();
    return promise;
  }

  Napi::Value Kick(const Napi::CallbackInfo& info) {
    const int rc = fxhv_kick(Live(info.Env()), info[0].As<Napi::Number>().Uint32Value());
    if (rc < 0)
      throw Errno(info.Env(), "fxhv_kick", -rc);
    return info.Env().Undefined();
  }

  Napi::Value SetFaults(const Napi::CallbackInfo& info) {
    fxhv_set_faults(Live(info.Env()), info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  // ramRead(offset, length) -> Buffer (a copy)
  Napi::Value RamRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t pages = 0;
    uint8_t* ram = fxhv_ram(Live(env), &pages);
    const uint64_t offset = U64(env, info[0], "offset");
    const uint64_t length = U64(env, info[1], "length");
    const uint64_t size = pages * 4096;
    if (offset > size || length > size - offset)
      throw Napi::RangeError::New(env, "outside guest RAM");
    return Napi::Buffer<uint8_t>::Copy(env, ram + offset, length);
  }

  // ramWrite(offset, bytes)
  Napi::Value RamWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t pages = 0;
    uint8_t* ram = fxhv_ram(Live(env), &pages);
    const uint64_t offset = U64(env, info[0], "offset");
    if (info.Length() < 2 || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "ramWrite(offset, Uint8Array)");
    auto bytes = info[1].As<Napi::Uint8Array>();
    const uint64_t size = pages * 4096;
    if (offset > size || bytes.ByteLength() > size - offset)
      throw Napi::RangeError::New(env, "outside guest RAM");
    memcpy(ram + offset, bytes.Data(), bytes.ByteLength());
    return env.Undefined();
  }

  Napi::Value XsRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    char value[FX_XS_VALUE_MAX];
    size_t len = 0;
    const int rc = fxhv_xs_read(Live(env), info[0].As<Napi::String>().Utf8Value().c_str(), value, sizeof(value), &len);
    if (rc == -ENOENT)
      return env.Undefined();
    if (rc < 0)
      throw Errno(env, "fxhv_xs_read", -rc);
    return Napi::String::New(env, value, len);
  }

  Napi::Value XsWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string value = info[1].As<Napi::String>().Utf8Value();
    const int rc = fxhv_xs_write(Live(env), info[0].As<Napi::String>().Utf8Value().c_str(), value.data(), value.size());
    if (rc < 0)
      throw Errno(env, "fxhv_xs_write", -rc);
    return env.Undefined();
  }

  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto sh = std::make_unique<fx_shared>();
    fxhv_snapshot(Live(env), sh.get());
    Napi::Object out = Napi::Object::New(env);
    out.Set("domid", Napi::Number::New(env, sh->domid));
    out.Set("vcpus", Napi::Number::New(env, sh->nr_vcpus));
    out.Set("ramPages", Napi::Number::New(env, static_cast<double>(sh->ram_pages)));
    Napi::Object c = Napi::Object::New(env);
    c.Set("dmOpen", Napi::Number::New(env, sh->c.dm_open));
    c.Set("fmOpen", Napi::Number::New(env, sh->c.fm_open));
    c.Set("evOpen", Napi::Number::New(env, sh->c.ev_open));
    c.Set("xsOpen", Napi::Number::New(env, sh->c.xs_open));
    c.Set("dmRestricted", Napi::Number::New(env, sh->c.dm_restricted));
    c.Set("fmRestricted", Napi::Number::New(env, sh->c.fm_restricted));
    c.Set("evRestricted", Napi::Number::New(env, sh->c.ev_restricted));
    c.Set("foreignPages", Napi::Number::New(env, static_cast<double>(sh->c.foreign_pages)));
    c.Set("foreignMaps", Napi::Number::New(env, static_cast<double>(sh->c.foreign_maps)));
    c.Set("deliveries", Napi::Number::New(env, static_cast<double>(sh->c.deliveries)));
    c.Set("notifies", Napi::Number::New(env, static_cast<double>(sh->c.notifies)));
    c.Set("xsWrites", Napi::Number::New(env, static_cast<double>(sh->c.xs_writes)));
    out.Set("counters", c);
    Napi::Array servers = Napi::Array::New(env);
    uint32_t n = 0;
    for (uint32_t s = 0; s < FX_MAX_SERVERS; s++) {
      const fx_server& srv = sh->servers[s];
      if (!srv.used)
        continue;
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", Napi::Number::New(env, s));
      o.Set("enabled", Napi::Boolean::New(env, srv.enabled));
      o.Set("gfnPublished", Napi::Boolean::New(env, srv.gfn_published));
      o.Set("resourceMaps", Napi::Number::New(env, srv.resource_maps));
      Napi::Array ranges = Napi::Array::New(env);
      for (uint32_t i = 0; i < srv.nranges; i++) {
        Napi::Object r = Napi::Object::New(env);
        r.Set("isMmio", Napi::Boolean::New(env, srv.ranges[i].is_mmio));
        r.Set("start", Napi::Number::New(env, static_cast<double>(srv.ranges[i].start)));
        r.Set("end", Napi::Number::New(env, static_cast<double>(srv.ranges[i].end)));
        ranges.Set(i, r);
      }
      o.Set("ranges", ranges);
      Napi::Array chans = Napi::Array::New(env);
      for (uint32_t v = 0; v < sh->nr_vcpus; v++) {
        const fx_chan& ch = srv.chans[v];
        Napi::Object co = Napi::Object::New(env);
        co.Set("remotePort", Napi::Number::New(env, ch.remote_port));
        co.Set("bound", Napi::Boolean::New(env, ch.bound));
        co.Set("localPort", Napi::Number::New(env, ch.local_port));
        co.Set("masked", Napi::Boolean::New(env, ch.masked));
        co.Set("pending", Napi::Boolean::New(env, ch.pending));
        co.Set("notifies", Napi::Number::New(env, static_cast<double>(ch.notifies)));
        co.Set("state", Napi::Number::New(env, fxhv_slot_state(hv_, s, v)));
        chans.Set(v, co);
      }
      o.Set("channels", chans);
      servers.Set(n++, o);
    }
    out.Set("servers", servers);
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (hv_) {
      fxhv_release(hv_);  // vCPU threads in flight keep their own reference
      hv_ = nullptr;
    }
    return info.Env().Undefined();
  }

  fxhv* hv_ = nullptr;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Hypervisor", Hypervisor::Define(env));
  Napi::Object faults = Napi::Object::New(env);
  faults.Set("noMapResource", Napi::Number::New(env, FX_FAULT_NO_MAP_RESOURCE));
  faults.Set("badVcpus", Napi::Number::New(env, FX_FAULT_BAD_VCPUS));
  faults.Set("failBind", Napi::Number::New(env, FX_FAULT_FAIL_BIND));
  faults.Set("rangeBusy", Napi::Number::New(env, FX_FAULT_RANGE_BUSY));
  exports.Set("faults", faults);
  Napi::Object consts = Napi::Object::New(env);
  consts.Set("legacyGfnBase", Napi::Number::New(env, static_cast<double>(FX_LEGACY_GFN_BASE)));
  consts.Set("remotePortBase", Napi::Number::New(env, FX_REMOTE_PORT_BASE));
  exports.Set("constants", consts);
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
