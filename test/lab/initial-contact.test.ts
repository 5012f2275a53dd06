/**
 * INITIAL_CONTACT with two tunnels carrying the SAME identity pair between the same two gateways (the
 * seed's dual-link topology, ha-lab.ts, with t1/t2 both 'onprem.example' -> 'cloud.example' and c1/c2 the
 * mirror). README: INITIAL_CONTACT is sent only when twinsec holds no other IKE SA (nor one being
 * negotiated) for that identity pair; as responder it deletes older SAs of the same connection and remote
 * address, never ones younger than 10 s.
 *
 * (1) both tunnels come up together (on-prem initiates both) and stay up: after 5 s each side still has
 *     t1,t2 / c1,c2 established, one CHILD_SA each, no 'peer sent INITIAL_CONTACT' and no ike-state
 *     '-> down' after establishment in either log.
 * (2) the gateway that owns both tunnels (on-prem) is killed with SIGKILL and restarted with the same
 *     config: both tunnels established again on both sides and a LAN ping crosses within 10 s; then the
 *     cloud side's live IKE SAs per connection (from its ike-state log lines) and CHILD_SAs (status).
 *     The first restarted tunnel's INITIAL_CONTACT removes the pre-kill IKE SAs of BOTH c1 and c2, so
 *     each cloud connection ends with exactly one IKE SA and one CHILD_SA.
 *
 * IKE SAs per connection are counted from the daemons' JSON ike-state lines (per spiI_spiR, the last
 * state): status --json reports one state per connection and lists the CHILD_SAs of all its IKE SAs.
 */
import t from 'tap';
import {
  CLOUD,
  cloudConfig,
  type HaLab,
  type HaLabOptions,
  type HaStatus,
  haEvents,
  ONPREM,
  onpremConfig,
  quickStatus,
  startHaLab,
  summary,
  waitHaReady,
  waitLanPing,
} from './ha-lab.js';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, twinsecUnavailable } from './twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const ON_ID = 'onprem.example';
const CLOUD_ID = 'cloud.example';
const STAY_MS = 5000;
const RESTART_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');

interface LogLine {
  at: number;
  event: string;
  connection?: string;
  from?: string;
  to?: string;
  reason?: string;
  spiI?: string;
  spiR?: string;
  msg: string;
}

