/**
 * Self-test of the lab harness: two charons (kernel-libipsec) in two namespaces, IKEv2 PSK with
 * aes256gcm16-prfsha256-x25519, then a ping between LAN addresses on lo across the ipsec0 TUN.
 */
import t from 'tap';
import { Lab, labUnavailable } from '../lab/netns.js';
import { charonUnavailable, startCharon } from '../lab/strongswan.js';

const skip = labUnavailable() ?? charonUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();

  t.test('charon <-> charon IKEv2 PSK, ping across the tunnel', async (t) => {
    const lab = new Lab(t);
    const a = await lab.addNamespace('a');
    const b = await lab.addNamespace('b');
    await lab.link(
      { ns: a, ifname: 'wan0', address: '192.0.2.1/24' },
      { ns: b, ifname: 'wan0', address: '192.0.2.2/24' },
    );
    await lab.loopbackAddresses(a, '198.18.1.1/32');
    await lab.loopbackAddresses(b, '198.19.1.1/32');

    const common = {
      version: 2 as const,
      psk: 'harness-selftest-psk',
      ikeProposals: ['aes256gcm16-prfsha256-x25519'],
      espProposals: ['aes256gcm16'],
    };
    const ca = await startCharon(lab, a, {
      dir: lab.tempDir('charon-a'),
      conns: [
        {
          ...common,
          name: 'gw',
          local: '192.0.2.1',
          remote: '192.0.2.2',
          localTs: ['198.18.1.0/24'],
          remoteTs: ['198.19.1.0/24'],
          startAction: 'none',
        },
      ],
    });
    const cb = await startCharon(lab, b, {
      dir: lab.tempDir('charon-b'),
      conns: [
        {
          ...common,
          name: 'gw',
          local: '192.0.2.2',
          remote: '192.0.2.1',
          localTs: ['198.19.1.0/24'],
          remoteTs: ['198.18.1.0/24'],
          startAction: 'none',
        },
      ],
    });
    t.teardown(() => {
      if (t.passing()) return;
      t.comment(`--- charon a log ---\n${ca.log()}`);
      t.comment(`--- charon b log ---\n${cb.log()}`);
    });

    await ca.initiate('gw');

    const sa = await ca.waitFor(() => ca.established('gw'), 10_000, 'IKE_SA established on a');
    const sb = await cb.waitFor(() => cb.established('gw'), 10_000, 'IKE_SA established on b');
    for (const [who, s] of [
      ['a', sa],
      ['b', sb],
    ] as const) {
      t.equal(s.state, 'ESTABLISHED', `${who}: IKE_SA ESTABLISHED`);
      t.equal(s.version, 2, `${who}: IKEv2`);
      t.equal(s.encrAlg, 'AES_GCM_16', `${who}: encr-alg`);
      t.equal(s.encrKeysize, 256, `${who}: encr-keysize`);
      t.equal(s.prfAlg, 'PRF_HMAC_SHA2_256', `${who}: prf-alg`);
      t.equal(s.dhGroup, 'CURVE_25519', `${who}: dh-group`);
      const c = s.children[0]!;
      t.equal(c.state, 'INSTALLED', `${who}: CHILD_SA INSTALLED`);
      t.equal(c.encrAlg, 'AES_GCM_16', `${who}: child encr-alg`);
      t.equal(c.integAlg, undefined, `${who}: AEAD child has no integ-alg`);
      t.match(c.spiIn, /^[0-9a-f]{8}$/, `${who}: spi-in is 8 hex digits`);
    }
    t.equal(sa.initiator, true, 'a initiated');
    t.equal(sb.initiator, false, 'b responded');
    t.equal(sa.children[0]!.spiIn, sb.children[0]!.spiOut, 'SPIs pair up (a in = b out)');
    t.equal(sa.children[0]!.spiOut, sb.children[0]!.spiIn, 'SPIs pair up (a out = b in)');
    t.equal(sa.localPort, 4500, 'kernel-libipsec floated to 4500 (fake NAT)');
    t.match(ca.log(), /IKE_SA gw\[\d+\] established/, 'charon log readable');

    const ping = await lab.exec(
      a,
      'ping',
      ['-c', '3', '-i', '0.2', '-W', '2', '-I', '198.18.1.1', '198.19.1.1'],
      {
        check: false,
      },
    );
    if (ping.code !== 0) {
      const routes = await lab.exec(a, 'ip', ['route', 'show', 'table', 'all'], { check: false });
      t.comment(`ping:\n${ping.stdout}${ping.stderr}\nroutes in a:\n${routes.stdout}`);
    }
    t.equal(ping.code, 0, 'ping 198.18.1.1 -> 198.19.1.1 across the tunnel');
    t.match(ping.stdout, /3 received/, 'all 3 echo replies');

    const after = await ca.established('gw');
    t.ok((after?.children[0]?.bytesOut ?? 0) > 0, 'charon a counted ESP bytes out');
    t.ok((after?.children[0]?.packetsIn ?? 0) >= 3, 'charon a counted >= 3 packets in');

    const route = await lab.exec(a, 'ip', ['route', 'show', 'table', '220'], { check: false });
    t.match(route.stdout, /198\.19\.1\.0\/24.*dev ipsec0/, 'kernel-libipsec route via ipsec0 in table 220');

    await ca.terminate('gw');
    await ca.waitFor(async () => (await ca.listSas()).length === 0, 10_000, 'IKE_SA gone on a');
    await cb.waitFor(async () => (await cb.listSas()).length === 0, 10_000, 'IKE_SA gone on b');
    t.pass('terminate removes the SAs on both sides');
  });

  t.test('cleanup leaves no namespace or process behind', async (t) => {
    const lab = new Lab();
    const ns = await lab.addNamespace('c');
    const proc = lab.spawn(ns, 'sleep', ['600']);
    // A grandchild that ignores SIGTERM, not tracked by the lab: cleanup must still end it.
    lab.spawn(ns, 'sh', ['-c', "trap '' TERM; sleep 600 & wait"]);
    await new Promise((r) => setTimeout(r, 200));
    t.ok((await lab.pids(ns)).length >= 3, 'processes are running in the namespace');
    await lab.cleanup();
    t.notOk(proc.running, 'tracked process ended');
    const { execFileSync } = await import('node:child_process');
    const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    t.notMatch(list, lab.id, 'namespace deleted');
  });
}
