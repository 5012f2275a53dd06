// JavaScript face of the ESP engine: createEngine(opts) -> NativeEngine, exactly as
// src/dataplane/engine-api.ts declares it. Validates every argument (napi_args.h: a TypeError
// naming the field), copies key buffers (never logged, wiped once the crypto contexts hold them),
// turns errno failures into Errors carrying `errno`, and brings IKE messages, probe replies and
// moved peers from the RX thread to JavaScript through one thread-safe function whose queue is
// bounded: when it is full the event is dropped and counted (Drop::kQueue), the packet thread never
// waits for JavaScript. Volume limit reports (onSaLimit) take the same path; the engine retries one
// that was dropped.
#include "napi_engine.h"

#include <memory>
#include <string>
#include <vector>

#include "engine.h"
#include "napi_args.h"

namespace twinsec {

namespace {

constexpr size_t kEventQueue = 256;  // events waiting for the JS thread

struct Event {
  enum Kind { kIke, kProbe, kMoved, kLimit } kind = kIke;
  std::vector<uint8_t> data;
  std::string a, b;  // IKE: local, remote address. Probe: connection. Moved: remote address.
  uint16_t aPort = 0, bPort = 0;
  uint64_t ns = 0;
  uint32_t spi = 0;   // Moved, Limit: the SA's inbound SPI
  bool hard = false;  // Limit: the hard limit (else the soft mark)
};

struct JsCallbacks {
  Napi::FunctionReference onIke, onProbe, onPeerMoved, onSaLimit;  // the last two may be empty
};

void CallJs(Napi::Env env, Napi::Function, JsCallbacks* cb, Event* raw) {
  std::unique_ptr<Event> ev(raw);
  if (env == nullptr || cb == nullptr || ev == nullptr) return;  // being torn down
  Napi::HandleScope scope(env);
  switch (ev->kind) {
    case Event::kMoved:
      if (cb->onPeerMoved.IsEmpty()) return;  // Sink::wantMoved keeps these from being queued
      cb->onPeerMoved.Call({Napi::Number::New(env, ev->spi), Napi::String::New(env, ev->a),
                            Napi::Number::New(env, ev->aPort)});
      return;
    case Event::kLimit:
      if (cb->onSaLimit.IsEmpty()) return;  // Sink::wantLimit keeps these from being queued
      cb->onSaLimit.Call({Napi::Number::New(env, ev->spi), Napi::Boolean::New(env, ev->hard)});
      return;
    case Event::kProbe:
      cb->onProbe.Call({Napi::String::New(env, ev->a),
                        Napi::Buffer<uint8_t>::Copy(env, ev->data.data(), ev->data.size()),
                        Napi::BigInt::New(env, ev->ns)});
      return;
    case Event::kIke:
      cb->onIke.Call({Napi::Buffer<uint8_t>::Copy(env, ev->data.data(), ev->data.size()),
                      Napi::String::New(env, ev->a), Napi::Number::New(env, ev->aPort),
                      Napi::String::New(env, ev->b), Napi::Number::New(env, ev->bPort)});
      return;
  }
}

using Tsfn = Napi::TypedThreadSafeFunction<JsCallbacks, Event, CallJs>;

class Sink : public EngineSink {
 public:
  Tsfn tsfn;
  bool wantMoved = false;  // opts.onPeerMoved was given
  bool wantLimit = false;  // opts.onSaLimit was given

  bool OnIke(const uint8_t* data, size_t len, const sockaddr* local,
             const sockaddr* remote) override {
    auto ev = std::make_unique<Event>();
    ev->data.assign(data, data + len);
    ev->a = AddrText(local);
    ev->aPort = AddrPort(local);
    ev->b = AddrText(remote);
    ev->bPort = AddrPort(remote);
    return Post(std::move(ev));
  }

  bool OnProbe(const std::string& connection, const uint8_t* pkt, size_t len,
               uint64_t monotonicNs) override {
    auto ev = std::make_unique<Event>();
    ev->kind = Event::kProbe;
    ev->data.assign(pkt, pkt + len);
    ev->a = connection;
    ev->ns = monotonicNs;
    return Post(std::move(ev));
  }

  bool OnPeerMoved(uint32_t spiIn, const sockaddr* from) override {
    if (!wantMoved) return true;  // nobody listens: nothing to queue, nothing lost
    auto ev = std::make_unique<Event>();
    ev->kind = Event::kMoved;
    ev->spi = spiIn;
    ev->a = AddrText(from);
    ev->aPort = AddrPort(from);
    return Post(std::move(ev));
  }

