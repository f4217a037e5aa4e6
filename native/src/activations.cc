// Kernel family: elementwise activations, forward and backward side by side. All are flat over n elements.
//
// geluTanh      y = 0.5 x (1 + tanh(z)),  z = c (x + a x^3),  c = sqrt(2/pi), a = 0.044715
//               (HF ACT2FN["gelu_new"], GPT-2).  Computed as y = x * s with s = sigmoid(2z) = (1 + tanh z) / 2,
//               which is the same function without the cancellation of 1 + tanh(z) for negative x.
// geluTanhGrad  dx = dy * (s + 2 x s (1 - s) c (1 + 3 a x^2))      [0.5 (1 - tanh^2 z) = 2 s (1 - s)]
// geluErf       y = 0.5 x (1 + erf(x / sqrt 2)) = x Phi(x)    (HF "gelu", BERT; torch.nn.GELU())
//               evaluated as 0.5 x erfc(-x / sqrt 2), again to avoid cancellation for negative x.
// geluErfGrad   dx = dy * (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// silu          y = x s,  s = sigmoid(x)                    (HF "silu", torch.nn.SiLU)
// siluGrad      dx = dy * s (1 + x (1 - s))
// swiGlu        y = silu(g) u                               (Llama MLP: act_fn(gate_proj(h)) * up_proj(h))
// swiGluGrad    dg = dy u s (1 + g (1 - s)),  du = dy silu(g)
//
// Transcendentals: std::exp/tanh/erf are scalar libm calls here (vectorised libmvec needs -ffast-math),
// so exp is a Cephes-style polynomial (max rel. error ~2 ulp, https://www.netlib.org/cephes/ expf.c)
// written in plain arithmetic the compiler vectorises, and erfc is Numerical Recipes' erfcc (Chebyshev fit,
// fractional error < 1.2e-7 everywhere; Press et al., Numerical Recipes in C, 2nd ed., 6.2) on top of it.
// Backwards recompute s / Phi from the saved input instead of saving them: one (N, dFF) tensor less.
// The loops below are only vectorised when float compares are not assumed to trap: otherwise gcc will not
// if-convert the clamps and selects (and fmin/fmax do not map to vminps/vmaxps). We never read the FP
// exception flags, so this changes no result. It must precede the includes so that every function in this
// translation unit (and the OpenMP outlined bodies) carries the same options and inlines.
#pragma GCC optimize("no-trapping-math")
#include "common.h"
#include <cmath>
#include <cstdint>
#include <cstring>

namespace rt {

namespace {

// Elementwise work below this stays on one thread (an OpenMP region costs a few microseconds).
constexpr int64_t kParallelWork = 1 << 16;
constexpr int64_t kBlock = 4096;

inline float BitsToFloat(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// NaN passes through (compares are false).
inline float Clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// e^x for x in [-150, 150] (clamped): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2].
// 2^n is applied as two factors so that results in the subnormal range and overflow to inf come out right.
inline float Exp(float x) {
  x = Clamp(x, -150.0f, 150.0f);
  float fn = x * 1.44269504088896341f;
  fn = (fn + 12582912.0f) - 12582912.0f;  // round to nearest integer (|fn| < 2^22)
  float r = std::fma(fn, -0.693359375f, x);
  r = std::fma(fn, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p * r, r, r) + 1.0f;
  const int32_t n = static_cast<int32_t>(fn);
  const int32_t n1 = n >> 1, n2 = n - n1;
  return p * BitsToFloat((n1 + 127) << 23) * BitsToFloat((n2 + 127) << 23);
}

// sigmoid(v) and e = exp(-v) with 1 - sigmoid(v) = e * sigmoid(v) without cancellation. The argument is
// clamped to +-88 so e stays finite (sigmoid(-88) ~ 6e-39 instead of ~6e-39 * e^-(|v|-88): a subnormal either way).
struct Sig {
  float s, one_minus_s;
};
inline Sig Sigmoid(float v) {
  v = Clamp(v, -88.0f, 88.0f);
  const float e = Exp(-v);
  const float s = 1.0f / (1.0f + e);
  return {s, e * s};
}

constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kA = 0.044715f;

// erfc(z), Numerical Recipes erfcc.
inline float Erfc(float z) {
  const float az = std::fabs(z);
  const float t = 1.0f / (1.0f + 0.5f * az);
  float p = 0.17087277f;
  p = std::fma(p, t, -0.82215223f);
  p = std::fma(p, t, 1.48851587f);
  p = std::fma(p, t, -1.13520398f);
  p = std::fma(p, t, 0.27886807f);
  p = std::fma(p, t, -0.18628806f);
  p = std::fma(p, t, 0.09678418f);
  p = std::fma(p, t, 0.37409196f);
  p = std::fma(p, t, 1.00002368f);
  p = std::fma(p, t, -1.26551223f);
  const float ans = t * Exp(p - az * az);
  return z >= 0.0f ? ans : 2.0f - ans;
}

constexpr float kRsqrt2 = 0.7071067811865476f;
constexpr float kRsqrt2Pi = 0.3989422804014327f;  // 1 / sqrt(2 pi)

// Runs body(begin, end) over [0, n) in blocks, on Threads() threads when n is large.
template <typename F>
inline void ForBlocks(int64_t n, F body) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads()) schedule(static) if (n > kParallelWork)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t lo = b * kBlock, hi = lo + kBlock < n ? lo + kBlock : n;
    body(lo, hi);
  }
}

