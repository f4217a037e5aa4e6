// Shared helpers for the kernel families: argument access, errors, the thread count.
// Every kernel is synchronous and writes into output buffers the JavaScript side allocated (from
// the backend's buffer pool), so no memory is allocated here per call.
#pragma once
#include <napi.h>
#include <cstdint>
#include <cstddef>
#include <string>

namespace rt {

// Threads used by the elementwise kernels (OpenMP) and by OpenBLAS; set by setThreads().
int Threads();

// Throws a JavaScript Error with the kernel's name; returns false so callers can `return`.
inline void Fail(const Napi::Env& env, const std::string& kernel, const std::string& msg) {
  Napi::Error::New(env, "native kernel " + kernel + ": " + msg).ThrowAsJavaScriptException();
}

// Typed-array argument access; on a wrong type the error names the kernel and the argument index.
template <typename T>
inline T* Arr(const Napi::CallbackInfo& info, size_t i, const char* kernel, size_t* len = nullptr) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray()) {
    Fail(env, kernel, "argument " + std::to_string(i) + " must be a typed array");
    return nullptr;
  }
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  napi_typedarray_type want = std::is_same<T, float>::value ? napi_float32_array
                              : std::is_same<T, int32_t>::value ? napi_int32_array
                              : std::is_same<T, double>::value ? napi_float64_array
                              : napi_uint8_array;
  if (ta.TypedArrayType() != want) {
    Fail(env, kernel, "argument " + std::to_string(i) + " has the wrong element type");
    return nullptr;
  }
  if (len) *len = ta.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

inline int64_t Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
inline double Num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline bool Bool(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

// Registration hooks, one per kernel family file.
void InitMatmul(Napi::Env env, Napi::Object exports);
void InitElementwise(Napi::Env env, Napi::Object exports);
void InitAttention(Napi::Env env, Napi::Object exports);
void InitNorms(Napi::Env env, Napi::Object exports);
void InitActivations(Napi::Env env, Napi::Object exports);
void InitLoss(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitCollective(Napi::Env env, Napi::Object exports);

}  // namespace rt