  bool OnSaLimit(uint32_t spiIn, bool hard) override {
    if (!wantLimit) return true;
    auto ev = std::make_unique<Event>();
    ev->kind = Event::kLimit;
    ev->spi = spiIn;
    ev->hard = hard;
    return Post(std::move(ev));
  }

 private:
  bool Post(std::unique_ptr<Event> ev) {
    // Non-blocking: napi_queue_full (or a closing function) drops the event.
    if (tsfn.NonBlockingCall(ev.get()) != napi_ok) return false;
    ev.release();
    return true;
  }
};

// ---- the NativeEngine object ------------------------------------------------------------------

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod("sendIke", &EngineWrap::SendIke),
                        InstanceMethod("sendKeepalive", &EngineWrap::SendKeepalive),
                        InstanceMethod("installSa", &EngineWrap::InstallSa),
                        InstanceMethod("removeSa", &EngineWrap::RemoveSa),
                        InstanceMethod("activateSa", &EngineWrap::ActivateSa),
                        InstanceMethod("updateSa", &EngineWrap::UpdateSa),
                        InstanceMethod("setRoutes", &EngineWrap::SetRoutes),
                        InstanceMethod("counters", &EngineWrap::Counters),
                        InstanceMethod("drops", &EngineWrap::Drops),
                        InstanceMethod("controlCounters", &EngineWrap::ControlCounters),
                        InstanceMethod("injectProbe", &EngineWrap::InjectProbe),
                        InstanceMethod("watchProbe", &EngineWrap::WatchProbe),
                        InstanceMethod("markIkeSockets", &EngineWrap::MarkIkeSockets),
                        InstanceMethod("answerEcho", &EngineWrap::AnswerEcho),
                        InstanceMethod("addInterface", &EngineWrap::AddInterface),
                        InstanceMethod("setCarrier", &EngineWrap::SetCarrier),
                        InstanceMethod("close", &EngineWrap::Close)});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override { Shutdown(false); }

 private:
  bool Usable(Napi::Env env, const char* what) {
    if (engine_ && !engine_->closed()) return true;
    Napi::Error::New(env, std::string(what) + ": engine is closed").ThrowAsJavaScriptException();
    return false;
  }
  // Stops the engine; `release` gives the thread-safe function back (not at environment
  // teardown, where Node finalizes it itself).
  void Shutdown(bool release);
  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<EngineWrap*>(arg);
    self->hook_ = false;
    self->Shutdown(false);
  }

  Napi::Value SendIke(const Napi::CallbackInfo& info);
  Napi::Value SendKeepalive(const Napi::CallbackInfo& info);
  Napi::Value InstallSa(const Napi::CallbackInfo& info);
  Napi::Value RemoveSa(const Napi::CallbackInfo& info);
  Napi::Value ActivateSa(const Napi::CallbackInfo& info);
  Napi::Value UpdateSa(const Napi::CallbackInfo& info);
  Napi::Value SetRoutes(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Drops(const Napi::CallbackInfo& info);
  Napi::Value ControlCounters(const Napi::CallbackInfo& info);
  Napi::Value InjectProbe(const Napi::CallbackInfo& info);
  Napi::Value WatchProbe(const Napi::CallbackInfo& info);
  Napi::Value MarkIkeSockets(const Napi::CallbackInfo& info);
  Napi::Value AnswerEcho(const Napi::CallbackInfo& info);
  Napi::Value AddInterface(const Napi::CallbackInfo& info);
  Napi::Value SetCarrier(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  napi_env env_ = nullptr;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<Engine> engine_;
  bool tsfnLive_ = false;
  bool hook_ = false;
  bool referenced_ = false;
};

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (info.Length() < 1 || !info[0].IsObject()) {
    TypeErr(env, "createEngine(opts): opts must be an object");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  EngineOptions opts;
  double n;
  Napi::Function onIke, onProbe, onPeerMoved, onSaLimit;
  if (!GetString(env, o.Get("tunName"), "opts.tunName", &opts.tunName) ||
      !GetUint(env, o.Get("mtu"), "opts.mtu", 68, 65535, &n))
    return;
  opts.mtu = static_cast<int>(n);
  if (!GetUint(env, o.Get("nattPort"), "opts.nattPort", 1, 65535, &n)) return;
  opts.nattPort = static_cast<uint16_t>(n);
  if (!GetStrings(env, o.Get("localAddresses"), "opts.localAddresses", &opts.localAddresses) ||
      !GetFunction(env, o.Get("onIke"), "opts.onIke", &onIke) ||
      !GetFunction(env, o.Get("onProbe"), "opts.onProbe", &onProbe))
    return;
  // Optional { priority, dscp } for control traffic (engine.h, EngineOptions::ctlMark).
  Napi::Value qos = o.Get("qos");
  if (!qos.IsUndefined()) {
    if (!qos.IsObject()) {
      TypeErr(env, "opts.qos must be an object");
      return;
    }
    Napi::Object q = qos.As<Napi::Object>();
    double dscp;
    if (!GetUint(env, q.Get("priority"), "opts.qos.priority", 0, 4294967295.0, &n) ||
        !GetUint(env, q.Get("dscp"), "opts.qos.dscp", 0, 63, &dscp))
      return;
    opts.ctlMark.priority = static_cast<uint32_t>(n);
    opts.ctlMark.tos = static_cast<uint8_t>(static_cast<unsigned>(dscp) << 2);
  }
  Napi::Value moved = o.Get("onPeerMoved");
  if (!moved.IsUndefined() && !GetFunction(env, moved, "opts.onPeerMoved", &onPeerMoved)) return;
  Napi::Value limit = o.Get("onSaLimit");
  if (!limit.IsUndefined() && !GetFunction(env, limit, "opts.onSaLimit", &onSaLimit)) return;

  auto* cbs = new JsCallbacks();
  cbs->onIke = Napi::Persistent(onIke);
  cbs->onProbe = Napi::Persistent(onProbe);
  if (!onPeerMoved.IsEmpty()) cbs->onPeerMoved = Napi::Persistent(onPeerMoved);
  if (!onSaLimit.IsEmpty()) cbs->onSaLimit = Napi::Persistent(onSaLimit);
  sink_ = std::make_unique<Sink>();
  sink_->wantMoved = !onPeerMoved.IsEmpty();
  sink_->wantLimit = !onSaLimit.IsEmpty();
  // One "thread" (the RX thread's uses are covered by this reference until Shutdown releases
  // it); the finalizer frees the callbacks after the last queued event ran.
  sink_->tsfn = Tsfn::New(env, "twinsec-engine", kEventQueue, 1, cbs,
                          [](Napi::Env, void*, JsCallbacks* c) { delete c; });
  tsfnLive_ = true;

  EngineError err;
  engine_ = Engine::Create(opts, sink_.get(), &err);
  if (!engine_) {
    Shutdown(true);
    ThrowEngineError(env, "createEngine", err);
    return;
  }
  // Open engines stay reachable (like a listening socket) until close(), and are closed at
  // environment teardown so worker threads and the TUN never outlive the process's JS side.
  Ref();
  referenced_ = true;
  hook_ = napi_add_env_cleanup_hook(env, OnEnvCleanup, this) == napi_ok;
}

void EngineWrap::Shutdown(bool release) {
  if (engine_) engine_->Close();  // joins the packet threads: no more events after this
  if (release && tsfnLive_) sink_->tsfn.Release();
  tsfnLive_ = false;
  if (hook_) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  hook_ = false;
}

Napi::Value EngineWrap::SendIke(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string local, remote;
  double port;
  if (!GetString(env, info[0], "sendIke: local", &local) ||
      !GetString(env, info[1], "sendIke: remote", &remote) ||
      !GetUint(env, info[2], "sendIke: remotePort", 1, 65535, &port))
    return env.Undefined();
  if (!info[3].IsBuffer()) return ThrowType(env, "sendIke: data must be a Buffer");
  if (!Usable(env, "sendIke")) return env.Undefined();
  auto data = info[3].As<Napi::Buffer<uint8_t>>();
  EngineError err;
  if (!engine_->SendIke(local, remote, static_cast<uint16_t>(port), data.Data(), data.Length(),
                        &err))
    ThrowEngineError(env, "sendIke", err);
  return env.Undefined();
}

Napi::Value EngineWrap::MarkIkeSockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double port;
  if (!GetUint(env, info[0], "markIkeSockets: port", 1, 65535, &port) ||
      !Usable(env, "markIkeSockets"))
    return env.Undefined();
  return Napi::Number::New(env, engine_->MarkIkeSockets(static_cast<uint16_t>(port)));
}

