/** Bounds on responder state: an IKE_SA_INIT flood from one peer cannot make us hold unbounded SAs. */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DEFAULT_LIMITS } from '../../src/ike/core/sa-table.js';
import { A, B, conn, mirror, pair, state, until } from './pair.js';

t.test('half-open SAs per peer are bounded, dropped as "limit", and expire', async (t) => {
  const c = conn('t1');
  // The hard caps behind the COOKIE challenge (cookie.test.ts): a source that answers cookies
  // (here: cookies are never asked for) still meets them.
  const p = await pair([c], [mirror(c)], { timing: { cookieThreshold: 1e6, cookieThresholdPerPeer: 1e6 } });
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const init = p.net.log[0]!.data;
  const mgr = p.b.daemon.ike!;
  const flood = () => {
    for (let i = 0; i < 40; i++) {
      const m = Buffer.from(init);
      randomBytes(8).copy(m, 0); // a new initiator SPI: a new half-open SA each
      mgr.handle({ data: m, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
    }
  };
  flood();
  const cap = DEFAULT_LIMITS.halfOpenPerPeer;
  t.equal(mgr.dropped.get('limit'), 40 - cap, `${cap} half-open SAs accepted, the rest dropped`);
  t.equal(mgr.sasOf('t1').filter((s) => s.phase === 'auth').length, cap);
  t.equal(state(p.b, 't1'), 'established', 'the established SA is untouched');
  // pair() sets halfOpenTimeout to 2 s: the half-open SAs go away and new ones are accepted again.
  await until(() => mgr.sasOf('t1').every((s) => s.phase !== 'auth'), 4000);
  flood();
  t.equal(mgr.dropped.get('limit'), 2 * (40 - cap));
});

t.test('a retransmitted IKE_SA_INIT read after its SA authenticated makes no second SA', async (t) => {
  // Seen on a hub under load (test/lab/hub.test.ts): charon retransmits IKE_SA_INIT after 1 s, and
  // its IKE_AUTH (port 4500) was read before the copies queued on port 500.
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const init = p.net.log[0]!.data;
  const mgr = p.b.daemon.ike!;
  const before = mgr.sasOf('t1').length;
  mgr.handle({
    data: Buffer.from(init),
    local: { address: B, port: 500 },
    remote: { address: A, port: 500 },
  });
  t.equal(mgr.sasOf('t1').length, before, 'no new SA');
  t.notOk(
    mgr.sasOf('t1').some((s) => s.phase === 'auth'),
    'nothing half-open',
  );
  t.equal(mgr.dropped.get('unexpected'), 1, 'dropped as unexpected');
  t.equal(state(p.b, 't1'), 'established', 'the established SA is untouched');
});
