/**
 * Security issue #11 item 7: an authenticated peer that rekeys and never deletes cannot make us
 * hold CHILD_SA pairs or IKE SAs without bound. The peer is played by side A running the bare
 * CREATE_CHILD_SA exchanges (no DELETE afterwards).
 */
import t from 'tap';
import { IkeError } from '../../src/errors.js';
import type { ChildSa } from '../../src/ike/core/child-sa.js';
import type { IkeSaV1 } from '../../src/ike/v1/ike-sa.js';
import { quickModeInitiate } from '../../src/ike/v1/quick-mode.js';
import type { IkeSaV2, V2Child } from '../../src/ike/v2/ike-sa.js';
import { runTask } from '../../src/ike/v2/task.js';
import { childRekeyTask } from '../../src/ike/v2/tasks/child-rekey.js';
import { ikeRekeyTask } from '../../src/ike/v2/tasks/ike-rekey.js';
import { ExchangeTypeV1 } from '../../src/ike/wire/v1/constants.js';
import { A, conn, internal, mirror, pair, state, until } from './pair.js';

async function established() {
  const c = conn('t1', { esp: { proposals: ['aes128-sha256'], lifetime: 600 } });
  const p = await pair([c], [mirror(c)]);
  await until(
    () =>
      state(p.a, 't1') === 'established' &&
      state(p.b, 't1') === 'established' &&
      p.a.dp.sas.size === 1 &&
      p.b.dp.sas.size === 1,
  );
  return p;
}

const reason = async (pr: Promise<unknown>): Promise<string> =>
  pr.then(
    () => 'ok',
    (err: unknown) => IkeError.from(err).reason,
  );

t.test('a second REKEY_SA of the same CHILD_SA is refused (TEMPORARY_FAILURE, RFC 7296 §2.25)', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const core = p.a.daemon.ike!;
  const sa = internal(p.a, 't1');
  const old = sa.children[0] as ChildSa<V2Child>;
  t.equal(await reason(runTask(sa, childRekeyTask(core, sa, old))), 'ok', 'the first rekey is answered');
  t.equal(p.b.dp.sas.size, 2, 'B: the old pair waits for its DELETE, the new one is in');
  const results: string[] = [];
  for (let i = 0; i < 5; i++) results.push(await reason(runTask(sa, childRekeyTask(core, sa, old))));
  t.same(results, Array(5).fill('temporary_failure'), 'every further rekey of it is refused');
  t.equal(p.b.dp.sas.size, 2, 'B installed nothing more');
  t.equal(internal(p.b, 't1').children.length, 2);
  t.ok(
    p.b.failures.some((f) => f.reason === 'temporary_failure'),
    'B reports the refusal',
  );
  t.equal(state(p.b, 't1'), 'established', 'the IKE SA stays up');
});

t.test('a chain of rekeys without DELETE stops at the per-IKE-SA cap (NO_ADDITIONAL_SAS)', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const cap = 4;
  p.b.daemon.ike!.table.limits.childrenPerIke = cap;
  const core = p.a.daemon.ike!;
  const sa = internal(p.a, 't1');
  const results: string[] = [];
  for (let i = 0; i < 8; i++) {
    // Always the newest pair: each is a first rekey of a live CHILD_SA.
    const newest = sa.children.filter((c) => c.live).at(-1) as ChildSa<V2Child>;
    results.push(await reason(runTask(sa, childRekeyTask(core, sa, newest))));
  }
  t.same(results, [...Array(cap - 1).fill('ok'), ...Array(8 - cap + 1).fill('no_additional_sas')]);
  t.equal(p.b.dp.sas.size, cap, `B holds at most ${cap} pairs`);
  t.equal(internal(p.b, 't1').children.length, cap);
  t.equal(state(p.b, 't1'), 'established', 'the IKE SA stays up');
});

