// Argument checks for the JavaScript face of the ESP engine (napi_engine.cc). Each Get* returns
// false after throwing a TypeError that names the field when the value does not fit; the caller
// then returns to JavaScript at once.
#ifndef TWINSEC_NAPI_ARGS_H_
#define TWINSEC_NAPI_ARGS_H_

#include <napi.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "engine.h"

namespace twinsec {

// Throws a TypeError; false / undefined, to return at once.
bool TypeErr(Napi::Env env, const std::string& msg);
Napi::Value ThrowType(Napi::Env env, const std::string& msg);

// An EngineError as a TypeError (err 0: a bad argument) or an Error carrying `errno` and code
// ERR_NATIVE.
void ThrowEngineError(Napi::Env env, const std::string& what, const EngineError& e);

bool GetString(Napi::Env env, Napi::Value v, const std::string& name, std::string* out);
// An integer number in [min, max].
bool GetUint(Napi::Env env, Napi::Value v, const std::string& name, double min, double max,
             double* out);
// A copy of a Buffer's bytes; with `nullable`, null or undefined gives an empty vector.
bool GetBytes(Napi::Env env, Napi::Value v, const std::string& name, bool nullable,
              std::vector<uint8_t>* out);
bool GetStrings(Napi::Env env, Napi::Value v, const std::string& name,
                std::vector<std::string>* out);
// An array of CIDR strings (ParsePrefix).
bool GetPrefixes(Napi::Env env, Napi::Value v, const std::string& name, std::vector<Prefix>* out);
bool GetFunction(Napi::Env env, Napi::Value v, const std::string& name, Napi::Function* out);

// installSa's argument (engine-api.ts EngineSa) into *c.
bool ParseSa(Napi::Env env, Napi::Value v, SaConfig* c);

}  // namespace twinsec

#endif  // TWINSEC_NAPI_ARGS_H_
