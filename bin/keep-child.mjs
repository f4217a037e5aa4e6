#!/usr/bin/env node
// Runs a command as a child and makes sure it does not outlive this process's parent: when the
// parent exits (even by SIGKILL, which it cannot pass on), the child gets SIGTERM, then SIGKILL.
// `ringtune local` starts nats-server through it, since nats-server has no parent-death option.
// Usage: node keep-child.mjs <parent pid> <command> [args...]; exit status = the child's.
import { spawn } from 'node:child_process';

const [parentArg, command, ...args] = process.argv.slice(2);
const parent = Number(parentArg);
const child = spawn(command, args, { stdio: 'inherit' });
const stop = () => {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 3000).unref();
};
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, stop);
const watch = setInterval(() => { if (process.ppid !== parent) stop(); }, 500);
child.on('error', (err) => { console.error(`keep-child: ${command}: ${err.message}`); process.exit(127); });
child.on('exit', (code, signal) => {
  clearInterval(watch);
  process.exit(code ?? (signal ? 128 + 15 : 1));
});
