/**
 * A hub with 200 sites: one twinsecd answers 200 strongSwan sites on ONE connection (`remote: %any`,
 * `remoteId: "*.sites.example.net"`, keys by identity from the top-level `secrets`; README "Many
 * sites on one connection").
 *
 *   [sites] wan0 192.0.2.10-211/24 <-veth-> wan0 192.0.2.1/24 [hub]
 *   one charon (kernel-libipsec), site N (N = 1..202):   twinsecd, connection `sites`:
 *     local_addrs 192.0.2.(N+9)                            localSubnets [198.19.0.0/16]
 *     id siteN.sites.example.net, its own PSK             remoteSubnets [198.18.0.0/16]
 *     local_ts 198.18.N.0/24 (lo 198.18.N.1)               lo 198.19.0.1 (the hub's LAN)
 *     remote_ts 198.19.0.0/16
 *
 * Sites 1-200 have `start_action = start` (charon initiates them all when the config is loaded).
 * Site 201 has a PSK the hub does not have; site 202's secret is not in the hub's file at first.
 *
 * What must hold:
 *   1. all 200 IKE SAs and CHILD_SAs established on both sides (charon `--list-sas`, twinsec
 *      `status --json` with one child per site, SPIs mirrored); the setup time and rate are printed;
 *   2. for 10 sites spread over the range (first and last included), ping site LAN -> hub LAN and
 *      hub LAN -> site LAN is answered, and through that site's own CHILD_SA: the packet counters
 *      of the site's child grow on both sides (twinsec's child with tsRemote 198.18.N.0/24,
 *      charon's child of connection siteN);
 *   3. site 201 (wrong PSK) fails with AUTHENTICATION_FAILED while the 200 stay up;
 *   4. site 202's secret added to the file + `twinsec reload`: site 202 establishes, the 200 IKE SAs
 *      keep their SPIs (charon's and twinsec's view);
 *   5. SIGTERM to twinsecd: exit 0 within a few seconds, and charon sees every IKE SA deleted
 *      (twinsec sends DELETE to each peer); the teardown time is printed.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import YAML from 'yaml';
import { call } from '../../src/control/client.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import {
  type Charon,
  type CharonConn,
  charonUnavailable,
  type IkeSaInfo,
  parseListSas,
  startCharon,
} from './strongswan.js';
import {
  startTwinsec,
  type Twinsec,
  type TwinsecChildStatus,
  type TwinsecConfigYaml,
  type TwinsecStatus,
  twinsecUnavailable,
} from './twinsec.js';

const SITES = 200;
const WRONG = SITES + 1; // site 201: wrong PSK
const LATE = SITES + 2; // site 202: added by reload
const HUB_WAN = '192.0.2.1';
const HUB_LAN_HOST = '198.19.0.1';
const HUB_LAN = '198.19.0.0/16';
const SITES_LAN = '198.18.0.0/16';
const DOMAIN = 'sites.example.net';
const IKE = 'aes256gcm16-prfsha256-x25519';
const ESP = 'aes256gcm16';
/** Sites whose traffic is checked: spread over the range, the first and the last included. */
const SAMPLE = [1, 23, 45, 67, 89, 111, 133, 155, 177, 200];

const siteWan = (n: number) => `192.0.2.${n + 9}`;
const siteLan = (n: number) => `198.18.${n}.0/24`;
const siteHost = (n: number) => `198.18.${n}.1`;
const siteId = (n: number) => `site${n}.${DOMAIN}`;
const sitePsk = (n: number) => `hub-lab-site-${n}-key-${(n * 7919).toString(36)}`;

const normSpi = (s: string | undefined) => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');
const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);
const ikeSpis = (sa: IkeSaInfo) => `${sa.raw['initiator-spi']}_${sa.raw['responder-spi']}`;

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function siteConn(n: number): CharonConn {
  return {
    name: `site${n}`,
    version: 2,
    local: siteWan(n),
    remote: HUB_WAN,
    localId: siteId(n),
    psk: n === WRONG ? 'not-the-key-the-hub-has' : sitePsk(n),
    ikeProposals: [IKE],
    espProposals: [ESP],
    localTs: [siteLan(n)],
    remoteTs: [HUB_LAN],
    startAction: n <= SITES ? 'start' : 'none',
  };
}

