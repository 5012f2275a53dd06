/** Two daemons back to back over a FakeNetwork, each with an in-memory data plane. */
import type { Config, ConnectionConfig, LimitsConfig } from '../../src/config/types.js';
import { Daemon } from '../../src/daemon.js';
import { MemoryDataPlane } from '../../src/dataplane/memory.js';
import type { TwinsecEvents } from '../../src/events.js';
import type { Clock, Random } from '../../src/ike/core/clock.js';
import type { Timing } from '../../src/ike/core/protocol.js';
import type { SaLimits } from '../../src/ike/core/sa-table.js';
import type { IkeSaV2 } from '../../src/ike/v2/ike-sa.js';
import type { FakeClock } from './fake-clock.js';
import { FakeNetwork, type FakeTransport } from './fake-network.js';

export const A = '192.0.2.1';
export const B = '203.0.113.1';

export function conn(name: string, over: Partial<ConnectionConfig> = {}): ConnectionConfig {
  return {
    name,
    version: 2,
    local: A,
    remote: B,
    localId: over.local ?? A,
    remoteId: over.remote ?? B,
    psk: Buffer.from('correct horse battery staple'),
    ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 86400 },
    esp: { proposals: ['aes256gcm16'], lifetime: 3600 },
    localSubnets: ['198.18.1.0/24'],
    remoteSubnets: ['198.19.1.0/24'],
    start: 'initiate',
    encapsulation: 'auto',
    ...over,
  };
}

/** The mirror image of a connection: what the peer configures. */
export function mirror(c: ConnectionConfig, over: Partial<ConnectionConfig> = {}): ConnectionConfig {
  return {
    ...c,
    local: c.remote,
    remote: c.local,
    localId: c.remoteId,
    remoteId: c.localId,
    localSubnets: c.remoteSubnets,
    remoteSubnets: c.localSubnets,
    start: 'listen',
    ...over,
  };
}

export function config(
  conns: ConnectionConfig[],
  limits?: LimitsConfig,
  secrets?: Config['secrets'],
): Config {
  return {
    ...(limits ? { limits } : {}),
    ...(secrets ? { secrets } : {}),
    tun: { name: 'tsw-test', mtu: 1400 },
    control: { socket: '/nonexistent' },
    ports: { ike: 500, natt: 4500 },
    qos: { priority: 7, dscp: 48, answerEcho: true },
    log: { level: 'info' },
    connections: Object.fromEntries(conns.map((c) => [c.name, c])),
    routes: [],
  };
}

export interface Side {
  daemon: Daemon;
  transport: FakeTransport;
  dp: MemoryDataPlane;
  events: { name: string; ev: unknown }[];
  failures: TwinsecEvents['ike-failure'][];
}

export interface PairOptions {
  /** A fake clock (fake-clock.ts) and randomness shared by both daemons. */
  clock?: Clock;
  random?: Random;
  timing?: Partial<Timing>;
  limits?: Partial<SaLimits>;
  /** The configuration file's `limits` section (both daemons); `limits` above overrides it. */
  configLimits?: LimitsConfig;
  /** The configuration's `secrets` (keys by peer identity), for B only. */
  secretsB?: Config['secrets'];
  /** The network to use (a test may set its filter before the first datagram). */
  net?: FakeNetwork;
}

export async function pair(
  a: ConnectionConfig[],
  b: ConnectionConfig[],
  o: PairOptions = {},
): Promise<{ net: FakeNetwork; a: Side; b: Side; stop: () => Promise<void> }> {
  const net = o.net ?? new FakeNetwork();
  const make = (conns: ConnectionConfig[], secrets?: Config['secrets']): Side => {
    const dp = new MemoryDataPlane();
    const addrs = [...new Set(conns.map((c) => c.local))];
    const transport = net.transport(addrs);
    const daemon = new Daemon(config(conns, o.configLimits, secrets), {
      transport,
      dataplane: dp,
      timing: {
        retransmitBase: 40,
        retransmitFactor: 1.5,
        retransmitTries: 3,
        halfOpenTimeout: 2000,
        keepalive: 30,
        ...o.timing,
      },
      limits: o.limits,
      retry: { base: 50, max: 200 },
      clock: o.clock,
      random: o.random,
    });
    const side: Side = { daemon, transport, dp, events: [], failures: [] };
    daemon.bus.on('ike-state', (ev) => side.events.push({ name: 'ike-state', ev }));
    daemon.bus.on('child-up', (ev) => side.events.push({ name: 'child-up', ev }));
    daemon.bus.on('ike-failure', (ev) => side.failures.push(ev));
    return side;
  };
  const sa = make(a);
  const sb = make(b, o.secretsB);
  await sb.daemon.start();
  await sa.daemon.start();
  return {
    net,
    a: sa,
    b: sb,
    stop: async () => {
      await sa.daemon.stop();
      await sb.daemon.stop();
    },
  };
}

export async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The newest IKE SA of a connection as the IKEv2 code holds it (white-box tests only). */
export function internal(s: Side, name: string): IkeSaV2 {
  const view = s.daemon.ike!.sasOf(name)[0]!;
  return s.daemon.ike!.table.get(view.initiator ? view.spiI : view.spiR) as IkeSaV2;
}

export const state = (s: Side, name: string): string =>
  s.daemon.status().connections[name]?.state ?? 'missing';

/**
 * Stops a pair running on a fake clock: the network lets everything through again (the DELETEs),
 * and fake time moves on until both daemons have waited out their bounded shutdown.
 */
export async function stopOnFakeClock(clock: FakeClock, p: Awaited<ReturnType<typeof pair>>): Promise<void> {
  p.net.drop = () => false;
  let done = false;
  const s = p.stop().then(() => {
    done = true;
  });
  while (!done) await clock.advance(500);
  await s;
}
