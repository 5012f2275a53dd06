/**
 * An IKEv1 hub: one responder connection (`remote: %any`, `remoteId: %any`, one PSK) that many
 * sites dial into, all from ONE address (strongSwan's load tester: every site from port 500 of the
 * generator), each with its own identity and all proposing the same selectors.
 *
 *  - every site comes up and keeps its own IPsec SA pair: a quick mode is a rekey (or a collision)
 *    only of pairs of the same peer (same authenticated identity, same connection), never of
 *    another site's pair with the same selectors (strongSwan: each IKE_SA owns its CHILD_SAs);
 *  - the per-source cap of unproven ISAKMP SAs (RFC 2408 §2.5.3: the peer has not echoed our
 *    responder cookie yet) comes from `limits.v1UnprovenPerPeer`: a low value displaces (and
 *    counts) the extra ones, the hub's value lets all sites start at once;
 *  - a site's re-authentication (RFC 2409 has no phase 1 rekey) and its INITIAL-CONTACT after a
 *    restart replace that site's SAs only;
 *  - one site declared dead by DPD takes only its own SAs with it, not those of the other sites
 *    behind the same address.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import type { IkeSaV1 } from '../../src/ike/v1/ike-sa.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { FakeNetwork } from './fake-network.js';
import { allUp, hubLimits, hubSas, N, type Pair, site, startInGroups } from './hub-fixture.js';
import { conn, mirror, pair, state, stopOnFakeClock } from './pair.js';

const HUB = hubLimits(64);

function setup(over: Partial<ConnectionConfig> = {}, start: ConnectionConfig['start'] = 'initiate') {
  const base = conn('s0', {
    version: 1,
    mode: 'main',
    localId: site(0),
    remoteId: 'hub.bench.example',
    ike: { proposals: ['aes128-sha256-modp2048'], lifetime: 86_400 },
    esp: { proposals: ['aes128-sha256'], lifetime: 3600 },
    // The load tester's selectors: the same for every site.
    localSubnets: ['198.18.0.0/16'],
    remoteSubnets: ['198.19.0.0/16'],
  });
  // One initiating daemon holds every site: all of them come from its one address and port 500.
  const sites = Array.from({ length: N }, (_, i) => ({ ...base, name: `s${i}`, localId: site(i), start }));
  const hub = mirror(base, { name: 'hub', remote: '%any', remoteId: '%any', ...over });
  return { sites, hub };
}

const hubSasOf = (p: Pair) => hubSas<IkeSaV1>(p);

const live = (sa: IkeSaV1) => sa.children.filter((c) => c.live);

t.test(`${N} sites from one address with the same selectors: all come up, each keeps its pair`, async (t) => {
  const clock = new FakeClock();
  // The sites are started by hand: a few at once, then the next few while the earlier ones are up
  // (as the load tester ramps up), so quick modes meet other sites' installed pairs.
  const { sites, hub } = setup({}, 'listen');
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB });
  t.teardown(() => stopOnFakeClock(clock, p));
  const core = p.b.daemon.ike!;
  const down: string[] = [];
  p.b.daemon.bus.on('child-down', (ev) => down.push(`${ev.connection} ${ev.reason}`));
  t.equal(core.table.limits.unprovenPerPeer, 64, 'limits.v1UnprovenPerPeer reached the SA table');

  await startInGroups(clock, p);
  await allUp(t, clock, p);
  // Past every linger (a redundant pair of a collision goes after 1 s, a replaced one after its
  // successor is up) and the quick mode repeats' memory.
  await clock.advance(35_000);
  const sas = hubSasOf(p);
  t.equal(sas.length, N, `${N} ISAKMP SAs on the hub`);
  t.equal(new Set(sas.map((s) => s.peerIdentity)).size, N, 'each with its own site identity');
  t.ok(
    sas.every((s) => s.phase === 'established' && live(s).length === 1 && s.children.length === 1),
    'each holds exactly one live pair of its own',
  );
  t.ok(
    sas.every((s) => s.children[0]!.state === 'installed'),
    "no site's pair was taken for a rekey of another's",
  );
  t.same(down, [], 'no pair deleted on the hub');
  t.equal(p.b.dp.sas.size, N);
  t.equal(p.a.dp.sas.size, N);
  t.equal(core.dropped.get('displaced') ?? 0, 0, 'no unproven SA displaced with the hub limits');
  t.equal(core.dropped.get('limit') ?? 0, 0, 'none refused');
  t.same(
    p.a.failures.filter((f) => f.reason !== 'sa_gone'),
    [],
  );
  t.same(p.b.failures, []);
});

t.test('a low limits.v1UnprovenPerPeer displaces and counts the extra unproven SAs', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup();
  const low = { ...HUB, v1UnprovenPerPeer: 4 };
  const n = new FakeNetwork();
  // The hub's answers are held: no site can echo its responder cookie yet.
  n.drop = (s) => s.from.address !== sites[0]!.local;
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: low, net: n });
  t.teardown(() => stopOnFakeClock(clock, p));
  const core = p.b.daemon.ike!;
  await clock.settle();
  t.equal(core.table.limits.unprovenPerPeer, 4);
  t.equal(core.table.unprovenCount, 4, 'at most 4 unproven ISAKMP SAs from the one address');
  t.equal(core.table.size, 4, 'the table holds no more');
  t.equal(core.dropped.get('displaced'), N - 4, `the other ${N - 4} displaced, and counted`);
});

t.test('a site re-authenticates: its SA and pair are replaced, the other sites keep theirs', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup();
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB });
  t.teardown(() => stopOnFakeClock(clock, p));
  const down: string[] = [];
  p.b.daemon.bus.on('child-down', (ev) => down.push(ev.reason));
  await allUp(t, clock, p);
  await clock.advance(11_000);
  const before = hubSasOf(p);
  const key = (s: IkeSaV1) => s.spiR.toString('hex');
  const old3 = before.find((s) => s.peerIdentity?.endsWith(Buffer.from(site(3)).toString('hex')))!;
  t.ok(old3, "site 3's ISAKMP SA on the hub");
  const oldPair = old3.children[0]!.spiIn;

  // strongSwan-style re-authentication (RFC 2409 has no phase 1 rekey): a new main mode and quick
  // mode for the same selectors beside the old SAs, then DELETEs for the old ones.
  const a = p.a.daemon.ike!;
  let done = false;
  a.rekeyIke(a.sasOf('s3')[0]!, (err) => {
    t.error(err);
    done = true;
  });
  await clock.until(() => done && old3.phase === 'dead', 10_000);
  await clock.advance(5000);
  const after = hubSasOf(p);
  t.equal(after.length, N, `still ${N} ISAKMP SAs on the hub`);
  const others = (xs: IkeSaV1[]) =>
    xs
      .filter((s) => s.peerIdentity !== old3.peerIdentity)
      .map(key)
      .sort();
  t.same(others(after), others(before), 'the other sites keep their ISAKMP SAs');
  const new3 = after.find((s) => s.peerIdentity === old3.peerIdentity)!;
  t.not(key(new3), key(old3), "site 3's is a new one");
  t.ok(
    after.every((s) => live(s).length === 1),
    'every site holds one live pair',
  );
  t.notOk(p.b.daemon.ike!.table.ownerOf(oldPair), "site 3's old pair is gone");
  t.same(down, ['deleted by peer'], "the only pair deleted on the hub is site 3's old one");
  t.equal(p.b.dp.sas.size, N);
});

t.test('a restarted site (INITIAL-CONTACT) replaces only its own SAs', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup();
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB });
  t.teardown(() => stopOnFakeClock(clock, p));
  await allUp(t, clock, p);
  await clock.advance(11_000); // older than the 10 s simultaneous-negotiation window
  const before = hubSasOf(p);
  const a = p.a.daemon.ike!;
  const gone = a.table.get(a.sasOf('s5')[0]!.spiI)!;
  // Site 5 forgets its SAs without a DELETE and comes back with INITIAL-CONTACT.
  a.destroy(gone, 'test: restart');
  a.initiate('s5');
  await clock.until(() => state(p.a, 's5') === 'established' && p.a.dp.sas.size === N, 5000);
  await clock.advance(2000);
  const after = hubSasOf(p);
  t.equal(after.length, N, `${N} ISAKMP SAs on the hub: site 5's old one replaced`);
  const gone5 = before.filter((s) => s.phase === 'dead');
  t.equal(gone5.length, 1, 'exactly one old ISAKMP SA went');
  t.ok(gone5[0]!.peerIdentity?.endsWith(Buffer.from(site(5)).toString('hex')), "site 5's");
  t.ok(
    after.every((s) => live(s).length === 1),
    'every site holds one live pair (site 5: its new one)',
  );
});

t.test('DPD declares one site dead: only its SAs go, not those of the sites beside it', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup({ dpd: { delay: 5, timeout: 20 } });
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB });
  t.teardown(() => stopOnFakeClock(clock, p));
  await allUp(t, clock, p);
  const a = p.a.daemon.ike!;
  const dead = a.table.get(a.sasOf('s7')[0]!.spiI)!;
  // Site 7 goes silent: whatever it would send under its ISAKMP SA is lost.
  p.net.drop = (s) => s.data.subarray(0, 8).equals(dead.spiI);
  await clock.until(() => p.b.failures.some((f) => f.reason === 'dpd_timeout'), 60_000, 500);
  await clock.settle();
  const after = hubSasOf(p);
  t.equal(after.length, N - 1, `${N - 1} ISAKMP SAs left on the hub`);
  t.notOk(
    after.some((s) => s.peerIdentity?.endsWith(Buffer.from(site(7)).toString('hex'))),
    "site 7's went",
  );
  t.equal(p.b.dp.sas.size, N - 1, 'the other sites keep their pairs');
});

t.test(`${N} sites behind one NAT (one public address, a port each): all come up and stay`, async (t) => {
  const clock = new FakeClock();
  const PUBLIC = '192.0.2.200';
  const { sites: plain, hub } = setup({}, 'listen');
  // Each site on its own private address; the NAT gives each a port of the one public address.
  const sites = plain.map((s, i) => ({ ...s, local: `10.0.0.${i + 1}` }));
  const net = new FakeNetwork();
  net.nat = (from) => {
    if (!from.address.startsWith('10.0.0.')) return from;
    const host = Number(from.address.split('.')[3]);
    return { address: PUBLIC, port: 20_000 + host * 2 + (from.port === 4500 ? 1 : 0) };
  };
  // NAT keep-alives (RFC 3948) every 20 s, not every 30 ms as in the other exchange tests.
  const timing = { keepalive: 20_000 };
  const p = await pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB, net, timing });
  t.teardown(() => stopOnFakeClock(clock, p));
  const down: string[] = [];
  p.b.daemon.bus.on('child-down', (ev) => down.push(ev.reason));
  await startInGroups(clock, p);
  await allUp(t, clock, p);
  await clock.advance(35_000);
  const sas = hubSasOf(p);
  t.equal(sas.length, N);
  t.ok(
    sas.every((s) => s.remote.address === PUBLIC && s.nat.remote),
    'all from the one public address, NAT detected (RFC 3947)',
  );
  t.equal(new Set(sas.map((s) => s.remote.port)).size, N, 'each from its own port');
  t.ok(
    sas.every((s) => live(s).length === 1 && s.children.length === 1),
    'each holds exactly one live pair of its own',
  );
  t.same(down, [], 'no pair deleted on the hub');
  t.equal(p.b.dp.sas.size, N);
});
