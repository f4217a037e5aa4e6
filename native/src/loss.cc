// Kernel family: loss and embedding rows (forward and backward side by side).
//
// crossEntropy      logits z (N, V), targets y int32 (N), weights w (N)
//                   -> loss (1) = sum_n w_n * (logsumexp(z_n) - z_n[y_n]),  lse (N) = logsumexp(z_n)
// crossEntropyGrad  z (N, V), y (N), w (N), lse (N), dy (scalar) -> dz (N, V) = w_n dy (softmax(z_n) - onehot(y_n))
//                   (the standard softmax cross-entropy gradient, e.g. Bishop PRML eq. 4.109)
// gather            table (V, d), ids int32 (N) -> out (N, d),  out[n] = table[ids[n]]
// gatherGrad        dy (N, d), ids (N) -> dtable (V, d) = sum over n with ids[n] = v of dy[n]
//
// Memory: the loss never materialises exp(z) or a one-hot: the forward pass keeps only lse (N) and the
// backward pass writes softmax straight into dz, so at V = 50257 only logits and dz exist.
// Determinism: per-row losses are summed sequentially in double after the parallel loop, and the
// embedding gradient is parallel over column blocks with rows added in order 0..N-1, so results do not
// depend on the thread count.
// no-trapping-math lets GCC if-convert the selects in ExpNeg so its loops vectorise; it changes no rounding.
#pragma GCC optimize("no-trapping-math")
#include "common.h"
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>

namespace rt {

// expf for x <= ~0 (arguments are z - max or z - lse), vectorisable (glibc's expf is not without
// -ffast-math). Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2 (n rounded by the 1.5 * 2^23
// trick, whose low bits are n), then the degree-6 Taylor polynomial of e^r, scaled by 2^n through the
// exponent bits: max relative error 1.9e-7 (~3 ulp) over [-87, 0]. Below -87.33 the true value is
// subnormal or 0: return 0. NaN propagates through r.
static inline float ExpNeg(float x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kMagic = 12582912.0f;
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  const float t = __builtin_fmaf(xc, kLog2e, kMagic);
  const float n = t - kMagic;
  const float r = __builtin_fmaf(-n, kLn2Lo, __builtin_fmaf(-n, kLn2Hi, xc));
  float p = 1.0f / 720.0f;
  p = __builtin_fmaf(p, r, 1.0f / 120.0f);
  p = __builtin_fmaf(p, r, 1.0f / 24.0f);
  p = __builtin_fmaf(p, r, 1.0f / 6.0f);
  p = __builtin_fmaf(p, r, 0.5f);
  p = __builtin_fmaf(p, r, 1.0f);
  p = __builtin_fmaf(p, r, 1.0f);
  int32_t ti;
  std::memcpy(&ti, &t, sizeof ti);
  const int32_t bits = (ti - 0x4B400000 + 127) << 23;  // 0x4B400000 = bits of kMagic
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.33f ? 0.0f : p * scale;
}

static inline float RowMax(const float* __restrict z, int64_t V) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < V; j++) m = z[j] > m ? z[j] : m;
  return m;
}

static inline float RowSumExp(const float* __restrict z, int64_t V, float shift) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < V; j++) s += ExpNeg(z[j] - shift);
  return s;
}

