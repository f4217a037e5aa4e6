/**
 * The tfjs backends ringtune knows, in the order `auto` tries them (backend.ts selects one). A file
 * of its own so the job schema can name them without loading tfjs.
 */
export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'native', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';
