{
  "targets": [
    {
      "target_name": "ringtune_native",
      "sources": [
        "src/addon.cc",
        "src/matmul.cc",
        "src/elementwise.cc",
        "src/attention.cc",
        "src/norms.cc",
        "src/activations.cc",
        "src/loss.cc",
        "src/optim.cc",
        "src/collective.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-march=x86-64-v3", "-mtune=native", "-fopenmp", "-std=c++17", "-fno-math-errno"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-fopenmp"],
      "libraries": ["<!@(node blas-link.mjs)"]
    }
  ]
}
