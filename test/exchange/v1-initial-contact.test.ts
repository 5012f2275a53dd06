/**
 * IKEv1 INITIAL-CONTACT (RFC 2407 §4.6.3.3): the sender holds no other SA with us. strongSwan also
 * sends it in the main mode that re-authenticates an ISAKMP SA while it keeps using that SA's IPsec
 * SAs, so twinsec drops the older ISAKMP SAs of the connection but keeps their IPsec SAs on the new
 * one (until the peer's quick mode replaces them and its DELETE or their lifetime ends them), and
 * leaves another connection with the same peer alone.
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { conn, internal, mirror, pair, state, stopOnFakeClock } from './pair.js';

const A2 = '192.0.2.2';

const v1: Partial<ConnectionConfig> = {
  version: 1,
  mode: 'main',
  ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
  esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
};

t.test('IKEv1: INITIAL-CONTACT replaces the old ISAKMP SA, its IPsec SAs move to the new one', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', v1);
  const p = await pair([c], [mirror(c)], { clock, random: fixedJitter(0) });
  t.teardown(() => stopOnFakeClock(clock, p));
  const core = p.b.daemon.ike!;
  await clock.until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 2000, 1);
  await clock.advance(11_000); // older than the 10 s simultaneous-negotiation window
  const old = internal(p.b, 't1');
  const oldPair = old.children[0]!.spiIn;
  // A restarts: forgets its SAs without a DELETE and comes back with INITIAL-CONTACT.
  p.a.daemon.ike!.destroy(internal(p.a, 't1'), 'test: restart');
  p.a.daemon.ike!.initiate('t1');
  await clock.until(() => core.sasOf('t1').length === 1 && core.sasOf('t1')[0] !== old, 2000, 1);
  await clock.until(() => p.b.dp.sas.size === 2, 2000, 1);
  const fresh = internal(p.b, 't1');
  t.equal(old.phase, 'dead', 'the old ISAKMP SA is gone');
  t.equal(state(p.b, 't1'), 'established');
  const kept = fresh.children.find((x) => x.spiIn === oldPair);
  t.ok(kept, 'the old IPsec SA pair now hangs off the new ISAKMP SA');
  t.equal(kept?.state, 'rekeyed', "the peer's quick mode for the same selectors replaced it");
  t.equal(fresh.children.filter((x) => x.live).length, 1, 'one live pair');
  t.equal(core.table.ownerOf(oldPair), fresh, 'the SA table agrees');
});

t.test('IKEv1: INITIAL-CONTACT leaves another connection with the same peer identity alone', async (t) => {
  const clock = new FakeClock();
  const psk = Buffer.from('one gateway, two links');
  // One peer gateway (same identity, same key) with a tunnel over each of its two links.
  const t1 = conn('t1', { ...v1, psk, localId: 'gw.example' });
  const t2 = conn('t2', {
    ...v1,
    psk,
    localId: 'gw.example',
    local: A2,
    localSubnets: ['198.18.2.0/24'],
    remoteSubnets: ['198.19.2.0/24'],
  });
  // A's t2 names its peer %any, so A does not count it as a twin of t1 and sends INITIAL-CONTACT
  // when t1 comes back (as a peer whose re-authentication carries it would).
  const t2a = { ...t2, remoteId: '%any' };
  const p = await pair([t1, t2a], [mirror(t1), mirror(t2)], { clock, random: fixedJitter(0) });
  t.teardown(() => stopOnFakeClock(clock, p));
  const core = p.b.daemon.ike!;
  await clock.until(() => p.a.dp.sas.size === 2 && p.b.dp.sas.size === 2, 2000, 1);
  await clock.advance(11_000);
  const other = internal(p.b, 't2');
  const before = internal(p.b, 't1');
  p.a.daemon.ike!.destroy(internal(p.a, 't1'), 'test: t1 rebuilt');
  p.a.daemon.ike!.initiate('t1');
  await clock.until(() => before.phase === 'dead' && state(p.b, 't1') === 'established', 2000, 1);
  t.equal(other.phase, 'established', "t2's ISAKMP SA stays");
  t.equal(other.children.filter((x) => x.live).length, 1, "t2's IPsec SA stays");
  t.equal(core.sasOf('t2').length, 1);
});
