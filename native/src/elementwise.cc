// Kernel family: the standard tfjs elementwise, reduction and data-movement kernels on float32
// (src/model/native/kernels/elementwise.ts maps tfjs kernel names and attrs onto these).
//
// ewBinary(op, a, b, out, outShape, aShape, bShape)   out = a (op) b with numpy/tfjs broadcasting;
//          aShape, bShape are left-padded with 1s to out's rank. op: BinOp below.
// ewUnary(op, x, out)                                  out = f(x), same length. op: UnOp below.
// ewReduce(op, x, out, outer, R, inner)                x (outer, R, inner) -> out (outer, inner). op: RedOp.
// ewSoftmax(x, out, rows, cols)                        softmax over the last axis of x (rows, cols).
// ewTranspose(x, out, shape, perm)                     out = x.transpose(perm), any rank.
// ewSlice(x, out, shape, begin, size)                  out = x[begin : begin + size], any rank.
// ewConcat([x_i], out, outer, inner_i)                 x_i (outer, inner_i) -> out (outer, sum inner_i).
// ewTile(x, out, shape, reps)                          out = tile(x, reps).
// ewGather(x, idx, out, batch, outer, dim, slice, n)   x (batch, outer, dim, slice), idx (batch, n)
//          -> out (batch, outer, n, slice); returns the position of the first out-of-range index or -1.
// ewScatterNd(idx, upd, out, nUpd, rank, slice, strides, rows)  out (rows, slice) = sum of upd rows at idx;
//          returns the first bad update position or -1.
// ewPad(x, out, shape, before, after, value)          out = x padded with `value` (PadV2), any rank.
// ewCast(kind, x, out)                                 int32/bool <-> float32 (see CastKind).
// Data-movement kernels copy 32-bit words, so the TS side passes int32 data as Float32Array views.
//
// Numerics follow tfjs-backend-cpu (which computes each element in float64 and rounds to float32):
//  - + - * / min max sqrt: one IEEE float op gives the same result as double-then-round (p >= 2*24+2),
//    so these are bit-identical; rsqrt and squared difference are computed in double like the cpu backend.
//  - exp, log, tanh (and sigmoid via exp) use the Cephes single-precision polynomials (S. Moshier,
//    Cephes Math Library, expf.c / logf.c / tanhf.c), written branch-free so GCC vectorises them;
//    they are within ~2 ulp of the correctly rounded value.
//  - erf uses the same Abramowitz & Stegun 7.1.26 formula as tfjs in double, like tfjs.
//  - sum and mean accumulate in double; column reductions in row order (identical to the cpu order),
//    row reductions with 8 partial sums (within 1 ulp of it).
#include "common.h"
#include <cmath>
#include <cstring>
#include <vector>
#include <algorithm>
#include <limits>
#ifdef _OPENMP
#include <omp.h>
#endif

// The math below is written with selects that GCC if-converts into vector blends only when it may
// assume float compares do not trap (they do not here: no FP exceptions are enabled in Node). GCC does
// not inline functions compiled without this option (<cmath>'s std:: wrappers, declared above) into
// ones compiled with it, so the math uses __builtin_* directly; the vector loops live in RT_VEC
// (noinline) helpers rather than in the functions OpenMP outlines.
#pragma GCC optimize("no-trapping-math")
#define RT_VEC __attribute__((noinline))

