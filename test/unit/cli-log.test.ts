import { Writable } from 'node:stream';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { EventBus } from '../../src/events.js';
import { attachEventLogging, createLogger } from '../../src/log.js';

function capture(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  });
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

t.test('one JSON line per event at the right level', async (t) => {
  const out = capture();
  const log = createLogger('debug', { pretty: false, destination: out.stream });
  const bus = new EventBus();
  const off = attachEventLogging(bus, log);

  bus.emit('ike-state', { connection: 't1', from: 'connecting', to: 'established', reason: 'IKE_AUTH done' });
  bus.emit('child-up', {
    connection: 't1',
    spiIn: 0xc0ffee01,
    spiOut: 0x1,
    encr: 'aes256gcm16',
    integ: null,
    dh: null,
    encapsulation: 'udp',
    tsLocal: ['198.18.1.0/24'],
    tsRemote: ['198.19.1.0/24'],
  });
  bus.emit('child-down', { connection: 't1', spiIn: 0xc0ffee01, spiOut: 1, reason: 'rekeyed' });
  bus.emit('ike-failure', {
    connection: 't1',
    reason: 'auth_failed',
    detail: 'AUTHENTICATION_FAILED from peer',
  });
  bus.emit('ike-dropped', { reason: 'unknown_spi', detail: 'no SA', from: '203.0.113.1:500' });
  bus.emit('ike-debug', { connection: 't1', message: 'sent IKE_SA_INIT' });

  const recs = out.lines().map((l) => JSON.parse(l) as { level: number; msg: string; event: string });
  t.equal(recs.length, 6);
  t.match(recs[0], { level: 30, event: 'ike-state', msg: 't1: connecting -> established (IKE_AUTH done)' });
  t.match(recs[1], {
    level: 30,
    msg: 't1: CHILD_SA up, spi in c0ffee01 out 00000001 (aes256gcm16, udp) 198.18.1.0/24 <-> 198.19.1.0/24',
  });
  t.match(recs[2], { level: 30, msg: 't1: CHILD_SA down, spi in c0ffee01 out 00000001 (rekeyed)' });
  t.match(recs[3], {
    level: 40,
    msg: 't1: negotiation failed: auth_failed (AUTHENTICATION_FAILED from peer)',
  });
  t.match(recs[4], { level: 20, msg: 'dropped IKE datagram from 203.0.113.1:500: unknown_spi (no SA)' });
  t.match(recs[5], { level: 20, msg: 't1: sent IKE_SA_INIT' });

  off();
  bus.emit('ike-debug', { connection: 't1', message: 'after detach' });
  t.equal(out.lines().length, 6, 'detached');
});

t.test('level filtering and PSK redaction', async (t) => {
  const out = capture();
  const log = createLogger('info', { pretty: false, destination: out.stream });
  log.debug('hidden');
  const config = parseConfig(`
connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "log-secret"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
`);
  log.info({ config, psk: 'plain-secret' }, 'config loaded');
  const text = out.lines().join('\n');
  t.notMatch(text, 'hidden');
  t.notMatch(text, 'log-secret');
  t.notMatch(text, 'plain-secret');
  t.match(text, 'config loaded');
});

t.test('pretty output is one readable line per event', async (t) => {
  const out = capture();
  const log = createLogger('info', { pretty: true, destination: out.stream });
  const bus = new EventBus();
  attachEventLogging(bus, log);
  bus.emit('ike-state', { connection: 't1', from: 'down', to: 'connecting', reason: 'initiate' });
  await new Promise((r) => setImmediate(r));
  const lines = out.lines();
  t.equal(lines.length, 1);
  t.match(lines[0], /INFO.*t1: down -> connecting \(initiate\)$/);
  t.notOk(lines[0]?.includes('\u001b['), 'no colour when not writing to a terminal');
});
