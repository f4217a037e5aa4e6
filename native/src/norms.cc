// Kernel family: row norms over the last axis, forward and backward side by side.
//
// layerNorm      x (N, d), gamma (d), beta (d), eps -> y (N, d), mean (N), rstd (N)
//                torch.nn.LayerNorm (biased variance):  mean = sum(x) / d,  var = sum((x - mean)^2) / d,
//                rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * gamma + beta
// layerNormGrad  dy (N, d), x, gamma, mean, rstd -> dx (N, d), dgamma (d), dbeta (d)
//                with xhat = (x - mean) * rstd, g = dy * gamma (the gradient in src/model/layers/layer-norm.ts):
//                dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dgamma = sum_rows(dy * xhat),  dbeta = sum_rows(dy)
// rmsNorm        x (N, d), w (d), eps -> y (N, d), rstd (N)
//                LlamaRMSNorm:  rstd = 1 / sqrt(mean(x^2) + eps),  y = x * rstd * w  (weight w, not 1 + w)
// rmsNormGrad    dy (N, d), x, w, rstd -> dx (N, d), dw (d)
//                g = dy * w:  dx = rstd * g - x * rstd^3 * mean(g * x),  dw = sum_rows(dy * x * rstd)
//
// xhat is recomputed in the backward from x and the saved (mean, rstd) rather than stored: one (N, d)
// tensor less per norm for the whole step, for a few flops.
// Row sums use kLanes independent float accumulators: the compiler vectorises them (a plain `s += x[i]`
// is not vectorised without -ffast-math, which we do not use) and the split keeps the rounding error
// of a 768-long sum near that of a pairwise sum. Statistics are two-pass (mean, then squared
// deviations), as accurate as Welford in float for these row lengths.
// Column sums (dgamma, dbeta, dw) go into per-thread float partials reduced at the end, like torch's CPU kernels.
#include "common.h"
#include <omp.h>
#include <cmath>
#include <cstring>
#include <vector>

namespace rt {

namespace {

constexpr int kLanes = 16;
// Below this many elements the OpenMP fork costs more than the work (~2-5 us per region here).
constexpr int64_t kParallelWork = 1 << 15;

inline float RowSum(const float* __restrict x, int64_t d) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += x[i + l];
  float s = 0.0f;
  for (; i < d; i++) s += x[i];
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

inline float RowSqDev(const float* __restrict x, float m, int64_t d) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes)
    for (int l = 0; l < kLanes; l++) { const float v = x[i + l] - m; acc[l] += v * v; }
  float s = 0.0f;
  for (; i < d; i++) { const float v = x[i] - m; s += v * v; }
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

// Partial column sums, one slice per thread; returns a pointer to thread t's `width` floats.
struct Partials {
  std::vector<float> buf;
  int64_t width;
  Partials(int threads, int64_t w) : buf(static_cast<size_t>(threads) * w, 0.0f), width(w) {}
  float* at(int t) { return buf.data() + t * width; }
  // out[j] = sum over threads of slice[offset + j], j < n
  void reduce(int threads, int64_t offset, int64_t n, float* __restrict out) {
    for (int64_t j = 0; j < n; j++) out[j] = 0.0f;
    for (int t = 0; t < threads; t++) {
      const float* p = at(t) + offset;
      for (int64_t j = 0; j < n; j++) out[j] += p[j];
    }
  }
};

bool Sizes(const Napi::CallbackInfo& info, const char* k, std::initializer_list<std::pair<size_t, size_t>> got_want) {
  for (auto [got, want] : got_want) {
    if (got != want) {
      Fail(info.Env(), k, "buffer of " + std::to_string(got) + " floats where " + std::to_string(want) + " were expected");
      return false;
    }
  }
  return true;
}

}  // namespace

