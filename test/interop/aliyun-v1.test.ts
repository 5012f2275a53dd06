/**
 * An Alibaba Cloud IKEv1 download, imported and brought up against strongSwan playing the Alibaba VPN
 * gateway. The sample (test/fixtures/aliyun/ikev1-main-lab.json, API envelope form) is what the
 * console/API gives the customer gateway: IKEv1 main mode, aes/sha1/group2 both phases, 86400 s
 * lifetimes, FQDN IDs, TEST-NET addresses. The test
 *
 *   1. runs the CLI: `twinsec import-aliyun ikev1-main-lab.json` (dist/src/cli/twinsec.js);
 *   2. starts twinsecd in a namespace with its output (plus a metrics listener, to scrape the
 *      `version` label of the IKE families);
 *   3. starts charon configured as the download describes (IKEv1 main mode, aes128-sha1-modp1024,
 *      esp aes128-sha1-modp1024 with PFS, the IDs seen from the gateway's side, the PSK, IKE rekey
 *      and CHILD_SA life time 86400 s) as responder; twinsec initiates (`start: initiate`);
 *   4. asserts what `swanctl --list-sas` shows (IKEv1, algorithms, IDs, twinsec's SPIs mirrored,
 *      life time within the download's), that pings cross both ways, and the metrics.
 *
 *   [cgw] wan0 192.0.2.10/24   <-veth-> wan0 203.0.113.20/24 [vpngw]   (a host route each way)
 *   cgw lo 198.18.1.1 (LocalSubnet 198.18.1.0/24)   vpngw lo 198.19.1.1 (RemoteSubnet 198.19.1.0/24)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { Lab, labUnavailable, run, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, TWINSEC_CLI, type Twinsec, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

// Compiled to dist/test/interop; the fixture stays in the source tree.
const SAMPLE = fileURLToPath(new URL('../../../test/fixtures/aliyun/ikev1-main-lab.json', import.meta.url));
const LISTEN = '127.0.0.1:9469';
const ESTABLISH_MS = 20_000;

interface Download {
  VpnConnectionConfig: {
    LocalSubnet: string;
    RemoteSubnet: string;
    Local: string;
    Remote: string;
    IkeConfig: { LocalId: string; RemoteId: string; Psk: string; IkeLifetime: number };
    IpsecConfig: { IpsecLifetime: number };
  };
}

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');
const tail = (s: string | undefined, n: number) => (s ?? '').split('\n').slice(-n).join('\n');
/** The first host address of a /24 (the LAN address on each side's lo). */
const host1 = (cidr: string) => cidr.replace(/\.0\/24$/, '.1');

async function scrapeMetrics(lab: Lab, ns: string): Promise<string> {
  const r = await lab.exec(ns, 'curl', ['-sS', '-f', `http://${LISTEN}/metrics`], { timeoutMs: 10_000 });
  return r.stdout;
}

