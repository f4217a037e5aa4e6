// The import rules of src/ (checked by tests/architecture/dependencies.test.ts; `npx depcruise src` prints them).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle in src/ (type-only imports count: they tie the modules together just the same).',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'control-plane-without-tfjs',
      comment: 'The job config, the control plane, the coordinator, run records, metric math and the sweep driver (its trials are child processes) run no model: they must not load tfjs.',
      severity: 'error',
      from: { path: '^src/(config|control|coordinator|run|eval|sweep)/', pathNot: '^src/coordinator/local\\.ts$' },
      to: { path: '(^|/)node_modules/@tensorflow/', reachable: true },
    },
    {
      name: 'humaneval-ratings-without-tfjs',
      comment: 'Human evaluation: only samples.ts (generation) runs a model; blinding, sheets, statistics and ratings import must not load tfjs.',
      severity: 'error',
      from: { path: '^src/humaneval/', pathNot: '^src/humaneval/samples\\.ts$' },
      to: { path: '(^|/)node_modules/@tensorflow/', reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