namespace rt {

// Typed-array argument (common.h's Arr) that does nothing once an earlier argument has thrown, so a
// kernel can fetch all its arguments and check env.IsExceptionPending() once. Null data pointers are
// fine: empty typed arrays have none, and nothing reads through them.
template <typename T>
static inline T* A(const Napi::CallbackInfo& info, size_t i, const char* kernel, size_t* len) {
  *len = 0;
  if (info.Env().IsExceptionPending()) return nullptr;
  return Arr<T>(info, i, kernel, len);
}

static constexpr int64_t kPar = 1 << 15;  // elements below which threading costs more than it saves

// ---------------------------------------------------------------- scalar math (vectorisable)

static inline float BitsToFloat(int32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
static inline int32_t FloatToBits(float f) { int32_t b; std::memcpy(&b, &f, 4); return b; }

// Cephes expf: exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2] (Cody-Waite split of ln2).
// 2^n is applied as two factors so results in the denormal range and overflow to inf come out right.
static inline float ExpF(float x) {
  float xc = x > 89.0f ? 89.0f : x;
  xc = xc < -104.0f ? -104.0f : xc;
  xc = (xc == xc) ? xc : 0.0f;
  const float fn = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int32_t n = static_cast<int32_t>(fn);
  const int32_t n1 = n / 2, n2 = n - n1;
  y = y * BitsToFloat((n1 + 127) << 23) * BitsToFloat((n2 + 127) << 23);
  return (x == x) ? y : x;
}

// Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(x) = log1p(m - 1) (polynomial) + e ln2.
static inline float LogF(float x) {
  const bool sub = x < 1.17549435e-38f;  // denormal (or <= 0, fixed up below): scale into the normal range
  const float xs = sub ? x * 8388608.0f : x;
  const int32_t bits = FloatToBits(xs);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126) - (sub ? 23.0f : 0.0f);
  float m = BitsToFloat((bits & 0x807fffff) | 0x3f000000);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1.0f : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  float r = m + y + e * 0.693359375f;
  const float inf = __builtin_inff();
  r = (x == inf) ? inf : r;
  r = (x == 0.0f) ? -inf : r;
  r = (x < 0.0f || x != x) ? __builtin_nanf("") : r;
  return r;
}

// Cephes tanhf: odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1).
static inline float TanhF(float x) {
  const float a = __builtin_fabsf(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = 1.0f - 2.0f / (ExpF(a + a) + 1.0f);
  const float r = a < 0.625f ? small : __builtin_copysignf(big, x);
  return (x == x) ? r : x;
}

static inline float SigmoidF(float x) { return 1.0f / (1.0f + ExpF(-x)); }

// Math.max / Math.min semantics: NaN wins, +0 > -0.
static inline float MaxF(float a, float b) {
  float r = a > b ? a : b;
  r = (a == b) ? (__builtin_signbit(a) ? b : a) : r;
  return (a != a || b != b) ? __builtin_nanf("") : r;
}
static inline float MinF(float a, float b) {
  float r = a < b ? a : b;
  r = (a == b) ? (__builtin_signbit(a) ? a : b) : r;
  return (a != a || b != b) ? __builtin_nanf("") : r;
}

// ---------------------------------------------------------------- binary with broadcasting

enum BinOp { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow, kSqDiff };

struct OpAdd { static float f(float a, float b) { return a + b; } };
struct OpSub { static float f(float a, float b) { return a - b; } };
struct OpMul { static float f(float a, float b) { return a * b; } };
struct OpDiv { static float f(float a, float b) { return a / b; } };
struct OpMax { static float f(float a, float b) { return MaxF(a, b); } };
struct OpMin { static float f(float a, float b) { return MinF(a, b); } };
// Math.pow differs from C pow where the exponent is NaN (always NaN) or +-inf with |base| = 1 (NaN).
struct OpPow {
  static float f(float a, float b) {
    if (b != b || (__builtin_isinf(b) && __builtin_fabsf(a) == 1.0f)) return __builtin_nanf("");
    return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  }
};
struct OpSqDiff {
  static float f(float a, float b) { const double d = static_cast<double>(a) - b; return static_cast<float>(d * d); }
};

// Inner row: sa, sb in {0, 1} (0 = that operand is broadcast along the row).
template <class Op>
RT_VEC static void BinRow(const float* __restrict a, const float* __restrict b, float* __restrict o, int64_t n, int sa, int sb) {
  if (sa && sb) for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b[i]);
  else if (sa) { const float bv = b[0]; for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], bv); }
  else if (sb) { const float av = a[0]; for (int64_t i = 0; i < n; i++) o[i] = Op::f(av, b[i]); }
  else { const float v = Op::f(a[0], b[0]); for (int64_t i = 0; i < n; i++) o[i] = v; }
}

// Collapsed iteration space: dims d[0..k) (outermost first) with per-operand strides (0 = broadcast).
struct Bcast {
  int k = 0;
  int64_t d[16], sa[16], sb[16];
};

template <class Op>
static void BinaryRun(const float* a, const float* b, float* o, const Bcast& s) {
  const int k = s.k;
  if (k == 0) { o[0] = Op::f(a[0], b[0]); return; }
  const int64_t inner = s.d[k - 1];
  const int ia = s.sa[k - 1] != 0, ib = s.sb[k - 1] != 0;
  int64_t outer = 1;
  for (int i = 0; i < k - 1; i++) outer *= s.d[i];
  const int64_t total = outer * inner;
  if (outer == 1) {
    // One long row: split it across threads.
    const int nt = total > kPar ? Threads() : 1;
    const int64_t chunk = (inner + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
      const int64_t lo = t * chunk, hi = std::min(inner, lo + chunk);
      if (lo < hi) BinRow<Op>(a + (ia ? lo : 0), b + (ib ? lo : 0), o + lo, hi - lo, ia, ib);
    }
    return;
  }
#pragma omp parallel for num_threads(Threads()) if (total > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    int64_t rem = r, offA = 0, offB = 0;
    for (int i = k - 2; i >= 0; i--) {
      const int64_t c = rem % s.d[i];
      rem /= s.d[i];
      offA += c * s.sa[i];
      offB += c * s.sb[i];
    }
    BinRow<Op>(a + offA, b + offB, o + r * inner, inner, ia, ib);
  }
}

