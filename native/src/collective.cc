// The ring all-reduce's per-byte kernels (src/collective/codecs.ts is the JavaScript twin and the
// fallback): fp32 accumulate, and bf16 / fp16 encode / decode / accumulate / round trip. Plain loops that
// GCC auto-vectorises at -O3 for the -march in binding.gyp (8 floats per AVX2 instruction); the
// results are bit-identical to the JavaScript path:
//   fp32 add: one IEEE float32 add per element, the same as V8's float64 add rounded to float32
//             (double rounding is exact for + when 53 >= 2 * 24 + 2, Figueroa 1995).
//   bf16:     bits(x) -> (bits + 0x7fff + lsb) >> 16, round to nearest even; a NaN keeps its top bits
//             and is made quiet (| 0x40), so it never rounds into Inf.
//   fp16:     a self-describing message: int32 little-endian exponent e, then n IEEE binary16 values
//             h_i = f16(x_i * 2^-e), round to nearest even with subnormals; x_i ~ f32(h_i) * 2^e.
//             e puts the message's largest finite |x| (rounded to 11 bits) in f16's top binade
//             [2^15, 65504], so a finite value never overflows and re-encoding decoded values gives
//             the same bits (the all-gather forwards them). See src/collective/fp16.ts for the bound.
//             Conversions by F16C (VCVTPS2PH / VCVTPH2PS, 8 values per instruction, x86-64-v3 has
//             them), written as intrinsics: GCC does not vectorise the bit-twiddling fallback.
// Shapes: every kernel takes n elements; byte views (the received payload) may be any typed array and
// are checked against n. Single-threaded on purpose: the ring already runs one process per rank and
// each message is ~1 MiB, so OpenMP's fork/join would cost more than it saves on 2 cores.
#include "common.h"
#include <cmath>
#include <cstring>
#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define RT_F16C 1
#endif

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


// ---- fp16 with a per-message power-of-two scale -------------------------------------------------

inline uint32_t BitsOf(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float FloatOf(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// float32 -> binary16 bits, round to nearest even with subnormals; Inf stays Inf; a NaN stays a quiet
// NaN with its sign and top payload bits. Callers have scaled finite values to |x| <= 65504.
// With F16C (part of x86-64-v3) this is the hardware conversion (VCVTPS2PH, rounding mode in the
// instruction, never flushes subnormals); elsewhere F. Giesen's float_to_half_fast3_rtne, same bits.
inline uint16_t ToF16(float x) {
#ifdef RT_F16C
  return _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  uint32_t u = BitsOf(x);
  uint32_t sign = u & 0x80000000u;
  uint32_t a = u ^ sign;
  uint32_t o;
  if (a >= 0x47800000u) {
    o = a > 0x7f800000u ? 0x7e00u | ((a >> 13) & 0x3ffu) : 0x7c00u;
  } else if (a < 0x38800000u) {
    // Below 2^-14 the result is an f16 subnormal, a multiple of 2^-24: adding 0.5f (ulp 2^-24)
    // rounds to that grid in round-to-nearest-even and leaves the multiple in the low mantissa bits.
    o = BitsOf(FloatOf(a) + 0.5f) - 0x3f000000u;
  } else {
    o = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;  // rebias 127 -> 15, round, drop 13 bits
  }
  return static_cast<uint16_t>((sign >> 16) | o);
#endif
}

// binary16 bits -> float32, exact (VCVTPH2PS with F16C; else the 15 magnitude bits moved to float32's
// position and scaled by 2^112, exponent 31 mapped to 255).
inline float FromF16(uint16_t h) {
#ifdef RT_F16C
  return _cvtsh_ss(h);
#else
  uint32_t mag = static_cast<uint32_t>(h & 0x7fffu) << 13;
  uint32_t bits = (h & 0x7c00u) == 0x7c00u ? (mag | 0x7f800000u) : BitsOf(FloatOf(mag) * 0x1p112f);
  return FloatOf(bits | (static_cast<uint32_t>(h & 0x8000u) << 16));
#endif
}

// The message exponent e: the largest finite |x| rounded to 11 significant bits has float32 exponent
// E (at least -126), and e = E - 15 maps it into [2^15, 2^16 - 2^5]. All zero / non-finite: e = 0.
int32_t F16Exponent(const uint32_t* __restrict u, size_t n) {
  uint32_t m = 0;
  size_t i = 0;
#ifdef RT_F16C
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  __m256i vm = _mm256_setzero_si256();
  for (; i + 8 <= n; i += 8) {
    __m256i a = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + i)), abs);
    vm = _mm256_max_epi32(vm, _mm256_and_si256(a, _mm256_cmpgt_epi32(inf, a)));  // non-finite -> 0
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vm);
  for (uint32_t l : lanes) m = l > m ? l : m;
