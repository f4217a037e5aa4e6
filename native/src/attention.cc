// Kernel family: fused multi-head self-attention for training (forward and backward) and rotary
// position embeddings (forward and inverse), used by src/model/layers/attention.ts and rope.ts.
//
// Shapes (row-major). "Projection layout" is what the q/k/v linear layers produce; heads are read
// in place through the BLAS leading dimension, so no head transpose is ever materialised.
//   q      (B*T, H*hd)     row b*T+t, columns [h*hd, (h+1)*hd) = query head h at position t
//   k, v   (B*T, Hkv*hd)   kv head g = h / (H/Hkv) serves query head h (GQA, as HF repeat_kv)
//   keyMask (B, T)         optional additive mask (0 or -1e9, keyMaskFrom)
//   ctx    (B*T, H*hd)     merged-heads layout, the o-projection's input
//   probs  (B, H, T, T)    softmax probabilities, kept for the backward; exactly 0 where causally masked
//
// Forward (Vaswani et al. 2017 eq. 1; HF eager attention):
//   S = scale * q_h k_g^T + keyMask[b];  S[t, s] masked for s > offset + t when causal
//   P = softmax over each row of S;  ctx_h = P v_g
// Backward (the softmax Jacobian applied row-wise, as FlashAttention's reference backward):
//   dv_g += P^T dctx_h;  dP = dctx_h v_g^T;  dS = P * (dP - rowsum(P * dP))
//   dq_h = scale dS k_g;  dk_g += scale dS^T q_h        (sums over the query heads of group g)
//
// Why keep P rather than only the row logsumexp: the backward then needs 4 products per head instead
// of 5 plus T*T exponentials, and P costs B*H*T*T floats: 3 MiB at B=4, H=12, T=128; 192 MiB per layer
// at T=1024 (the composed path kept two such tensors, scores and probs, so this is still less).
//
// Causal masking: the composed path adds -1e9 above the diagonal, whose exponential is exactly 0 in
// float32, so those entries are skipped here and P is written as 0. Products run over row (or column)
// blocks of kBlock so the masked upper triangle is mostly not computed.
//
// Threads: (b, h) heads run in parallel under OpenMP with OpenBLAS set to 1 thread for the duration
// (the pthread OpenBLAS would otherwise start its own threads from inside each OpenMP thread). The
// backward parallelises over (b, g) so the GQA sums into dk/dv have one writer each.
//
// RoPE (HF modeling_llama rotate-half): x' = x * cos + rotate_half(x) * sin,
//   rotate_half(x) = cat(-x[h:], x[:h]), h = hd/2, tables cos/sin (P, hd) at position offset + t.
// Its transpose (= inverse rotation, the gradient): g * cos + rotate_half^T(g * sin),
//   rotate_half^T(u) = cat(u[h:], -u[:h]).
#include "common.h"
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace rt {

namespace {

// 32 rather than 64: at T = 128 the smaller blocks skip more of the masked triangle and measured
// 5-15% faster (sgemm is still efficient at 32 rows).
constexpr int64_t kBlock = 32;

// Cephes expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (relative error ~1e-7).
// Written with plain arithmetic so GCC vectorises the softmax loops (libm's expf is scalar without
// -ffast-math). Inputs below -87 (masked keys) give exactly 0, as expf does for -1e9.
inline float Exp(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float two_n = __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : p * two_n;
}

// Columns a causal row block [i0, i1) can see: keys 0 .. offset + i1 - 1.
inline int64_t CausalCols(int64_t i1, int64_t offset, int64_t S) { return std::min(S, offset + i1); }

// row holds scale * q.k for columns [0, L); writes softmax(row + mask) there and 0 in [L, S).
inline void SoftmaxRow(float* __restrict row, const float* __restrict mask, int64_t L, int64_t S) {
  if (mask) {
    for (int64_t j = 0; j < L; j++) row[j] += mask[j];
  }
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < L; j++) m = std::max(m, row[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < L; j++) {
    const float e = Exp(row[j] - m);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < L; j++) row[j] *= inv;
  if (L < S) std::memset(row + L, 0, sizeof(float) * (S - L));
}

// Runs body(unit) for unit in [0, units), in parallel when it pays, with BLAS single-threaded inside.
template <typename F>
void ParallelUnits(int64_t units, F body) {
  const int nt = Threads();
  const bool par = nt > 1 && units > 1;
  if (par) openblas_set_num_threads(1);
#pragma omp parallel for schedule(static) num_threads(nt) if (par)
  for (int64_t u = 0; u < units; u++) body(u);
  if (par) openblas_set_num_threads(nt);
}

std::vector<float>& Scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

struct Dims {
  int64_t B, T, H, Hkv, hd, offset;
  bool causal;
  float scale;
};

bool ReadDims(const Napi::CallbackInfo& info, size_t at, Dims* d) {
  d->B = Int(info, at);
  d->T = Int(info, at + 1);
  d->H = Int(info, at + 2);
  d->Hkv = Int(info, at + 3);
  d->hd = Int(info, at + 4);
  d->causal = Bool(info, at + 5);
  d->scale = static_cast<float>(Num(info, at + 6));
  d->offset = Int(info, at + 7);
  return d->B >= 0 && d->T >= 0 && d->H >= 1 && d->Hkv >= 1 && d->H % d->Hkv == 0 && d->hd >= 1 && d->offset >= 0;
}

std::string DimsText(const Dims& d) {
  return "B " + std::to_string(d.B) + ", T " + std::to_string(d.T) + ", H " + std::to_string(d.H) + ", Hkv " +
         std::to_string(d.Hkv) + ", hd " + std::to_string(d.hd);
}

}  // namespace

// attentionForward(q, k, v, keyMask | null, ctx, probs, B, T, H, Hkv, hd, causal, scale, offset)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* kn = "RtAttention";
  Napi::Env env = info.Env();
  size_t lq, lk, lv, lm = 0, lc, lp;
  const float* q = Arr<float>(info, 0, kn, &lq);
  const float* k = q ? Arr<float>(info, 1, kn, &lk) : nullptr;
  const float* v = k ? Arr<float>(info, 2, kn, &lv) : nullptr;
  const float* mask = (v && !info[3].IsNull()) ? Arr<float>(info, 3, kn, &lm) : nullptr;
  float* ctx = v ? Arr<float>(info, 4, kn, &lc) : nullptr;
  float* probs = ctx ? Arr<float>(info, 5, kn, &lp) : nullptr;
  if (!probs || env.IsExceptionPending()) return env.Undefined();
  Dims d;
  if (!ReadDims(info, 6, &d)) {
    Fail(env, kn, "bad dimensions " + DimsText(d));
    return env.Undefined();
  }
  const int64_t B = d.B, T = d.T, H = d.H, Hkv = d.Hkv, hd = d.hd, rep = H / Hkv;
  const size_t BT = static_cast<size_t>(B * T);
  if (lq != BT * H * hd || lk != BT * Hkv * hd || lv != lk || lc != lq || lp != static_cast<size_t>(B * H * T * T) ||
      (mask && lm != BT)) {
    Fail(env, kn, "operand sizes do not match " + DimsText(d));
    return env.Undefined();
  }
  const int64_t ldq = H * hd, ldk = Hkv * hd;
  ParallelUnits(B * H, [&](int64_t u) {
    const int64_t b = u / H, h = u % H, g = h / rep;
    const float* Q = q + b * T * ldq + h * hd;
    const float* K = k + b * T * ldk + g * hd;
    const float* V = v + b * T * ldk + g * hd;
    const float* M = mask ? mask + b * T : nullptr;
    float* P = probs + u * T * T;
    float* C = ctx + b * T * ldq + h * hd;
    const int64_t blk = d.causal ? kBlock : T;
    for (int64_t i0 = 0; i0 < T; i0 += blk) {
      const int64_t i1 = std::min(T, i0 + blk), c1 = d.causal ? CausalCols(i1, d.offset, T) : T;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, c1, hd, d.scale, Q + i0 * ldq, ldq, K, ldk, 0.0f,
                  P + i0 * T, T);
      for (int64_t i = i0; i < i1; i++) SoftmaxRow(P + i * T, M, d.causal ? CausalCols(i + 1, d.offset, T) : T, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hd, c1, 1.0f, P + i0 * T, T, V, ldk, 0.0f,
                  C + i0 * ldq, ldq);
    }
  });
  return env.Undefined();
}

