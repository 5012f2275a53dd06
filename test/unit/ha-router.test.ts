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