/** charon `--stats`: IKE SAs in total and half-open (cheap to poll, unlike --list-sas with 200). */
async function charonCounts(charon: Charon): Promise<{ total: number; halfOpen: number }> {
  const out = (await charon.swanctl(['--stats'])).stdout;
  const m = /IKE_SAs:\s*(\d+) total,\s*(\d+) half-open/.exec(out);
  if (!m) throw new Error(`swanctl --stats: no IKE_SAs line:\n${out}`);
  return { total: Number(m[1]), halfOpen: Number(m[2]) };
}

/** Established IKE SAs with an INSTALLED child, by connection name. */
async function charonUp(charon: Charon): Promise<Map<string, IkeSaInfo>> {
  const r = await charon.swanctl(['--list-sas', '--pretty'], { timeoutMs: 30_000 });
  const up = new Map<string, IkeSaInfo>();
  for (const sa of parseListSas(r.stdout)) {
    if (sa.state === 'ESTABLISHED' && sa.children.some((c) => c.state === 'INSTALLED')) up.set(sa.name, sa);
  }
  return up;
}

/** Like charonUp, only for the given sites (one small `--list-sas --ike` each, in parallel). */
async function charonSites(charon: Charon, sites: number[]): Promise<Map<string, IkeSaInfo>> {
  const up = new Map<string, IkeSaInfo>();
  const outs = await Promise.all(
    sites.map((n) => charon.swanctl(['--list-sas', '--ike', `site${n}`, '--pretty'], { check: false })),
  );
  for (const r of outs) {
    for (const sa of parseListSas(r.stdout)) {
      if (sa.state === 'ESTABLISHED' && sa.children.some((c) => c.state === 'INSTALLED')) up.set(sa.name, sa);
    }
  }
  return up;
}

/** twinsec's children of connection `sites`, by the site number their remote selector names. */
async function hubChildren(
  tw: Twinsec,
  via: 'cli' | 'socket' = 'cli',
): Promise<Map<number, TwinsecChildStatus[]>> {
  // 'socket': the same report `status --json` prints, asked on the control socket from this process
  // (the CLI's start-up costs seconds on a loaded 2-core machine, and the traffic checks ask often).
  const s = via === 'cli' ? await tw.status() : ((await call(tw.socket, 'status')) as TwinsecStatus);
  const by = new Map<number, TwinsecChildStatus[]>();
  for (const c of s.connections.sites?.children ?? []) {
    const ts = (c.tsRemote as string[] | undefined) ?? [];
    const m = /^198\.18\.(\d+)\.0\/24$/.exec(ts[0] ?? '');
    const n = m && ts.length === 1 ? Number(m[1]) : -1;
    by.set(n, [...(by.get(n) ?? []), c]);
  }
  return by;
}

function ping(lab: Lab, ns: string, from: string, to: string) {
  return lab.exec(ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '1', '-I', from, to], {
    check: false,
    timeoutMs: 15_000,
  });
}