t.test('IKE SA rekeys without DELETE count against the per-peer IKE SA limit', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const limit = 3;
  const b = p.b.daemon.ike!;
  b.table.limits.perPeer = limit;
  const core = p.a.daemon.ike!;
  let sa: IkeSaV2 = internal(p.a, 't1');
  const results: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await runTask(sa, ikeRekeyTask(core, sa)).then(
      (fresh) => {
        sa = fresh;
        return 'ok';
      },
      (err: unknown) => IkeError.from(err).reason,
    );
    results.push(r);
  }
  t.same(results, [...Array(limit - 1).fill('ok'), ...Array(5 - limit + 1).fill('no_additional_sas')]);
  t.equal(b.table.size, limit, `B holds ${limit} IKE SAs, not more`);
  t.ok(
    b.sasOf('t1').some((s) => s.phase === 'established'),
    'B still has an established IKE SA',
  );
});

t.test('IKEv1: replaced pairs the peer never deletes stay bounded (the oldest goes)', async (t) => {
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp2048'], lifetime: 86_400 },
    esp: { proposals: ['aes128-sha1'], lifetime: 3600 },
  });
  const p = await pair([c], [mirror(c)]);
  // The SA timers are unref'd: keep the process alive through the quick-mode timeouts.
  const alive = setInterval(() => {}, 1000);
  t.teardown(async () => {
    clearInterval(alive);
    await p.stop();
  });
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const core = p.a.daemon.ike!;
  const sa = internal(p.a, 't1') as unknown as IkeSaV1;
  const old = sa.children[0]!;
  // The peer (A) rekeys the selectors again and again and never sends a DELETE. A few replaced
  // pairs are normal (strongSwan keeps each for its life_time); past four the oldest goes.
  const results: string[] = [];
  for (let i = 0; i < 7; i++) results.push(await reason(quickModeInitiate(core, sa, old)));
  t.same(results, Array(7).fill('ok'), 'B answers every one');
  // A is done once its HASH(3) is out: give B the moment to take it.
  await until(() => internal(p.b, 't1').children.length === 5);
  t.equal(p.b.dp.sas.size, 5, 'B holds the live pair and four replaced ones, nothing more');
  const b = internal(p.b, 't1').children;
  t.same(b.map((x) => x.state).sort(), ['installed', ...Array(4).fill('rekeyed')]);
  t.equal(b.filter((x) => x.live).length, 1);
  // The evicted pairs were DELETEd: A removes its side of them too.
  await until(() => p.a.dp.sas.size === 5);
  t.equal(state(p.b, 't1'), 'established', 'the ISAKMP SA stays up');
});

t.test('IKEv1: quick modes the peer never finishes (no HASH(3)) hold at most four pairs', async (t) => {
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp2048'], lifetime: 86_400 },
    esp: { proposals: ['aes128-sha1'], lifetime: 3600 },
  });
  const p = await pair([c], [mirror(c)]);
  const alive = setInterval(() => {}, 1000);
  t.teardown(async () => {
    clearInterval(alive);
    await p.stop();
  });
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const bSa = internal(p.b, 't1') as unknown as IkeSaV1;
  await until(() => bSa.quickModes.size === 0);
  // From now on A's HASH(3) never reaches B: every quick mode of A stays unfinished there.
  const fromA = new Map<number, number>();
  p.net.drop = (s) => {
    if (s.from.address !== A || s.exchange !== ExchangeTypeV1.QUICK) return false;
    const mid = s.data.readUInt32BE(20);
    const n = (fromA.get(mid) ?? 0) + 1;
    fromA.set(mid, n);
    return n >= 2;
  };
  const core = p.a.daemon.ike!;
  const sa = internal(p.a, 't1') as unknown as IkeSaV1;
  const old = sa.children[0]!;
  const results: string[] = [];
  for (let i = 0; i < 4; i++) results.push(await reason(quickModeInitiate(core, sa, old)));
  t.same(results, Array(4).fill('ok'), 'B answers four');
  t.equal(bSa.quickModes.size, 4, 'four unfinished on B');
  t.equal(p.b.dp.sas.size, 5, 'B holds the first pair and the four early installs');
  // A fifth is refused at once (before any Diffie-Hellman), while the four are still pending.
  const fifth = reason(quickModeInitiate(core, sa, old));
  await until(() => p.b.failures.some((f) => f.reason === 'temporary_failure'));
  t.match(
    p.b.failures.find((f) => f.reason === 'temporary_failure')!.detail,
    /4 of the peer's are unfinished/,
  );
  t.equal(p.b.dp.sas.size, 5, 'nothing more installed');
  t.equal(await fifth, 'timeout', 'A never gets an answer to it');
});
