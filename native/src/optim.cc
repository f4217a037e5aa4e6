// Kernel family: optimizer over the flat float32 parameter buffer (src/optim/adamw.ts, src/optim/clip.ts).
//
// adamw        params, grads, m, v (n) float32, decay (n) uint8; updated in place:
//              AdamW (Loshchilov & Hutter 2019, as torch.optim.AdamW)
//                p <- decay ? p (1 - lr wd) : p
//                m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//                p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// sumSquares   grads (n) -> sum g^2 in double, in the fixed chunk/lane order of clip.ts (see there)
// scaleInPlace grads (n) *= s, each product rounded to float32 like the JS loop
//
// Bit-identity with the JavaScript loops is the contract (replicas with and without the addon must
// agree): every value is computed in double with the same operations in the same order as the JS code
// and rounded to float32 only where JS stores into a Float32Array. The moments feed the update with
// their UNROUNDED double values, because in JS `const mi = (m[i] = expr)` is the value of expr.
// Fused multiply-add would change roundings, so contraction is off for this file; no-trapping-math only
// lets GCC if-convert the decay select so the loop vectorises (it changes no rounding).
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#include "common.h"
#include <cmath>
#include <cstdint>
#include <vector>

namespace rt {

// adamw(params, grads, m, v, decay, b1, b2, eps, stepSize, sqrtBc2, decayFactor)
static Napi::Value AdamW(const Napi::CallbackInfo& info) {
  const char* k = "adamw";
  size_t lp, lg, lm, lv, ld;
  float* p = Arr<float>(info, 0, k, &lp);
  const float* g = p ? Arr<float>(info, 1, k, &lg) : nullptr;
  float* m = g ? Arr<float>(info, 2, k, &lm) : nullptr;
  float* v = m ? Arr<float>(info, 3, k, &lv) : nullptr;
  const uint8_t* decay = v ? Arr<uint8_t>(info, 4, k, &ld) : nullptr;
  if (!decay) return info.Env().Undefined();
  if (lg != lp || lm != lp || lv != lp || ld != lp) {
    Fail(info.Env(), k, "params, grads, m, v and decay must have the same length, got " + std::to_string(lp) + ", " +
                            std::to_string(lg) + ", " + std::to_string(lm) + ", " + std::to_string(lv) + ", " + std::to_string(ld));
    return info.Env().Undefined();
  }
  const double b1 = Num(info, 5), b2 = Num(info, 6), eps = Num(info, 7);
  const double stepSize = Num(info, 8), sqrtBc2 = Num(info, 9), decayFactor = Num(info, 10);
  const double omb1 = 1 - b1, omb2 = 1 - b2;
  const int64_t n = static_cast<int64_t>(lp);
#pragma omp parallel for simd num_threads(Threads()) schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; i++) {
    const double gi = g[i];
    // x * 1.0 == x exactly, so a select of the factor keeps the JS branch's bits and lets the loop vectorise.
    const double pi = static_cast<double>(p[i]) * (decay[i] ? decayFactor : 1.0);
    const double mi = b1 * static_cast<double>(m[i]) + omb1 * gi;
    const double vi = b2 * static_cast<double>(v[i]) + omb2 * gi * gi;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    p[i] = static_cast<float>(pi - (stepSize * mi) / (std::sqrt(vi) / sqrtBc2 + eps));
  }
  return info.Env().Undefined();
}

// Must match SUM_SQUARES_CHUNK in src/optim/clip.ts.
static const int64_t kChunk = 4096;

// sumSquares(grads) -> number
static Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  size_t len;
  const float* g = Arr<float>(info, 0, "sumSquares", &len);
  if (!g) return info.Env().Undefined();
  const int64_t n = static_cast<int64_t>(len), chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks);
  // g*g is exact in double (24-bit mantissas), so fused or not every lane sum rounds identically.
#pragma omp parallel for num_threads(Threads()) schedule(static) if (n > (1 << 18))
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t b = c * kChunk, e = b + kChunk < n ? b + kChunk : n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = b;
    for (; i + 4 <= e; i += 4) {
      const double a0 = g[i], a1 = g[i + 1], a2 = g[i + 2], a3 = g[i + 3];
      s0 += a0 * a0;
      s1 += a1 * a1;
      s2 += a2 * a2;
      s3 += a3 * a3;
    }
    if (i < e) s0 += static_cast<double>(g[i]) * g[i];
    if (i + 1 < e) s1 += static_cast<double>(g[i + 1]) * g[i + 1];
    if (i + 2 < e) s2 += static_cast<double>(g[i + 2]) * g[i + 2];
    partial[c] = (s0 + s1) + (s2 + s3);
  }
  double total = 0;
  for (int64_t c = 0; c < chunks; c++) total += partial[c];
  return Napi::Number::New(info.Env(), total);
}

// scaleInPlace(grads, s)
static Napi::Value ScaleInPlace(const Napi::CallbackInfo& info) {
  size_t len;
  float* g = Arr<float>(info, 0, "scaleInPlace", &len);
  if (!g) return info.Env().Undefined();
  const double s = Num(info, 1);
  const int64_t n = static_cast<int64_t>(len);
#pragma omp parallel for simd num_threads(Threads()) schedule(static) if (n > (1 << 18))
  for (int64_t i = 0; i < n; i++) g[i] = static_cast<float>(static_cast<double>(g[i]) * s);
  return info.Env().Undefined();
}

// addInto(dst, src): dst += src, for accumulating micro-batch gradient sums. A float add equals
// JavaScript's double add rounded to float32 (double rounding is innocuous for p' >= 2p + 2).
static Napi::Value AddInto(const Napi::CallbackInfo& info) {
  size_t nd, ns;
  float* d = Arr<float>(info, 0, "addInto", &nd);
  const float* src = Arr<float>(info, 1, "addInto", &ns);
  if (!d || !src) return info.Env().Undefined();
  if (nd != ns) { Fail(info.Env(), "addInto", "lengths differ: " + std::to_string(nd) + " and " + std::to_string(ns)); return info.Env().Undefined(); }
  const int64_t n = static_cast<int64_t>(nd);
#pragma omp parallel for simd num_threads(Threads()) schedule(static) if (n > (1 << 18))
  for (int64_t i = 0; i < n; i++) d[i] += src[i];
  return info.Env().Undefined();
}

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("addInto", Napi::Function::New(env, AddInto));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("scaleInPlace", Napi::Function::New(env, ScaleInPlace));
}

}  // namespace rt
