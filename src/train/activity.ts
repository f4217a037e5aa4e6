/**
 * What a trainer is doing at a moment, named for liveness reports (a distributed worker's heartbeat
 * thread reads it from shared memory: src/worker/activity.ts). The trainer calls the sink at each
 * change; a single process passes none.
 */
export const ACTIVITIES = ['idle', 'loading', 'waiting', 'compute', 'all-reduce', 'update', 'evaluation', 'checkpoint', 'saving'] as const;
export type ActivityName = (typeof ACTIVITIES)[number];

/** `step`: the steps completed when the activity began; `micro`: [index (1-based), count] inside a step. */
export type ActivitySink = (what: ActivityName, step: number, micro?: [number, number]) => void;
