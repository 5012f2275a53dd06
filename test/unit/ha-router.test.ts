import t from 'tap';
import type { RouteConfig } from '../../src/config/types.js';
import { Router, type RouteSwitch, type Usability } from '../../src/ha/router.js';

function setup(routes: RouteConfig[]) {
  let now = 1_000_000;
  const state = new Map<string, Usability>();
  const applied: { destination: string; connections: string[] }[][] = [];
  const switches: RouteSwitch[] = [];
  const set = (c: string, usable: boolean, reason = usable ? 'up' : 'down: 3 probes lost') =>
    state.set(c, { usable, since: now, reason });
  const r = new Router({
    routes,
    usability: (c) => state.get(c) ?? { usable: false, since: 0, reason: 'down: no CHILD_SA' },
    apply: (e) => applied.push(e),
    onSwitch: (s) => switches.push(s),
    now: () => now,
  });
  return {
    r,
    set,
    applied,
    switches,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const DEST = '198.19.1.0/24';
const route: RouteConfig = {
  destination: DEST,
  via: [
    { connection: 't1', weight: 100 },
    { connection: 't2', weight: 0 },
  ],
  publish: true,
  holdDown: 3,
  onAllDown: 'reserve',
};

t.test(
  'primary healthy: traffic on t1; failure moves to t2 at once; failback waits the hold-down',
  async (t) => {
    const s = setup([route]);
    s.set('t1', true);
    s.set('t2', true);
    s.r.evaluate();
    t.same(s.r.active(DEST), ['t1']);
    t.same(s.switches, [], 'the first decision is not a switch');
    s.advance(5000);
    s.set('t1', false);
    s.r.evaluate();
    t.same(s.r.active(DEST), ['t2']);
    t.same(s.switches.at(-1), {
      destination: DEST,
      from: ['t1'],
      to: ['t2'],
      reason: 't1 down: 3 probes lost',
    });
    s.advance(100);
    s.set('t1', true);
    s.r.evaluate();
    t.same(s.r.active(DEST), ['t2'], 'recovered primary must stay healthy for the hold-down first');
    s.advance(2999);
    s.r.evaluate();
    t.same(s.r.active(DEST), ['t2']);
    s.advance(1);
    s.r.evaluate();
    t.same(s.r.active(DEST), ['t1']);
    t.same(s.switches.at(-1), { destination: DEST, from: ['t2'], to: ['t1'], reason: 't1 up for 3.0 s' });
    t.equal(s.r.switches.get(DEST), 2);
    t.same(s.applied.at(-1), [{ destination: DEST, connections: ['t1'] }]);
    s.r.stop();
  },
);

t.test('a flapping primary does not drag traffic back before the hold-down', async (t) => {
  const s = setup([route]);
  s.set('t1', true);
  s.set('t2', true);
  s.r.evaluate();
  s.set('t1', false);
  s.r.evaluate();
  for (let i = 0; i < 10; i++) {
    s.advance(1000);
    s.set('t1', i % 2 === 0);
    s.r.evaluate();
  }
  t.equal(s.r.switches.get(DEST), 1, 'only the failover happened');
  t.same(s.r.active(DEST), ['t2']);
  s.r.stop();
});

t.test('every next hop down: the highest weight keeps the route and says so', async (t) => {
  const s = setup([route]);
  s.set('t1', true);
  s.set('t2', false);
  s.r.evaluate();
  s.set('t1', false);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t1']);
  t.ok(s.r.isFallback(DEST));
  s.set('t2', true);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t2'], 'leaving the fallback is immediate');
  t.match(s.switches.at(-1)!.reason, /t1 down/);
  s.r.stop();
});

t.test('equal weights share the route; a member that fails leaves at once', async (t) => {
  const s = setup([
    {
      destination: DEST,
      via: [
        { connection: 'a', weight: 50 },
        { connection: 'b', weight: 50 },
      ],
      publish: false,
      holdDown: 3,
      onAllDown: 'reserve',
    },
  ]);
  s.set('a', true);
  s.set('b', true);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['a', 'b']);
  s.set('b', false);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['a']);
  s.r.stop();
});

t.test('the hold-down re-evaluates by itself', async (t) => {
  const s = setup([{ ...route, holdDown: 0.05 }]);
  s.set('t1', false);
  s.set('t2', true);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t2']);
  s.set('t1', true);
  s.r.evaluate();
  s.advance(60);
  await new Promise((r) => setTimeout(r, 80));
  t.same(s.r.active(DEST), ['t1']);
  s.r.stop();
});

