/**
 * The lifecycle phases both roles report (workers in every Heartbeat, the coordinator in StatusReply
 * and in the ringtune_phase metrics), declared once.
 */
export const WORKER_PHASES = ['joining', 'loading', 'training', 'done', 'failed'] as const;
export type WorkerPhase = (typeof WORKER_PHASES)[number];

/** reforming (elastic): a rank was lost or a worker joins; the ring of the next epoch is being formed. */
export const COORDINATOR_PHASES = ['waiting-for-workers', 'loading', 'training', 'reforming', 'finishing', 'done', 'failed'] as const;
export type CoordinatorPhase = (typeof COORDINATOR_PHASES)[number];