// crossEntropy(z, y, w, loss (1), lse (N), N, V)
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const char* k = "RtCrossEntropy";
  size_t lz, ly, lw, ll, le;
  const float* z = Arr<float>(info, 0, k, &lz);
  const int32_t* y = z ? Arr<int32_t>(info, 1, k, &ly) : nullptr;
  const float* w = y ? Arr<float>(info, 2, k, &lw) : nullptr;
  float* loss = w ? Arr<float>(info, 3, k, &ll) : nullptr;
  float* lse = loss ? Arr<float>(info, 4, k, &le) : nullptr;
  if (!lse) return info.Env().Undefined();
  const int64_t N = Int(info, 5), V = Int(info, 6);
  if (N < 0 || V < 1 || lz != static_cast<size_t>(N * V) || ly != static_cast<size_t>(N) || lw != static_cast<size_t>(N) ||
      ll != 1 || le != static_cast<size_t>(N)) {
    Fail(info.Env(), k, "operand sizes do not match N " + std::to_string(N) + ", V " + std::to_string(V));
    return info.Env().Undefined();
  }
  for (int64_t n = 0; n < N; n++) {
    if (y[n] < 0 || y[n] >= V) {
      Fail(info.Env(), k, "target " + std::to_string(y[n]) + " at row " + std::to_string(n) + " is outside [0, " + std::to_string(V) + ")");
      return info.Env().Undefined();
    }
  }
  std::vector<double> rowLoss(N);
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * V > (1 << 15))
  for (int64_t n = 0; n < N; n++) {
    const float* zr = z + n * V;
    // Rows without weight still get their lse (stale pooled memory must not leak out) but cost one pass less.
    const float m = RowMax(zr, V);
    if (w[n] == 0.0f) {
      lse[n] = m;
      rowLoss[n] = 0.0;
      continue;
    }
    // A row of all -inf has no finite shift; its loss is NaN/inf like logsumexp's.
    const float shift = std::isfinite(m) ? m : 0.0f;
    const double l = static_cast<double>(shift) + std::log(static_cast<double>(RowSumExp(zr, V, shift)));
    lse[n] = static_cast<float>(l);
    rowLoss[n] = static_cast<double>(w[n]) * (l - static_cast<double>(zr[y[n]]));
  }
  double sum = 0.0;
  for (int64_t n = 0; n < N; n++) sum += rowLoss[n];
  loss[0] = static_cast<float>(sum);
  return info.Env().Undefined();
}

// crossEntropyGrad(z, y, w, lse, dz, dy, N, V)
static Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtCrossEntropyGrad";
  size_t lz, ly, lw, le, ld;
  const float* z = Arr<float>(info, 0, k, &lz);
  const int32_t* y = z ? Arr<int32_t>(info, 1, k, &ly) : nullptr;
  const float* w = y ? Arr<float>(info, 2, k, &lw) : nullptr;
  const float* lse = w ? Arr<float>(info, 3, k, &le) : nullptr;
  float* dz = lse ? Arr<float>(info, 4, k, &ld) : nullptr;
  if (!dz) return info.Env().Undefined();
  const float dy = static_cast<float>(Num(info, 5));
  const int64_t N = Int(info, 6), V = Int(info, 7);
  if (N < 0 || V < 1 || lz != static_cast<size_t>(N * V) || ly != static_cast<size_t>(N) || lw != static_cast<size_t>(N) ||
      le != static_cast<size_t>(N) || ld != static_cast<size_t>(N * V)) {
    Fail(info.Env(), k, "operand sizes do not match N " + std::to_string(N) + ", V " + std::to_string(V));
    return info.Env().Undefined();
  }
  for (int64_t n = 0; n < N; n++) {
    if (y[n] < 0 || y[n] >= V) {
      Fail(info.Env(), k, "target " + std::to_string(y[n]) + " at row " + std::to_string(n) + " is outside [0, " + std::to_string(V) + ")");
      return info.Env().Undefined();
    }
  }
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * V > (1 << 15))
  for (int64_t n = 0; n < N; n++) {
    const float* __restrict zr = z + n * V;
    float* __restrict dr = dz + n * V;
    const float c = w[n] * dy;
    if (c == 0.0f) {
      std::memset(dr, 0, sizeof(float) * V);
      continue;
    }
    const float l = lse[n];
#pragma omp simd
    for (int64_t j = 0; j < V; j++) dr[j] = c * ExpNeg(zr[j] - l);
    dr[y[n]] -= c;
  }
  return info.Env().Undefined();
}

