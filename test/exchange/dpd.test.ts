/**
 * Dead peer detection between two in-process daemons: idle IKE SAs are probed with empty
 * INFORMATIONALs; a silent peer is declared dead within delay + timeout and the connection is
 * negotiated again once the network carries traffic.
 */
import t from 'tap';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { A, B, conn, mirror, pair, state, until } from './pair.js';

const established = (p: Awaited<ReturnType<typeof pair>>): boolean =>
  state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established' && p.a.dp.sas.size === 1;

t.test('DPD probes an idle peer and keeps the SA while it answers', async (t) => {
  const c = conn('t1', { dpd: { delay: 0.1, timeout: 0.5 } });
  const p = await pair([c], [mirror(c, { dpd: undefined })]);
  t.teardown(p.stop);
  await until(() => established(p));
  const setup = p.net.steps().length;
  const spi = p.a.daemon.ike!.sasOf('t1')[0]!.spiI;
  await new Promise((r) => setTimeout(r, 450));
  // Probe times are jittered (liveness.ts DPD_JITTER): one may be in flight right now; its answer.
  await until(() => (p.net.steps().length - setup) % 2 === 0);
  const steps = p.net.steps().slice(setup);
  t.ok(steps.length >= 4, `several probes (${steps.length / 2})`);
  for (let i = 0; i < steps.length; i += 2) {
    t.equal(steps[i], `INFORMATIONAL request ${A} -> ${B}`);
    t.equal(steps[i + 1], `INFORMATIONAL response ${B} -> ${A}`);
  }
  t.equal(state(p.a, 't1'), 'established');
  t.ok(p.a.daemon.ike!.sasOf('t1')[0]!.spiI.equals(spi), 'same IKE SA');
  t.equal(p.a.failures.length, 0);
});

t.test('a dead peer is noticed within delay + timeout; re-initiation once traffic flows', async (t) => {
  const c = conn('t1', { dpd: { delay: 0.1, timeout: 0.3 } });
  const p = await pair([c], [mirror(c, { dpd: undefined })]);
  t.teardown(p.stop);
  await until(() => established(p));
  const oldSpi = p.a.daemon.ike!.sasOf('t1')[0]!.spiI;
  const oldChild = [...p.a.dp.sas.keys()][0];
  const downs: string[] = [];
  p.a.daemon.bus.on('child-down', (e) => downs.push(e.reason));
  const cut = Date.now();
  p.net.drop = () => true;
  await until(() => p.a.failures.some((f) => f.reason === 'dpd_timeout'), 2000);
  const took = Date.now() - cut;
  t.ok(took <= 100 + 300 + 150, `declared dead after ${took} ms (bound 400 ms + slack)`);
  t.equal(p.a.dp.sas.size, 0, 'CHILD_SA removed locally');
  t.same(downs, ['peer dead (DPD)']);
  t.not(state(p.a, 't1'), 'established');
  const sent = p.net.log.filter((s) => s.exchange === ExchangeType.INFORMATIONAL && s.from.address === A);
  t.ok(sent.length >= 2, 'the probe was retransmitted');
  t.notOk(
    p.net.log.slice(-sent.length).some((s) => s.exchange === ExchangeType.INFORMATIONAL && s.response),
    'no answer got through',
  );
  // The network comes back: the retry path negotiates a new IKE SA.
  await new Promise((r) => setTimeout(r, 100));
  p.net.drop = () => false;
  await until(() => state(p.a, 't1') === 'established' && p.a.dp.sas.size === 1, 3000);
  const sa = p.a.daemon.ike!.sasOf('t1')[0]!;
  t.notOk(sa.spiI.equals(oldSpi), 'a new IKE SA');
  t.not([...p.a.dp.sas.keys()][0], oldChild, 'a new CHILD_SA');
});

t.test('without dpd nothing is probed', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => established(p));
  const setup = p.net.steps().length;
  await new Promise((r) => setTimeout(r, 200));
  t.same(p.net.steps().slice(setup), []);
});
