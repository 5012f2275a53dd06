/**
 * The version-neutral IKE core's small parts: the CHILD_SA state machine, the SA table's bounds and
 * per-peer counts, and the connection set's backoff and reload diff (on a fake clock).
 */
import t from 'tap';
import { EventBus } from '../../src/events.js';
import { ChildSa } from '../../src/ike/core/child-sa.js';
import { backoff } from '../../src/ike/core/clock.js';
import { ConnectionSet } from '../../src/ike/core/connections.js';
import { BaseIkeSa } from '../../src/ike/core/ike-sa.js';
import { SaTable } from '../../src/ike/core/sa-table.js';
import { parseIdentity } from '../../src/ike/identity.js';
import { FakeClock, fixedJitter } from '../exchange/fake-clock.js';
import { config, conn } from '../exchange/pair.js';

class TestSa extends BaseIkeSa {
  readonly version = 2 as const;
  protected onDead(): void {}
}

function sa(ctx: { bus: EventBus; clock: FakeClock }, remote: string, initiator = false): TestSa {
  const c = conn('t1');
  return new TestSa(
    { ...ctx, random: fixedJitter(0) },
    { initiator, conn: c, local: { address: c.local, port: 500 }, remote: { address: remote, port: 500 } },
  );
}

t.test('CHILD_SA state machine: allowed moves only, each one an event', async (t) => {
  const bus = new EventBus();
  const seen: string[] = [];
  bus.on('child-state', (e) => seen.push(`${e.from}->${e.to}`));
  const c = new ChildSa(
    bus,
    {
      connection: 't1',
      spiIn: 1000,
      spiOut: 2000,
      encr: 'aes256gcm16',
      integ: null,
      dh: null,
      encapsulation: 'esp',
      tsLocal: [],
      tsRemote: [],
    },
    null,
  );
  t.equal(c.state, 'installed');
  t.ok(c.transition('rekeying', 'soft'));
  t.ok(c.transition('installed', 'rekey failed'));
  t.ok(c.transition('rekeyed', 'peer'));
  t.notOk(c.transition('installed', 'no way back'), 'a replaced SA never becomes current again');
  t.notOk(c.transition('rekeying', 'no second rekey'), 'nor is it rekeyed again');
  t.ok(c.transition('deleted', 'DELETE'));
  t.notOk(c.transition('installed', 'gone'), 'deleted is final');
  t.same(seen, ['installed->rekeying', 'rekeying->installed', 'installed->rekeyed', 'rekeyed->deleted']);
});

t.test('IKE SA state machine: dead is final and stops every timer', async (t) => {
  const clock = new FakeClock();
  const bus = new EventBus();
  const s = sa({ bus, clock }, '203.0.113.1', true);
  let fired = 0;
  s.timers.set(1000, () => fired++);
  t.notOk(s.transition('deleting', 'not from init'), 'init -> deleting is allowed only via auth/established');
  t.ok(s.transition('auth', 'x'));
  t.ok(s.transition('established', 'x'));
  t.ok(s.transition('dead', 'x'));
  t.notOk(s.transition('established', 'x'), 'dead is final');
  await clock.advance(2000);
  t.equal(fired, 0, 'its timers went with it');
});

t.test('SA table: half-open and per-peer bounds, counts follow a peer that moved', async (t) => {
  const clock = new FakeClock();
  const ctx = { bus: new EventBus(), clock };
  const table = new SaTable({ halfOpenPerPeer: 2, halfOpen: 3, perPeer: 3, total: 5 });
  const a1 = sa(ctx, '198.51.100.1');
  const a2 = sa(ctx, '198.51.100.1');
  for (const [i, s] of [a1, a2].entries()) {
    s.spiR = Buffer.alloc(8, i + 1);
    table.add(s);
    table.addHalfOpen(`k${i}`, s);
  }
  t.match(table.overLimit('198.51.100.1'), /2 half-open IKE SAs from 198.51.100.1/);
  t.equal(table.overLimit('198.51.100.2'), null, 'another peer is not affected');
  table.settle(a1);
  t.equal(table.overLimit('198.51.100.1'), null, 'an authenticated SA is no longer half-open');
  t.equal(table.halfOpen('k0'), undefined);
  const a3 = sa(ctx, '198.51.100.1');
  a3.spiR = Buffer.alloc(8, 9);
  table.add(a3);
  t.match(table.overLimit('198.51.100.1'), /3 IKE SAs with 198.51.100.1/);
  // a3's peer moved (NAT): the count moves with it.
  a3.remote = { address: '198.51.100.9', port: 4500 };
  table.moved(a3, '198.51.100.1');
  t.equal(table.overLimit('198.51.100.1'), null);
  table.remove(a2);
  table.remove(a2);
  t.equal(table.size, 2, 'removing twice is harmless');
  t.equal(table.get(a1.spiR), a1);
});

