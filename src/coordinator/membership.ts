/**
 * Who is in the run: joins (deduplicated by worker id), rank assignment (rank hint first, then join
 * order), heartbeats, and the liveness check that names the late rank.
 */
import type { ControlMessages } from '../control/bus.ts';

interface Member {
  join: ControlMessages['Join'];
  order: number;
  rank: number;
  lastHeartbeat: number;
  phase: string;
  step: number;
  /** What the rank said it was doing in its last heartbeat, and for how long it had been. */
  activity?: string;
  activityMs?: number;
  done?: boolean;
  /** Elastic: dropped from the run (lost); its rank slot stays until the next re-form renumbers. */
  dropped?: boolean;
  /** Elastic: joined a running job; loaded once it sent Ready{standby}. */
  standby?: { ready: boolean };
}

export class Membership {
  private members = new Map<string, Member>();
  private ranks: Member[] = [];

  constructor(readonly wanted: number) {}

  get size(): number {
    return this.members.size;
  }

  get worldSize(): number {
    return this.ranks.length;
  }

  join(j: ControlMessages['Join']): void {
    if (this.members.has(j.workerId) || this.members.size >= this.wanted) return;
    this.members.set(j.workerId, { join: j, order: this.members.size, rank: -1, lastHeartbeat: performance.now(), phase: 'joining', step: 0 });
  }

  has(workerId: string): boolean {
    return this.members.has(workerId);
  }

  full(): boolean {
    return this.members.size >= this.wanted;
  }

  /** Ranks in ring order: workers with a rank hint by hint, then the rest by join order. */
  assignRanks(): Array<{ rank: number; workerId: string; ringAddress: string }> {
    const hint = (m: Member) => (m.join.rankHint >= 0 ? m.join.rankHint : Number.MAX_SAFE_INTEGER);
    this.ranks = [...this.members.values()].sort((a, b) => hint(a) - hint(b) || a.order - b.order);
    const now = performance.now();
    return this.ranks.map((m, rank) => {
      m.rank = rank;
      m.lastHeartbeat = now; // liveness is judged from assignment on
      return { rank, workerId: m.join.workerId, ringAddress: m.join.ringAddress };
    });
  }

  byRank(rank: number): { workerId: string } | undefined {
    const m = this.ranks[rank];
    return m && !m.dropped ? { workerId: m.join.workerId } : undefined;
  }

  /** Ranks not dropped since the last (re-)form: whose reports complete a step. */
  get activeCount(): number {
    return this.ranks.filter((m) => !m.dropped).length;
  }

  /** The ranked, not dropped members' worker ids, in rank order. */
  activeWorkers(): string[] {
    return this.ranks.filter((m) => !m.dropped).map((m) => m.join.workerId);
  }

  /** Elastic: `rank` is lost; returns its worker id. It is no longer a member (status, liveness). */
  drop(rank: number): string | undefined {
    const m = this.ranks[rank];
    if (!m || m.dropped) return undefined;
    m.dropped = true;
    this.members.delete(m.join.workerId);
    return m.join.workerId;
  }

  /** Elastic: a worker joining a running job (loads, then waits for a re-form to take it in). */
  addStandby(j: ControlMessages['Join']): void {
    if (this.members.has(j.workerId)) return;
    this.members.set(j.workerId, { join: j, order: this.members.size, rank: -1, lastHeartbeat: performance.now(), phase: 'joining', step: 0, standby: { ready: false } });
  }

  /**
   * Elastic: forgets standby joiners whose heartbeats stopped (one that crashed while loading). They
   * hold no rank, but would hold a place under max_workers for good and refuse every later joiner.
   */
  forgetSilentStandby(timeoutMs: number): string[] {
    const now = performance.now();
    const gone = [...this.members.values()].filter((m) => m.standby && now - m.lastHeartbeat > timeoutMs).map((m) => m.join.workerId);
    for (const id of gone) this.members.delete(id);
    return gone;
  }

  standbyReady(workerId: string): boolean {
    const m = this.members.get(workerId);
    if (!m?.standby) return false;
    m.standby.ready = true;
    return true;
  }

  /** Loaded standby workers whose heartbeat is current, in join order. */
  readyStandby(timeoutMs: number): Array<{ workerId: string; ringAddress: string }> {
    const now = performance.now();
    return [...this.members.values()].filter((m) => m.standby?.ready && now - m.lastHeartbeat <= timeoutMs)
      .sort((a, b) => a.order - b.order).map((m) => ({ workerId: m.join.workerId, ringAddress: m.join.ringAddress }));
  }

