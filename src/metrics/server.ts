/**
 * The Prometheus scrape endpoint: `GET /metrics` (and HEAD) answers the registry's text
 * exposition; every other path is 404, other methods on /metrics 405. Plain HTTP on the
 * configured address only (`metrics.listen`); put it on loopback or a management network.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/schema.js';
import type { StatusReport } from '../daemon.js';
import type { EventBus } from '../events.js';
import { Metrics, type RouteNextHops } from './metrics.js';

export type { ListenAddress };

/** Anything that renders an exposition (a `Metrics`, or a prom-client `Registry`). */
export interface Exposition {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export class MetricsServer {
  readonly #source: Exposition;
  #server: Server | undefined;

  constructor(source: Exposition) {
    this.#source = source;
  }

  /** Listens on host:port (port 0: any free port); resolves with the bound address. */
  start(host: string, port: number): Promise<ListenAddress> {
    if (this.#server) return Promise.reject(new Error('metrics server already started'));
    const server = createServer((req, res) => void this.#handle(req, res));
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.#server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        const a = server.address() as AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stops listening and drops open (keep-alive) connections. */
  close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return reply(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return reply(res, 405, 'method not allowed\n');
    }
    let body: string;
    try {
      body = await this.#source.metrics();
    } catch {
      return reply(res, 500, 'metrics unavailable\n');
    }
    res.writeHead(200, {
      'Content-Type': this.#source.contentType,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export interface StartMetricsOptions {
  listen: ListenAddress;
  bus: EventBus;
  /** The daemon's status (Daemon.status), read once per scrape. */
  snapshot: () => StatusReport;
  /** Configured next hops per route (e.g. `() => daemon.config.routes`), for 0-valued standby hops. */
  routes?: () => readonly RouteNextHops[];
  /** A connection's configured IKE version (the `version` label of event-driven counters). */
  version?: (connection: string) => 1 | 2 | undefined;
}

export interface RunningMetrics {
  metrics: Metrics;
  /** The bound address (the configured one; with port 0, the port chosen). */
  address: ListenAddress;
  close(): Promise<void>;
}

/** Builds the daemon's metrics and serves them; `close()` stops the server and the bus listeners. */
export async function startMetrics(opts: StartMetricsOptions): Promise<RunningMetrics> {
  const metrics = new Metrics({
    bus: opts.bus,
    snapshot: opts.snapshot,
    ...(opts.routes ? { routes: opts.routes } : {}),
    ...(opts.version ? { version: opts.version } : {}),
  });
  const server = new MetricsServer(metrics);
  let address: ListenAddress;
  try {
    address = await server.start(opts.listen.host, opts.listen.port);
  } catch (err) {
    metrics.close();
    throw err;
  }
  return {
    metrics,
    address,
    close: async () => {
      metrics.close();
      await server.close();
    },
  };
}