// attentionBackward(dctx, q, k, v, probs, dq, dk, dv, B, T, H, Hkv, hd, causal, scale, offset)
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* kn = "RtAttentionGrad";
  Napi::Env env = info.Env();
  size_t ldo, lq, lk, lv, lp, ldq_, ldk_, ldv_;
  const float* dctx = Arr<float>(info, 0, kn, &ldo);
  const float* q = dctx ? Arr<float>(info, 1, kn, &lq) : nullptr;
  const float* k = q ? Arr<float>(info, 2, kn, &lk) : nullptr;
  const float* v = k ? Arr<float>(info, 3, kn, &lv) : nullptr;
  const float* probs = v ? Arr<float>(info, 4, kn, &lp) : nullptr;
  float* dq = probs ? Arr<float>(info, 5, kn, &ldq_) : nullptr;
  float* dk = dq ? Arr<float>(info, 6, kn, &ldk_) : nullptr;
  float* dv = dk ? Arr<float>(info, 7, kn, &ldv_) : nullptr;
  if (!dv || env.IsExceptionPending()) return env.Undefined();
  Dims d;
  if (!ReadDims(info, 8, &d)) {
    Fail(env, kn, "bad dimensions " + DimsText(d));
    return env.Undefined();
  }
  const int64_t B = d.B, T = d.T, H = d.H, Hkv = d.Hkv, hd = d.hd, rep = H / Hkv;
  const size_t BT = static_cast<size_t>(B * T);
  if (lq != BT * H * hd || ldo != lq || ldq_ != lq || lk != BT * Hkv * hd || lv != lk || ldk_ != lk || ldv_ != lk ||
      lp != static_cast<size_t>(B * H * T * T)) {
    Fail(env, kn, "operand sizes do not match " + DimsText(d));
    return env.Undefined();
  }
  const int64_t ldq = H * hd, ldk = Hkv * hd;
  const int64_t blk = d.causal ? kBlock : T;
  ParallelUnits(B * Hkv, [&](int64_t u) {
    const int64_t b = u / Hkv, g = u % Hkv;
    const float* K = k + b * T * ldk + g * hd;
    const float* V = v + b * T * ldk + g * hd;
    float* dK = dk + b * T * ldk + g * hd;
    float* dV = dv + b * T * ldk + g * hd;
    float* dS = Scratch(static_cast<size_t>(T * T)).data();  // dP, then dS in place
    for (int64_t r = 0; r < rep; r++) {
      const int64_t h = g * rep + r;
      const float* Q = q + b * T * ldq + h * hd;
      const float* dO = dctx + b * T * ldq + h * hd;
      const float* P = probs + (b * H + h) * T * T;
      float* dQ = dq + b * T * ldq + h * hd;
      const float beta = r == 0 ? 0.0f : 1.0f;
      for (int64_t i0 = 0; i0 < T; i0 += blk) {
        const int64_t i1 = std::min(T, i0 + blk), c1 = d.causal ? CausalCols(i1, d.offset, T) : T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, c1, hd, 1.0f, dO + i0 * ldq, ldq, V, ldk, 0.0f,
                    dS + i0 * T, T);
        for (int64_t i = i0; i < i1; i++) {
          const int64_t L = d.causal ? CausalCols(i + 1, d.offset, T) : T;
          const float* __restrict p = P + i * T;
          float* __restrict s = dS + i * T;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j < L; j++) dot += p[j] * s[j];
          for (int64_t j = 0; j < L; j++) s[j] = d.scale * p[j] * (s[j] - dot);
          // The dk column blocks read rows from j0 - offset on, past this row block's c1 when offset > 0.
          if (L < T) std::memset(s + L, 0, sizeof(float) * (T - L));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hd, c1, 1.0f, dS + i0 * T, T, K, ldk, 0.0f,
                    dQ + i0 * ldq, ldq);
      }
      // dk, dv by column blocks: keys [j0, j1) are seen only by rows >= j0 - offset when causal.
      for (int64_t j0 = 0; j0 < T; j0 += blk) {
        const int64_t j1 = std::min(T, j0 + blk), r0 = d.causal ? std::max<int64_t>(0, j0 - d.offset) : 0;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, hd, T - r0, 1.0f, dS + r0 * T + j0, T,
                    Q + r0 * ldq, ldq, beta, dK + j0 * ldk, ldk);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, hd, T - r0, 1.0f, P + r0 * T + j0, T,
                    dO + r0 * ldq, ldq, beta, dV + j0 * ldk, ldk);
      }
    }
  });
  return env.Undefined();
}