// layerNorm(x, gamma, beta, y, mean, rstd, N, d, eps)
static Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  const char* k = "RtLayerNorm";
  Napi::Env env = info.Env();
  size_t lx, lg, lb, ly, lm, lr;
  const float* x = Arr<float>(info, 0, k, &lx);
  const float* gamma = Arr<float>(info, 1, k, &lg);
  const float* beta = Arr<float>(info, 2, k, &lb);
  float* y = Arr<float>(info, 3, k, &ly);
  float* mean = Arr<float>(info, 4, k, &lm);
  float* rstd = Arr<float>(info, 5, k, &lr);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t N = Int(info, 6), d = Int(info, 7);
  const float eps = static_cast<float>(Num(info, 8));
  if (!Sizes(info, k, {{lx, N * d}, {lg, d}, {lb, d}, {ly, N * d}, {lm, N}, {lr, N}})) return env.Undefined();
  const float inv_d = d > 0 ? 1.0f / static_cast<float>(d) : 0.0f;
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * d > kParallelWork && N > 1)
  for (int64_t r = 0; r < N; r++) {
    const float* __restrict xr = x + r * d;
    float* __restrict yr = y + r * d;
    const float m = RowSum(xr, d) * inv_d;
    const float s = 1.0f / std::sqrt(RowSqDev(xr, m, d) * inv_d + eps);
#pragma GCC ivdep
    for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - m) * s * gamma[j] + beta[j];
    mean[r] = m;
    rstd[r] = s;
  }
  return env.Undefined();
}

// layerNormGrad(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, N, d)
static Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtLayerNormGrad";
  Napi::Env env = info.Env();
  size_t ldy, lx, lg, lm, lr, ldx, ldg, ldb;
  const float* dy = Arr<float>(info, 0, k, &ldy);
  const float* x = Arr<float>(info, 1, k, &lx);
  const float* gamma = Arr<float>(info, 2, k, &lg);
  const float* mean = Arr<float>(info, 3, k, &lm);
  const float* rstd = Arr<float>(info, 4, k, &lr);
  float* dx = Arr<float>(info, 5, k, &ldx);
  float* dgamma = Arr<float>(info, 6, k, &ldg);
  float* dbeta = Arr<float>(info, 7, k, &ldb);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t N = Int(info, 8), d = Int(info, 9);
  if (!Sizes(info, k, {{ldy, N * d}, {lx, N * d}, {lg, d}, {lm, N}, {lr, N}, {ldx, N * d}, {ldg, d}, {ldb, d}}))
    return env.Undefined();
  const float inv_d = d > 0 ? 1.0f / static_cast<float>(d) : 0.0f;
  const int T = (N * d > kParallelWork && N > 1) ? Threads() : 1;
  Partials part(T, 2 * d);  // [dgamma | dbeta] per thread
  int used = 1;
#pragma omp parallel num_threads(T) if (T > 1)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    used = omp_get_num_threads();
    float* __restrict pg = part.at(t);
    float* __restrict pb = pg + d;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; r++) {
      const float* __restrict dyr = dy + r * d;
      const float* __restrict xr = x + r * d;
      float* __restrict dxr = dx + r * d;
      const float m = mean[r], s = rstd[r];
      // Two single-accumulator passes (the row is in L1): gcc vectorises a two-array lane loop with permutes.
      float a1[kLanes] = {0}, a2[kLanes] = {0};
      int64_t j = 0;
      for (; j + kLanes <= d; j += kLanes)
        for (int l = 0; l < kLanes; l++) a1[l] += dyr[j + l] * gamma[j + l];
      for (j = 0; j + kLanes <= d; j += kLanes)
        for (int l = 0; l < kLanes; l++) a2[l] += dyr[j + l] * gamma[j + l] * ((xr[j + l] - m) * s);
      float sg = 0.0f, sgx = 0.0f;
      for (; j < d; j++) {
        const float xh = (xr[j] - m) * s, g = dyr[j] * gamma[j];
        sg += g;
        sgx += g * xh;
      }
      for (int l = 0; l < kLanes; l++) { sg += a1[l]; sgx += a2[l]; }
      const float mg = sg * inv_d, mgx = sgx * inv_d;
      // Distinct buffers; without this gcc versions the loop on a runtime alias check that it fails (scalar).
#pragma GCC ivdep
      for (j = 0; j < d; j++) {
        const float xh = (xr[j] - m) * s, g = dyr[j] * gamma[j];
        dxr[j] = s * (g - mg - xh * mgx);
        pg[j] += dyr[j] * xh;
        pb[j] += dyr[j];
      }
    }
  }
  part.reduce(used, 0, d, dgamma);
  part.reduce(used, d, d, dbeta);
  return env.Undefined();
}