#endif
  for (; i < n; i++) {
    uint32_t a = u[i] & 0x7fffffffu;
    a = a < 0x7f800000u ? a : 0u;
    m = a > m ? a : m;
  }
  if (m == 0) return 0;
  uint32_t r = (m + 0xfffu + ((m >> 13) & 1u)) >> 23;
  int32_t E = static_cast<int32_t>(r < 1 ? 1 : r) - 127;
  return E - 15;
}

// 2^k as a double (2^k may lie outside float32's range).
inline double Pow2(int32_t k) { return std::ldexp(1.0, k); }

// Encodes n values x into h with exponent e; when residual is non-null also residual[i] += x_i -
// decoded_i (the error this rank introduced, for error feedback).
void F16EncodeBody(const float* __restrict x, uint16_t* __restrict h, size_t n, int32_t e, float* __restrict residual) {
  if (e < -126 || e > 126) {
    // 2^-e or 2^e is no float32: the double products are exact and rounded once by the casts, as the
    // float32 multiplies below round once (the fast path gives the same bits where both apply).
    const double down = Pow2(-e), up = Pow2(e);
    for (size_t i = 0; i < n; i++) {
      uint16_t q = ToF16(static_cast<float>(x[i] * down));
      h[i] = q;
      if (residual) residual[i] += x[i] - static_cast<float>(FromF16(q) * up);
    }
    return;
  }
  const float down = FloatOf(static_cast<uint32_t>(127 - e) << 23);
  const float up = FloatOf(static_cast<uint32_t>(127 + e) << 23);
  size_t i = 0;
#ifdef RT_F16C
  const __m256 down8 = _mm256_set1_ps(down), up8 = _mm256_set1_ps(up);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m128i q = _mm256_cvtps_ph(_mm256_mul_ps(v, down8), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), q);
    if (residual) {
      __m256 err = _mm256_sub_ps(v, _mm256_mul_ps(_mm256_cvtph_ps(q), up8));
      _mm256_storeu_ps(residual + i, _mm256_add_ps(_mm256_loadu_ps(residual + i), err));
    }
  }
#endif
  for (; i < n; i++) {
    uint16_t q = ToF16(x[i] * down);
    h[i] = q;
    if (residual) residual[i] += x[i] - FromF16(q) * up;
  }
}

// Decodes n values with exponent e into dst (accumulate: dst += value, else dst = value).
template <bool kAccumulate>
void F16DecodeBody(const uint16_t* __restrict h, float* __restrict dst, size_t n, int32_t e) {
  if (e < -126 || e > 127) {
    const double up = Pow2(e);
    for (size_t i = 0; i < n; i++) {
      float v = static_cast<float>(FromF16(h[i]) * up);
      dst[i] = kAccumulate ? dst[i] + v : v;
    }
    return;
  }
  // 2^e is a normal float: one float32 multiply, rounded once like the double path above.
  const float up = FloatOf(static_cast<uint32_t>(127 + e) << 23);
  size_t i = 0;
#ifdef RT_F16C
  const __m256 up8 = _mm256_set1_ps(up);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))), up8);
    _mm256_storeu_ps(dst + i, kAccumulate ? _mm256_add_ps(_mm256_loadu_ps(dst + i), v) : v);
  }
#endif
  for (; i < n; i++) {
    float v = FromF16(h[i]) * up;
    dst[i] = kAccumulate ? dst[i] + v : v;
  }
}

int32_t ReadExponent(const uint8_t* p) {
  int32_t e;
  std::memcpy(&e, p, 4);
  return e;
}

