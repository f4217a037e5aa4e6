// ringtune's native CPU engine: a Node-API addon over OpenBLAS with fused training kernels.
// Hand-written because no library offers tfjs kernels outside the wasm heap on a machine without
// libtensorflow (notes/tfjs-backends.md); this file only wires the kernel families together.
#include "common.h"
#include <omp.h>

extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_parallel(void);
}

namespace rt {

static int g_threads = 1;
int Threads() { return g_threads; }

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(Int(info, 0));
  if (n < 1) n = 1;
  g_threads = n;
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", g_threads);
  o.Set("blasThreads", openblas_get_num_threads());
  o.Set("blasConfig", std::string(openblas_get_config()));
  o.Set("blasCore", std::string(openblas_get_corename()));
  // 0 sequential, 1 pthreads, 2 OpenMP
  o.Set("blasParallel", openblas_get_parallel());
  return o;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  InitMatmul(env, exports);
  InitElementwise(env, exports);
  InitAttention(env, exports);
  InitNorms(env, exports);
  InitActivations(env, exports);
  InitLoss(env, exports);
  InitOptim(env, exports);
  InitCollective(env, exports);
  openblas_set_num_threads(1);
  omp_set_num_threads(1);
  return exports;
}

}  // namespace rt

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return rt::Init(env, exports); }
NODE_API_MODULE(ringtune_native, InitModule)
