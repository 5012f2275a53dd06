/**
 * IKEv1 between two in-process daemons: main mode with PSK then quick mode, named message by
 * message, keys mirrored in the two data planes.
 */
import t, { type Test } from 'tap';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import { A, B, conn, mirror, pair, state, until } from './pair.js';

function mirrored(t: Test, x: ChildSaSpec, y: ChildSaSpec): void {
  t.equal(x.spiIn, y.spiOut, 'SPIs mirror');
  t.equal(x.spiOut, y.spiIn, 'SPIs mirror');
  t.same(x.encrKeyOut, y.encrKeyIn, 'encryption keys mirror');
  t.same(x.encrKeyIn, y.encrKeyOut, 'encryption keys mirror');
  t.notSame(x.encrKeyIn, x.encrKeyOut, 'the two directions use different keys');
  t.same(x.integKeyOut, y.integKeyIn, 'integrity keys mirror');
}

const SUITES = [
  { ike: 'aes128-sha1-modp1024', esp: 'aes128-sha1-modp1024', encr: 'aes128', integ: 'sha1', dh: 'modp1024' },
  { ike: 'aes256-sha256-modp2048', esp: 'aes256gcm16', encr: 'aes256gcm16', integ: null, dh: null },
  { ike: 'aes192-sha512-ecp256', esp: 'aes256-sha256', encr: 'aes256', integ: 'sha256', dh: null },
  // Legacy peers: group 1 (RFC 2409 §6.1) in both phases, HMAC-MD5 as phase-1 hash and for ESP.
  { ike: '3des-md5-modp768', esp: 'aes128-md5-modp768', encr: 'aes128', integ: 'md5', dh: 'modp768' },
  {
    ike: 'aes256-sha512-modp1536',
    esp: 'aes192-sha384-modp1536',
    encr: 'aes192',
    integ: 'sha384',
    dh: 'modp1536',
  },
];

for (const s of SUITES) {
  t.test(`main mode + quick mode establish ${s.ike} / ${s.esp}`, async (t) => {
    const c = conn('t1', {
      version: 1,
      mode: 'main',
      ike: { proposals: [s.ike], lifetime: 3600 },
      esp: { proposals: [s.esp], lifetime: 1200 },
    });
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    t.equal(state(p.a, 't1'), 'established');
    t.equal(state(p.b, 't1'), 'established');
    // Retransmissions (the same bytes again, 40 ms timers under load) are left out.
    const seen = new Set<string>();
    const ex = p.net.log
      .filter((x) => !seen.has(x.data.toString('hex')) && seen.add(x.data.toString('hex')))
      .map((x) => `${x.data[18]} ${x.from.address === A ? 'A' : 'B'}`);
    t.same(
      ex,
      ['2 A', '2 B', '2 A', '2 B', '2 A', '2 B', '32 A', '32 B', '32 A'],
      'main mode 6 messages, quick mode 3',
    );
    const [x] = [...p.a.dp.sas.values()];
    const [y] = [...p.b.dp.sas.values()];
    mirrored(t, x!, y!);
    t.equal(x!.encr, s.encr);
    t.equal(x!.integ, s.integ);
    t.same(x!.tsLocal, ['198.18.1.0/24']);
    t.same(x!.tsRemote, ['198.19.1.0/24']);
    t.same(y!.tsLocal, ['198.19.1.0/24']);
    const up = p.a.events.find((e) => e.name === 'child-up')?.ev as { dh: string | null };
    t.equal(up.dh, s.dh, 'PFS group as configured');
    t.same(p.a.failures, []);
    t.same(p.b.failures, []);
  });
}

t.test('wrong PSK: HASH_I fails on the responder, no SA on either side', async (t) => {
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
  });
  const p = await pair([c], [mirror(c, { psk: Buffer.from('another secret entirely') })]);
  t.teardown(p.stop);
  await until(() => p.b.failures.some((f) => f.reason === 'auth_failed'));
  t.equal(p.a.dp.sas.size + p.b.dp.sas.size, 0);
  t.not(state(p.b, 't1'), 'established');
  t.ok(B);
});

t.test('DELETE on shutdown reaches the peer', async (t) => {
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
  });
  const p = await pair([c], [mirror(c)]);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  await p.a.daemon.stop();
  await until(() => state(p.b, 't1') !== 'established');
  t.equal(p.b.dp.sas.size, 0, 'the peer removed its IPsec SA');
  await p.b.daemon.stop();
});

t.test('quick mode rekey (either side): a new pair, make-before-break, the old one deleted', async (t) => {
  const c = conn('t1', {
    version: 1,
    mode: 'main',
    ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
    esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1200 },
  });
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  for (const side of [p.a, p.b]) {
    const [old] = [...side.dp.sas.keys()];
    const view = side.daemon.ike!.sasOf('t1')[0]!;
    await new Promise<void>((resolve, reject) => {
      if (!side.daemon.ike!.rekeyChild(view, old!, (err) => (err ? reject(err) : resolve())))
        reject(new Error('refused'));
    });
    const pairUp = () => {
      const [x] = [...p.a.dp.sas.values()];
      const [y] = [...p.b.dp.sas.values()];
      return p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && x!.spiIn === y!.spiOut;
    };
    await until(() => pairUp() && !side.dp.sas.has(old!));
    const [x] = [...p.a.dp.sas.values()];
    const [y] = [...p.b.dp.sas.values()];
    mirrored(t, x!, y!);
  }
  t.same(p.a.failures, []);
  t.same(p.b.failures, []);
});

for (const mode of ['main', 'aggressive'] as const)
  t.test(
    `ISAKMP SA soft limit (${mode} mode): re-authentication, make-before-break, old SAs deleted on both sides`,
    async (t) => {
      // lifetimeUnit 10: ike.lifetime 600 lasts 6 s, rekeyTime 200 puts the soft limit at 1.8-2 s
      // (wide of the hard limit under load); esp.lifetime 1000 lasts 10 s.
      const c = conn('t1', {
        version: 1,
        mode,
        ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 600, rekeyTime: 200 },
        esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 1000 },
      });
      const p = await pair(
        [c],
        [mirror(c, { ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 1000 } })],
        {
          timing: { lifetimeUnit: 10 },
        },
      );
      t.teardown(p.stop);
      const order: string[] = [];
      p.a.daemon.bus.on('child-up', (e) => order.push(`up ${e.spiIn}`));
      p.a.daemon.bus.on('child-down', (e) => order.push(`down ${e.spiIn} ${e.reason}`));
      await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
      const firstIke = p.a.daemon.ike!.sasOf('t1')[0]!.serial;
      await until(() => order.some((o) => o.startsWith('down')), 5000);
      await until(
        () => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1 && p.b.daemon.ike!.sasOf('t1').length === 1,
        3000,
      );
      t.match(
        order,
        [/^up /, /^up /, /^down .* replaced by re-authentication$/],
        'the new pair before the old one goes',
      );
      const now = p.a.daemon.ike!.sasOf('t1');
      t.equal(now.length, 1, 'one ISAKMP SA on A');
      t.not(now[0]!.serial, firstIke, 'a new one');
      const [x] = [...p.a.dp.sas.values()];
      const [y] = [...p.b.dp.sas.values()];
      mirrored(t, x!, y!);
      t.same(p.a.failures, []);
      t.same(p.b.failures, []);
    },
  );