// The optional residual argument at index i (undefined / null: none), checked to hold n floats.
bool Residual(const Napi::CallbackInfo& info, size_t i, const char* k, size_t n, float** out) {
  *out = nullptr;
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return true;
  uint8_t* p = Need(info, i, k, 4 * n);
  if (!p) return false;
  *out = reinterpret_cast<float*>(p);
  return true;
}

// ringF16Encode(src, dst, n, residual?): dst (4 + 2n bytes) = exponent e, then f16(src[i] * 2^-e).
Napi::Value F16Encode(const Napi::CallbackInfo& info) {
  const char* k = "ringF16Encode";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 4 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dst = Need(info, 1, k, 4 + 2 * n);
  if (!dst) return info.Env().Undefined();
  float* residual = nullptr;
  if (!Residual(info, 3, k, n, &residual)) return info.Env().Undefined();
  int32_t e = F16Exponent(reinterpret_cast<const uint32_t*>(src), n);
  std::memcpy(dst, &e, 4);
  F16EncodeBody(reinterpret_cast<const float*>(src), reinterpret_cast<uint16_t*>(dst + 4), n, e, residual);
  return info.Env().Undefined();
}

// ringF16Decode(src, dst, n): dst[i] = f16 value i of the message times 2^e.
// ringF16Accumulate(src, dst, n): dst[i] += the same (Acc).
template <bool Acc>
Napi::Value F16DecodeInto(const Napi::CallbackInfo& info) {
  const char* k = Acc ? "ringF16Accumulate" : "ringF16Decode";
  size_t n = 0;
  if (!Count(info, 2, k, &n)) return info.Env().Undefined();
  const uint8_t* src = Need(info, 0, k, 4 + 2 * n);
  if (!src) return info.Env().Undefined();
  uint8_t* dst = Need(info, 1, k, 4 * n);
  if (!dst) return info.Env().Undefined();
  F16DecodeBody<Acc>(reinterpret_cast<const uint16_t*>(src + 4), reinterpret_cast<float*>(dst), n, ReadExponent(src));
  return info.Env().Undefined();
}

// ringF16RoundTrip(values, n, residual?): values[i] = decode(encode(values))[i] in place, with the
// exponent encode would choose; residual[i] += old - new when given.
Napi::Value F16RoundTrip(const Napi::CallbackInfo& info) {
  const char* k = "ringF16RoundTrip";
  size_t n = 0;
  if (!Count(info, 1, k, &n)) return info.Env().Undefined();
  uint8_t* p = Need(info, 0, k, 4 * n);
  if (!p) return info.Env().Undefined();
  float* residual = nullptr;
  if (!Residual(info, 2, k, n, &residual)) return info.Env().Undefined();
  uint32_t* u = reinterpret_cast<uint32_t*>(p);
  float* x = reinterpret_cast<float*>(p);
  int32_t e = F16Exponent(u, n);
  // Blockwise through a stack buffer of f16 values, so the conversions stay the vectorised loops above.
  constexpr size_t kBlock = 2048;
  uint16_t h[kBlock];
  for (size_t b = 0; b < n; b += kBlock) {
    size_t m = n - b < kBlock ? n - b : kBlock;
    F16EncodeBody(x + b, h, m, e, residual ? residual + b : nullptr);
    F16DecodeBody<false>(h, x + b, m, e);
  }
  return info.Env().Undefined();
}

}  // namespace

void InitCollective(Napi::Env env, Napi::Object exports) {
  exports.Set("ringF32Accumulate", Napi::Function::New(env, F32Accumulate));
  exports.Set("ringBf16Encode", Napi::Function::New(env, Bf16Encode));
  exports.Set("ringBf16Decode", Napi::Function::New(env, Bf16Decode));
  exports.Set("ringBf16Accumulate", Napi::Function::New(env, Bf16Accumulate));
  exports.Set("ringBf16RoundTrip", Napi::Function::New(env, Bf16RoundTrip));
  exports.Set("ringF16Encode", Napi::Function::New(env, F16Encode));
  exports.Set("ringF16Decode", Napi::Function::New(env, F16DecodeInto<false>));
  exports.Set("ringF16Accumulate", Napi::Function::New(env, F16DecodeInto<true>));
  exports.Set("ringF16RoundTrip", Napi::Function::New(env, F16RoundTrip));
}

}  // namespace rt
