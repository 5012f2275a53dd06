/**
 * The HA layer wired together (src/ha/controller.ts) over a recording data plane: a check failing
 * on an established SA resets it after resetAfter (fake clock), a revoke route leaves and re-enters
 * the forwarding table, and a controller replacing another (reload) keeps what the checks knew.
 */
import t from 'tap';
import type { Config, ConnectionConfig } from '../../src/config/types.js';
import type { DataPlane, ForwardingEntry } from '../../src/dataplane/types.js';
import { EventBus } from '../../src/events.js';
import { HaController } from '../../src/ha/controller.js';
import { FakeClock } from '../exchange/fake-clock.js';

const DEST = '198.19.1.0/24';

function conn(name: string, resetAfter: number): ConnectionConfig {
  return {
    name,
    version: 2,
    local: '192.0.2.1',
    remote: '203.0.113.1',
    localId: '192.0.2.1',
    remoteId: '203.0.113.1',
    psk: Buffer.from('k'),
    ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 },
    esp: { proposals: ['aes256gcm16'], lifetime: 1800 },
    localSubnets: ['198.18.1.0/24'],
    remoteSubnets: [DEST],
    start: 'initiate',
    encapsulation: 'auto',
    healthCheck: { source: '198.18.1.1', destination: '198.19.1.1', interval: 0.05, retries: 2, resetAfter },
  };
}

function config(onAllDown: 'reserve' | 'revoke', resetAfter = 5): Config {
  return {
    tun: { name: 'tw0', mtu: 1400 },
    control: { socket: '/nonexistent' },
    ports: { ike: 500, natt: 4500 },
    qos: { priority: 0, dscp: 0, answerEcho: false },
    log: { level: 'info' },
    connections: { t1: conn('t1', resetAfter) },
    routes: [
      { destination: DEST, via: [{ connection: 't1', weight: 100 }], publish: true, holdDown: 3, onAllDown },
    ],
  };
}

/** Probes are recorded; `answer` replies to the last one (an echo request turned into a reply). */
function setup(cfg: Config, previous?: HaController) {
  const bus = new EventBus();
  const clock = new FakeClock();
  const routes: ForwardingEntry[][] = [];
  const probes: Buffer[] = [];
  const resets: string[] = [];
  const revoked: boolean[] = [];
  const events: string[] = [];
  bus.on('connection-reset', (e) => events.push(`reset ${e.connection} ${e.failedSeconds}`));
  let saUp = true;
  const dp = {
    setRoutes: (r: ForwardingEntry[]) => routes.push(r),
    injectProbe: (_c: string, pkt: Buffer) => {
      if (saUp) probes.push(pkt);
      return saUp;
    },
    watchProbe: () => {},
  } as unknown as DataPlane;
  const ha = new HaController({
    config: cfg,
    bus,
    dataplane: dp,
    saUp: () => saUp,
    onRevoked: (_d, v) => revoked.push(v),
    reset: (c) => resets.push(c),
    clock,
    random: { bytes: (n) => Buffer.alloc(n), float: () => 0 },
    previous,
  });
  const answer = () => {
    const req = Buffer.from(probes.at(-1)!);
    req[20] = 0; // ICMP type 0: echo reply
    ha.onProbe(req, process.hrtime.bigint());
  };
  return {
    ha,
    clock,
    routes,
    resets,
    revoked,
    events,
    answer,
    setSa: (up: boolean) => {
      saUp = up;
      ha.update();
    },
  };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inTable = (r: ForwardingEntry[] | undefined) => (r ?? []).some((e) => e.destination === DEST);

t.test('a check failing on an established SA resets it after resetAfter; a passing one never', async (t) => {
  const s = setup(config('reserve'));
  s.ha.start();
  t.teardown(() => s.ha.stop());
  s.answer();
  t.equal(s.ha.health('t1').health, 'up');
  await s.clock.advance(60_000);
  t.same(s.resets, [], 'healthy: no reset');
  await wait(250); // two probes unanswered at 50 ms: down
  t.equal(s.ha.health('t1').health, 'down');
  await s.clock.advance(4999);
  t.same(s.resets, []);
  await s.clock.advance(1);
  t.same(s.resets, ['t1'], 'reset after 5 s of failure');
  t.same(s.events, ['reset t1 5']);
  t.equal(s.ha.health('t1').resets, 1, 'status counts it');
});

t.test('revoke: out of the forwarding table while unusable, back once a probe is answered', async (t) => {
  const s = setup(config('revoke', 0));
  s.ha.start();
  t.teardown(() => s.ha.stop());
  t.notOk(inTable(s.routes.at(-1)), 'withdrawn until the check passes');
  t.same(s.revoked, []);
  s.answer();
  t.ok(inTable(s.routes.at(-1)), 'in the table');
  t.same(s.revoked, [false]);
  s.setSa(false);
  t.notOk(inTable(s.routes.at(-1)), 'SA gone: withdrawn');
  t.same(s.revoked, [false, true]);
  t.equal(s.ha.router.isRevoked(DEST), true);
  await s.clock.advance(120_000);
  t.same(s.resets, [], 'resetAfter 0: no reset');
});

t.test('a controller replacing another keeps health, usability and the route (reload)', async (t) => {
  const a = setup(config('revoke'));
  a.ha.start();
  a.answer();
  a.ha.stop();
  t.equal(a.ha.health('t1').health, 'up');
  const b = setup(config('revoke'), a.ha);
  b.ha.start();
  t.teardown(() => b.ha.stop());
  t.equal(b.ha.health('t1').health, 'up', 'no fall back to unknown');
  t.ok(inTable(b.routes.at(-1)), 'the route stays in');
  t.same(b.revoked, [], 'nothing withdrawn or restored');
  const changed = config('revoke');
  changed.connections.t1!.healthCheck!.destination = '198.19.1.2';
  const c = setup(changed, a.ha);
  c.ha.start();
  t.teardown(() => c.ha.stop());
  t.not(c.ha.health('t1').health, 'up', 'a changed probe starts over');
});