Napi::Value EngineWrap::AnswerEcho(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> addresses;
  if (!GetStrings(env, info[0], "answerEcho: addresses", &addresses) || !Usable(env, "answerEcho"))
    return env.Undefined();
  if (!engine_->SetEchoAnswer(addresses)) return ThrowType(env, "answerEcho: not an IP address");
  return env.Undefined();
}

Napi::Value EngineWrap::AddInterface(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string connection, name;
  double mtu;
  if (!GetString(env, info[0], "addInterface: connection", &connection) ||
      !GetString(env, info[1], "addInterface: name", &name) ||
      !GetUint(env, info[2], "addInterface: mtu", 576, 65535, &mtu) || !Usable(env, "addInterface"))
    return env.Undefined();
  EngineError err;
  if (!engine_->AddInterface(connection, name, static_cast<int>(mtu), &err))
    ThrowEngineError(env, "addInterface", err);
  return env.Undefined();
}

Napi::Value EngineWrap::SetCarrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string connection;
  if (!GetString(env, info[0], "setCarrier: connection", &connection)) return env.Undefined();
  if (!info[1].IsBoolean()) return ThrowType(env, "setCarrier: up must be a boolean");
  bool ok = engine_ && engine_->SetCarrier(connection, info[1].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(env, ok);
}

