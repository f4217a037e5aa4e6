/**
 * The import structure of src/: no cycles, and the parts that run no model (job config, control
 * plane, coordinator, run records, metric math) never load tfjs — checked statically with
 * dependency-cruiser (.dependency-cruiser.cjs) and by importing them in a fresh process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { cruise } from 'dependency-cruiser';

const require = createRequire(import.meta.url);

test('dependency-cruiser: no import cycle in src/ and no path from the control plane to tfjs', async () => {
  const config = require('../../.dependency-cruiser.cjs');
  const { output } = await cruise(['src'], { ...config.options, ruleSet: { forbidden: config.forbidden }, validate: true });
  const summary = typeof output === 'string' ? JSON.parse(output).summary : output.summary;
  const violations = summary.violations.map((v: { rule: { name: string }; from: string; to: string; cycle?: Array<{ name: string }> }) =>
    `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name).join(' -> ')})` : ''}`);
  assert.deepEqual(violations, []);
  assert.ok(summary.totalCruised > 100, `cruised ${summary.totalCruised} modules`);
});

test('importing every module of config/, control/, coordinator/, run/ and eval/ loads no tfjs', () => {
  const dirs = ['config', 'control', 'coordinator', 'run', 'eval'];
  // local.ts starts processes that do run models, but imports none itself: it stays in the list.
  const modules = dirs.flatMap((d) => readdirSync(new URL(`../../src/${d}/`, import.meta.url)).filter((f) => f.endsWith('.ts')).map((f) => `../../src/${d}/${f}`));
  assert.ok(modules.length > 20, modules.join(' '));
  const script = `
    import { createRequire } from 'node:module';
    for (const m of ${JSON.stringify(modules.map((m) => new URL(m, import.meta.url).href))}) await import(m);
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow'));
    console.log(JSON.stringify({ engine: '_tfengine' in globalThis, loaded: loaded.slice(0, 5) }));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), { engine: false, loaded: [] });
});
