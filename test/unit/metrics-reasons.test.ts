/**
 * The failure reason label is bounded: a peer's error notify number (its choice, unauthenticated
 * in IKE_SA_INIT) never becomes a label of its own, and however many reasons appear, at most
 * MAX_FAILURE_REASONS get a series.
 */
import t from 'tap';
import type { StatusReport } from '../../src/daemon.js';
import { EventBus } from '../../src/events.js';
import { notifyReason } from '../../src/ike/v2/errors.js';
import { notify } from '../../src/ike/v2/payload-find.js';
import { NotifyType } from '../../src/ike/wire/constants.js';
import { MAX_FAILURE_REASONS, Metrics } from '../../src/metrics/metrics.js';

const EMPTY: StatusReport = { connections: {}, routes: [], drops: { esp: {}, ike: {} } };

async function reasons(m: Metrics): Promise<Map<string, number>> {
  const fam = await m.registry.getSingleMetric('twinsec_ike_negotiation_failures_total')!.get();
  return new Map(fam.values.map((v) => [String(v.labels.reason), v.value]));
}

t.test('notify numbers map to their names or "other"', async (t) => {
  t.equal(notifyReason(notify(NotifyType.NO_PROPOSAL_CHOSEN)), 'no_proposal_chosen');
  t.equal(notifyReason(notify(NotifyType.AUTHENTICATION_FAILED)), 'auth_failed');
  for (const n of [2, 3, 12345, 16383]) t.equal(notifyReason(notify(n)), 'other', `notify ${n}`);
});

t.test('failure reasons: numbers fold to "other", and the label set is capped', async (t) => {
  const bus = new EventBus();
  const m = new Metrics({ snapshot: () => EMPTY, bus, defaultMetrics: false, version: () => 2 });
  t.teardown(() => m.close());
  for (let n = 1; n < 16384; n += 97)
    bus.emit('ike-failure', { connection: 't1', reason: String(n), detail: '' });
  let r = await reasons(m);
  t.same([...r.keys()], ['other'], 'no label per notify number');
  bus.emit('ike-failure', { connection: 't1', reason: 'auth_failed', detail: '' });
  for (let i = 0; i < 200; i++)
    bus.emit('ike-failure', { connection: 't1', reason: `made_up_${i}`, detail: '' });
  bus.emit('ike-failure', { connection: 't1', reason: 'auth_failed', detail: '' });
  r = await reasons(m);
  t.equal(r.size, MAX_FAILURE_REASONS + 1, `${MAX_FAILURE_REASONS} reasons and "other"`);
  t.equal(r.get('auth_failed'), 2, 'a reason that has its label keeps it');
  t.ok(r.get('other')! > 200 - MAX_FAILURE_REASONS, 'the excess is counted as "other"');
});
