/**
 * An IKEv2 hub: one responder connection (`remote: %any`, a wildcard `remoteId`, keys by identity
 * from `secrets`) that many sites dial into from ONE address, each with its own identity and all
 * proposing the same traffic selectors. Each IKE SA owns its CHILD_SAs (RFC 7296 §2.8: a rekey or
 * collision is of a CHILD_SA of the same IKE SA), so every site keeps its own; a restarted site's
 * INITIAL_CONTACT (§2.4) and a site declared dead by DPD take only that site's SAs, found by the
 * identity it authenticated (not by its address, which all sites share here).
 */
import t from 'tap';
import { secret } from '../../src/config/load.js';
import type { ConnectionConfig } from '../../src/config/types.js';
import type { IkeSaV2 } from '../../src/ike/v2/ike-sa.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { allUp, hubLimits, hubSas, N, type Pair, site, startInGroups } from './hub-fixture.js';
import { conn, mirror, pair, state, stopOnFakeClock } from './pair.js';

const key = (i: number) => secret(`site${i}-key-0123456789`);
const SECRETS = Array.from({ length: N }, (_, i) => ({ id: site(i), psk: key(i) }));

const HUB = hubLimits(5);

function setup(over: Partial<ConnectionConfig> = {}, start: ConnectionConfig['start'] = 'initiate') {
  const base = conn('s0', {
    localId: site(0),
    remoteId: 'hub.bench.example',
    localSubnets: ['198.18.0.0/16'],
    remoteSubnets: ['198.19.0.0/16'],
  });
  const sites = Array.from({ length: N }, (_, i) => ({
    ...base,
    name: `s${i}`,
    localId: site(i),
    psk: key(i),
    start,
  }));
  const hub = mirror(base, {
    name: 'hub',
    remote: '%any',
    remoteId: '*.bench.example',
    psk: Buffer.alloc(0),
    ...over,
  });
  return { sites, hub };
}

/** The sites' daemon and the hub's, the hub with its limits and the sites' keys. */
const hubPair = (clock: FakeClock, sites: ConnectionConfig[], hub: ConnectionConfig) =>
  pair(sites, [hub], { clock, random: fixedJitter(0), configLimits: HUB, secretsB: SECRETS });
const hubSasOf = (p: Pair) => hubSas<IkeSaV2>(p);

const live = (sa: IkeSaV2) => sa.children.filter((c) => c.live);
const of = (i: number) => (s: IkeSaV2) => s.peerIdentity?.endsWith(Buffer.from(site(i)).toString('hex'));

t.test(
  `${N} sites from one address with the same selectors: all come up, each keeps its CHILD_SA`,
  async (t) => {
    const clock = new FakeClock();
    const { sites, hub } = setup({}, 'listen');
    const p = await hubPair(clock, sites, hub);
    t.teardown(() => stopOnFakeClock(clock, p));
    const down: string[] = [];
    p.b.daemon.bus.on('child-down', (ev) => down.push(ev.reason));
    await startInGroups(clock, p);
    await allUp(t, clock, p);
    await clock.advance(35_000);
    const sas = hubSasOf(p);
    t.equal(sas.length, N);
    t.equal(new Set(sas.map((s) => s.peerIdentity)).size, N, 'each with its own site identity');
    t.ok(
      sas.every((s) => s.phase === 'established' && live(s).length === 1 && s.children.length === 1),
      'each holds exactly one live CHILD_SA of its own',
    );
    t.same(down, [], 'no CHILD_SA deleted on the hub');
    t.equal(p.b.dp.sas.size, N);
    t.same(p.b.failures, []);
  },
);

t.test('a restarted site (INITIAL_CONTACT) replaces only its own IKE SA', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup();
  const p = await hubPair(clock, sites, hub);
  t.teardown(() => stopOnFakeClock(clock, p));
  await allUp(t, clock, p);
  await clock.advance(11_000); // older than the 10 s simultaneous-negotiation window
  const before = hubSasOf(p);
  const a = p.a.daemon.ike!;
  a.destroy(a.table.get(a.sasOf('s5')[0]!.spiI)!, 'test: restart');
  a.initiate('s5');
  await clock.until(() => state(p.a, 's5') === 'established' && p.a.dp.sas.size === N, 5000);
  await clock.until(() => p.b.dp.sas.size === N, 5000);
  const after = hubSasOf(p);
  t.equal(after.length, N, `${N} IKE SAs on the hub: site 5's old one replaced`);
  const gone = before.filter((s) => s.phase === 'dead');
  t.equal(gone.length, 1, 'exactly one old IKE SA went');
  t.ok(of(5)(gone[0]!), "site 5's");
  t.ok(
    after.every((s) => live(s).length === 1),
    'every site holds one live CHILD_SA',
  );
});

t.test('DPD declares one site dead: only its IKE SA goes, not those of the sites beside it', async (t) => {
  const clock = new FakeClock();
  const { sites, hub } = setup({ dpd: { delay: 5, timeout: 20 } });
  const p = await hubPair(clock, sites, hub);
  t.teardown(() => stopOnFakeClock(clock, p));
  await allUp(t, clock, p);
  const a = p.a.daemon.ike!;
  const dead = a.table.get(a.sasOf('s7')[0]!.spiI)!;
  // Site 7 goes silent: whatever is sent under its IKE SA (either way) is lost.
  p.net.drop = (s) => s.data.subarray(0, 8).equals(dead.spiI);
  await clock.until(() => p.b.failures.some((f) => f.reason === 'dpd_timeout'), 60_000, 500);
  await clock.settle();
  const after = hubSasOf(p);
  t.equal(after.length, N - 1, `${N - 1} IKE SAs left on the hub`);
  t.notOk(after.some(of(7)), "site 7's went");
  t.equal(p.b.dp.sas.size, N - 1, 'the other sites keep their CHILD_SAs');
});