bool SameLen(const Napi::CallbackInfo& info, const char* k, size_t n, std::initializer_list<size_t> lens) {
  for (size_t l : lens) {
    if (l != n) {
      Fail(info.Env(), k, "operands have " + std::to_string(l) + " and " + std::to_string(n) + " elements");
      return false;
    }
  }
  return true;
}

// Unary forward op(x, y): y[i] = f(x[i]).
template <typename F>
Napi::Value Unary(const Napi::CallbackInfo& info, const char* k, F f) {
  Napi::Env env = info.Env();
  size_t lx, ly;
  const float* x = Arr<float>(info, 0, k, &lx);
  float* y = Arr<float>(info, 1, k, &ly);
  if (env.IsExceptionPending() || !SameLen(info, k, lx, {ly})) return env.Undefined();
  ForBlocks(static_cast<int64_t>(lx), [&](int64_t lo, int64_t hi) {
    const float* __restrict xs = x;
    float* __restrict ys = y;
    for (int64_t i = lo; i < hi; i++) ys[i] = f(xs[i]);
  });
  return env.Undefined();
}

// Unary backward op(dy, x, dx): dx[i] = dy[i] * f'(x[i]).
template <typename F>
Napi::Value UnaryGrad(const Napi::CallbackInfo& info, const char* k, F df) {
  Napi::Env env = info.Env();
  size_t ldy, lx, ldx;
  const float* dy = Arr<float>(info, 0, k, &ldy);
  const float* x = Arr<float>(info, 1, k, &lx);
  float* dx = Arr<float>(info, 2, k, &ldx);
  if (env.IsExceptionPending() || !SameLen(info, k, lx, {ldy, ldx})) return env.Undefined();
  ForBlocks(static_cast<int64_t>(lx), [&](int64_t lo, int64_t hi) {
    const float* __restrict dys = dy;
    const float* __restrict xs = x;
    float* __restrict dxs = dx;
    for (int64_t i = lo; i < hi; i++) dxs[i] = dys[i] * df(xs[i]);
  });
  return env.Undefined();
}

inline float GeluTanhF(float x) {
  const float z = kC * x * std::fma(kA * x, x, 1.0f);
  return x * Sigmoid(2.0f * z).s;
}
inline float GeluTanhD(float x) {
  const float x2 = x * x;
  const Sig s = Sigmoid(2.0f * kC * x * std::fma(kA, x2, 1.0f));
  return s.s + 2.0f * x * s.s * s.one_minus_s * kC * std::fma(3.0f * kA, x2, 1.0f);
}
inline float GeluErfF(float x) { return 0.5f * x * Erfc(-x * kRsqrt2); }
inline float GeluErfD(float x) { return 0.5f * Erfc(-x * kRsqrt2) + x * kRsqrt2Pi * Exp(-0.5f * x * x); }
inline float SiluF(float x) { return x * Sigmoid(x).s; }
inline float SiluD(float x) {
  const Sig s = Sigmoid(x);
  return s.s * std::fma(x, s.one_minus_s, 1.0f);
}

}  // namespace

