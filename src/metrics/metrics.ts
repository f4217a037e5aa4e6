/**
 * Prometheus metrics of the coordinator and the workers, and the HTTP server that exposes them. The
 * names are in names.ts (docs/metrics.md lists them with their meaning); each process owns one
 * Registry (coordinator-metrics.ts, worker-metrics.ts).
 *
 * Every series carries `ringtune_job` (the job name), not `job`: Prometheus sets `job` to the scrape
 * job's name, and would rename ours to `exported_job`. Process metrics (prom-client's default Node.js
 * metrics) keep their stock names so stock Node.js dashboards work.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { InputError } from '../errors.ts';

export type { Registry } from 'prom-client';
export { METRIC_NAMES, JOB_LABEL, DURATION_BUCKETS_SECONDS, CHECKPOINT_BUCKETS_SECONDS, EVAL_KEYS } from './names.ts';
export { WorkerMetrics, type WorkerStepRecord } from './worker-metrics.ts';
export { CoordinatorMetrics, type CoordinatorStepRecord, type RunStatus } from './coordinator-metrics.ts';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text format) and GET /healthz ("ok") on node:http. Port 0 = ephemeral. */
export function startMetricsServer(registry: Registry, opts: { port: number; host?: string }): Promise<MetricsServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics collection failed: ${String(err)}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const host = opts.host ?? '0.0.0.0';
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new InputError(
          `metrics server cannot listen on ${host}:${opts.port} (${err.code ?? err.message}); ` +
            'pick another port with --metrics-port (0 = any free port)',
          { cause: err },
        ),
      );
    server.once('error', onError);
    server.listen(opts.port, host, () => {
      server.off('error', onError);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            // Keep-alive connections (Prometheus holds one open) would otherwise delay close forever.
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}