static bool CheckIds(const Napi::CallbackInfo& info, const char* k, const int32_t* ids, int64_t N, int64_t V) {
  for (int64_t n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= V) {
      Fail(info.Env(), k, "id " + std::to_string(ids[n]) + " at position " + std::to_string(n) + " is outside [0, " + std::to_string(V) + ")");
      return false;
    }
  }
  return true;
}

// gather(table, ids, out, N, V, d)
static Napi::Value Gather(const Napi::CallbackInfo& info) {
  const char* k = "RtGather";
  size_t lt, li, lo;
  const float* table = Arr<float>(info, 0, k, &lt);
  const int32_t* ids = table ? Arr<int32_t>(info, 1, k, &li) : nullptr;
  float* out = ids ? Arr<float>(info, 2, k, &lo) : nullptr;
  if (!out) return info.Env().Undefined();
  const int64_t N = Int(info, 3), V = Int(info, 4), d = Int(info, 5);
  if (N < 0 || V < 0 || d < 0 || lt != static_cast<size_t>(V * d) || li != static_cast<size_t>(N) || lo != static_cast<size_t>(N * d)) {
    Fail(info.Env(), k, "operand sizes do not match N " + std::to_string(N) + ", V " + std::to_string(V) + ", d " + std::to_string(d));
    return info.Env().Undefined();
  }
  if (!CheckIds(info, k, ids, N, V)) return info.Env().Undefined();
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * d > (1 << 16))
  for (int64_t n = 0; n < N; n++) std::memcpy(out + n * d, table + static_cast<int64_t>(ids[n]) * d, sizeof(float) * d);
  return info.Env().Undefined();
}

// gatherGrad(dy, ids, dtable, N, V, d)
static Napi::Value GatherGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtGatherGrad";
  size_t ld, li, lt;
  const float* dy = Arr<float>(info, 0, k, &ld);
  const int32_t* ids = dy ? Arr<int32_t>(info, 1, k, &li) : nullptr;
  float* dt = ids ? Arr<float>(info, 2, k, &lt) : nullptr;
  if (!dt) return info.Env().Undefined();
  const int64_t N = Int(info, 3), V = Int(info, 4), d = Int(info, 5);
  if (N < 0 || V < 0 || d < 0 || ld != static_cast<size_t>(N * d) || li != static_cast<size_t>(N) || lt != static_cast<size_t>(V * d)) {
    Fail(info.Env(), k, "operand sizes do not match N " + std::to_string(N) + ", V " + std::to_string(V) + ", d " + std::to_string(d));
    return info.Env().Undefined();
  }
  if (!CheckIds(info, k, ids, N, V)) return info.Env().Undefined();
  const int64_t total = V * d;
  // The zero fill of (V, d) is most of the work (V = 50257 for GPT-2): split it across threads.
#pragma omp parallel for num_threads(Threads()) schedule(static) if (total > (1 << 18))
  for (int64_t c = 0; c < total; c += (1 << 16)) {
    const int64_t e = c + (1 << 16) < total ? c + (1 << 16) : total;
    std::memset(dt + c, 0, sizeof(float) * (e - c));
  }
  // Column blocks of 64 floats: each (row, column) sum is accumulated in row order whatever the threads.
  const int64_t blocks = (d + 63) / 64;
#pragma omp parallel for num_threads(Threads()) schedule(static) if (N * d > (1 << 16) && blocks > 1)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t c0 = b * 64, c1 = c0 + 64 < d ? c0 + 64 : d;
    for (int64_t n = 0; n < N; n++) {
      const float* __restrict src = dy + n * d;
      float* __restrict dst = dt + static_cast<int64_t>(ids[n]) * d;
#pragma omp simd
      for (int64_t j = c0; j < c1; j++) dst[j] += src[j];
    }
  }
  return info.Env().Undefined();
}

void InitLoss(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("gatherGrad", Napi::Function::New(env, GatherGrad));
}

}  // namespace rt
