// A node:test reporter (used beside `spec` by scripts/run-tests.mjs): one JSON line per test file,
//   {"file":"tests/x.test.ts","startMs":12,"endMs":3456,"durationMs":3444,"ok":true}
// with start/end relative to the run's start. Node 20 emits a file's own test:dequeue / test:complete
// (name == file) when the file's process starts and ends, so these are the file's wall times in the run,
// which scripts/update-test-durations.mjs turns into the order hints and run-tests.mjs into the tail.
import { relative } from 'node:path';

export default async function* fileDurations(source) {
  const t0 = performance.now();
  const started = new Map();
  for await (const { type, data } of source) {
    if (!data?.file || data.name !== data.file || data.nesting !== 0) continue;
    if (type === 'test:dequeue') started.set(data.file, performance.now() - t0);
    if (type !== 'test:complete') continue;
    const endMs = performance.now() - t0;
    const durationMs = data.details?.duration_ms ?? endMs - (started.get(data.file) ?? 0);
    const file = relative(process.cwd(), data.file).split('\\').join('/');
    yield `${JSON.stringify({ file, startMs: Math.round(started.get(data.file) ?? endMs - durationMs), endMs: Math.round(endMs), durationMs: Math.round(durationMs), ok: data.details?.passed !== false && !data.details?.error })}\n`;
  }
}