static Napi::Value EwBinary(const Napi::CallbackInfo& info) {
  const char* k = "ewBinary";
  Napi::Env env = info.Env();
  const int op = static_cast<int>(Int(info, 0));
  size_t la, lb, lo, r1, r2, r3;
  const float* a = A<float>(info, 1, k, &la);
  const float* b = A<float>(info, 2, k, &lb);
  float* o = A<float>(info, 3, k, &lo);
  const int32_t* os = A<int32_t>(info, 4, k, &r1);
  const int32_t* as = A<int32_t>(info, 5, k, &r2);
  const int32_t* bs = A<int32_t>(info, 6, k, &r3);
  if (env.IsExceptionPending()) return env.Undefined();
  if (r1 != r2 || r1 != r3 || r1 > 16) { Fail(env, k, "shape ranks differ or exceed 16"); return env.Undefined(); }
  // Size checks, then collapse: drop size-1 output dims, merge neighbours with the same broadcast pattern.
  int64_t na = 1, nb = 1, no = 1;
  for (size_t i = 0; i < r1; i++) {
    if ((as[i] != os[i] && as[i] != 1) || (bs[i] != os[i] && bs[i] != 1)) { Fail(env, k, "shapes do not broadcast"); return env.Undefined(); }
    na *= as[i]; nb *= bs[i]; no *= os[i];
  }
  if (static_cast<int64_t>(la) != na || static_cast<int64_t>(lb) != nb || static_cast<int64_t>(lo) != no) {
    Fail(env, k, "buffer sizes do not match the shapes"); return env.Undefined();
  }
  if (no == 0) return env.Undefined();
  Bcast s;
  int pa = -1, pb = -1;  // broadcast pattern of the last kept dim
  int64_t dims[16]; int fa[16], fb[16]; int n = 0;
  for (size_t i = 0; i < r1; i++) {
    if (os[i] == 1) continue;
    const int ba = as[i] == 1, bb = bs[i] == 1;
    if (n > 0 && ba == pa && bb == pb) { dims[n - 1] *= os[i]; continue; }
    dims[n] = os[i]; fa[n] = ba; fb[n] = bb; pa = ba; pb = bb; n++;
  }
  s.k = n;
  int64_t stA = 1, stB = 1;
  for (int i = n - 1; i >= 0; i--) {
    s.d[i] = dims[i];
    s.sa[i] = fa[i] ? 0 : stA;
    s.sb[i] = fb[i] ? 0 : stB;
    if (!fa[i]) stA *= dims[i];
    if (!fb[i]) stB *= dims[i];
  }
  switch (op) {
    case kAdd: BinaryRun<OpAdd>(a, b, o, s); break;
    case kSub: BinaryRun<OpSub>(a, b, o, s); break;
    case kMul: BinaryRun<OpMul>(a, b, o, s); break;
    case kDiv: BinaryRun<OpDiv>(a, b, o, s); break;
    case kMax: BinaryRun<OpMax>(a, b, o, s); break;
    case kMin: BinaryRun<OpMin>(a, b, o, s); break;
    case kPow: BinaryRun<OpPow>(a, b, o, s); break;
    case kSqDiff: BinaryRun<OpSqDiff>(a, b, o, s); break;
    default: Fail(env, k, "unknown op " + std::to_string(op));
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- unary

enum UnOp { kExp = 0, kLog, kTanh, kSigmoid, kSqrt, kRsqrt, kNeg, kSquare, kAbs, kReciprocal, kRelu, kErf };

static inline float ErfTfjs(float xf) {
  // tfjs' erf (Abramowitz & Stegun 7.1.26, max abs error 1.5e-7), in double as tfjs-backend-cpu does.
  const double x = xf;
  const double sign = x > 0 ? 1.0 : (x < 0 ? -1.0 : x);
  const double v = __builtin_fabsf(x);
  const double t = 1.0 / (1.0 + 0.3275911 * v);
  const double poly = ((((1.061405429 * t + -1.453152027) * t + 1.421413741) * t + -0.284496736) * t + 0.254829592) * t;
  return static_cast<float>(sign * (1.0 - poly * std::exp(-v * v)));
}

template <class F>
RT_VEC static void UnaryChunk(const float* __restrict x, float* __restrict o, int64_t n, F f) {
  for (int64_t i = 0; i < n; i++) o[i] = f(x[i]);
}

template <class F>
static void UnaryRun(const float* x, float* o, int64_t n, F f) {
  const int64_t chunk = 8192;
  const int64_t nc = (n + chunk - 1) / chunk;
#pragma omp parallel for num_threads(Threads()) if (n > kPar) schedule(static)
  for (int64_t c = 0; c < nc; c++) UnaryChunk(x + c * chunk, o + c * chunk, std::min(chunk, n - c * chunk), f);
}

static Napi::Value EwUnary(const Napi::CallbackInfo& info) {
  const char* k = "ewUnary";
  Napi::Env env = info.Env();
  const int op = static_cast<int>(Int(info, 0));
  size_t lx, lo;
  const float* x = A<float>(info, 1, k, &lx);
  float* o = A<float>(info, 2, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  if (lx != lo) { Fail(env, k, "input and output lengths differ"); return env.Undefined(); }
  const int64_t n = static_cast<int64_t>(lx);
  switch (op) {
    case kExp: UnaryRun(x, o, n, [](float v) { return ExpF(v); }); break;
    case kLog: UnaryRun(x, o, n, [](float v) { return LogF(v); }); break;
    case kTanh: UnaryRun(x, o, n, [](float v) { return TanhF(v); }); break;
    case kSigmoid: UnaryRun(x, o, n, [](float v) { return SigmoidF(v); }); break;
    case kSqrt: UnaryRun(x, o, n, [](float v) { return __builtin_sqrtf(v); }); break;
    case kRsqrt: UnaryRun(x, o, n, [](float v) { return static_cast<float>(1.0 / __builtin_sqrt(static_cast<double>(v))); }); break;
    case kNeg: UnaryRun(x, o, n, [](float v) { return -v; }); break;
    case kSquare: UnaryRun(x, o, n, [](float v) { return v * v; }); break;
    case kAbs: UnaryRun(x, o, n, [](float v) { return __builtin_fabsf(v); }); break;
    case kReciprocal: UnaryRun(x, o, n, [](float v) { return 1.0f / v; }); break;
    case kRelu: UnaryRun(x, o, n, [](float v) { return v != v ? v : (v > 0.0f ? v : 0.0f); }); break;
    case kErf: UnaryRun(x, o, n, [](float v) { return ErfTfjs(v); }); break;
    default: Fail(env, k, "unknown op " + std::to_string(op));
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- reductions

enum RedOp { kSum = 0, kMean, kRMax, kRMin };

// Sum of a contiguous row in double with 8 partial sums (vectorises; order differs from a plain loop
// only in the last bits of a double, which rounding to float almost always hides).
RT_VEC static double RowSum(const float* __restrict x, int64_t n, float scale, bool useScale) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  if (useScale) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) acc[j] += static_cast<double>(x[i + j] / scale);
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += static_cast<double>(x[i] / scale);
    return s;
  }
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += x[i];
  return s;
}

// tfjs max/min: start from the first element; a NaN or a larger (smaller) value replaces it, so a
// NaN sticks. 32 independent lanes (four vectors) so the compare/blend chains overlap; the lane order
// only matters for ties between -0 and +0.
template <bool kIsMax>
RT_VEC static float RowExtreme(const float* __restrict x, int64_t n) {
  constexpr int L = 32;
  float m[L];
  for (int j = 0; j < L; j++) m[j] = x[0];
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; j++) {
      const float v = x[i + j];
      m[j] = ((kIsMax ? v > m[j] : v < m[j]) || v != v) ? v : m[j];
    }
  for (; i < n; i++) {
    const float v = x[i];
    m[0] = ((kIsMax ? v > m[0] : v < m[0]) || v != v) ? v : m[0];
  }
  float r = m[0];
  for (int j = 1; j < L; j++) r = ((kIsMax ? m[j] > r : m[j] < r) || m[j] != m[j]) ? m[j] : r;
  return r;
}
static inline float RowMax(const float* x, int64_t n) { return RowExtreme<true>(x, n); }
static inline float RowMin(const float* x, int64_t n) { return RowExtreme<false>(x, n); }

static Napi::Value EwReduce(const Napi::CallbackInfo& info) {
  const char* k = "ewReduce";
  Napi::Env env = info.Env();
  const int op = static_cast<int>(Int(info, 0));
  size_t lx, lo;
  const float* x = A<float>(info, 1, k, &lx);
  float* o = A<float>(info, 2, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t outer = Int(info, 3), R = Int(info, 4), inner = Int(info, 5);
  if (static_cast<int64_t>(lx) != outer * R * inner || static_cast<int64_t>(lo) != outer * inner) {
    Fail(env, k, "buffer sizes do not match (outer, R, inner)"); return env.Undefined();
  }
  if (op < kSum || op > kRMin) { Fail(env, k, "unknown op " + std::to_string(op)); return env.Undefined(); }
  const int64_t nOut = outer * inner;
  if (nOut == 0) return env.Undefined();
  if (R == 0) {
    // As the cpu backend: an empty sum (and mean, which it computes as a sum) is 0; max/min read past the row (NaN).
    const float v = (op == kSum || op == kMean) ? 0.0f : __builtin_nanf("");
    for (int64_t i = 0; i < nOut; i++) o[i] = v;
    return env.Undefined();
  }
  const bool mean = op == kMean;
  const float scale = static_cast<float>(R);
  const int64_t work = outer * R * inner;
  if (inner == 1) {
#pragma omp parallel for num_threads(Threads()) if (work > kPar) schedule(static)
    for (int64_t r = 0; r < outer; r++) {
      const float* row = x + r * R;
      if (op == kRMax) o[r] = RowMax(row, R);
      else if (op == kRMin) o[r] = RowMin(row, R);
      else o[r] = static_cast<float>(RowSum(row, R, scale, mean));
    }
    return env.Undefined();
  }
  // Column reduction: walk rows in order (cache friendly, same order as the cpu backend) with a
  // per-thread accumulator over a block of columns.
  const int64_t blk = 1024;
  const int64_t nb = (inner + blk - 1) / blk;
#pragma omp parallel num_threads(Threads()) if (work > kPar)
  {
    std::vector<double> acc(op == kSum || op == kMean ? blk : 0);
#pragma omp for schedule(static) collapse(2)
    for (int64_t q = 0; q < outer; q++) {
      for (int64_t cb = 0; cb < nb; cb++) {
        const int64_t c0 = cb * blk, cn = std::min(blk, inner - c0);
        const float* base = x + q * R * inner + c0;
        float* dst = o + q * inner + c0;
        if (op == kRMax || op == kRMin) {
          for (int64_t j = 0; j < cn; j++) dst[j] = base[j];
          for (int64_t r = 1; r < R; r++) {
            const float* row = base + r * inner;
            if (op == kRMax)
              for (int64_t j = 0; j < cn; j++) dst[j] = (row[j] > dst[j] || row[j] != row[j]) ? row[j] : dst[j];
            else
              for (int64_t j = 0; j < cn; j++) dst[j] = (row[j] < dst[j] || row[j] != row[j]) ? row[j] : dst[j];
          }
        } else {
          double* a = acc.data();
          for (int64_t j = 0; j < cn; j++) a[j] = 0.0;
          for (int64_t r = 0; r < R; r++) {
            const float* row = base + r * inner;
            if (mean) for (int64_t j = 0; j < cn; j++) a[j] += static_cast<double>(row[j] / scale);
            else for (int64_t j = 0; j < cn; j++) a[j] += row[j];
          }
          for (int64_t j = 0; j < cn; j++) dst[j] = static_cast<float>(a[j]);
        }
      }
    }
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- softmax (last axis)
// y = exp(x - max) / sum(exp(x - max)); the sum in double and rounded to float before the division,
// as the cpu backend's composed max / sub / exp / sum / div does.

RT_VEC static void SoftmaxRow(const float* __restrict xr, float* __restrict yr, int64_t cols) {
  const float m = RowMax(xr, cols);
  for (int64_t j = 0; j < cols; j++) yr[j] = ExpF(xr[j] - m);
  const float s = static_cast<float>(RowSum(yr, cols, 1.0f, false));
  for (int64_t j = 0; j < cols; j++) yr[j] = yr[j] / s;
}

static Napi::Value EwSoftmax(const Napi::CallbackInfo& info) {
  const char* k = "ewSoftmax";
  Napi::Env env = info.Env();
  size_t lx, lo;
  const float* x = A<float>(info, 0, k, &lx);
  float* o = A<float>(info, 1, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t rows = Int(info, 2), cols = Int(info, 3);
  if (static_cast<int64_t>(lx) != rows * cols || lo != lx) { Fail(env, k, "buffer sizes do not match (rows, cols)"); return env.Undefined(); }
  if (cols == 0) return env.Undefined();
#pragma omp parallel for num_threads(Threads()) if (rows * cols > kPar / 4) schedule(static)
  for (int64_t r = 0; r < rows; r++) SoftmaxRow(x + r * cols, o + r * cols, cols);
  return env.Undefined();
}

// ---------------------------------------------------------------- transpose

// Copies a (rows x cols) block: dst[i * ldd + j] = src[j * lds + i], i < rows, j < cols, in tiles.
static inline void Transpose2D(const float* __restrict src, float* __restrict dst, int64_t rows, int64_t cols, int64_t lds, int64_t ldd) {
  const int64_t T = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += T) {
    const int64_t i1 = std::min(rows, i0 + T);
    for (int64_t j0 = 0; j0 < cols; j0 += T) {
      const int64_t j1 = std::min(cols, j0 + T);
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) dst[i * ldd + j] = src[j * lds + i];
    }
  }
}

static Napi::Value EwTranspose(const Napi::CallbackInfo& info) {
  const char* k = "ewTranspose";
  Napi::Env env = info.Env();
  size_t lx, lo, r1, r2;
  const float* x = A<float>(info, 0, k, &lx);
  float* o = A<float>(info, 1, k, &lo);
  const int32_t* shape = A<int32_t>(info, 2, k, &r1);
  const int32_t* perm = A<int32_t>(info, 3, k, &r2);
  if (env.IsExceptionPending()) return env.Undefined();
  if (r1 != r2 || r1 > 16) { Fail(env, k, "shape and perm ranks differ or exceed 16"); return env.Undefined(); }
  const int rank = static_cast<int>(r1);
  int64_t n = 1;
  bool seen[16] = {false};
  for (int i = 0; i < rank; i++) {
    n *= shape[i];
    if (perm[i] < 0 || perm[i] >= rank || seen[perm[i]]) { Fail(env, k, "perm is not a permutation"); return env.Undefined(); }
    seen[perm[i]] = true;
  }
  if (static_cast<int64_t>(lx) != n || lo != lx) { Fail(env, k, "buffer sizes do not match the shape"); return env.Undefined(); }
  if (n == 0) return env.Undefined();
  // Input strides; then the output dims (in output order) with the input stride of each, dropping
  // size-1 dims and merging output neighbours that are also input neighbours.
  int64_t inStride[16];
  { int64_t st = 1; for (int i = rank - 1; i >= 0; i--) { inStride[i] = st; st *= shape[i]; } }
  int64_t d[16], is[16]; int m = 0;
  for (int i = 0; i < rank; i++) {
    const int ax = perm[i];
    if (shape[ax] == 1) continue;
    if (m > 0 && is[m - 1] == inStride[ax] * shape[ax]) { d[m - 1] *= shape[ax]; is[m - 1] = inStride[ax]; continue; }
    d[m] = shape[ax]; is[m] = inStride[ax]; m++;
  }
  if (m <= 1 || is[m - 1] == 1) {
    // The innermost output dim is contiguous in the input too: copy runs.
    const int64_t run = m == 0 ? 1 : d[m - 1];
    const int64_t outer = n / run;
    if (outer == 1) { std::memcpy(o, x, sizeof(float) * n); return env.Undefined(); }
#pragma omp parallel for num_threads(Threads()) if (n > kPar) schedule(static)
    for (int64_t r = 0; r < outer; r++) {
      int64_t rem = r, off = 0;
      for (int i = m - 2; i >= 0; i--) { off += (rem % d[i]) * is[i]; rem /= d[i]; }
      std::memcpy(o + r * run, x + off, sizeof(float) * run);
    }
    return env.Undefined();
  }
  // Otherwise the input's contiguous dim is output dim p < m-1: a batch of 2D transposes over
  // (output dim p, output dim m-1), tiled so both reads and writes stay in cache lines.
  int p = 0;
  for (int i = 0; i < m; i++) if (is[i] == 1) p = i;
  int64_t outStride[16];
  { int64_t st = 1; for (int i = m - 1; i >= 0; i--) { outStride[i] = st; st *= d[i]; } }
  const int64_t rows = d[p], cols = d[m - 1];
  const int64_t outer = n / (rows * cols);
#pragma omp parallel for num_threads(Threads()) if (n > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    int64_t rem = r, offIn = 0, offOut = 0;
    for (int i = m - 2; i >= 0; i--) {
      if (i == p) continue;
      const int64_t c = rem % d[i];
      rem /= d[i];
      offIn += c * is[i];
      offOut += c * outStride[i];
    }
    Transpose2D(x + offIn, o + offOut, rows, cols, is[m - 1], outStride[p]);
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- slice

static Napi::Value EwSlice(const Napi::CallbackInfo& info) {
  const char* k = "ewSlice";
  Napi::Env env = info.Env();
  size_t lx, lo, r1, r2, r3;
  const float* x = A<float>(info, 0, k, &lx);
  float* o = A<float>(info, 1, k, &lo);
  const int32_t* shape = A<int32_t>(info, 2, k, &r1);
  const int32_t* begin = A<int32_t>(info, 3, k, &r2);
  const int32_t* size = A<int32_t>(info, 4, k, &r3);
  if (env.IsExceptionPending()) return env.Undefined();
  if (r1 != r2 || r1 != r3 || r1 > 16) { Fail(env, k, "shape, begin and size ranks differ or exceed 16"); return env.Undefined(); }
  const int rank = static_cast<int>(r1);
  int64_t nx = 1, no = 1;
  for (int i = 0; i < rank; i++) {
    if (begin[i] < 0 || size[i] < 0 || begin[i] + size[i] > shape[i]) { Fail(env, k, "slice out of range"); return env.Undefined(); }
    nx *= shape[i]; no *= size[i];
  }
  if (static_cast<int64_t>(lx) != nx || static_cast<int64_t>(lo) != no) { Fail(env, k, "buffer sizes do not match"); return env.Undefined(); }
  if (no == 0) return env.Undefined();
  // Merge trailing dims that are taken whole into the run length.
  int64_t stride[16];
  { int64_t st = 1; for (int i = rank - 1; i >= 0; i--) { stride[i] = st; st *= shape[i]; } }
  int last = rank - 1;
  int64_t run = 1;
  while (last >= 0 && size[last] == shape[last]) { run *= shape[last]; last--; }
  int64_t base = 0;
  for (int i = 0; i < rank; i++) base += static_cast<int64_t>(begin[i]) * stride[i];
  if (last < 0) { std::memcpy(o, x + base, sizeof(float) * no); return env.Undefined(); }
  run *= size[last];  // the first partial dim is contiguous within its row
  const int64_t outer = no / run;
#pragma omp parallel for num_threads(Threads()) if (no > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    int64_t rem = r, off = base;
    for (int i = last - 1; i >= 0; i--) { off += (rem % size[i]) * stride[i]; rem /= size[i]; }
    std::memcpy(o + r * run, x + off, sizeof(float) * run);
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- concat

static Napi::Value EwConcat(const Napi::CallbackInfo& info) {
  const char* k = "ewConcat";
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) { Fail(env, k, "argument 0 must be an array of Float32Arrays"); return env.Undefined(); }
  Napi::Array list = info[0].As<Napi::Array>();
  size_t lo, li;
  float* o = A<float>(info, 1, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t outer = Int(info, 2);
  const int32_t* inners = A<int32_t>(info, 3, k, &li);
  if (env.IsExceptionPending()) return env.Undefined();
  const uint32_t n = list.Length();
  if (li != n) { Fail(env, k, "inner sizes and inputs differ in count"); return env.Undefined(); }
  std::vector<const float*> src(n);
  int64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = list[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      Fail(env, k, "input " + std::to_string(i) + " is not a Float32Array"); return env.Undefined();
    }
    Napi::Float32Array ta = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(ta.ElementLength()) != outer * inners[i]) { Fail(env, k, "input " + std::to_string(i) + " size does not match"); return env.Undefined(); }
    src[i] = ta.Data();
    total += inners[i];
  }
  if (static_cast<int64_t>(lo) != outer * total) { Fail(env, k, "output size does not match"); return env.Undefined(); }
#pragma omp parallel for num_threads(Threads()) if (outer * total > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    float* dst = o + r * total;
    for (uint32_t i = 0; i < n; i++) {
      if (inners[i] > 0) std::memcpy(dst, src[i] + r * inners[i], sizeof(float) * inners[i]);
      dst += inners[i];
    }
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- tile

static Napi::Value EwTile(const Napi::CallbackInfo& info) {
  const char* k = "ewTile";
  Napi::Env env = info.Env();
  size_t lx, lo, r1, r2;
  const float* x = A<float>(info, 0, k, &lx);
  float* o = A<float>(info, 1, k, &lo);
  const int32_t* shape = A<int32_t>(info, 2, k, &r1);
  const int32_t* reps = A<int32_t>(info, 3, k, &r2);
  if (env.IsExceptionPending()) return env.Undefined();
  if (r1 != r2 || r1 > 16 || r1 == 0) { Fail(env, k, "shape and reps ranks differ, are 0 or exceed 16"); return env.Undefined(); }
  const int rank = static_cast<int>(r1);
  int64_t nx = 1, no = 1, os[16], xs[16];
  for (int i = 0; i < rank; i++) { nx *= shape[i]; os[i] = static_cast<int64_t>(shape[i]) * reps[i]; no *= os[i]; }
  if (static_cast<int64_t>(lx) != nx || static_cast<int64_t>(lo) != no) { Fail(env, k, "buffer sizes do not match"); return env.Undefined(); }
  if (no == 0) return env.Undefined();
  { int64_t st = 1; for (int i = rank - 1; i >= 0; i--) { xs[i] = st; st *= shape[i]; } }
  const int64_t inner = os[rank - 1], w = shape[rank - 1];
  const int64_t outer = no / inner;
#pragma omp parallel for num_threads(Threads()) if (no > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    int64_t rem = r, off = 0;
    for (int i = rank - 2; i >= 0; i--) { off += ((rem % os[i]) % shape[i]) * xs[i]; rem /= os[i]; }
    float* dst = o + r * inner;
    for (int64_t j = 0; j < inner; j += w) std::memcpy(dst + j, x + off, sizeof(float) * w);
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- gather / scatterND

static Napi::Value EwGather(const Napi::CallbackInfo& info) {
  const char* k = "ewGather";
  Napi::Env env = info.Env();
  size_t lx, li, lo;
  const float* x = A<float>(info, 0, k, &lx);
  const int32_t* idx = A<int32_t>(info, 1, k, &li);
  float* o = A<float>(info, 2, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t batch = Int(info, 3), outer = Int(info, 4), dim = Int(info, 5), slice = Int(info, 6), n = Int(info, 7);
  if (static_cast<int64_t>(lx) != batch * outer * dim * slice || static_cast<int64_t>(li) != batch * n ||
      static_cast<int64_t>(lo) != batch * outer * n * slice) {
    Fail(env, k, "buffer sizes do not match (batch, outer, dim, slice, n)"); return env.Undefined();
  }
  for (int64_t i = 0; i < batch * n; i++)
    if (idx[i] < 0 || idx[i] >= dim) return Napi::Number::New(env, static_cast<double>(i));
#pragma omp parallel for num_threads(Threads()) if (lo > static_cast<size_t>(kPar)) schedule(static) collapse(2)
  for (int64_t b = 0; b < batch; b++)
    for (int64_t q = 0; q < outer; q++) {
      const float* src = x + (b * outer + q) * dim * slice;
      float* dst = o + (b * outer + q) * n * slice;
      const int32_t* ib = idx + b * n;
      for (int64_t i = 0; i < n; i++) std::memcpy(dst + i * slice, src + static_cast<int64_t>(ib[i]) * slice, sizeof(float) * slice);
    }
  return Napi::Number::New(env, -1);
}

// Duplicate indices add up in update order, in float, as the cpu backend does.
static Napi::Value EwScatterNd(const Napi::CallbackInfo& info) {
  const char* k = "ewScatterNd";
  Napi::Env env = info.Env();
  size_t li, lu, lo, ls;
  const int32_t* idx = A<int32_t>(info, 0, k, &li);
  const float* upd = A<float>(info, 1, k, &lu);
  float* o = A<float>(info, 2, k, &lo);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t nUpd = Int(info, 3), rank = Int(info, 4), slice = Int(info, 5);
  const int32_t* strides = A<int32_t>(info, 6, k, &ls);
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t rows = Int(info, 7);
  if (static_cast<int64_t>(li) != nUpd * rank || static_cast<int64_t>(lu) != nUpd * slice ||
      static_cast<int64_t>(lo) != rows * slice || static_cast<int64_t>(ls) != rank) {
    Fail(env, k, "buffer sizes do not match (updates, rank, slice, rows)"); return env.Undefined();
  }
  std::vector<int64_t> row(nUpd);
  for (int64_t u = 0; u < nUpd; u++) {
    int64_t f = 0;
    for (int64_t j = 0; j < rank; j++) f += static_cast<int64_t>(idx[u * rank + j]) * strides[j];
    if (f < 0 || f >= rows) return Napi::Number::New(env, static_cast<double>(u));
    row[u] = f;
  }
  std::memset(o, 0, sizeof(float) * lo);
  // Threads split the columns of a slice, so each element still sees its updates in order.
  const int nt = (nUpd * slice > kPar && slice >= 64) ? Threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = 0, T = 1;
#ifdef _OPENMP
    t = omp_get_thread_num(); T = omp_get_num_threads();
#endif
    const int64_t chunk = (slice + T - 1) / T, c0 = t * chunk, c1 = std::min(slice, c0 + chunk);
    for (int64_t u = 0; u < nUpd; u++) {
      float* dst = o + row[u] * slice;
      const float* src = upd + u * slice;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
  return Napi::Number::New(env, -1);
}

// ---------------------------------------------------------------- pad (PadV2)

static Napi::Value EwPad(const Napi::CallbackInfo& info) {
  const char* k = "ewPad";
  Napi::Env env = info.Env();
  size_t lx, lo, r1, r2, r3;
  const float* x = A<float>(info, 0, k, &lx);
  float* o = A<float>(info, 1, k, &lo);
  const int32_t* shape = A<int32_t>(info, 2, k, &r1);
  const int32_t* before = A<int32_t>(info, 3, k, &r2);
  const int32_t* after = A<int32_t>(info, 4, k, &r3);
  if (env.IsExceptionPending()) return env.Undefined();
  const float value = static_cast<float>(Num(info, 5));
  if (r1 != r2 || r1 != r3 || r1 > 16 || r1 == 0) { Fail(env, k, "shape, before and after ranks differ, are 0 or exceed 16"); return env.Undefined(); }
  const int rank = static_cast<int>(r1);
  int64_t nx = 1, no = 1, os[16];
  for (int i = 0; i < rank; i++) {
    if (before[i] < 0 || after[i] < 0) { Fail(env, k, "negative padding"); return env.Undefined(); }
    os[i] = static_cast<int64_t>(shape[i]) + before[i] + after[i];
    nx *= shape[i]; no *= os[i];
  }
  if (static_cast<int64_t>(lx) != nx || static_cast<int64_t>(lo) != no) { Fail(env, k, "buffer sizes do not match"); return env.Undefined(); }
  if (no == 0) return env.Undefined();
  int64_t xs[16];
  { int64_t st = 1; for (int i = rank - 1; i >= 0; i--) { xs[i] = st; st *= shape[i]; } }
  const int64_t inner = os[rank - 1], w = shape[rank - 1], b0 = before[rank - 1];
  const int64_t outer = no / inner;
#pragma omp parallel for num_threads(Threads()) if (no > kPar) schedule(static)
  for (int64_t r = 0; r < outer; r++) {
    float* dst = o + r * inner;
    int64_t rem = r, off = 0;
    bool inside = w > 0;
    for (int i = rank - 2; i >= 0; i--) {
      const int64_t c = rem % os[i] - before[i];
      rem /= os[i];
      if (c < 0 || c >= shape[i]) inside = false;
      off += c * xs[i];
    }
    if (!inside) { for (int64_t j = 0; j < inner; j++) dst[j] = value; continue; }
    for (int64_t j = 0; j < b0; j++) dst[j] = value;
    std::memcpy(dst + b0, x + off, sizeof(float) * w);
    for (int64_t j = b0 + w; j < inner; j++) dst[j] = value;
  }
  return env.Undefined();
}

// ---------------------------------------------------------------- cast

static Napi::Value EwCast(const Napi::CallbackInfo& info) {
  const char* k = "ewCast";
  Napi::Env env = info.Env();
  const int kind = static_cast<int>(Int(info, 0));
  size_t lx = 0, lo = 0;
  switch (kind) {
    case 0: {  // int32 -> float32
      const int32_t* x = A<int32_t>(info, 1, k, &lx);
      float* o = A<float>(info, 2, k, &lo);
      if (env.IsExceptionPending()) return env.Undefined();
      if (lx != lo) break;
      for (size_t i = 0; i < lx; i++) o[i] = static_cast<float>(x[i]);
      return env.Undefined();
    }
    case 1: {  // bool (uint8) -> float32
      const uint8_t* x = A<uint8_t>(info, 1, k, &lx);
      float* o = A<float>(info, 2, k, &lo);
      if (env.IsExceptionPending()) return env.Undefined();
      if (lx != lo) break;
      for (size_t i = 0; i < lx; i++) o[i] = static_cast<float>(x[i]);
      return env.Undefined();
    }
    case 2: {  // float32 -> int32 with JavaScript's ToInt32 (truncate, wrap modulo 2^32, NaN/inf -> 0)
      const float* x = A<float>(info, 1, k, &lx);
      int32_t* o = A<int32_t>(info, 2, k, &lo);
      if (env.IsExceptionPending()) return env.Undefined();
      if (lx != lo) break;
      for (size_t i = 0; i < lx; i++) {
        const float v = x[i];
        if (v > -2147483648.0f && v < 2147483648.0f) { o[i] = static_cast<int32_t>(v); continue; }
        if (!std::isfinite(v)) { o[i] = 0; continue; }
        const double m = std::fmod(std::trunc(static_cast<double>(v)), 4294967296.0);
        o[i] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(m < 0 ? m + 4294967296.0 : m)));
      }
      return env.Undefined();
    }
    case 3: {  // float32 -> bool: x != 0 (NaN -> true)
      const float* x = A<float>(info, 1, k, &lx);
      uint8_t* o = A<uint8_t>(info, 2, k, &lo);
      if (env.IsExceptionPending()) return env.Undefined();
      if (lx != lo) break;
      for (size_t i = 0; i < lx; i++) o[i] = x[i] != 0.0f ? 1 : 0;
      return env.Undefined();
    }
    default: Fail(env, k, "unknown cast kind " + std::to_string(kind)); return env.Undefined();
  }
  Fail(env, k, "input and output lengths differ");
  return env.Undefined();
}

void InitElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("ewBinary", Napi::Function::New(env, EwBinary));
  exports.Set("ewUnary", Napi::Function::New(env, EwUnary));
  exports.Set("ewReduce", Napi::Function::New(env, EwReduce));
  exports.Set("ewSoftmax", Napi::Function::New(env, EwSoftmax));
  exports.Set("ewTranspose", Napi::Function::New(env, EwTranspose));
  exports.Set("ewSlice", Napi::Function::New(env, EwSlice));
  exports.Set("ewConcat", Napi::Function::New(env, EwConcat));
  exports.Set("ewTile", Napi::Function::New(env, EwTile));
  exports.Set("ewGather", Napi::Function::New(env, EwGather));
  exports.Set("ewScatterNd", Napi::Function::New(env, EwScatterNd));
  exports.Set("ewPad", Napi::Function::New(env, EwPad));
  exports.Set("ewCast", Napi::Function::New(env, EwCast));
}

}  // namespace rt
