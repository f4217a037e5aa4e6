/** Pieces both processes' metrics use: info-style state gauges, reason counters, NATS reconnects. */
import { Counter, type Gauge, type Registry } from 'prom-client';
import { REJECT_REASONS } from '../control/auth.ts';

/**
 * An info-style gauge `name{label=...}`: 1 for the current value, 0 for every value seen before, so
 * `name == 1` selects the current one and the history of values stays queryable.
 */
export class StateGauge {
  private current: string | undefined;
  constructor(private readonly gauge: Gauge<string>, private readonly label: string, known: readonly string[] = []) {
    for (const v of known) gauge.set({ [label]: v }, 0);
  }
  set(value: string): void {
    if (this.current !== undefined && this.current !== value) this.gauge.set({ [this.label]: this.current }, 0);
    this.gauge.set({ [this.label]: value }, 1);
    this.current = value;
  }
}

/** A {reason} counter with every reason present from the start (0), so rate() works from the first scrape. */
export function rejectCounter(name: string, help: string, registers: Registry[]): Counter<'reason'> {
  const c = new Counter({ name, help, labelNames: ['reason'], registers });
  for (const reason of REJECT_REASONS) c.inc({ reason }, 0);
  return c;
}

export function reconnectCounter(name: string, registers: Registry[]): Counter {
  return new Counter({ name, help: 'Times the control-plane NATS connection came back after a disconnect', registers });
}

/** What a nats.js NatsConnection offers for connection events (every status() call gets every event). */
export interface StatusSource {
  status(): AsyncIterable<{ type: string }>;
}

/** Calls `onReconnect` for every `reconnect` status event of a nats.js connection, until it closes. */
export function watchReconnects(source: StatusSource, onReconnect: () => void): void {
  void (async () => {
    for await (const s of source.status()) if (s.type === 'reconnect') onReconnect();
  })().catch(() => {});
}
