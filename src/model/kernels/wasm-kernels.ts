// Fast wasm kernels replacing slow stock ones; filled in by the model work.
export {};
