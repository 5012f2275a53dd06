/**
 * The daemon: owns the event bus, the data plane and the IKE engine for one configuration.
 * (Skeleton; the IKE engine attaches here.)
 */
import type { Config } from './config/types.js';
import { EventBus } from './events.js';

export interface ChildStatus {
  spiIn: string;
  spiOut: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  encr?: string;
  integ?: string | null;
}

export interface ConnectionStatus {
  state: 'established' | 'connecting' | 'down';
  version: 1 | 2;
  local: string;
  remote: string;
  children: ChildStatus[];
}

export interface StatusReport {
  connections: Record<string, ConnectionStatus>;
  routes: { destination: string; active: string[] }[];
}

export class Daemon {
  readonly bus = new EventBus();
  readonly config: Config;
  constructor(config: Config) {
    this.config = config;
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  status(): StatusReport {
    const connections: Record<string, ConnectionStatus> = {};
    for (const c of Object.values(this.config.connections)) {
      connections[c.name] = { state: 'down', version: c.version, local: c.local, remote: c.remote, children: [] };
    }
    return { connections, routes: this.config.routes.map((r) => ({ destination: r.destination, active: [] })) };
  }
}