t.test('SA table indexes: by peer identity, by connection, by identity pair; gone with the SA', async (t) => {
  const clock = new FakeClock();
  const table = new SaTable();
  // The SAs know the table (as the daemon's do): setting peerIdentity or conn refiles them.
  const ctx = { bus: new EventBus(), clock, table };
  const mk = (i: number) => {
    const s = sa(ctx, '198.51.100.1');
    s.spiR = Buffer.alloc(8, i + 1);
    return s;
  };
  const [s1, s2, s3] = [mk(0), mk(1), mk(2)];
  s1.peerIdentity = 'id:a'; // before add(): filed when added
  for (const s of [s1, s2, s3]) table.add(s);
  s2.peerIdentity = 'id:a';
  s3.peerIdentity = 'id:b';
  t.same(table.withIdentity('id:a'), [s1, s2], 'oldest first');
  t.same(table.withIdentity('id:b'), [s3]);
  t.same(table.withIdentity(undefined), [], 'an SA without an identity has no peers');
  t.same(table.ofConn('t1'), [s3, s2, s1], 'newest first');
  // A responder picks its connection once the peer authenticated.
  s2.conn = conn('t2');
  t.same(table.ofConn('t1'), [s3, s1]);
  t.same(table.ofConn('t2'), [s2]);
  t.ok(table.someOfConn('t2', (x) => x === s2));
  t.same(table.withIds(s1), [], 'nothing marked yet');
  table.markIds(s1);
  table.markIds(s3);
  t.same(table.withIds(s2), [s1, s3], 'same configured identity pair');
  table.remove(s1);
  t.same(table.withIdentity('id:a'), [s2], 'removed from every index');
  t.same(table.ofConn('t1'), [s3]);
  t.same(table.withIds(s3), [s3]);
  s1.peerIdentity = 'id:c';
  t.same(table.withIdentity('id:c'), [], 'an SA no longer in the table is not filed again');
});

t.test('SA table: unproven SAs have their own per-source cap, not halfOpenPerPeer', async (t) => {
  const clock = new FakeClock();
  const ctx = { bus: new EventBus(), clock };
  const table = new SaTable({ halfOpenPerPeer: 2, unprovenPerPeer: 3 });
  const peer = '198.51.100.1';
  const us = [0, 1, 2].map((i) => {
    const s = sa(ctx, peer);
    s.spiR = Buffer.alloc(8, i + 1);
    table.add(s);
    table.addHalfOpen(`u${i}`, s, true);
    return s;
  });
  t.equal(table.overLimit(peer), null, '3 unproven SAs do not fill halfOpenPerPeer (2)');
  t.same(table.unprovenVictims(peer), [us[0]], 'at its own cap the oldest unproven one makes room');
  table.proven(us[0]!);
  table.proven(us[1]!);
  t.match(table.overLimit(peer), /2 half-open IKE SAs from 198.51.100.1/, 'proven half-open ones count');
});

t.test('connection set: keys by identity, exact (any case) before the longest wildcard', async (t) => {
  const clock = new FakeClock();
  const key = (s: string) => Buffer.from(s);
  const secrets = [
    { id: '*.example.net', psk: key('wide') },
    { id: 'Site1.Sites.Example.net', psk: key('exact') },
    { id: '*.sites.example.net', psk: key('narrow') },
    { id: '192.0.2.7', psk: key('ip') },
  ];
  const hub = { ...conn('hub'), psk: Buffer.alloc(0) };
  const set = new ConnectionSet({ ...config([hub]), secrets }, clock, fixedJitter(0), { base: 1, max: 1 });
  const psk = (id: string) => set.pskFor(hub, parseIdentity(id))?.toString();
  t.equal(psk('site1.sites.example.net'), 'exact', 'an exact identity, compared without case');
  t.equal(psk('site2.sites.example.net'), 'narrow', 'else the wildcard with the longest suffix');
  t.equal(psk('gw.example.net'), 'wide');
  t.equal(psk('192.0.2.7'), 'ip');
  t.equal(psk('192.0.2.8'), undefined);
  t.equal(psk('other.example.org'), undefined);
});

t.test('connection set: re-initiation backoff doubles, capped, jittered ±10 %; reload diff', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1');
  const set = new ConnectionSet(config([c, conn('t2')]), clock, fixedJitter(0.5), { base: 1000, max: 4000 });
  const delays: (number | null)[] = [];
  for (let i = 0; i < 4; i++) {
    delays.push(set.scheduleRetry(c, () => {}));
    await clock.advance(10_000);
  }
  t.same(delays, [1000, 2000, 4000, 4000]);
  t.equal(
    set.scheduleRetry({ ...c }, () => {}),
    null,
    'not for a connection object no longer configured',
  );
  set.setDown('t1', true);
  t.equal(
    set.scheduleRetry(c, () => {}),
    null,
    'not while administratively down',
  );
  t.equal(backoff(fixedJitter(0), 0, { base: 100, factor: 2, jitter: 0.2, centred: true }), 90);
  t.equal(backoff(fixedJitter(0.999999), 0, { base: 100, factor: 2, jitter: 0.1 }) < 110, true);
  const res = set.reload(config([c, conn('t2', { localSubnets: ['198.18.9.0/24'] }), conn('t3')]));
  t.same(res, { added: ['t3'], changed: ['t2'], removed: [], unchanged: ['t1'] });
  t.equal(set.get('t1'), c, 'an unchanged connection keeps its object');
  t.equal(
    set
      .candidates(2, c.local, c.remote)
      .map((x) => x.name)
      .join(),
    't2,t3',
    't1 is down: not a candidate',
  );
});

t.test('connection set: candidates only for the configured remote (exact, %any, subnet)', async (t) => {
  const clock = new FakeClock();
  const exact = conn('exact');
  const v6 = conn('v6', { remote: '2001:db8::1' });
  const any = conn('any', { remote: '%any' });
  const net = conn('net', { remote: '198.51.100.0/24' });
  const set = new ConnectionSet(config([exact, v6, any, net]), clock, fixedJitter(0.5), { base: 1, max: 1 });
  const names = (remote: string) =>
    set
      .candidates(2, exact.local, remote)
      .map((c) => c.name)
      .join();
  t.equal(names(exact.remote), 'exact', 'an exact match wins');
  t.equal(names('2001:db8:0::1'), 'v6', 'IPv6 spellings compare as addresses');
  t.equal(names('198.51.100.7'), 'any,net', 'a subnet that contains the peer, and %any');
  t.equal(names('192.0.2.99'), 'any', 'another address: only %any, never a connection for another peer');
  t.equal(set.candidates(1, exact.local, exact.remote).length, 0, 'version matters');
});
