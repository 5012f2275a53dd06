/**
 * Operator actions against a strongSwan peer: `twinsec down` makes the peer really lose the SA
 * (and keeps it down), `twinsec up` brings it back, `twinsec reload` and SIGHUP apply a changed file
 * while unchanged connections keep their SAs. Run with both tunnels on IKEv2, and with IKEv1 and
 * IKEv2 side by side in one daemon (each version once as the tunnel that is taken down and kept,
 * once as the one that is changed and removed).
 */
import { writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, twinsecUnavailable } from '../lab/twinsec.js';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const PSK = 'cli-ops-test-psk-1234';
const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

const IKE: Record<1 | 2, string> = { 1: 'aes128-sha256-modp2048', 2: 'aes256gcm16-prfsha256-x25519' };

for (const [v1, v2] of [
  [2, 2],
  [1, 2],
  [2, 1],
] as const) {
  t.test(`twinsec down / up / reload against strongSwan (t1 IKEv${v1}, t2 IKEv${v2})`, { skip }, (t) =>
    run(t, { 1: v1, 2: v2 }),
  );
}

async function run(t: Test, version: Record<string, 1 | 2>): Promise<void> {
  const lab = new Lab(t);
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(sw, '198.19.1.1/32', '198.19.2.1/32');
  const charon = await startCharon(lab, sw, {
    dir: lab.tempDir('charon'),
    conns: ['1', '2'].map((n) => ({
      name: `gw${n}`,
      version: version[n]!,
      local: SW_WAN,
      remote: TW_WAN,
      localId: `gw${n}.cloud.example`,
      remoteId: `t${n}.onprem.example`,
      psk: PSK,
      ikeProposals: [IKE[version[n]!]],
      espProposals: ['aes256gcm16', 'aes128gcm16'],
      localTs: [`198.19.${n}.0/24`],
      remoteTs: [`198.18.${n}.0/24`],
      startAction: 'none' as const,
    })),
  });
  const conn = (n: string, esp = 'aes256gcm16') => ({
    version: version[n]!,
    local: TW_WAN,
    remote: SW_WAN,
    localId: `t${n}.onprem.example`,
    remoteId: `gw${n}.cloud.example`,
    psk: PSK,
    ike: { proposals: [IKE[version[n]!]] },
    esp: { proposals: [esp] },
    localSubnets: [`198.18.${n}.0/24`],
    remoteSubnets: [`198.19.${n}.0/24`],
    start: 'initiate' as const,
  });
  const d = await startTwinsec(lab, tw, { connections: { t1: conn('1'), t2: conn('2') }, routes: [] });
  await d.waitForState('t1', 'established', 15_000);
  await d.waitForState('t2', 'established', 15_000);
  await charon.waitFor(
    async () => (await charon.established('gw1')) && (await charon.established('gw2')),
    10_000,
    'both on strongSwan',
  );

  // down: strongSwan loses the SA and it stays gone.
  const down = await d.cli(['down', 't1']);
  t.match(down.stdout, /t1: down/);
  await waitFor(async () => !(await charon.established('gw1')), 5000, {
    what: 'strongSwan loses gw1',
    intervalMs: 200,
  });
  t.pass('strongSwan no longer lists the t1 IKE SA');
  await new Promise((r) => setTimeout(r, 3000));
  t.notOk(await charon.established('gw1'), 'still gone 3 s later (no re-initiation)');
  const st = await d.status();
  t.equal(st.connections.t1!.state, 'down');
  t.equal((st.connections.t1 as { adminDown?: boolean }).adminDown, true);
  t.equal(st.connections.t2!.state, 'established', 't2 untouched');

  // up: back on both sides.
  await d.cli(['up', 't1']);
  await d.waitForState('t1', 'established', 10_000);
  t.ok(
    await charon.waitFor(() => charon.established('gw1'), 10_000, 'gw1 back'),
    'strongSwan lists t1 again',
  );

  // reload: t2's ESP proposal changes (renegotiates), t1 is unchanged (keeps its CHILD_SA).
  const before = await d.status();
  const spi1 = before.connections.t1!.children[0]!.spiIn;
  const spi2 = before.connections.t2!.children[0]!.spiIn;
  writeFileSync(
    d.configFile,
    stringify({ ...d.config, connections: { t1: conn('1'), t2: conn('2', 'aes128gcm16') } }),
  );
  const r = await d.cli(['reload']);
  t.match(r.stdout, /changed t2; removed -; unchanged t1/);
  await waitFor(
    async () => {
      const s = await d.status();
      const c2 = s.connections.t2?.children[0];
      return c2 && c2.spiIn !== spi2 ? s : undefined;
    },
    10_000,
    { what: 't2 renegotiated', intervalMs: 200 },
  );
  const after = await d.status();
  t.equal(after.connections.t1!.children[0]!.spiIn, spi1, 'unchanged t1 kept its CHILD_SA');
  t.equal((after.connections.t2!.children[0] as { encr?: string }).encr, 'aes128gcm16', 't2 now aes128gcm16');
  const gw2 = await charon.waitFor(() => charon.established('gw2'), 10_000, 'gw2 re-established');
  t.equal(
    gw2.children.find((c) => c.state === 'INSTALLED')?.encrKeysize,
    128,
    'strongSwan installed the new t2 CHILD_SA',
  );

  // SIGHUP does the same: remove t2.
  writeFileSync(d.configFile, stringify({ ...d.config, connections: { t1: conn('1') } }));
  process.kill(d.proc.pid!, 'SIGHUP');
  await waitFor(async () => !(await d.status()).connections.t2, 10_000, {
    what: 't2 removed by SIGHUP',
    intervalMs: 200,
  });
  await waitFor(async () => !(await charon.established('gw2')), 10_000, {
    what: 'strongSwan loses gw2',
    intervalMs: 200,
  });
  t.equal((await d.status()).connections.t1!.children[0]!.spiIn, spi1, 't1 still untouched');

  // A broken file is refused as a whole; the running configuration stays.
  writeFileSync(d.configFile, 'connections: { t1: { local: nope } }\n');
  const bad = await d.cli(['reload'], { check: false });
  t.not(bad.code, 0, 'reload of a bad file fails');
  t.match(bad.stderr, /connections\.t1\.local/);
  t.equal((await d.status()).connections.t1!.state, 'established');
}
