/**
 * Every NATS subject ringtune uses, in one place. All are scoped by job name so several jobs can
 * share one NATS server; messages also carry the run id, and stale runs' messages are dropped.
 */
export const subjects = (job: string) => {
  const base = `ringtune.${job}`;
  return {
    /** worker -> coordinator: Join (repeated until assigned) */
    join: `${base}.join`,
    /** coordinator -> one worker: Assignment */
    worker: (workerId: string) => `${base}.worker.${workerId}`,
    /** worker -> coordinator: Ready, Heartbeat, StepReport, EvalReport, CheckpointReport, Done, Failed */
    ready: `${base}.ready`,
    heartbeat: `${base}.heartbeat`,
    step: `${base}.step`,
    eval: `${base}.eval`,
    checkpoint: `${base}.checkpoint`,
    done: `${base}.done`,
    failed: `${base}.failed`,
    /** worker -> coordinator (elastic): ReformReport */
    reform: `${base}.reform`,
    /** worker -> coordinator (elastic): Leave (a drained worker leaves the run) */
    leave: `${base}.leave`,
    /** coordinator -> all workers: Control (Start, EvalDecision, Abort, Shutdown) */
    control: `${base}.control`,
    /** request/reply: StatusRequest -> StatusReply (`ringtune status`) */
    status: `${base}.status`,
  };
};

export type Subjects = ReturnType<typeof subjects>;
