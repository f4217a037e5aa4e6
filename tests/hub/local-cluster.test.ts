/**
 * `ringtune local` with `model: org/tiny`: the launcher fetches the model once; the coordinator and
 * the 2 workers on this machine get the snapshot path and never ask the hub; the report keeps
 * `model:` as written.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { makeJob, runLocal } from '../integration/cluster-helpers.ts';
import { FakeHub, readDirFiles } from './fake-hub.ts';

test('ringtune local: the hub model is fetched once by the launcher, workers get the path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-hublocal-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const jobFile = await makeJob(dir, 'hub', { workers: 2, maxSteps: 3, globalBatch: 4, microBatch: 2 });
  const job = parse(await readFile(jobFile, 'utf8'));
  const hub = await new FakeHub().start();
  t.after(() => hub.stop());
  hub.addRepo('org/tiny', { files: await readDirFiles(job.model) });
  await writeFile(jobFile, stringify({ ...job, model: 'org/tiny' }));

  const r = await runLocal(jobFile, [], { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(dir, 'cache'), HF_TOKEN: '', HF_HUB_OFFLINE: '' });
  assert.equal(r.code, 0, r.output);
  assert.equal(hub.log.filter((q) => q.path.startsWith('/api/models/org/tiny/revision/')).length, 1, 'one process asked the hub');
  const gets = hub.contentGets().filter((q) => q.range !== 'bytes=0-0').map((q) => q.path);
  assert.equal(new Set(gets).size, gets.length, `each file fetched once: ${gets.join(', ')}`);
  const report = JSON.parse(await readFile(join(job.output, 'eval_report.json'), 'utf8'));
  assert.equal(report.model, 'org/tiny');
});
