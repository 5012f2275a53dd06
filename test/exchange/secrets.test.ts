/**
 * A hub for many sites (issue #13): one IKEv2 connection that answers any address and any identity
 * under *.sites.example.net, with a key per site from the configuration's `secrets`. A site with
 * the wrong key for its identity fails; a site added to `secrets` by `reload` gets in without the
 * established tunnels being touched.
 */
import t from 'tap';
import { secret } from '../../src/config/load.js';
import { config, conn, mirror, pair, state, until } from './pair.js';

const key = (s: string) => secret(`${s}-key-0123456789`);
const SECRETS = [
  { id: 'site1.sites.example.net', psk: key('site1') },
  { id: 'site2.sites.example.net', psk: key('site2') },
];

/** A site dialling in as `id` with `psk`, and the hub's wildcard connection. */
function siteAndHub(id: string, psk: Buffer) {
  const site = conn('t1', { localId: id, remoteId: 'hub.example.net', psk });
  const hub = mirror(site, {
    name: 'sites',
    remote: '%any',
    localId: 'hub.example.net',
    remoteId: '*.sites.example.net',
    psk: Buffer.alloc(0),
  });
  return { site, hub };
}

t.test(
  'a site authenticates with its own key from secrets; the wrong key for its identity fails',
  async (t) => {
    const ok = siteAndHub('site1.sites.example.net', key('site1'));
    const p = await pair([ok.site], [ok.hub], { secretsB: SECRETS });
    t.teardown(p.stop);
    await until(() => state(p.a, 't1') === 'established' && state(p.b, 'sites') === 'established');
    t.pass('site1 established with its own key on the wildcard connection');

    // site2 presents site1's key: AUTH does not verify with site2's secret.
    const bad = siteAndHub('site2.sites.example.net', key('site1'));
    const q = await pair([bad.site], [bad.hub], { secretsB: SECRETS });
    t.teardown(q.stop);
    await until(() => q.b.failures.length > 0 || q.a.failures.length > 0);
    t.equal(q.b.failures[0]?.reason, 'auth_failed', 'the hub refused it: auth_failed');
    t.not(state(q.b, 'sites'), 'established');

    // An identity outside the pattern, with a key that is in secrets for someone else: no connection.
    const other = siteAndHub('site1.elsewhere.example.net', key('site1'));
    const r = await pair([other.site], [other.hub], { secretsB: SECRETS });
    t.teardown(r.stop);
    await until(() => r.b.failures.length > 0);
    t.match(
      r.b.failures[0]?.detail ?? '',
      /no connection for peer identity/,
      'outside the wildcard: refused',
    );
  },
);

t.test('reload adds a site to secrets without touching established tunnels', async (t) => {
  const s3 = siteAndHub('site3.sites.example.net', key('site3'));
  const p = await pair([s3.site], [s3.hub], { secretsB: SECRETS });
  t.teardown(p.stop);
  // Not yet in secrets: refused.
  await until(() => p.b.failures.length > 0);
  t.equal(p.b.failures[0]?.reason, 'auth_failed', 'site3 unknown: refused');
  const before = p.b.daemon.ike!.sasOf('sites').length;
  const res = await p.b.daemon.reload(
    config([s3.hub], undefined, [...SECRETS, { id: 'site3.sites.example.net', psk: key('site3') }]),
  );
  t.same(res.unchanged, ['sites'], 'the connection itself is unchanged by a new secret');
  p.a.daemon.up('t1');
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 'sites') === 'established', 8000);
  t.pass('site3 established after the reload');
  t.ok(p.b.daemon.ike!.sasOf('sites').length >= before, 'nothing was torn down by the reload');
});
