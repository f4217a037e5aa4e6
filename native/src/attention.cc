// Kernel family: attention (forward and backward side by side). Filled in by its owner.
#include "common.h"

namespace rt {

void InitAttention(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace rt
