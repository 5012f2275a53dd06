/**
 * IKEv1: a DELETE of an ISAKMP SA alone leaves the IPsec SAs it negotiated (RFC 2409 ties no phase 2
 * SA to its phase 1 SA). This is how strongSwan re-authenticates: a new main mode and quick mode
 * beside the old SAs, then DELETE of the old ISAKMP SA only; the old IPsec SAs go later by their own
 * DELETE, sent on the new ISAKMP SA. Side B plays that peer here.
 */
import t from 'tap';
import type { AnySa } from '../../src/ike/core/protocol.js';
import { conn, mirror, pair, until } from './pair.js';

t.test(
  'ISAKMP SA DELETEd alone: its IPsec SAs move to the newer ISAKMP SA, their DELETE there removes them',
  async (t) => {
    const c = conn('t1', {
      version: 1,
      mode: 'main',
      ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
      esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1200 },
    });
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    const ikeA = p.a.daemon.ike!;
    const ikeB = p.b.daemon.ike!;
    const own = (core: typeof ikeA, name: string): AnySa[] =>
      core.sasOf(name).map((v) => core.table.get(v.initiator ? v.spiI : v.spiR)!);
    // B (the responder) installs at its answer already; its CHILD_SA exists once HASH(3) is in.
    await until(() => p.a.dp.sas.size === 1 && own(ikeB, 't1')[0]?.children.length === 1);
    const [firstA] = [...p.a.dp.sas.keys()];
    const oldB = own(ikeB, 't1')[0]!;
    const oldBChild = oldB.children[0]!;
    const downs: string[] = [];
    p.a.daemon.bus.on('child-down', (e) => downs.push(`${e.spiIn} ${e.reason}`));

    // B authenticates anew (a main mode of its own, then its quick mode): two ISAKMP SAs, two pairs.
    ikeB.protocol(oldB).initiate(ikeB.conns.get('t1')!);
    await until(
      () =>
        own(ikeA, 't1').filter((s) => s.phase === 'established').length === 2 &&
        p.a.dp.sas.size === 2 &&
        p.b.dp.sas.size === 2,
    );
    const newB = own(ikeB, 't1').find((s) => s !== oldB)!;

    // Then DELETE of the old ISAKMP SA alone.
    await ikeB.protocol(oldB).deleteIke(oldB);
    await until(() => own(ikeA, 't1').length === 1);
    t.equal(p.a.dp.sas.size, 2, 'A keeps both IPsec SA pairs');
    t.ok(p.a.dp.sas.has(firstA!), 'including the one the deleted ISAKMP SA negotiated');
    t.same(downs, [], 'no IPsec SA went down with the ISAKMP SA');
    t.equal(own(ikeA, 't1')[0]!.children.length, 2, 'the remaining ISAKMP SA holds both');

    // The old pair's own DELETE, on the new ISAKMP SA.
    await ikeB.protocol(newB).deleteChildren(newB, [oldBChild.spiIn]);
    await until(() => p.a.dp.sas.size === 1);
    t.notOk(p.a.dp.sas.has(firstA!), 'the old pair is gone from A on its DELETE');
    t.same(downs, [`${firstA} deleted by peer`]);
    const [left] = [...p.a.dp.sas.values()];
    t.equal(left?.spiOut, newB.children.find((ch) => ch !== oldBChild)?.spiIn, "A's pair is B's new one");
    t.same(p.a.failures, []);
  },
);