Napi::Value EngineWrap::SendKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string local, remote;
  double port;
  if (!GetString(env, info[0], "sendKeepalive: local", &local) ||
      !GetString(env, info[1], "sendKeepalive: remote", &remote) ||
      !GetUint(env, info[2], "sendKeepalive: remotePort", 1, 65535, &port) ||
      !Usable(env, "sendKeepalive"))
    return env.Undefined();
  EngineError err;
  if (!engine_->SendKeepalive(local, remote, static_cast<uint16_t>(port), &err))
    ThrowEngineError(env, "sendKeepalive", err);
  return env.Undefined();
}

Napi::Value EngineWrap::InstallSa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SaConfig cfg;
  bool ok = ParseSa(env, info[0], &cfg);
  if (ok && Usable(env, "installSa")) {
    EngineError err;
    if (!engine_->InstallSa(&cfg, &err)) ThrowEngineError(env, "installSa", err);
  }
  // InstallSa wipes the key copies; on the early returns they are wiped here.
  for (auto* k : {&cfg.encrKeyIn, &cfg.encrKeyOut, &cfg.integKeyIn, &cfg.integKeyOut}) {
    volatile uint8_t* p = k->data();
    for (size_t i = 0; i < k->size(); i++) p[i] = 0;
  }
  return env.Undefined();
}

Napi::Value EngineWrap::RemoveSa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double spi;
  if (!GetUint(env, info[0], "removeSa: spiIn", 0, 4294967295.0, &spi) || !Usable(env, "removeSa"))
    return env.Undefined();
  engine_->RemoveSa(static_cast<uint32_t>(spi));
  return env.Undefined();
}

Napi::Value EngineWrap::ActivateSa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double spi;
  if (!GetUint(env, info[0], "activateSa: spiIn", 0, 4294967295.0, &spi) ||
      !Usable(env, "activateSa"))
    return env.Undefined();
  // An unknown spiIn is a no-op, like removeSa: the pair may have gone in a race with a delete.
  engine_->ActivateSa(static_cast<uint32_t>(spi));
  return env.Undefined();
}

Napi::Value EngineWrap::UpdateSa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double spi, localPort, remotePort;
  std::string local, remote;
  // localPort is checked like installSa's and, like it, not used: the engine sends from the
  // NAT-T socket of `local`, bound to opts.nattPort.
  if (!GetUint(env, info[0], "updateSa: spiIn", 0, 4294967295.0, &spi) ||
      !GetString(env, info[1], "updateSa: local", &local) ||
      !GetUint(env, info[2], "updateSa: localPort", 0, 65535, &localPort) ||
      !GetString(env, info[3], "updateSa: remote", &remote) ||
      !GetUint(env, info[4], "updateSa: remotePort", 0, 65535, &remotePort) ||
      !Usable(env, "updateSa"))
    return env.Undefined();
  EngineError err;
  switch (engine_->UpdateSa(static_cast<uint32_t>(spi), local, remote,
                            static_cast<uint16_t>(remotePort), &err)) {
    case Engine::Update::kDone:
      return Napi::Boolean::New(env, true);
    case Engine::Update::kNoSa:
      // Like removeSa and activateSa, not an error: the pair may have gone in a race with a
      // delete.
      return Napi::Boolean::New(env, false);
    case Engine::Update::kInvalid:
      break;
  }
  ThrowEngineError(env, "updateSa", err);
  return env.Undefined();
}