async function runCase(t: Test): Promise<void> {
  const d = (JSON.parse(readFileSync(SAMPLE, 'utf8')) as Download).VpnConnectionConfig;
  const ike = d.IkeConfig;
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`--- charon log (tail) ---\n${tail(charon?.log(), 80)}`);
    t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec?.log(), 60)}`);
  });

  // 1. The importer CLI, as an operator runs it.
  const imp = await run(process.execPath, [TWINSEC_CLI, 'import-aliyun', SAMPLE], { check: false });
  t.equal(imp.code, 0, `import-aliyun exits 0 ${imp.stderr}`);
  t.notOk(imp.stderr.includes(ike.Psk), 'no PSK on stderr');
  const cfg = YAML.parse(imp.stdout) as { connections: Record<string, Record<string, unknown>> };
  const t1 = cfg.connections.t1!;
  t.match(
    t1,
    {
      version: 1,
      local: d.Local,
      remote: d.Remote,
      localId: ike.LocalId,
      remoteId: ike.RemoteId,
      psk: ike.Psk,
      ike: { proposals: ['aes128-sha1-modp1024'], lifetime: ike.IkeLifetime },
      esp: { proposals: ['aes128-sha1-modp1024'], lifetime: d.IpsecConfig.IpsecLifetime },
      localSubnets: [d.LocalSubnet],
      remoteSubnets: [d.RemoteSubnet],
      start: 'initiate',
    },
    'the imported connection is what the download describes',
  );

  // 2. The namespaces: customer gateway (twinsec) and the "Alibaba" gateway (charon).
  const cgw = await lab.addNamespace('cgw');
  const vpngw = await lab.addNamespace('vpngw');
  await lab.link(
    { ns: cgw, ifname: 'wan0', address: `${d.Local}/24` },
    { ns: vpngw, ifname: 'wan0', address: `${d.Remote}/24` },
  );
  await lab.exec(cgw, 'ip', ['route', 'add', `${d.Remote}/32`, 'dev', 'wan0']);
  await lab.exec(vpngw, 'ip', ['route', 'add', `${d.Local}/32`, 'dev', 'wan0']);
  const cgwHost = host1(d.LocalSubnet);
  const vpnHost = host1(d.RemoteSubnet);
  await lab.loopbackAddresses(cgw, `${cgwHost}/32`);
  await lab.loopbackAddresses(vpngw, `${vpnHost}/32`);

  // 3. strongSwan as the download's other side (its Local is our Remote), then twinsecd initiating.
  charon = await startCharon(lab, vpngw, {
    dir: lab.tempDir('charon'),
    conns: [
      {
        name: 'aliyun',
        version: 1,
        local: d.Remote,
        remote: d.Local,
        localId: ike.RemoteId,
        remoteId: ike.LocalId,
        psk: ike.Psk,
        ikeProposals: ['aes128-sha1-modp1024'],
        espProposals: ['aes128-sha1-modp1024'],
        localTs: [d.RemoteSubnet],
        remoteTs: [d.LocalSubnet],
        startAction: 'none',
        rekeyTime: ike.IkeLifetime,
        childLifeTime: d.IpsecConfig.IpsecLifetime,
        childRekeyTime: Math.round(d.IpsecConfig.IpsecLifetime * 0.9),
      },
    ],
  });
  const sw = charon;
  twinsec = await startTwinsec(lab, cgw, `${imp.stdout}\nmetrics: { listen: "${LISTEN}" }\n`);
  const tw = twinsec;

  // 4. strongSwan's view.
  const sa = await sw.waitFor(
    () => sw.established('aliyun'),
    ESTABLISH_MS,
    'strongSwan ISAKMP SA ESTABLISHED with an INSTALLED IPsec SA',
  );
  t.equal(sa.version, 1, 'IKEv1');
  t.equal(sa.initiator, false, 'strongSwan (the Alibaba side) is the responder');
  t.equal(sa.encrAlg, 'AES_CBC', 'IKE encr AES_CBC');
  t.equal(sa.encrKeysize, 128, 'IKE keysize 128');
  t.equal(sa.integAlg, 'HMAC_SHA1_96', 'IKE integ HMAC_SHA1_96');
  t.equal(sa.prfAlg, 'PRF_HMAC_SHA1', 'IKE prf PRF_HMAC_SHA1');
  t.equal(sa.dhGroup, 'MODP_1024', 'IKE dh MODP_1024 (group2)');
  t.equal(sa.localId, ike.RemoteId, `strongSwan's ID ${ike.RemoteId}`);
  t.equal(sa.remoteId, ike.LocalId, `twinsec's ID ${ike.LocalId}`);
  t.equal(sa.remoteHost, d.Local, 'peer address from the download');
  const child = sa.children.find((c) => c.state === 'INSTALLED')!;
  t.equal(child.protocol, 'ESP', 'ESP');
  t.equal(child.mode, 'TUNNEL', 'tunnel mode');
  t.equal(child.encrAlg, 'AES_CBC', 'ESP encr AES_CBC');
  t.equal(child.encrKeysize, 128, 'ESP keysize 128');
  t.equal(child.integAlg, 'HMAC_SHA1_96', 'ESP integ HMAC_SHA1_96');
  t.equal(child.dhGroup, 'MODP_1024', 'quick mode PFS MODP_1024 (IpsecPfs group2)');
  t.same(child.localTs, [d.RemoteSubnet], 'strongSwan local TS = RemoteSubnet');
  t.same(child.remoteTs, [d.LocalSubnet], 'strongSwan remote TS = LocalSubnet');
  const lifeLeft = Number(child.raw['life-time']);
  t.ok(
    lifeLeft > 0 && lifeLeft <= d.IpsecConfig.IpsecLifetime,
    `IPsec SA expires in ${lifeLeft} s <= IpsecLifetime ${d.IpsecConfig.IpsecLifetime}`,
  );

  const st = await tw.waitForState('t1', 'established', ESTABLISH_MS);
  const mine = st.children.find(
    (c) => normSpi(c.spiIn) === child.spiOut && normSpi(c.spiOut) === child.spiIn,
  );
  t.ok(mine, `strongSwan lists twinsec's SPIs mirrored (sw in=${child.spiIn} out=${child.spiOut})`);
  t.equal(st.children.length, 1, 'one CHILD_SA on twinsec');

  // Pings both ways, sourced from each LAN address.
  const ping = async (ns: string, from: string, to: string) =>
    (
      await lab.exec(ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', '-I', from, to], {
        check: false,
        timeoutMs: 15_000,
      })
    ).stdout;
  t.match(await ping(cgw, cgwHost, vpnHost), / 3 received/, 'ping customer LAN -> VPC');
  t.match(await ping(vpngw, vpnHost, cgwHost), / 3 received/, 'ping VPC -> customer LAN');
  const after = await sw.established('aliyun');
  const c2 = after?.children.find((c) => c.spiIn === child.spiIn);
  t.ok((c2?.packetsIn ?? 0) >= 6, `strongSwan's IPsec SA counted the pings in (${c2?.packetsIn})`);
  t.ok((c2?.packetsOut ?? 0) >= 6, `strongSwan's IPsec SA counted the pings out (${c2?.packetsOut})`);

  // Metrics: the IKE families carry version="1" for this IKEv1 connection.
  const m = await waitFor(
    async () => {
      const text = await scrapeMetrics(lab, cgw);
      return /^twinsec_connection_up\{connection="t1",version="1"\} 1$/m.test(text) ? text : undefined;
    },
    5000,
    { what: 'twinsec_connection_up{connection="t1",version="1"} 1', intervalMs: 200 },
  );
  t.match(m, /^twinsec_ike_sa_established_total\{connection="t1",version="1"\} 1$/m, 'established_total v1');
  t.notMatch(m, /version="2"/, 'no IKEv2 series');
  t.notOk(m.includes(ike.Psk), 'no PSK in the metrics');
}

const skip = labUnavailable() ?? charonUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  const missing = twinsecUnavailable();
  if (missing) t.fail(`${missing}: build the daemon first (npx tsc -p .)`);
  else
    t.test('Alibaba IKEv1 download imported, up against strongSwan as the Alibaba gateway', (t) =>
      runCase(t),
    );
}
