/** PublishedRoutes (src/dataplane/os-routes.ts): changes run in order, the latest wish wins, failures are reported. */
import t from 'tap';
import { PublishedRoutes } from '../../src/dataplane/os-routes.js';

function setup(fail = new Set<string>(), retryMs = 5000) {
  const calls: string[] = [];
  const reports: { destination: string; published: boolean; ok: boolean; detail?: string }[] = [];
  let release: (() => void)[] = [];
  const op = (kind: string) => (d: string, tun: string) => {
    calls.push(`${kind} ${d} dev ${tun}`);
    return new Promise<void>((resolve, reject) => {
      release.push(() => (fail.has(`${kind} ${d}`) ? reject(new Error(`ip: ${kind} failed`)) : resolve()));
    });
  };
  const pr = new PublishedRoutes(
    'tw0',
    (e) => reports.push(e),
    { publish: op('add'), withdraw: op('del') },
    retryMs,
  );
  const step = async () => {
    const r = release;
    release = [];
    for (const f of r) f();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  return { pr, calls, reports, step };
}

t.test('a flap during a slow change ends in the state asked for last, without extra calls', async (t) => {
  const s = setup();
  s.pr.known('198.19.1.0/24', true);
  const done = s.pr.set('198.19.1.0/24', false);
  void s.pr.set('198.19.1.0/24', true);
  void s.pr.set('198.19.1.0/24', false);
  t.same(s.calls, ['del 198.19.1.0/24 dev tw0'], 'one call at a time');
  await s.step();
  await done;
  t.same(s.calls, ['del 198.19.1.0/24 dev tw0'], 'already where the last wish wants it');
  t.equal(s.pr.isPublished('198.19.1.0/24'), false);
  t.same(s.reports, [{ destination: '198.19.1.0/24', published: false, ok: true }]);

  const again = s.pr.set('198.19.1.0/24', true);
  void s.pr.set('198.19.1.0/24', false);
  void s.pr.set('198.19.1.0/24', true);
  await s.step();
  await again;
  t.same(s.calls.slice(1), ['add 198.19.1.0/24 dev tw0']);
  t.equal(s.pr.isPublished('198.19.1.0/24'), true);
});

t.test(
  'a route never published is not withdrawn; a failure is reported and leaves the state known',
  async (t) => {
    const s = setup(new Set(['add 198.19.2.0/24']));
    await s.pr.set('198.19.9.0/24', false);
    t.same(s.calls, [], 'nothing to withdraw');
    const p = s.pr.set('198.19.2.0/24', true);
    await s.step();
    await p;
    t.equal(s.pr.isPublished('198.19.2.0/24'), false);
    t.match(s.reports, [{ destination: '198.19.2.0/24', published: true, ok: false, detail: /add failed/ }]);
    t.same(s.pr.destinations().sort(), ['198.19.2.0/24', '198.19.9.0/24']);
    await s.pr.settled();
  },
);
