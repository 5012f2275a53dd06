/**
 * The configuration's `limits` reach the IKE core (security issue #11: bounds an operator can size):
 * a hub raises them, a small gateway keeps the defaults. Exercised through the daemon as twinsecd
 * builds it, with the in-memory network.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { DEFAULT_LIMITS } from '../../src/ike/core/sa-table.js';
import { A, B, conn, mirror, pair, state, until } from './pair.js';

const LIMITS = {
  halfOpen: 100,
  halfOpenPerPeer: 4,
  ikeSas: 500,
  ikeSasPerPeer: 50,
  childrenPerIke: 8,
  // No COOKIE round trip here: the hard caps are under test.
  cookieThreshold: 1_000_000,
  cookieThresholdPerPeer: 1_000_000,
  halfOpenTimeout: 30,
  v1Unproven: 200,
  v1UnprovenPerPeer: 3,
};

t.test('configured limits bound the responder: 4 half-open SAs per peer, not the default 16', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)], { configLimits: LIMITS });
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const mgr = p.b.daemon.ike!;
  t.match(mgr.table.limits, {
    halfOpen: 100,
    halfOpenPerPeer: 4,
    total: 500,
    perPeer: 50,
    childrenPerIke: 8,
    unproven: 200,
    unprovenPerPeer: 3,
  });
  const init = p.net.log[0]!.data;
  for (let i = 0; i < 20; i++) {
    const m = Buffer.from(init);
    randomBytes(8).copy(m, 0); // a new initiator SPI: a new half-open SA each
    mgr.handle({ data: m, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
  }
  t.equal(mgr.dropped.get('limit'), 16, '4 half-open SAs accepted, 16 dropped');
  t.equal(state(p.b, 't1'), 'established', 'the established SA is untouched');
});

t.test('without a limits section the defaults apply; the file sets them by name', async (t) => {
  const text = (extra: string) => `
connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
${extra}`;
  const d = parseConfig(text(''));
  t.same(d.limits, {
    halfOpen: DEFAULT_LIMITS.halfOpen,
    halfOpenPerPeer: DEFAULT_LIMITS.halfOpenPerPeer,
    ikeSas: DEFAULT_LIMITS.total,
    ikeSasPerPeer: DEFAULT_LIMITS.perPeer,
    childrenPerIke: DEFAULT_LIMITS.childrenPerIke,
    cookieThreshold: 30,
    cookieThresholdPerPeer: 3,
    halfOpenTimeout: 30,
    v1Unproven: DEFAULT_LIMITS.unproven,
    v1UnprovenPerPeer: DEFAULT_LIMITS.unprovenPerPeer,
  });
  t.equal(parseConfig(text('limits: { ikeSas: 20000, halfOpen: 4096 }')).limits?.ikeSas, 20000);
  t.throws(
    () => parseConfig(text('limits: { halfOpenPerPeer: 50, halfOpen: 10 }')),
    /limits\.halfOpenPerPeer: 50 is more than limits\.halfOpen \(10\)/,
  );
  t.throws(
    () => parseConfig(text('limits: { v1UnprovenPerPeer: 64, v1Unproven: 32 }')),
    /limits\.v1UnprovenPerPeer: 64 is more than limits\.v1Unproven \(32\)/,
  );
  t.equal(parseConfig(text('limits: { v1UnprovenPerPeer: 128 }')).limits?.v1UnprovenPerPeer, 128);
  t.throws(() => parseConfig(text('limits: { v1UnprovenPerPeer: 0 }')), /limits\.v1UnprovenPerPeer/);
  t.throws(() => parseConfig(text('limits: { childrenPerIke: 0 }')), /limits\.childrenPerIke/);
  t.throws(() => parseConfig(text('limits: { bogus: 1 }')), /limits\.bogus: unknown field/);
});