async function runHub(t: Test): Promise<void> {
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let tw: Twinsec | undefined;
  const dump = () => {
    if (charon) t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 80)}`);
    if (tw) t.comment(`--- twinsecd log (tail) ---\n${tail(tw.log(), 60)}`);
  };
  t.teardown(() => {
    if (!t.passing()) dump();
  });
  const t0 = Date.now();
  const hub = await lab.addNamespace('hub');
  const sites = await lab.addNamespace('sites');
  await lab.link(
    { ns: sites, ifname: 'wan0', address: `${siteWan(1)}/24` },
    { ns: hub, ifname: 'wan0', address: `${HUB_WAN}/24` },
  );
  // 201 more WAN addresses and 202 LAN addresses in one `ip -batch` (one exec per address is slow).
  const batch: string[] = [];
  for (let n = 2; n <= LATE; n++) batch.push(`addr add ${siteWan(n)}/24 dev wan0`);
  // kernel-libipsec needs an address inside its local TS to route into its TUN.
  for (let n = 1; n <= LATE; n++) batch.push(`addr add ${siteHost(n)}/32 dev lo`);
  await lab.exec(sites, 'ip', ['-batch', '-'], { input: `${batch.join('\n')}\n` });
  await lab.loopbackAddresses(hub, `${HUB_LAN_HOST}/32`);

  const secrets = (ns: number[]) =>
    ns.map((n) => ({ id: siteId(n), psk: n === WRONG ? 'the-key-the-hub-has-for-site-201' : sitePsk(n) }));
  const inHub = Array.from({ length: WRONG }, (_, i) => i + 1); // 1..201, not 202
  const config: TwinsecConfigYaml = {
    log: { level: 'info' },
    connections: {
      sites: {
        version: 2,
        local: HUB_WAN,
        remote: '%any',
        remoteId: `*.${DOMAIN}`,
        ike: { proposals: [IKE] },
        esp: { proposals: [ESP] },
        localSubnets: [HUB_LAN],
        remoteSubnets: [SITES_LAN],
        start: 'listen',
        // no psk: each site's key comes from `secrets`
      } as TwinsecConfigYaml['connections'][string],
    },
    secrets: secrets(inHub),
  };
  tw = await startTwinsec(lab, hub, config);
  // The sites' LANs go into twinsec's TUN; twinsec picks each site's own SA by its selectors (no
  // route names the connection: that would make it one next hop rather than per-site).
  await lab.exec(hub, 'ip', ['route', 'add', SITES_LAN, 'dev', tw.tunName]);
  const tNetwork = Date.now();

  // --- 1. 200 sites come up -----------------------------------------------------------------------
  const tStart = Date.now();
  charon = await startCharon(lab, sites, {
    dir: lab.tempDir('charon'),
    conns: Array.from({ length: LATE }, (_, i) => siteConn(i + 1)),
    // ike=2 logs ~40 lines per SA: with 200 SAs the log I/O costs more than the IKE work here.
    logLevels: { ike: 1, knl: 0, cfg: 0 },
  });
  const c = charon;
  const d = tw;
  // Site 201 with the wrong key goes during the burst: the others must not care.
  const wrong = c.initiate(`site${WRONG}`, { check: false, timeoutSec: 20 });

  // Both sides polled together (the hub on its control socket: the CLI's start-up is slow here).
  let hubUp = 0;
  let siteCounts = { total: 0, halfOpen: 0 };
  const tDone = await waitFor(
    async () => {
      if (!d.proc.running) throw new Error(`twinsecd exited:\n${tail(d.log(), 40)}`);
      const [s, counts] = await Promise.all([
        call(d.socket, 'status') as Promise<TwinsecStatus>,
        charonCounts(c),
      ]);
      hubUp = s.connections.sites?.children.length ?? 0;
      siteCounts = counts;
      return hubUp >= SITES && counts.total >= SITES && counts.halfOpen === 0 ? Date.now() : 0;
    },
    60_000,
    { what: `${SITES} CHILD_SAs on the hub and ${SITES} IKE SAs on charon`, intervalMs: 200 },
  ).catch((e: Error) => {
    throw new Error(`${e.message} (hub: ${hubUp} CHILD_SAs, charon: ${JSON.stringify(siteCounts)})`);
  });
  const setupSec = (tDone - tStart) / 1000;
  t.comment(
    `setup: ${SITES} sites in ${setupSec.toFixed(2)} s (charon start + load + all established), ` +
      `${(SITES / setupSec).toFixed(1)} tunnels/s; lab network ${((tNetwork - t0) / 1000).toFixed(2)} s`,
  );

  const up = await charonUp(c);
  const missing = Array.from({ length: SITES }, (_, i) => `site${i + 1}`).filter((n) => !up.has(n));
  t.same(missing, [], `charon: all ${SITES} IKE SAs ESTABLISHED with a CHILD_SA INSTALLED`);
  const children = await hubChildren(d);
  const oneEach = Array.from({ length: SITES }, (_, i) => i + 1).filter((n) => children.get(n)?.length !== 1);
  t.same(oneEach, [], `twinsec: exactly one CHILD_SA per site, tsRemote 198.18.N.0/24 (${SITES} sites)`);
  const unmirrored = [...up.values()]
    .filter((sa) => /^site\d+$/.test(sa.name) && Number(sa.name.slice(4)) <= SITES)
    .filter((sa) => {
      const ch = sa.children.find((x) => x.state === 'INSTALLED')!;
      const mine = children.get(Number(sa.name.slice(4)))?.[0];
      return !(normSpi(mine?.spiIn) === ch.spiOut && normSpi(mine?.spiOut) === ch.spiIn);
    })
    .map((sa) => sa.name);
  t.same(unmirrored, [], "every site's CHILD_SA SPIs are mirrored by the hub");

  // --- 3. the wrong key fails, the others are unaffected ------------------------------------------
  const w = await wrong;
  t.not(w.code, 0, `site ${WRONG} (wrong PSK) does not establish`);
  t.match(
    `${w.stdout}${w.stderr}\n${c.log()}`,
    new RegExp(`<site${WRONG}\\|\\d+>.*AUTHENTICATION_FAILED|received AUTHENTICATION_FAILED`),
    `site ${WRONG}: AUTHENTICATION_FAILED`,
  );
  t.notOk(up.has(`site${WRONG}`), `no IKE SA for site ${WRONG} on charon`);
  t.notOk(children.has(WRONG), `no CHILD_SA for site ${WRONG} on the hub`);

  // --- 2. traffic through each sampled site's own CHILD_SA ----------------------------------------
  const tTraffic = Date.now();
  // The first packets may race kernel-libipsec's route: one answer for site 1 first (bounded: if
  // site 1 gets no answer at all, its assertion below says so).
  await waitFor(async () => received((await ping(lab, sites, siteHost(1), HUB_LAN_HOST)).stdout) > 0, 3000, {
    what: 'a first ping from site 1',
    intervalMs: 200,
  }).catch(() => undefined);
  t.comment(`first ping: ${Date.now() - tTraffic} ms`);
  const counters = async () => {
    const [hubBy, sw] = await Promise.all([hubChildren(d, 'socket'), charonSites(c, SAMPLE)]);
    return { hub: hubBy, sw };
  };
  for (const [dir, ns, from, to] of [
    ['site -> hub', sites, siteHost, () => HUB_LAN_HOST],
    ['hub -> site', hub, () => HUB_LAN_HOST, siteHost],
  ] as const) {
    const m0 = Date.now();
    const before = await counters();
    const m1 = Date.now();
    // The sampled sites in parallel: each site's counters are its own SA's.
    const pings = await Promise.all(SAMPLE.map((n) => ping(lab, ns, from(n), to(n))));
    const m2 = Date.now();
    const after = await counters();
    t.comment(`${dir}: counters ${m1 - m0} ms, pings ${m2 - m1} ms, counters ${Date.now() - m2} ms`);
    // Where the hub's packets went instead (for a failure: which site's SA, or which drop counter).
    const moved = [...after.hub]
      .map(([n, [h1]]) => {
        const h0 = before.hub.get(n)?.[0];
        return {
          n,
          in: (h1?.packetsIn ?? 0) - (h0?.packetsIn ?? 0),
          out: (h1?.packetsOut ?? 0) - (h0?.packetsOut ?? 0),
        };
      })
      .filter((x) => x.in > 0 || x.out > 0);
    const drops = ((await call(d.socket, 'status')) as { drops?: unknown }).drops;
    t.comment(
      `${dir}: hub SAs whose counters moved: ${JSON.stringify(moved)}; drops ${JSON.stringify(drops)}`,
    );
    SAMPLE.forEach((n, i) => {
      const got = received(pings[i]!.stdout);
      const h0 = before.hub.get(n)?.[0];
      const h1 = after.hub.get(n)?.[0];
      const s0 = before.sw.get(`site${n}`)?.children.find((x) => x.state === 'INSTALLED');
      const s1 = after.sw.get(`site${n}`)?.children.find((x) => x.state === 'INSTALLED');
      const delta = {
        hubIn: (h1?.packetsIn ?? 0) - (h0?.packetsIn ?? 0),
        hubOut: (h1?.packetsOut ?? 0) - (h0?.packetsOut ?? 0),
        siteIn: (s1?.packetsIn ?? 0) - (s0?.packetsIn ?? 0),
        siteOut: (s1?.packetsOut ?? 0) - (s0?.packetsOut ?? 0),
      };
      // Answered, and both the request and the answer went through this site's own SA (3 each way).
      const own = delta.hubIn >= 3 && delta.hubOut >= 3 && delta.siteIn >= 3 && delta.siteOut >= 3;
      t.ok(got === 3 && own, `${dir}, site ${n}: 3/3 answered through site ${n}'s own CHILD_SA`, {
        received: got,
        delta,
      });
    });
  }
  t.comment(`traffic checks: ${((Date.now() - tTraffic) / 1000).toFixed(2)} s`);

  // --- 4. reload adds site 202, the established SAs are untouched ---------------------------------
  const early = await c.initiate(`site${LATE}`, { check: false, timeoutSec: 10 });
  t.not(early.code, 0, `site ${LATE} does not establish before its secret is loaded`);
  const spisBefore = new Map([...(await charonUp(c))].map(([n, sa]) => [n, ikeSpis(sa)]));
  const hubSpisBefore = d.liveIkeSas('sites');
  t.equal(hubSpisBefore.length, SITES, `twinsec's log: ${SITES} live IKE SAs before the reload`);
  const next = YAML.parse(YAML.stringify(d.config)) as TwinsecConfigYaml;
  next.secrets = secrets([...inHub, LATE]);
  writeFileSync(d.configFile, YAML.stringify(next), { mode: 0o600 });
  const rl = await d.cli(['reload'], { check: false });
  t.equal(rl.code, 0, 'twinsec reload succeeds', { output: rl.stdout + rl.stderr });
  const late = await c.initiate(`site${LATE}`, { check: false, timeoutSec: 10 });
  t.equal(late.code, 0, `site ${LATE} establishes after the reload`, { output: tail(late.stdout, 10) });
  const afterReload = await charonUp(c);
  t.ok(afterReload.has(`site${LATE}`), `charon: site ${LATE} ESTABLISHED with a CHILD_SA`);
  const changed = [...spisBefore]
    .filter(([n]) => n !== `site${LATE}`)
    .filter(([n, spis]) => ikeSpis(afterReload.get(n) ?? ({ raw: {} } as IkeSaInfo)) !== spis)
    .map(([n]) => n);
  t.equal(spisBefore.size, SITES, `charon: ${SITES} IKE SAs before the reload`);
  t.same(changed, [], `charon: the ${SITES} IKE SAs keep their SPIs across the reload`);
  const hubSpisAfter = d.liveIkeSas('sites');
  t.same(
    hubSpisBefore.filter((s) => !hubSpisAfter.includes(s)),
    [],
    "twinsec's log: no IKE SA of the 200 went away",
  );
  t.equal(hubSpisAfter.length, SITES + 1, `twinsec's log: ${SITES + 1} live IKE SAs after the reload`);
  const hubAfter = await hubChildren(d);
  t.equal(hubAfter.get(LATE)?.length, 1, `twinsec: a CHILD_SA for site ${LATE}`);

  // --- 5. SIGTERM: twinsecd tells every site --------------------------------------------------------
  const tTerm = Date.now();
  d.proc.child.kill('SIGTERM');
  const exit = await Promise.race([
    d.proc.exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000)),
  ]);
  const exitSec = (Date.now() - tTerm) / 1000;
  t.same(exit, { code: 0, signal: null }, `twinsecd exits 0 on SIGTERM (${exitSec.toFixed(2)} s)`);
  t.ok(exitSec < 5, 'within 5 s');
  let left = { total: -1, halfOpen: 0 };
  const tGone = await waitFor(
    async () => {
      left = await charonCounts(c);
      return left.total === 0 ? Date.now() : 0;
    },
    15_000,
    { what: 'no IKE SA left on charon', intervalMs: 100 },
  ).catch(() => 0);
  t.ok(tGone > 0, 'charon: every IKE SA deleted (DELETE from the hub)', { left });
  if (tGone > 0) {
    t.comment(
      `teardown: twinsecd exited after ${exitSec.toFixed(2)} s, all ${SITES + 1} IKE SAs gone on charon ` +
        `after ${((tGone - tTerm) / 1000).toFixed(2)} s`,
    );
  }
  const sasLeft = (await c.listSas()).map((sa) => sa.name);
  t.same(sasLeft, [], 'swanctl --list-sas shows no SA');
  t.comment(`hub test total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
t.test(`hub: ${SITES} strongSwan sites on one twinsec connection`, { skip, timeout: 180_000 }, (t) =>
  runHub(t),
);