static Napi::Value GeluTanh(const Napi::CallbackInfo& info) { return Unary(info, "RtGeluTanh", [](float x) { return GeluTanhF(x); }); }
static Napi::Value GeluTanhGrad(const Napi::CallbackInfo& info) { return UnaryGrad(info, "RtGeluTanhGrad", [](float x) { return GeluTanhD(x); }); }
static Napi::Value GeluErf(const Napi::CallbackInfo& info) { return Unary(info, "RtGeluErf", [](float x) { return GeluErfF(x); }); }
static Napi::Value GeluErfGrad(const Napi::CallbackInfo& info) { return UnaryGrad(info, "RtGeluErfGrad", [](float x) { return GeluErfD(x); }); }
static Napi::Value Silu(const Napi::CallbackInfo& info) { return Unary(info, "RtSilu", [](float x) { return SiluF(x); }); }
static Napi::Value SiluGrad(const Napi::CallbackInfo& info) { return UnaryGrad(info, "RtSiluGrad", [](float x) { return SiluD(x); }); }

// swiGlu(g, u, y)
static Napi::Value SwiGlu(const Napi::CallbackInfo& info) {
  const char* k = "RtSwiGlu";
  Napi::Env env = info.Env();
  size_t lg, lu, ly;
  const float* g = Arr<float>(info, 0, k, &lg);
  const float* u = Arr<float>(info, 1, k, &lu);
  float* y = Arr<float>(info, 2, k, &ly);
  if (env.IsExceptionPending() || !SameLen(info, k, lg, {lu, ly})) return env.Undefined();
  ForBlocks(static_cast<int64_t>(lg), [&](int64_t lo, int64_t hi) {
    const float* __restrict gs = g;
    const float* __restrict us = u;
    float* __restrict ys = y;
    for (int64_t i = lo; i < hi; i++) ys[i] = SiluF(gs[i]) * us[i];
  });
  return env.Undefined();
}

// swiGluGrad(dy, g, u, dg, du)
static Napi::Value SwiGluGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtSwiGluGrad";
  Napi::Env env = info.Env();
  size_t ldy, lg, lu, ldg, ldu;
  const float* dy = Arr<float>(info, 0, k, &ldy);
  const float* g = Arr<float>(info, 1, k, &lg);
  const float* u = Arr<float>(info, 2, k, &lu);
  float* dg = Arr<float>(info, 3, k, &ldg);
  float* du = Arr<float>(info, 4, k, &ldu);
  if (env.IsExceptionPending() || !SameLen(info, k, lg, {ldy, lu, ldg, ldu})) return env.Undefined();
  ForBlocks(static_cast<int64_t>(lg), [&](int64_t lo, int64_t hi) {
    const float* __restrict dys = dy;
    const float* __restrict gs = g;
    const float* __restrict us = u;
    float* __restrict dgs = dg;
    float* __restrict dus = du;
    for (int64_t i = lo; i < hi; i++) {
      const float gv = gs[i];
      const Sig s = Sigmoid(gv);
      dgs[i] = dys[i] * us[i] * s.s * std::fma(gv, s.one_minus_s, 1.0f);
      dus[i] = dys[i] * gv * s.s;
    }
  });
  return env.Undefined();
}

void InitActivations(Napi::Env env, Napi::Object exports) {
  exports.Set("geluTanh", Napi::Function::New(env, GeluTanh));
  exports.Set("geluTanhGrad", Napi::Function::New(env, GeluTanhGrad));
  exports.Set("geluErf", Napi::Function::New(env, GeluErf));
  exports.Set("geluErfGrad", Napi::Function::New(env, GeluErfGrad));
  exports.Set("silu", Napi::Function::New(env, Silu));
  exports.Set("siluGrad", Napi::Function::New(env, SiluGrad));
  exports.Set("swiGlu", Napi::Function::New(env, SwiGlu));
  exports.Set("swiGluGrad", Napi::Function::New(env, SwiGluGrad));
}

}  // namespace rt