// rope(x, cos, sin, y, rows, hd, T, heads, offset, inverse): x, y (rows, hd) with rows ordered
// (b, t, head), rows = B*T*heads; position of a row = offset + (row / heads) % T.
static Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* kn = "RtRope";
  Napi::Env env = info.Env();
  size_t lx, lc, ls, ly;
  const float* x = Arr<float>(info, 0, kn, &lx);
  const float* cs = x ? Arr<float>(info, 1, kn, &lc) : nullptr;
  const float* sn = cs ? Arr<float>(info, 2, kn, &ls) : nullptr;
  float* y = sn ? Arr<float>(info, 3, kn, &ly) : nullptr;
  if (!y || env.IsExceptionPending()) return env.Undefined();
  const int64_t rows = Int(info, 4), hd = Int(info, 5), T = Int(info, 6), heads = Int(info, 7), offset = Int(info, 8);
  const bool inverse = Bool(info, 9);
  const int64_t half = hd / 2;
  if (hd < 2 || hd % 2 != 0 || T < 1 || heads < 1 || offset < 0 || rows % (T * heads) != 0 ||
      lx != static_cast<size_t>(rows * hd) || ly != lx || lc != ls || lc % hd != 0 ||
      static_cast<int64_t>(lc / hd) < offset + T) {
    Fail(env, kn, "sizes do not fit: " + std::to_string(rows) + " rows of " + std::to_string(hd) + ", T " +
                      std::to_string(T) + ", heads " + std::to_string(heads) + ", offset " + std::to_string(offset) +
                      ", tables of " + std::to_string(lc) + " values");
    return env.Undefined();
  }
#pragma omp parallel for schedule(static) num_threads(Threads()) if (Threads() > 1 && rows * hd > (1 << 15))
  for (int64_t r = 0; r < rows; r++) {
    const int64_t pos = offset + (r / heads) % T;
    const float* __restrict c = cs + pos * hd;
    const float* __restrict s = sn + pos * hd;
    const float* __restrict xr = x + r * hd;
    float* __restrict yr = y + r * hd;
    if (!inverse) {
      for (int64_t j = 0; j < half; j++) yr[j] = xr[j] * c[j] - xr[j + half] * s[j];
      for (int64_t j = 0; j < half; j++) yr[j + half] = xr[j + half] * c[j + half] + xr[j] * s[j + half];
    } else {
      // Transpose: the sin term reads the partner's column and changes sign (rotate_half^T).
      for (int64_t j = 0; j < half; j++) yr[j] = xr[j] * c[j] + xr[j + half] * s[j + half];
      for (int64_t j = 0; j < half; j++) yr[j + half] = xr[j + half] * c[j + half] - xr[j] * s[j];
    }
  }
  return env.Undefined();
}

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("rope", Napi::Function::New(env, Rope));
}

}  // namespace rt