function logLines(tw: Twinsec): LogLine[] {
  const out: LogLine[] = [];
  for (const line of tw.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      out.push({ ...(j as object), at: Date.parse(String(j.time)), msg: String(j.msg ?? '') } as LogLine);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

const ikeStates = (tw: Twinsec) => logLines(tw).filter((l) => l.event === 'ike-state');

/** Live IKE SAs per connection: spiI_spiR whose last ike-state line is 'established'. */
function liveIkeSas(tw: Twinsec): Record<string, string[]> {
  const last = new Map<string, LogLine>();
  for (const l of ikeStates(tw)) if (l.spiI) last.set(`${l.connection}|${l.spiI}`, l);
  const out: Record<string, string[]> = {};
  for (const l of last.values()) {
    if (l.to !== 'established') continue;
    const list = out[l.connection!] ?? [];
    list.push(`${l.spiI}_${l.spiR}`);
    out[l.connection!] = list;
  }
  for (const k of Object.keys(out)) out[k]!.sort();
  return out;
}

/** ike-state lines to 'down'/'deleting' (after `since`) and INITIAL_CONTACT teardowns. */
function teardowns(tw: Twinsec, since: number): string[] {
  return ikeStates(tw)
    .filter(
      (l) =>
        l.at >= since && (l.to === 'down' || l.to === 'deleting' || /INITIAL_CONTACT/.test(l.reason ?? '')),
    )
    .map((l) => `${l.connection} ${l.spiI}: ${l.from} -> ${l.to} (${l.reason})`);
}

function established(s: HaStatus): string[] {
  return Object.entries(s.connections)
    .filter(([, c]) => c.state === 'established')
    .map(([k]) => k)
    .sort();
}

/** Same identities on both tunnels: the ha-lab configs with localId/remoteId overridden. */
function sameIdConfigs(h: HaLab): { on: TwinsecConfigYaml; cloud: TwinsecConfigYaml } {
  const o = { ...h.opts, start: h.opts.onpremStart, probeSources: h.opts.probeSources };
  const on = onpremConfig(o) as unknown as TwinsecConfigYaml;
  const cloud = cloudConfig(o) as unknown as TwinsecConfigYaml;
  for (const c of Object.values(on.connections)) Object.assign(c, { localId: ON_ID, remoteId: CLOUD_ID });
  for (const c of Object.values(cloud.connections)) Object.assign(c, { localId: CLOUD_ID, remoteId: ON_ID });
  return { on, cloud };
}

/** startHaLab with cloud 'none' (topology only), then both gateways with the shared identities. */
async function startSameIdLab(lab: Lab, options: HaLabOptions = {}) {
  const h = await startHaLab(lab, { ...options, cloud: 'none' });
  // startHaLab started an on-prem gateway with the distinct ids; replace it before it matters (no peer).
  await h.onprem.stop(2000);
  const cfg = sameIdConfigs(h);
  const cloud = await startTwinsec(lab, h.ns.cloudGw, cfg.cloud);
  const onprem = await startTwinsec(lab, h.ns.onGw, cfg.on);
  const hh: HaLab = { ...h, onprem, cloud, opts: { ...h.opts, cloud: 'twinsec' } };
  return { h: hh, cfg };
}

const skip = labUnavailable() ?? twinsecUnavailable();

function dumpOnFail(t: Test, get: () => [Twinsec, string][]) {
  t.teardown(() => {
    if (t.passing()) return;
    for (const [tw, name] of get()) t.comment(`--- twinsecd ${name} log (tail) ---\n${tail(tw.log(), 60)}`);
  });
}

t.test('two tunnels with the same identity pair come up together and stay up', { skip }, async (t) => {
  const lab = new Lab(t);
  const { h } = await startSameIdLab(lab);
  const cloud = h.cloud!;
  dumpOnFail(t, () => [
    [h.onprem, 'on-prem'],
    [cloud, 'cloud'],
  ]);
  const t0 = Date.now();
  await waitHaReady(h, 25_000);
  const readyMs = Date.now() - t0;
  const readyAt = Date.now();
  t.comment(`both tunnels established and healthy on both sides ${readyMs} ms after start`);
  await sleep(STAY_MS);

  for (const [tw, side, conns] of [
    [h.onprem, ONPREM, ['t1', 't2']],
    [cloud, CLOUD, ['c1', 'c2']],
  ] as const) {
    const s = await quickStatus(tw);
    t.same(established(s), conns, `${side.name}: exactly ${conns.join(',')} established after ${STAY_MS} ms`);
    for (const c of conns) {
      t.equal(s.connections[c]?.children.length, 1, `${side.name}: ${c} has one CHILD_SA`);
      t.equal(s.connections[c]?.health, 'up', `${side.name}: ${c} healthy`);
    }
    const live = liveIkeSas(tw);
    t.comment(`${side.name}: live IKE SAs ${JSON.stringify(live)}; ${JSON.stringify(summary(s))}`);
    for (const c of conns) t.equal(live[c]?.length, 1, `${side.name}: ${c} holds one IKE SA`);
    const lines = logLines(tw);
    t.notOk(
      lines.some((l) => /INITIAL_CONTACT/.test(l.msg) || /INITIAL_CONTACT/.test(l.reason ?? '')),
      `${side.name}: no INITIAL_CONTACT teardown in the log`,
    );
    const firstUp = Math.min(
      ...ikeStates(tw)
        .filter((l) => l.to === 'established')
        .map((l) => l.at),
    );
    t.same(teardowns(tw, firstUp), [], `${side.name}: no IKE SA went down/deleting after establishment`);
    t.same(
      haEvents(tw, side.name).filter((e) => e.event === 'health' && e.to === 'down' && e.at >= readyAt),
      [],
      `${side.name}: no health 'down' once ready`,
    );
  }
  await waitLanPing(h);
  t.pass('LAN ping crosses');
});

t.test(
  'gateway owning both tunnels killed with -9 and restarted: both back, stale SAs at the cloud',
  { skip },
  async (t) => {
    const lab = new Lab(t);
    const { h, cfg } = await startSameIdLab(lab);
    const cloud = h.cloud!;
    let onprem = h.onprem;
    dumpOnFail(t, () => [
      [onprem, 'on-prem'],
      [cloud, 'cloud'],
    ]);
    await waitHaReady(h, 25_000);
    const before = liveIkeSas(cloud);
    t.comment(`cloud live IKE SAs before the kill: ${JSON.stringify(before)}`);
    t.equal(before.c1?.length, 1, 'cloud: c1 one IKE SA before');
    t.equal(before.c2?.length, 1, 'cloud: c2 one IKE SA before');
    // The responder never treats SAs younger than 10 s as stale: let them age past that.
    await sleep(11_000);

    onprem.proc.child.kill('SIGKILL');
    const ex = await onprem.proc.exited;
    t.equal(ex.signal, 'SIGKILL', 'on-prem twinsecd died of SIGKILL');
    const restartAt = Date.now();
    onprem = await startTwinsec(lab, h.ns.onGw, cfg.on);
    const h2: HaLab = { ...h, onprem };
    let ok = true;
    try {
      await waitHaReady(h2, RESTART_MS);
    } catch (e) {
      ok = false;
      t.comment(`not ready: ${(e as Error).message.slice(0, 400)}`);
    }
    const backMs = Date.now() - restartAt;
    t.ok(
      ok && backMs <= RESTART_MS + 1000,
      `both tunnels established + LAN ping ${backMs} ms after the restart`,
    );
    const sOn = await quickStatus(onprem);
    t.same(established(sOn), ['t1', 't2'], 'on-prem: t1,t2 established');
    for (const c of ['t1', 't2'])
      t.equal(sOn.connections[c]?.children.length, 1, `on-prem: ${c} one CHILD_SA`);

    // Give INITIAL_CONTACT / the stale SAs a couple of seconds to go.
    let live: Record<string, string[]> = {};
    await waitFor(
      () => {
        live = liveIkeSas(cloud);
        return live.c1?.length === 1 && live.c2?.length === 1;
      },
      3000,
      { intervalMs: 200 },
    ).catch(() => {});
    const sCloud = await quickStatus(cloud);
    const kids = { c1: sCloud.connections.c1?.children.length, c2: sCloud.connections.c2?.children.length };
    const down = teardowns(cloud, restartAt);
    const onLog = logLines(onprem).filter((l) => /INITIAL_CONTACT|initial.contact/i.test(l.msg));
    t.comment(`cloud after restart: live IKE SAs ${JSON.stringify(live)}; CHILD_SAs ${JSON.stringify(kids)}`);
    t.comment(`cloud teardowns since restart: ${JSON.stringify(down)}`);
    t.comment(`on-prem log lines on INITIAL_CONTACT: ${JSON.stringify(onLog.map((l) => l.msg))}`);
    t.same(established(sCloud), ['c1', 'c2'], 'cloud: c1,c2 established');
    // The restarted gateway starts t1 and t2 at once: the first to reach IKE_AUTH carries INITIAL_CONTACT,
    // and the cloud drops the pre-kill SAs of the identity pair on both connections (the sibling's new SA,
    // younger than 10 s, is spared).
    for (const c of ['c1', 'c2'] as const) {
      const fresh = (live[c] ?? []).filter((x) => !before[c]?.includes(x));
      t.equal(fresh.length, 1, `cloud: ${c} holds one new IKE SA`);
      t.ok((kids[c] ?? 0) >= 1, `cloud: ${c} lists the new CHILD_SA (${kids[c]} in all)`);
      t.equal(live[c]?.length, 1, `cloud: ${c} holds exactly one IKE SA (stale one removed)`);
      t.equal(kids[c], 1, `cloud: ${c} lists one CHILD_SA`);
      t.notOk(
        live[c]?.some((x) => before[c]?.includes(x)),
        `cloud: ${c}'s pre-kill IKE SA is gone`,
      );
    }
  },
);
