/**
 * The peer's NAT mapping changes (RFC 7296 §2.23): an authenticated IKE message from a new
 * address/port moves the IKE SA and its ESP SAs there; verified ESP from a new endpoint makes us
 * check with a liveness request sent there first, and only its authenticated answer moves them.
 */
import t from 'tap';
import { ExchangeType } from '../../src/ike/wire/constants.js';
import { A, B, conn, internal, mirror, pair, state, until } from './pair.js';

const NEW_A = '192.0.2.77';

async function established() {
  const c = conn('t1', { encapsulation: 'udp' });
  const p = await pair([c], [mirror(c, { encapsulation: 'auto' })]);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && state(p.b, 't1') === 'established');
  // A's NAT now maps it to NEW_A:4501: the network rewrites A's source as a NAT would.
  p.net.nat = (from) => (from.address === A ? { address: NEW_A, port: 4501 } : from);
  return p;
}

t.test('an authenticated request from a new address/port moves the IKE SA and its ESP SAs', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const moved: unknown[] = [];
  p.b.daemon.bus.on('peer-moved', (e) => moved.push(e));
  const sa = internal(p.a, 't1');
  await p.a.daemon.ike!.protocol(sa).liveness(sa);
  const [esp] = [...p.b.dp.sas.values()];
  t.same(esp!.remote, { address: NEW_A, port: 4501 }, "B's ESP SA follows the new mapping");
  t.same(p.b.daemon.ike!.sasOf('t1')[0]!.remote, { address: NEW_A, port: 4501 }, 'so does the IKE SA');
  t.same(
    moved,
    [{ connection: 't1', from: `${A}:4500`, to: `${NEW_A}:4501`, children: 1 }],
    'one peer-moved event',
  );
});

t.test('ESP from elsewhere: a liveness check there, and only its answer moves the SAs', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const [esp] = [...p.b.dp.sas.values()];
  const before = p.net.log.length;
  // A's ESP reaches B from the new mapping (made by that ESP); the data plane reports it.
  p.net.map({ address: NEW_A, port: 4501 }, { address: A, port: 4500 });
  p.b.dp.peerMoved(esp!.spiIn, { address: NEW_A, port: 4501 });
  await until(() => p.b.dp.sas.get(esp!.spiIn)!.remote.address === NEW_A);
  const sent = p.net.log.slice(before).filter((s) => s.from.address === B);
  t.same(
    sent.map((s) => [s.exchange, s.response, s.to.address, s.to.port]),
    [[ExchangeType.INFORMATIONAL, false, NEW_A, 4501]],
    'B sent one liveness request to the new endpoint',
  );
  t.same(p.b.dp.sas.get(esp!.spiIn)!.remote, { address: NEW_A, port: 4501 });
});

t.test('ESP from elsewhere that IKE does not confirm moves nothing', async (t) => {
  const p = await established();
  t.teardown(p.stop);
  const [esp] = [...p.b.dp.sas.values()];
  // Nobody answers at the claimed endpoint (a replayed or spoofed packet, or a stale mapping).
  p.net.drop = (s) => s.to.address === '198.51.100.9';
  p.b.dp.peerMoved(esp!.spiIn, { address: '198.51.100.9', port: 4500 });
  await new Promise((r) => setTimeout(r, 600));
  t.same(p.b.dp.sas.get(esp!.spiIn)!.remote, { address: A, port: 4500 }, 'ESP SA unchanged');
  t.equal(state(p.b, 't1'), 'established', 'and the IKE SA is still up');
});
