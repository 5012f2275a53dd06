// N-API binding of the ESP engine (napi_engine.cc): createEngine(opts) -> NativeEngine.
#ifndef TWINSEC_NAPI_ENGINE_H_
#define TWINSEC_NAPI_ENGINE_H_

#include <napi.h>

namespace twinsec {

// Per-environment state of the addon (Node worker threads each get their own).
struct AddonData {
  Napi::FunctionReference engineCtor;
};

// Registers the NativeEngine class in `data`; createEngine uses it.
void InitEngine(Napi::Env env, AddonData* data);

// createEngine(opts: EngineOptions): NativeEngine
Napi::Value CreateEngine(const Napi::CallbackInfo& info);

}  // namespace twinsec

#endif  // TWINSEC_NAPI_ENGINE_H_
