/**
 * Security issue #11 item 10d: log lines an unauthenticated peer can cause (dropped datagrams,
 * failed negotiations) are limited per reason and second, with a summary of what was left out.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { EventBus } from '../../src/events.js';
import { attachEventLogging, createLogger } from '../../src/log.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

t.test('a flood of drops and failures: N lines per reason and second, then one summary', async (t) => {
  const out = capture();
  const log = createLogger('debug', { pretty: false, destination: out.stream });
  const bus = new EventBus();
  let now = 1_000_000;
  const off = attachEventLogging(bus, log, { perSecond: 5, now: () => now });
  const drop = (reason: string) =>
    bus.emit('ike-dropped', { reason, detail: 'junk', from: '198.51.100.7:500' });
  for (let i = 0; i < 100; i++) drop('malformed');
  for (let i = 0; i < 3; i++) drop('integrity');
  for (let i = 0; i < 50; i++)
    bus.emit('ike-failure', {
      connection: 't1',
      reason: 'no_proposal_chosen',
      detail: 'refused IKE_SA_INIT',
    });
  const first = out.lines();
  t.equal(first.filter((l) => l.event === 'ike-dropped' && l.reason === 'malformed').length, 5, '5 of 100');
  t.equal(
    first.filter((l) => l.event === 'ike-dropped' && l.reason === 'integrity').length,
    3,
    'other reasons apart',
  );
  t.equal(first.filter((l) => l.event === 'ike-failure').length, 5, '5 of 50 failures');
  t.equal(
    first.filter((l) => l.event === 'log-suppressed').length,
    0,
    'no summary before the second is over',
  );
  // The next second: the summary comes first, then lines again.
  now += 1000;
  drop('malformed');
  const second = out.lines().slice(first.length);
  t.match(second[0], { event: 'log-suppressed', of: 'ike-dropped', reason: 'malformed', suppressed: 95 });
  t.match(second[1], { event: 'ike-dropped', reason: 'malformed' });
  // Detaching says what is still pending (the failures).
  off();
  const last = out.lines().slice(first.length + second.length);
  t.same(
    last.map((l) => [l.of, l.reason, l.suppressed]),
    [['ike-failure', 'no_proposal_chosen', 45]],
  );
});

t.test('the summary also comes by itself when nothing more arrives', async (t) => {
  const out = capture();
  const log = createLogger('debug', { pretty: false, destination: out.stream });
  const bus = new EventBus();
  const off = attachEventLogging(bus, log, { perSecond: 2 });
  t.teardown(off);
  for (let i = 0; i < 10; i++)
    bus.emit('ike-dropped', { reason: 'limit', detail: 'x', from: '198.51.100.7:500' });
  const alive = setTimeout(() => {}, 5000);
  await new Promise((r) => setTimeout(r, 1200));
  clearTimeout(alive);
  t.match(
    out.lines().filter((l) => l.event === 'log-suppressed'),
    [{ of: 'ike-dropped', reason: 'limit', suppressed: 8 }],
  );
});

t.test('negotiation attempts that never authenticate: state lines limited per connection', async (t) => {
  const out = capture();
  const log = createLogger('debug', { pretty: false, destination: out.stream });
  const bus = new EventBus();
  let now = 2_000_000;
  const off = attachEventLogging(bus, log, { perSecond: 5, now: () => now });
  const state = (connection: string, from: 'down' | 'connecting' | 'established', to: typeof from | 'down') =>
    bus.emit('ike-state', { connection, from, to, reason: 'r' });
  for (let i = 0; i < 200; i++) {
    state('any', 'down', 'connecting');
    state('any', 'connecting', 'down');
  }
  // Another connection's real peer in the same second: its lines are not eaten by the flood.
  state('t1', 'down', 'connecting');
  state('t1', 'connecting', 'established');
  state('any', 'connecting', 'established');
  const lines = out.lines().filter((l) => l.event === 'ike-state');
  t.equal(
    lines.filter((l) => l.connection === 'any' && l.to !== 'established').length,
    5,
    '5 of 400 attempt lines',
  );
  t.equal(lines.filter((l) => l.connection === 't1').length, 2, "t1's lines all printed");
  t.equal(
    lines.filter((l) => l.to === 'established').length,
    2,
    'establishments always print, even on the flooded connection',
  );
  now += 1000;
  state('any', 'down', 'connecting');
  const summary = out.lines().find((l) => l.event === 'log-suppressed' && l.of === 'ike-state');
  t.match(summary, { reason: 'any negotiations', suppressed: 395 }, 'one summary of what was left out');
  off();
});
