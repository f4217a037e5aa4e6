/**
 * training.optimizer and sgd's fields in the job spec (config/schema.ts, compile.ts): defaults as
 * today (adamw), torch.optim.SGD's Nesterov rule as an error naming the field, sgd's fields refused
 * for the other optimizers (they would be ignored), and the template's values compile.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocument } from 'yaml';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';
import { jobTemplate } from '../../src/config/template.ts';

const spec = (training: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1, ...training } });
const problems = (training: Record<string, unknown>): string[] => {
  try {
    compileJob(spec(training), '/j/job.yaml');
  } catch (err) {
    assert.ok(err instanceof JobSpecError);
    return err.message.split('\n').slice(1);
  }
  return [];
};

test('defaults: adamw, momentum 0, dampening 0, no Nesterov; the template compiles to the same', () => {
  const t = compileJob(spec({}), '/j/job.yaml').training;
  assert.deepEqual([t.optimizer, t.momentum, t.dampening, t.nesterov], ['adamw', 0, 0, false]);
  const fromTemplate = compileJob(parseDocument(jobTemplate({ model: 'm', train: 't.jsonl', format: 'text' })).toJS(), '/j/job.yaml').training;
  assert.deepEqual([fromTemplate.optimizer, fromTemplate.momentum, fromTemplate.dampening, fromTemplate.nesterov], ['adamw', 0, 0, false]);
});

test('sgd with momentum, dampening and Nesterov compile; adam compiles', () => {
  const t = compileJob(spec({ optimizer: 'sgd', momentum: 0.9, nesterov: true, weight_decay: 0 }), '/j/job.yaml').training;
  assert.deepEqual([t.optimizer, t.momentum, t.dampening, t.nesterov, t.weightDecay], ['sgd', 0.9, 0, true, 0]);
  assert.equal(compileJob(spec({ optimizer: 'sgd', momentum: 0.9, dampening: 0.1 }), '/j/job.yaml').training.dampening, 0.1);
  assert.equal(compileJob(spec({ optimizer: 'adam' }), '/j/job.yaml').training.optimizer, 'adam');
});

test('betas default to torch.optim.Adam(W)\'s [0.9, 0.999], and to the Lion paper\'s [0.9, 0.99] for lion; given betas win', () => {
  const betas = (training: Record<string, unknown>) => {
    const t = compileJob(spec(training), '/j/job.yaml').training;
    return [t.beta1, t.beta2];
  };
  assert.deepEqual(betas({}), [0.9, 0.999]);
  assert.deepEqual(betas({ optimizer: 'adam' }), [0.9, 0.999]);
  assert.deepEqual(betas({ optimizer: 'lion' }), [0.9, 0.99]);
  assert.deepEqual(betas({ optimizer: 'lion', betas: [0.95, 0.98] }), [0.95, 0.98]);
});

test('Nesterov without momentum or with dampening is an error naming training.nesterov (torch.optim.SGD rule)', () => {
  assert.deepEqual(problems({ optimizer: 'sgd', nesterov: true }),
    ['  training.nesterov: Nesterov momentum needs training.momentum > 0 and training.dampening 0 (as torch.optim.SGD), got momentum 0, dampening 0']);
  assert.deepEqual(problems({ optimizer: 'sgd', nesterov: true, momentum: 0.9, dampening: 0.5 }),
    ['  training.nesterov: Nesterov momentum needs training.momentum > 0 and training.dampening 0 (as torch.optim.SGD), got momentum 0.9, dampening 0.5']);
});

test('sgd fields with another optimizer are errors naming each field, not silently ignored', () => {
  assert.deepEqual(problems({ momentum: 0.9, nesterov: true }), [
    '  training.momentum: only training.optimizer sgd uses momentum; this job\'s optimizer is adamw',
    '  training.nesterov: only training.optimizer sgd uses nesterov; this job\'s optimizer is adamw',
  ]);
  assert.deepEqual(problems({ optimizer: 'adam', dampening: 0.1 }), ['  training.dampening: only training.optimizer sgd uses dampening; this job\'s optimizer is adam']);
  // Their defaults, written out (as the template does), are fine.
  assert.deepEqual(problems({ optimizer: 'adam', momentum: 0, dampening: 0, nesterov: false }), []);
});

test('out-of-range values and unknown optimizers are schema errors naming the field', () => {
  assert.match(problems({ optimizer: 'lbfgs' })[0], /^ {2}training\.optimizer: Invalid option: expected one of "sgd"\|"adam"\|"adamw"\|"lion"$/);
  assert.match(problems({ optimizer: 'sgd', momentum: -0.1 })[0], /^ {2}training\.momentum: /);
  assert.match(problems({ optimizer: 'sgd', momentum: 1 })[0], /^ {2}training\.momentum: /);
  assert.match(problems({ optimizer: 'sgd', dampening: 2 })[0], /^ {2}training\.dampening: /);
});
