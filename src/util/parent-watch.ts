/**
 * Process hygiene for children of `ringtune local`: a process started with RINGTUNE_PARENT_PID exits
 * when that parent is gone (the kernel re-parents it), so killing `ringtune local` (even with SIGKILL)
 * never leaves a coordinator or workers training unsupervised. Polled: Node has no parent-death signal.
 */
export const PARENT_PID_ENV = 'RINGTUNE_PARENT_PID';

export function exitWithParent(env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = (l) => console.error(l), intervalMs = 500): void {
  const parent = Number(env[PARENT_PID_ENV]);
  if (!Number.isInteger(parent) || parent <= 0) return;
  setInterval(() => {
    if (process.ppid === parent) return;
    log(`[ringtune] the process that started this one (pid ${parent}) is gone: exiting`);
    process.exit(129);
  }, intervalMs).unref();
}
