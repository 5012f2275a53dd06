// Argument checks for the JavaScript face of the ESP engine (napi_args.h).
#include "napi_args.h"

#include <string.h>

#include <cmath>

namespace twinsec {

bool TypeErr(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  TypeErr(env, msg);
  return env.Undefined();
}

void ThrowEngineError(Napi::Env env, const std::string& what, const EngineError& e) {
  if (e.err == 0) {
    TypeErr(env, what + ": " + e.message);
    return;
  }
  Napi::Error err = Napi::Error::New(env, what + ": " + e.message + ": " + strerror(e.err));
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("code", Napi::String::New(env, "ERR_NATIVE"));
  err.ThrowAsJavaScriptException();
}

bool GetString(Napi::Env env, Napi::Value v, const std::string& name, std::string* out) {
  if (!v.IsString()) return TypeErr(env, name + " must be a string");
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool GetUint(Napi::Env env, Napi::Value v, const std::string& name, double min, double max,
             double* out) {
  if (!v.IsNumber()) return TypeErr(env, name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < min || d > max) {
    return TypeErr(env, name + " must be an integer in " + std::to_string(uint64_t(min)) + ".." +
                            std::to_string(uint64_t(max)));
  }
  *out = d;
  return true;
}

bool GetBytes(Napi::Env env, Napi::Value v, const std::string& name, bool nullable,
              std::vector<uint8_t>* out) {
  out->clear();
  if (nullable && (v.IsNull() || v.IsUndefined())) return true;
  if (!v.IsBuffer())
    return TypeErr(env, name + (nullable ? " must be a Buffer or null" : " must be a Buffer"));
  auto b = v.As<Napi::Buffer<uint8_t>>();
  out->assign(b.Data(), b.Data() + b.Length());
  return true;
}

bool GetStrings(Napi::Env env, Napi::Value v, const std::string& name,
                std::vector<std::string>* out) {
  if (!v.IsArray()) return TypeErr(env, name + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    std::string s;
    if (!GetString(env, a.Get(i), name + "[" + std::to_string(i) + "]", &s)) return false;
    out->push_back(std::move(s));
  }
  return true;
}

bool GetPrefixes(Napi::Env env, Napi::Value v, const std::string& name, std::vector<Prefix>* out) {
  std::vector<std::string> cidrs;
  if (!GetStrings(env, v, name, &cidrs)) return false;
  for (const std::string& c : cidrs) {
    Prefix p;
    if (!ParsePrefix(c, &p)) return TypeErr(env, name + ": not a CIDR prefix: " + c);
    out->push_back(p);
  }
  return true;
}

bool GetFunction(Napi::Env env, Napi::Value v, const std::string& name, Napi::Function* out) {
  if (!v.IsFunction()) return TypeErr(env, name + " must be a function");
  *out = v.As<Napi::Function>();
  return true;
}

bool ParseSa(Napi::Env env, Napi::Value v, SaConfig* c) {
  if (!v.IsObject()) return TypeErr(env, "installSa(sa): sa must be an object");
  Napi::Object o = v.As<Napi::Object>();
  double n;
  std::string encap;
  if (!GetString(env, o.Get("connection"), "sa.connection", &c->connection)) return false;
  if (!GetUint(env, o.Get("spiIn"), "sa.spiIn", 1, 4294967295.0, &n)) return false;
  c->spiIn = static_cast<uint32_t>(n);
  if (!GetUint(env, o.Get("spiOut"), "sa.spiOut", 1, 4294967295.0, &n)) return false;
  c->spiOut = static_cast<uint32_t>(n);
  if (!GetString(env, o.Get("encr"), "sa.encr", &c->encr)) return false;
  Napi::Value integ = o.Get("integ");
  if (!integ.IsNull() && !integ.IsUndefined() && !GetString(env, integ, "sa.integ", &c->integ))
    return false;
  if (!GetBytes(env, o.Get("encrKeyIn"), "sa.encrKeyIn", false, &c->encrKeyIn) ||
      !GetBytes(env, o.Get("encrKeyOut"), "sa.encrKeyOut", false, &c->encrKeyOut) ||
      !GetBytes(env, o.Get("integKeyIn"), "sa.integKeyIn", true, &c->integKeyIn) ||
      !GetBytes(env, o.Get("integKeyOut"), "sa.integKeyOut", true, &c->integKeyOut))
    return false;
  Napi::Value esn = o.Get("esn");
  if (!esn.IsBoolean()) return TypeErr(env, "sa.esn must be a boolean");
  c->esn = esn.As<Napi::Boolean>().Value();
  if (!GetString(env, o.Get("encapsulation"), "sa.encapsulation", &encap)) return false;
  if (encap != "udp" && encap != "esp")
    return TypeErr(env, "sa.encapsulation must be 'udp' or 'esp'");
  c->udp = encap == "udp";
  if (!GetString(env, o.Get("local"), "sa.local", &c->local) ||
      !GetString(env, o.Get("remote"), "sa.remote", &c->remote))
    return false;
  if (!GetUint(env, o.Get("localPort"), "sa.localPort", 0, 65535, &n)) return false;
  c->localPort = static_cast<uint16_t>(n);
  if (!GetUint(env, o.Get("remotePort"), "sa.remotePort", c->udp ? 1 : 0, 65535, &n)) return false;
  c->remotePort = static_cast<uint16_t>(n);
  Napi::Value activate = o.Get("activate");
  if (!activate.IsUndefined()) {
    if (!activate.IsBoolean()) return TypeErr(env, "sa.activate must be a boolean");
    c->activate = activate.As<Napi::Boolean>().Value();
  }
  // sa.selectorRoutes (optional, default false): the tsRemote prefixes become forwarding entries.
  Napi::Value selectorRoutes = o.Get("selectorRoutes");
  if (!selectorRoutes.IsUndefined()) {
    if (!selectorRoutes.IsBoolean()) return TypeErr(env, "sa.selectorRoutes must be a boolean");
    c->selectorRoutes = selectorRoutes.As<Napi::Boolean>().Value();
  }
  // sa.limits (optional): packet and byte limits, 0 or absent = none (sa_limits.h). Integers up to
  // 2^53, which is beyond any SA's life.
  Napi::Value limits = o.Get("limits");
  if (!limits.IsUndefined() && !limits.IsNull()) {
    if (!limits.IsObject()) return TypeErr(env, "sa.limits must be an object");
    Napi::Object l = limits.As<Napi::Object>();
    const struct {
      const char* key;
      uint64_t* to;
    } fields[] = {{"softPackets", &c->limits.softPackets},
                  {"hardPackets", &c->limits.hardPackets},
                  {"softBytes", &c->limits.softBytes},
                  {"hardBytes", &c->limits.hardBytes}};
    for (const auto& f : fields) {
      Napi::Value x = l.Get(f.key);
      if (x.IsUndefined()) continue;
      if (!GetUint(env, x, std::string("sa.limits.") + f.key, 0, 9007199254740991.0, &n))
        return false;
      *f.to = static_cast<uint64_t>(n);
    }
  }
  return GetPrefixes(env, o.Get("tsLocal"), "sa.tsLocal", &c->tsLocal) &&
         GetPrefixes(env, o.Get("tsRemote"), "sa.tsRemote", &c->tsRemote);
}

}  // namespace twinsec