/** A revoke route and the callbacks it makes. */
function revokeSetup(onAllDown: 'reserve' | 'revoke', previous?: Router) {
  let now = 1_000_000;
  const state = new Map<string, Usability>();
  const applied: { destination: string; connections: string[] }[][] = [];
  const switches: RouteSwitch[] = [];
  const revoked: [string, boolean][] = [];
  const set = (c: string, usable: boolean) =>
    state.set(c, { usable, since: now, reason: usable ? 'up' : 'down: 3 probes lost' });
  const r = new Router({
    routes: [{ ...route, onAllDown }],
    usability: (c) => state.get(c) ?? { usable: false, since: 0, reason: 'down: no CHILD_SA' },
    apply: (e) => applied.push(e),
    onSwitch: (s) => switches.push(s),
    onRevoked: (d, v) => revoked.push([d, v]),
    now: () => now,
    previous,
  });
  return {
    r,
    set,
    applied,
    switches,
    revoked,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const hasRoute = (entries: { destination: string }[] | undefined) =>
  (entries ?? []).some((e) => e.destination === DEST);

t.test('onAllDown revoke: withdrawn while no next hop is usable, back at once when one is', async (t) => {
  const s = revokeSetup('revoke');
  s.r.evaluate();
  t.equal(s.r.isRevoked(DEST), true, 'nothing usable at start: withdrawn');
  t.notOk(hasRoute(s.applied.at(-1)), 'not in the engine');
  t.same(s.revoked, [], 'it starts withdrawn: no callback');
  t.same(s.switches, [], 'the first decision is no switch');

  s.set('t1', true);
  s.set('t2', true);
  s.r.evaluate();
  t.same(s.revoked, [[DEST, false]], 'brought back');
  t.same(s.r.active(DEST), ['t1'], 'on the highest weight at once (no hold-down from withdrawn)');
  t.ok(hasRoute(s.applied.at(-1)), 'in the engine');
  t.same(s.switches, [], 'the first next hop after the start is no switch either');

  s.set('t1', false);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t2'], 'one next hop down: the other carries it, nothing withdrawn');
  t.equal(s.r.isRevoked(DEST), false);

  s.set('t2', false);
  s.r.evaluate();
  t.equal(s.r.isRevoked(DEST), true, 'all down: withdrawn');
  t.equal(s.r.isFallback(DEST), true);
  t.same(s.r.active(DEST), []);
  t.notOk(hasRoute(s.applied.at(-1)), 'removed from the engine (a shorter route may carry it)');
  t.same(s.revoked.at(-1), [DEST, true]);
  t.match(s.switches.at(-1), {
    from: ['t2'],
    to: [],
    revoked: true,
    reason: /withdrawn \(onAllDown: revoke\)/,
  });

  s.advance(100);
  s.set('t2', true);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t2'], 'the standby coming back restores it at once');
  t.same(s.revoked.at(-1), [DEST, false]);
  t.match(s.switches.at(-1), { from: [], to: ['t2'], revoked: false, reason: /t2 usable, route restored/ });
  s.set('t1', true);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t2'], 'the primary then waits for its hold-down as usual');
  s.advance(3000);
  s.r.evaluate();
  t.same(s.r.active(DEST), ['t1']);
  t.equal(s.revoked.length, 3, 'one callback per change');
  s.r.stop();
});

t.test('onAllDown reserve: the route stays on the highest weight, never withdrawn', async (t) => {
  const s = revokeSetup('reserve');
  s.set('t1', true);
  s.r.evaluate();
  s.set('t1', false);
  s.r.evaluate();
  t.equal(s.r.isRevoked(DEST), false);
  t.equal(s.r.isFallback(DEST), true);
  t.same(s.r.active(DEST), ['t1'], 'kept on t1');
  t.ok(hasRoute(s.applied.at(-1)), 'still in the engine');
  t.same(s.revoked, [], 'no withdraw callback');
  s.r.stop();
});

t.test('a router replacing another (reload) keeps next hops and the withdrawn state', async (t) => {
  const a = revokeSetup('revoke');
  a.set('t2', true);
  a.r.evaluate();
  t.same(a.r.active(DEST), ['t2']);
  const b = revokeSetup('revoke', a.r);
  b.set('t2', true);
  b.set('t1', true);
  b.r.evaluate();
  t.same(b.r.active(DEST), ['t2'], 'the primary still waits for its hold-down after the reload');
  t.same(b.revoked, [], 'not withdrawn before, no callback now');
  const c = revokeSetup('revoke');
  c.r.evaluate();
  const d = revokeSetup('revoke', c.r);
  d.r.evaluate();
  t.equal(d.r.isRevoked(DEST), true, 'withdrawn before the reload, still withdrawn');
  t.same(d.revoked, []);
  for (const x of [a, b, c, d]) x.r.stop();
});
