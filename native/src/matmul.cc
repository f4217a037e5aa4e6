// Kernel family: matrix products on OpenBLAS sgemm (row-major).
//
// batchMatMul   C[b] = op(A[b]) @ op(B[b]),   A (bA, M, K) or (bA, K, M) when transA,
//               B (bB, K, N) or (bB, N, K) when transB, C (batch, M, N); bA, bB in {1, batch}.
// linear        y = x @ W (+ b)                 x (N, in), W (in, out), b (out), y (N, out)
// linearGrad    dx = dy @ W^T, dW = x^T @ dy, db = sum_rows(dy)
// With transW the weight is stored (out, in) (a tied LM head reads the (V, d) embedding table):
//               y = x @ W^T,  dx = dy @ W,  dW = dy^T @ x.
// BLAS takes transposes as flags at full speed, so unlike the wasm path nothing is materialised.
#include "common.h"
#include <cblas.h>
#include <cstring>

namespace rt {

static Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  const char* k = "BatchMatMul";
  size_t la, lb, lc;
  const float* a = Arr<float>(info, 0, k, &la);
  if (!a) return info.Env().Undefined();
  const float* b = Arr<float>(info, 1, k, &lb);
  if (!b) return info.Env().Undefined();
  float* c = Arr<float>(info, 2, k, &lc);
  if (!c) return info.Env().Undefined();
  const int64_t batch = Int(info, 3), bA = Int(info, 4), bB = Int(info, 5);
  const int64_t M = Int(info, 6), K = Int(info, 7), N = Int(info, 8);
  const bool tA = Bool(info, 9), tB = Bool(info, 10);
  if ((bA != 1 && bA != batch) || (bB != 1 && bB != batch) ||
      la != static_cast<size_t>(bA * M * K) || lb != static_cast<size_t>(bB * K * N) ||
      lc != static_cast<size_t>(batch * M * N)) {
    Fail(info.Env(), k, "operand sizes do not match batch " + std::to_string(batch) + ", M " + std::to_string(M) +
                            ", K " + std::to_string(K) + ", N " + std::to_string(N));
    return info.Env().Undefined();
  }
  if (M == 0 || N == 0) return info.Env().Undefined();
  if (K == 0) { std::memset(c, 0, sizeof(float) * lc); return info.Env().Undefined(); }
  const int lda = tA ? M : K, ldb = tB ? K : N;
  for (int64_t i = 0; i < batch; i++) {
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                a + (bA == 1 ? 0 : i * M * K), lda, b + (bB == 1 ? 0 : i * K * N), ldb, 0.0f, c + i * M * N, N);
  }
  return info.Env().Undefined();
}

// linear(x, w, bias | null, y, N, in, out)
static Napi::Value Linear(const Napi::CallbackInfo& info) {
  const char* k = "RtLinear";
  const float* x = Arr<float>(info, 0, k);
  const float* w = Arr<float>(info, 1, k);
  const float* bias = info[2].IsNull() ? nullptr : Arr<float>(info, 2, k);
  float* y = Arr<float>(info, 3, k);
  if (!x || !w || !y || (!info[2].IsNull() && !bias)) return info.Env().Undefined();
  const int64_t N = Int(info, 4), In = Int(info, 5), Out = Int(info, 6);
  const bool tW = info.Length() > 7 && Bool(info, 7);
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for if (N * Out > (1 << 16))
    for (int64_t r = 0; r < N; r++) std::memcpy(y + r * Out, bias, sizeof(float) * Out);
    beta = 1.0f;
  }
  if (N == 0 || Out == 0) return info.Env().Undefined();
  if (In == 0) { if (!bias) std::memset(y, 0, sizeof(float) * N * Out); return info.Env().Undefined(); }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tW ? CblasTrans : CblasNoTrans, N, Out, In, 1.0f, x, In, w, tW ? In : Out, beta, y, Out);
  return info.Env().Undefined();
}

// linearGrad(dy, x, w, dx | null, dw | null, db | null, N, in, out)
static Napi::Value LinearGrad(const Napi::CallbackInfo& info) {
  const char* k = "RtLinearGrad";
  const float* dy = Arr<float>(info, 0, k);
  const float* x = Arr<float>(info, 1, k);
  const float* w = Arr<float>(info, 2, k);
  float* dx = info[3].IsNull() ? nullptr : Arr<float>(info, 3, k);
  float* dw = info[4].IsNull() ? nullptr : Arr<float>(info, 4, k);
  float* db = info[5].IsNull() ? nullptr : Arr<float>(info, 5, k);
  if (!dy || !x || !w || info.Env().IsExceptionPending()) return info.Env().Undefined();
  const int64_t N = Int(info, 6), In = Int(info, 7), Out = Int(info, 8);
  const bool tW = info.Length() > 9 && Bool(info, 9);
  if (dx) {
    if (Out == 0) std::memset(dx, 0, sizeof(float) * N * In);
    else if (N > 0 && In > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, tW ? CblasNoTrans : CblasTrans, N, In, Out, 1.0f, dy, Out, w, tW ? In : Out, 0.0f, dx, In);
  }
  if (dw) {
    if (N == 0) std::memset(dw, 0, sizeof(float) * In * Out);
    else if (In > 0 && Out > 0 && !tW)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, In, Out, N, 1.0f, x, In, dy, Out, 0.0f, dw, Out);
    else if (In > 0 && Out > 0)  // dW (out, in) = dy^T @ x
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Out, In, N, 1.0f, dy, Out, x, In, 0.0f, dw, In);
  }
  if (db) {
    // Column sums in row order (cache friendly); each column accumulates rows in order 0..N-1.
    std::memset(db, 0, sizeof(float) * Out);
    for (int64_t r = 0; r < N; r++) {
      const float* row = dy + r * Out;
      for (int64_t j = 0; j < Out; j++) db[j] += row[j];
    }
  }
  return info.Env().Undefined();
}

void InitMatmul(Napi::Env env, Napi::Object exports) {
  exports.Set("batchMatMul", Napi::Function::New(env, BatchMatMul));
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("linearGrad", Napi::Function::New(env, LinearGrad));
}

}  // namespace rt
