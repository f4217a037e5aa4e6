/**
 * Test-only (never imported by src/): the real `ringtune` CLI, whose coordinator never sees the
 * StepReports of the steps listed in DROP_STEP_REPORTS (comma-separated), re-sends included, as if
 * they were lost in a NATS outage and the coordinator died before their re-sends came. Workers keep
 * the reports it does not acknowledge, for the coordinator that takes over.
 *   node --import tsx tests/chaos/drop-steps-coordinator.ts coordinator JOB --resume-if-present ...
 */
import { Bus, type MessageMeta } from '../../src/control/bus.ts';

const drop = new Set((process.env.DROP_STEP_REPORTS ?? '').split(',').filter(Boolean).map(Number));
const subscribe = Bus.prototype.subscribe;
type Handler = (msg: { step?: number }, meta: MessageMeta) => void | Promise<void>;
(Bus.prototype as { subscribe: (subject: string, name: string, handler: Handler) => void }).subscribe = function (this: Bus, subject: string, name: string, handler: Handler) {
  const filtered: Handler = name === 'StepReport' ? (msg, meta) => (drop.has(msg.step ?? -1) ? undefined : handler(msg, meta)) : handler;
  (subscribe as unknown as (s: string, n: string, h: Handler) => void).call(this, subject, name, filtered);
};
console.error(`[drop-steps-coordinator] StepReports of steps ${[...drop].join(', ')} are dropped`);
await import('../../src/cli/main.ts');