  isStandby(workerId: string): boolean {
    return !!this.members.get(workerId)?.standby;
  }

  /** Elastic: the ranks of a new ring epoch, by worker id in rank order; dropped members are forgotten. */
  reRank(workerIds: readonly string[]): void {
    const now = performance.now();
    this.ranks = workerIds.map((id, rank) => {
      const m = this.members.get(id);
      if (!m) throw new Error(`re-form: ${id} is not a member`);
      m.rank = rank;
      m.standby = undefined;
      m.lastHeartbeat = now;
      return m;
    });
  }

  /**
   * Coordinator restart: the members are the killed session's live workers, at the ranks their
   * heartbeats name (their re-sent reports carry those ranks). A rank nobody holds any more is a
   * dropped slot, as after a loss, until the re-form renumbers.
   */
  recover(workers: ReadonlyArray<{ workerId: string; rank: number; step: number }>): void {
    const now = performance.now();
    const member = (workerId: string, rank: number, order: number): Member => ({
      join: { workerId, ringAddress: '', backend: '', rankHint: -1, pid: 0, host: '', metricsPort: 0 }, order, rank, lastHeartbeat: now, phase: 'training', step: 0,
    });
    this.members.clear();
    this.ranks = [];
    workers.forEach((w, i) => {
      const m = { ...member(w.workerId, w.rank, i), step: w.step };
      this.members.set(w.workerId, m);
      this.ranks[w.rank] = m;
    });
    for (let r = 0; r < this.ranks.length; r++) this.ranks[r] ??= { ...member(`(rank ${r})`, r, -1), dropped: true };
  }

  /** A member's ring address, once it tells it (a recovered member's is known from its ReformReport). */
  setRingAddress(workerId: string, ringAddress: string): void {
    const m = this.members.get(workerId);
    if (m) m.join = { ...m.join, ringAddress };
  }

  heartbeat(h: ControlMessages['Heartbeat']): void {
    const m = this.members.get(h.workerId);
    if (!m) return;
    m.lastHeartbeat = performance.now();
    m.phase = h.phase;
    m.step = h.step;
    m.activity = h.activity || undefined;
    m.activityMs = h.activity ? h.activityMs : undefined;
  }

  /**
   * The live ranks' activities, longest first ("rank 1: step 7: micro-batch 2/4 forward+backward for
   * 812 s"): what a stalled run is waiting on.
   */
  activities(): string[] {
    return this.ranks.filter((m) => !m.done && !m.dropped && m.activity !== undefined)
      .sort((a, b) => (b.activityMs ?? 0) - (a.activityMs ?? 0))
      .map((m) => `rank ${m.rank}: ${m.activity} for ${Math.round((m.activityMs ?? 0) / 1000)} s`);
  }

  alsoAlive(rank: number): void {
    const m = this.ranks[rank];
    if (m) m.lastHeartbeat = performance.now();
  }

  alsoAliveWorker(workerId: string): void {
    const m = this.members.get(workerId);
    if (m) m.lastHeartbeat = performance.now();
  }

  /** Every member counts as heard from now (after an outage in which nobody could be). */
  graceAll(): void {
    const now = performance.now();
    for (const m of this.members.values()) m.lastHeartbeat = now;
  }

  alive(timeoutMs: number): number {
    const now = performance.now();
    return [...this.members.values()].filter((m) => now - m.lastHeartbeat <= timeoutMs && m.phase !== 'failed').length;
  }

  /** A rank that sent Done has finished its work: it stops heartbeating and is no longer judged. */
  finished(rank: number): void {
    const m = this.ranks[rank];
    if (m) m.done = true;
  }

  /** The assigned, unfinished rank whose heartbeat is the oldest past the timeout, if any. */
  late(timeoutMs: number): { rank: number; ageMs: number } | undefined {
    const now = performance.now();
    const late = this.ranks.filter((m) => !m.done && !m.dropped && now - m.lastHeartbeat > timeoutMs).sort((a, b) => a.lastHeartbeat - b.lastHeartbeat)[0];
    return late && { rank: late.rank, ageMs: now - late.lastHeartbeat };
  }

  status(): ControlMessages['StatusReply']['workers'] {
    const now = performance.now();
    return [...this.members.values()].map((m) => ({
      rank: m.rank, workerId: m.join.workerId, phase: m.phase, step: m.step, heartbeatAgeMs: Math.round(now - m.lastHeartbeat), ringAddress: m.join.ringAddress,
      activity: m.activity ?? '', activityMs: m.activityMs ?? 0,
    }));
  }
}
