// Kernel family: loss (forward and backward side by side). Filled in by its owner.
#include "common.h"

namespace rt {

void InitLoss(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace rt
