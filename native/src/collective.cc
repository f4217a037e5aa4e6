// The ring all-reduce's per-byte kernels (src/collective/codecs.ts is the JavaScript twin and the
// fallback): fp32 accumulate, and bf16 encode / decode / accumulate / round trip. Plain loops that
// GCC auto-vectorises at -O3 for the -march in binding.gyp (8 floats per AVX2 instruction); the
// results are bit-identical to the JavaScript path:
//   fp32 add: one IEEE float32 add per element, the same as V8's float64 add rounded to float32
//             (double rounding is exact for + when 53 >= 2 * 24 + 2, Figueroa 1995).
//   bf16:     bits(x) -> (bits + 0x7fff + lsb) >> 16, round to nearest even; a NaN keeps its top bits
//             and is made quiet (| 0x40), so it never rounds into Inf.
// Shapes: every kernel takes n elements; byte views (the received payload) may be any typed array and
// are checked against n. Single-threaded on purpose: the ring already runs one process per rank and
// each message is ~1 MiB, so OpenMP's fork/join would cost more than it saves on 2 cores.
#include "common.h"
#include <cstring>

namespace rt {

namespace {

// Any typed array as bytes: (pointer, byte length). The payload arrives as a Uint8Array view of a
// receive slot, the gradient as a Float32Array; both are just memory here.
uint8_t* Bytes(const Napi::CallbackInfo& info, size_t i, const char* kernel, size_t* bytes) {
  if (i >= info.Length() || !info[i].IsTypedArray()) {
    Fail(info.Env(), kernel, "argument " + std::to_string(i) + " must be a typed array");
    return nullptr;
  }
  // napi_get_typedarray_info's data pointer is right for views of a SharedArrayBuffer too (a ring run
  // in a worker thread); Napi::TypedArray::ArrayBuffer() would reject those.
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  void* data = nullptr;
  if (napi_get_typedarray_info(info.Env(), ta, nullptr, nullptr, &data, nullptr, nullptr) != napi_ok) {
    Fail(info.Env(), kernel, "argument " + std::to_string(i) + ": cannot read the typed array");
    return nullptr;
  }
  *bytes = ta.ByteLength();
  return static_cast<uint8_t*>(data);
}

// Checks that argument i holds at least `need` bytes; returns its memory or nullptr (exception set).
uint8_t* Need(const Napi::CallbackInfo& info, size_t i, const char* kernel, size_t need) {
  size_t have = 0;
  uint8_t* p = Bytes(info, i, kernel, &have);
  if (p && have < need) {
    Fail(info.Env(), kernel, "argument " + std::to_string(i) + " holds " + std::to_string(have) + " bytes, " +
                                 std::to_string(need) + " needed");
    return nullptr;
  }
  return p;
}

// The element count argument; a negative or non-integer count throws (returns false).
bool Count(const Napi::CallbackInfo& info, size_t i, const char* kernel, size_t* n) {
  if (i >= info.Length() || !info[i].IsNumber() || info[i].As<Napi::Number>().DoubleValue() < 0) {
    Fail(info.Env(), kernel, "argument " + std::to_string(i) + " must be a non-negative element count");
    return false;
  }
  *n = static_cast<size_t>(Int(info, i));
  return true;
}

// float32 bits -> bf16 bits, round to nearest even; NaN -> quiet NaN with the same sign and top bits.
inline uint16_t ToBf16(uint32_t u) {
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  uint32_t nan = (u >> 16) | 0x0040u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// ringF32Accumulate(src, dst, n): dst[i] += src[i] as float32, i < n. src: the payload bytes.
Napi::Value F32Accumulate(const Napi::CallbackInfo& info) {
  const char* k = "ringF32Accumulate";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 4 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dstb = Need(info, 1, k, 4 * n);
  if (!dstb) return info.Env().Undefined();
  float* __restrict dst = reinterpret_cast<float*>(dstb);
  const float* __restrict s = reinterpret_cast<const float*>(src);
  for (size_t i = 0; i < n; i++) dst[i] += s[i];
  return info.Env().Undefined();
}

// ringBf16Encode(src, dst, n): dst (2n bytes) = bf16(src[i]).
Napi::Value Bf16Encode(const Napi::CallbackInfo& info) {
  const char* k = "ringBf16Encode";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 4 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dst = Need(info, 1, k, 2 * n);
  if (!dst) return info.Env().Undefined();
  const uint32_t* __restrict u = reinterpret_cast<const uint32_t*>(src);
  uint16_t* __restrict h = reinterpret_cast<uint16_t*>(dst);
  for (size_t i = 0; i < n; i++) h[i] = ToBf16(u[i]);
  return info.Env().Undefined();
}

// ringBf16Decode(src, dst, n): dst[i] = float32 with bits src[i] << 16.
Napi::Value Bf16Decode(const Napi::CallbackInfo& info) {
  const char* k = "ringBf16Decode";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 2 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dst = Need(info, 1, k, 4 * n);
  if (!dst) return info.Env().Undefined();
  const uint16_t* __restrict h = reinterpret_cast<const uint16_t*>(src);
  uint32_t* __restrict u = reinterpret_cast<uint32_t*>(dst);
  for (size_t i = 0; i < n; i++) u[i] = static_cast<uint32_t>(h[i]) << 16;
  return info.Env().Undefined();
}

// ringBf16Accumulate(src, dst, n): dst[i] += float32(src[i] << 16).
Napi::Value Bf16Accumulate(const Napi::CallbackInfo& info) {
  const char* k = "ringBf16Accumulate";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 2 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dstb = Need(info, 1, k, 4 * n);
  if (!dstb) return info.Env().Undefined();
  const uint16_t* __restrict h = reinterpret_cast<const uint16_t*>(src);
  float* __restrict dst = reinterpret_cast<float*>(dstb);
  for (size_t i = 0; i < n; i++) {
    uint32_t u = static_cast<uint32_t>(h[i]) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    dst[i] += v;
  }
  return info.Env().Undefined();
}

// ringBf16RoundTrip(values, n): values[i] = decode(encode(values[i])) in place.
Napi::Value Bf16RoundTrip(const Napi::CallbackInfo& info) {
  const char* k = "ringBf16RoundTrip";
  size_t n = 0;
  if (!Count(info, 1, k, &n)) return info.Env().Undefined();
  uint8_t* p = Need(info, 0, k, 4 * n);
  if (!p) return info.Env().Undefined();
  uint32_t* __restrict u = reinterpret_cast<uint32_t*>(p);
  for (size_t i = 0; i < n; i++) u[i] = static_cast<uint32_t>(ToBf16(u[i])) << 16;
  return info.Env().Undefined();
}

}  // namespace

void InitCollective(Napi::Env env, Napi::Object exports) {
  exports.Set("ringF32Accumulate", Napi::Function::New(env, F32Accumulate));
  exports.Set("ringBf16Encode", Napi::Function::New(env, Bf16Encode));
  exports.Set("ringBf16Decode", Napi::Function::New(env, Bf16Decode));
  exports.Set("ringBf16Accumulate", Napi::Function::New(env, Bf16Accumulate));
  exports.Set("ringBf16RoundTrip", Napi::Function::New(env, Bf16RoundTrip));
}

}  // namespace rt
