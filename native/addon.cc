// N-API entry point of twinsec's native data plane: the bare TUN helpers (openTun/closeTun) and
// the ESP engine (createEngine, napi_engine.cc).
#include <napi.h>
#include <string.h>

#include <string>

#include "napi_engine.h"
#include "tun.h"

namespace {

Napi::Value ThrowErrno(Napi::Env env, const std::string& what, int err) {
  std::string msg = what + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, "ERR_NATIVE"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// openTun(name: string, mtu: number): { fd: number, name: string }
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    return ThrowType(env, "openTun(name: string, mtu: number)");
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int mtu = info[1].As<Napi::Number>().Int32Value();
  twinsec::TunResult r = twinsec::OpenTun(name, mtu);
  if (r.fd < 0) return ThrowErrno(env, "openTun(" + name + ") " + r.step, r.err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, r.fd));
  out.Set("name", Napi::String::New(env, r.name));
  return out;
}

// closeTun(fd: number): void
Napi::Value CloseTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "closeTun(fd: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int err = twinsec::CloseTun(fd);
  if (err != 0) return ThrowErrno(env, "closeTun", err);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openTun", Napi::Function::New(env, OpenTun, "openTun"));
  exports.Set("closeTun", Napi::Function::New(env, CloseTun, "closeTun"));
  auto* data = new twinsec::AddonData();
  env.SetInstanceData(data);  // freed by Node when the environment goes away
  twinsec::InitEngine(env, data);
  exports.Set("createEngine", Napi::Function::New(env, twinsec::CreateEngine, "createEngine"));
  return exports;
}

}  // namespace

NODE_API_MODULE(twinsec_native, Init)
