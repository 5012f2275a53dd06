/** Operator actions over the fake network: down/up and reload, each with the exchanges they cause. */
import t from 'tap';
import { A, B, config, conn, mirror, pair, state, until } from './pair.js';

t.test('down sends DELETE, stays down (no retries, peer attempts refused); up brings it back', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c, { start: 'initiate' })]);
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  const before = p.net.log.length;
  await p.a.daemon.down('t1');
  await until(() => state(p.b, 't1') !== 'established' && p.b.dp.sas.size === 0);
  const after = p.net.steps().slice(before);
  t.ok(after.includes(`INFORMATIONAL request ${A} -> ${B}`), 'DELETE sent');
  t.ok(after.includes(`INFORMATIONAL response ${B} -> ${A}`), 'DELETE answered');
  t.equal(p.a.daemon.status().connections.t1!.adminDown, true);
  // The peer (also start: initiate) may try again: we refuse while down.
  p.b.daemon.ike!.initiate('t1');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(state(p.a, 't1'), 'down', 'still down after the peer tried');
  t.equal(p.a.dp.sas.size, 0);
  p.a.daemon.up('t1');
  await until(() => state(p.a, 't1') === 'established');
  t.equal(p.a.daemon.status().connections.t1!.adminDown, false);
  t.throws(() => p.a.daemon.up('nope'), { code: 'ERR_UNKNOWN_CONNECTION' });
});

t.test(
  'reload: unchanged stays untouched, changed renegotiates, removed is deleted, added starts',
  async (t) => {
    const keep = conn('keep', { localSubnets: ['198.18.1.0/24'], remoteSubnets: ['198.19.1.0/24'] });
    const change = conn('change', { localSubnets: ['198.18.2.0/24'], remoteSubnets: ['198.19.2.0/24'] });
    const drop = conn('drop', { localSubnets: ['198.18.3.0/24'], remoteSubnets: ['198.19.3.0/24'] });
    const add = conn('add', { localSubnets: ['198.18.4.0/24'], remoteSubnets: ['198.19.4.0/24'] });
    const peer = [keep, change, drop, add].map((c) =>
      mirror(c, { remoteId: '%any', esp: { proposals: ['aes256gcm16', 'aes128gcm16'], lifetime: 3600 } }),
    );
    const p = await pair([keep, change, drop], peer);
    t.teardown(p.stop);
    const up = (n: string) => state(p.a, n) === 'established';
    await until(() => up('keep') && up('change') && up('drop'));
    const spi = (n: string) => p.a.daemon.status().connections[n]!.children[0]!.spiIn;
    const keepSpi = spi('keep');
    const changeSpi = spi('change');
    const res = await p.a.daemon.reload(
      config([keep, { ...change, esp: { proposals: ['aes128gcm16'], lifetime: 3600 } }, add]),
    );
    t.same(res, { added: ['add'], changed: ['change'], removed: ['drop'], unchanged: ['keep'] });
    await until(() => up('change') && up('add'));
    t.equal(spi('keep'), keepSpi, 'unchanged connection kept its CHILD_SA');
    t.not(spi('change'), changeSpi, 'changed connection renegotiated');
    t.equal(p.a.daemon.status().connections.change!.children[0]!.encr, 'aes128gcm16');
    t.notOk(p.a.daemon.status().connections.drop, 'removed connection is gone');
    await until(() => state(p.b, 'drop') === 'down');
    await t.rejects(p.a.daemon.reload({ ...config([keep]), tun: { name: 'other', mtu: 1400 } }), {
      code: 'ERR_RELOAD',
      message: /tun/,
    });
  },
);

t.test(
  'reset (health check resetAfter): DELETE to the peer, then an initiator negotiates again',
  async (t) => {
    const c = conn('t1');
    const p = await pair([c], [mirror(c, { start: 'listen' })]);
    t.teardown(p.stop);
    await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
    const spiBefore = p.a.daemon.status().connections.t1!.children[0]!.spiIn;
    const before = p.net.log.length;
    t.equal(await p.a.daemon.ike!.reset('t1', 'health check failing'), true);
    await until(
      () => state(p.a, 't1') === 'established' && p.a.daemon.status().connections.t1!.children.length === 1,
    );
    const after = p.net.steps().slice(before);
    t.ok(after.includes(`INFORMATIONAL request ${A} -> ${B}`), 'DELETE sent');
    t.ok(
      after.indexOf(`IKE_SA_INIT request ${A} -> ${B}`) > after.indexOf(`INFORMATIONAL request ${A} -> ${B}`),
    );
    t.not(p.a.daemon.status().connections.t1!.children[0]!.spiIn, spiBefore, 'a new CHILD_SA');
    await until(() => p.b.daemon.status().connections.t1!.ikeSas!.established === 1);
    t.equal(p.b.daemon.status().connections.t1!.children.length, 1, 'the peer holds only the new one');

    // The listening side resets: its SAs go (the peer told), and it waits for the peer.
    const mark = p.net.log.length;
    t.equal(await p.b.daemon.ike!.reset('t1', 'health check failing'), true);
    await until(() => state(p.b, 't1') === 'down' && state(p.a, 't1') !== 'established');
    await new Promise((r) => setTimeout(r, 200));
    t.notOk(
      p.net.steps().slice(mark).includes(`IKE_SA_INIT request ${B} -> ${A}`),
      'a listening connection does not initiate',
    );
    await p.a.daemon.down('t1');
    t.equal(await p.a.daemon.ike!.reset('t1', 'x'), false, 'an operator down is left alone');
    t.equal(await p.a.daemon.ike!.reset('nope', 'x'), false);
  },
);