Napi::Value EngineWrap::SetRoutes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) return ThrowType(env, "setRoutes: routes must be an array");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<RouteSpec> routes;
  for (uint32_t i = 0; i < a.Length(); i++) {
    std::string at = "setRoutes: routes[" + std::to_string(i) + "]";
    Napi::Value v = a.Get(i);
    if (!v.IsObject()) return ThrowType(env, at + " must be an object");
    Napi::Object o = v.As<Napi::Object>();
    RouteSpec r;
    std::string dst;
    if (!GetString(env, o.Get("destination"), at + ".destination", &dst)) return env.Undefined();
    if (!ParsePrefix(dst, &r.destination))
      return ThrowType(env, at + ".destination: not a CIDR prefix: " + dst);
    if (!GetStrings(env, o.Get("connections"), at + ".connections", &r.connections))
      return env.Undefined();
    routes.push_back(std::move(r));
  }
  if (Usable(env, "setRoutes")) engine_->SetRoutes(std::move(routes));
  return env.Undefined();
}

Napi::Value EngineWrap::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double spi;
  if (!GetUint(env, info[0], "counters: spiIn", 0, 4294967295.0, &spi)) return env.Undefined();
  SaCounters c;
  if (!engine_ || !engine_->Counters(static_cast<uint32_t>(spi), &c)) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  // Doubles are exact up to 2^53 bytes: beyond any SA lifetime.
  o.Set("bytesIn", Napi::Number::New(env, double(c.bytesIn)));
  o.Set("bytesOut", Napi::Number::New(env, double(c.bytesOut)));
  o.Set("packetsIn", Napi::Number::New(env, double(c.packetsIn)));
  o.Set("packetsOut", Napi::Number::New(env, double(c.packetsOut)));
  return o;
}

Napi::Value EngineWrap::Drops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t d[size_t(Drop::kCount)] = {};
  if (engine_) engine_->Drops(d);
  Napi::Object o = Napi::Object::New(env);
  // The names are esp.cc's (DropName), the keys of engine-api.ts's DropReason.
  for (size_t i = 1; i < size_t(Drop::kCount); i++)
    o.Set(DropName(static_cast<Drop>(i)), Napi::Number::New(env, double(d[i])));
  return o;
}

Napi::Value EngineWrap::ControlCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t c[size_t(Ctl::kCount)] = {};
  if (engine_) engine_->ControlCounters(c);
  Napi::Object o = Napi::Object::New(env);
  // The keys of engine-api.ts's ControlCounters, in Ctl's order.
  static const char* const kNames[] = {"probe", "echoAnswer", "echoReply", "routing", "unmarked"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == size_t(Ctl::kCount), "one name per kind");
  for (size_t i = 0; i < size_t(Ctl::kCount); i++)
    o.Set(kNames[i], Napi::Number::New(env, double(c[i])));
  return o;
}

Napi::Value EngineWrap::InjectProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string connection;
  if (!GetString(env, info[0], "injectProbe: connection", &connection)) return env.Undefined();
  if (!info[1].IsBuffer()) return ThrowType(env, "injectProbe: packet must be a Buffer");
  auto pkt = info[1].As<Napi::Buffer<uint8_t>>();
  if (pkt.Length() < 20 || pkt.Length() > 65535)
    return ThrowType(env, "injectProbe: packet must be an IP packet (20..65535 bytes)");
  if (!Usable(env, "injectProbe")) return env.Undefined();
  return Napi::Boolean::New(env, engine_->InjectProbe(connection, pkt.Data(), pkt.Length()));
}

Napi::Value EngineWrap::WatchProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double id;
  if (!GetUint(env, info[0], "watchProbe: icmpId", 0, 65535, &id)) return env.Undefined();
  if (!info[1].IsBoolean()) return ThrowType(env, "watchProbe: on must be a boolean");
  if (engine_) engine_->WatchProbe(static_cast<uint16_t>(id), info[1].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value EngineWrap::Close(const Napi::CallbackInfo& info) {
  Shutdown(true);
  if (referenced_) {
    referenced_ = false;
    Unref();
  }
  return info.Env().Undefined();
}

}  // namespace

Napi::Value CreateEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* data = env.GetInstanceData<AddonData>();
  if (info.Length() < 1 || !info[0].IsObject()) {
    TypeErr(env, "createEngine(opts): opts must be an object");
    return env.Undefined();
  }
  return data->engineCtor.New({info[0]});
}

void InitEngine(Napi::Env env, AddonData* data) {
  data->engineCtor = Napi::Persistent(EngineWrap::Define(env));
}

}  // namespace twinsec