// rmsNorm(x, w, y, rstd, N, d, eps)
static Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const char* k = "RtRmsNorm";
  Napi::Env env = info.Env();
  size_t lx, lw, ly, lr;
  const float* x = Arr<float>(info, 0, k, &lx);
  const float* w = Arr<float>(info, 1, k, &lw);
  float* y = Arr<float>(info, 2, k, &ly);
  float* rstd = Arr<float>(info, 3, k, &lr);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t N = Int(info, 4), d = Int(info, 5);
  const float eps = static_cast<float>(Num(info, 6));
  if (!Sizes(info, k, {{lx, N * d}, {lw, d}, {ly, N * d}, {lr, N}})) return env.Undefined();
  const float inv_d = d > 0 ? 1.0f / static_cast<float>(d) : 0.0f;
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * d > kParallelWork && N > 1)
  for (int64_t r = 0; r < N; r++) {
    const float* __restrict xr = x + r * d;
    float* __restrict yr = y + r * d;
    const float s = 1.0f / std::sqrt(RowSqDev(xr, 0.0f, d) * inv_d + eps);
#pragma GCC ivdep
    for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * s * w[j];
    rstd[r] = s;
  }
  return env.Undefined();
}

// rmsNormGrad(dy, x, w, rstd, dx, dw, N, d)
static Napi::Value RmsNormGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtRmsNormGrad";
  Napi::Env env = info.Env();
  size_t ldy, lx, lw, lr, ldx, ldw;
  const float* dy = Arr<float>(info, 0, k, &ldy);
  const float* x = Arr<float>(info, 1, k, &lx);
  const float* w = Arr<float>(info, 2, k, &lw);
  const float* rstd = Arr<float>(info, 3, k, &lr);
  float* dx = Arr<float>(info, 4, k, &ldx);
  float* dw = Arr<float>(info, 5, k, &ldw);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t N = Int(info, 6), d = Int(info, 7);
  if (!Sizes(info, k, {{ldy, N * d}, {lx, N * d}, {lw, d}, {lr, N}, {ldx, N * d}, {ldw, d}})) return env.Undefined();
  const float inv_d = d > 0 ? 1.0f / static_cast<float>(d) : 0.0f;
  const int T = (N * d > kParallelWork && N > 1) ? Threads() : 1;
  Partials part(T, d);
  int used = 1;
#pragma omp parallel num_threads(T) if (T > 1)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    used = omp_get_num_threads();
    float* __restrict pw = part.at(t);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; r++) {
      const float* __restrict dyr = dy + r * d;
      const float* __restrict xr = x + r * d;
      float* __restrict dxr = dx + r * d;
      const float s = rstd[r];
      float a[kLanes] = {0};
      int64_t j = 0;
      for (; j + kLanes <= d; j += kLanes)
        for (int l = 0; l < kLanes; l++) a[l] += dyr[j + l] * w[j + l] * xr[j + l];
      float sgx = 0.0f;
      for (; j < d; j++) sgx += dyr[j] * w[j] * xr[j];
      for (int l = 0; l < kLanes; l++) sgx += a[l];
      const float c = s * s * s * sgx * inv_d;
      // Distinct buffers; without this gcc versions the loop on a runtime alias check that it fails (scalar).
#pragma GCC ivdep
      for (j = 0; j < d; j++) {
        dxr[j] = s * dyr[j] * w[j] - xr[j] * c;
        pw[j] += dyr[j] * xr[j] * s;
      }
    }
  }
  part.reduce(used, 0, d, dw);
  return env.Undefined();
}

void InitNorms(Napi::Env env, Napi::Object exports) {
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("layerNormGrad", Napi::Function::New(env, LayerNormGrad));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rmsNormGrad", Napi::Function::New(env, RmsNormGrad));
}

}  // namespace rt
