/**
 * The lifecycle phases both roles report (workers in every Heartbeat, the coordinator in StatusReply
 * and in the ringtune_phase metrics), declared once.
 */
export const WORKER_PHASES = ['joining', 'loading', 'training', 'done', 'failed'] as const;
export type WorkerPhase = (typeof WORKER_PHASES)[number];

export const COORDINATOR_PHASES = ['waiting-for-workers', 'loading', 'training', 'finishing', 'done', 'failed'] as const;
export type CoordinatorPhase = (typeof COORDINATOR_PHASES)[number];
