/**
 * IKEv1 dead peer detection (RFC 3706) against strongSwan 5.9.8 (charon, kernel-libipsec), twinsec as
 * initiator, aes128-sha1-modp1024 both phases:
 *
 *   1. twinsec's DPD (`dpd: { delay, timeout }`): charon is killed with SIGKILL (no DELETE can leave it).
 *      twinsec sends R-U-THERE after `delay` without anything from the peer (RFC 3706 §5.3: only when
 *      idle) and declares it dead when no R-U-THERE-ACK came within `timeout`: its SAs go. The figures
 *      come from twinsecd's JSON log lines (their timestamps), not from test timers: the last message
 *      from the live peer (the last DPD probe it answered), the probe that went unanswered and the
 *      `dpd_timeout` failure. Then charon is started again and twinsec re-initiates on its backoff
 *      (RFC 3706 leaves recovery to the implementation): the tunnel comes back and pings cross.
 *   2. charon's DPD towards twinsec: charon (dpd_delay 2 s, IKEv1 dpd_timeout 6 s) probes the idle
 *      connection; twinsec answers every R-U-THERE with an R-U-THERE-ACK carrying the same sequence
 *      number (RFC 3706 §5.2), so charon keeps the same ISAKMP SA for more than 3 x dpd_delay and past
 *      its dpd_timeout.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]
 *   tw lo 198.18.9.1 (LAN 198.18.9.0/24)          sw lo 198.19.9.1 (LAN 198.19.9.0/24)
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { DPD_JITTER } from '../../src/ike/core/liveness.js';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, type CharonConn, charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecLogEvent, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.9.0/24';
const SW_LAN = '198.19.9.0/24';
const TW_HOST = '198.18.9.1';
const SW_HOST = '198.19.9.1';
const PSK = 'ikev1-dpd-interop-test-psk-0123456789';
const IKE = 'aes128-sha1-modp1024';
const ESP = 'aes128-sha1-modp1024';
/** twinsec's DPD (seconds). timeout stays below the R-U-THERE retransmission budget (12 s by default). */
const DPD_DELAY = 3;
const DPD_TIMEOUT = 5;
/**
 * Slack on top of the configured figures for timers firing late and the log line being written, on a
 * loaded 2-core machine; every figure is reported so the real margin shows.
 */
const MARGIN_MS = 750;
/** charon's own DPD (seconds) and how long the connection then stays idle. */
const SW_DPD_DELAY = 2;
const SW_DPD_TIMEOUT = 6;
const IDLE_MS = 10_000;

const tail = (s: string | undefined, n: number) => (s ?? '').split('\n').slice(-n).join('\n');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Setup {
  lab: Lab;
  tw: string;
  sw: string;
  charon: () => Charon;
  restartCharon: () => Promise<Charon>;
  twinsec: Twinsec;
  ping: (ns: string, from: string, to: string) => Promise<number>;
}

async function setup(
  t: Test,
  opts: { twDpd?: { delay: number; timeout: number }; swConn?: Partial<CharonConn> },
): Promise<Setup> {
  const lab = new Lab(t);
  let charon: Charon | undefined;
  let twinsec: Twinsec | undefined;
  const charons: Charon[] = [];
  // Registered after the lab's teardown, so it runs first (LIFO): the logs still exist.
  t.teardown(() => {
    if (t.passing()) return;
    for (const c of charons) t.comment(`--- charon log (tail) ---\n${tail(c.log(), 60)}`);
    t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec?.log(), 80)}`);
  });
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);
  const startSwan = async () => {
    const c = await startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version: 1,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: [IKE],
          espProposals: [ESP],
          localTs: [SW_LAN],
          remoteTs: [TW_LAN],
          startAction: 'none',
          ...opts.swConn,
        },
      ],
    });
    charons.push(c);
    charon = c;
    return c;
  };
  await startSwan();
  twinsec = await startTwinsec(lab, tw, {
    log: { level: 'debug' },
    connections: {
      t1: {
        version: 1,
        local: TW_WAN,
        remote: SW_WAN,
        psk: PSK,
        ike: { proposals: [IKE], lifetime: 3600 },
        esp: { proposals: [ESP], lifetime: 1200 },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: 'initiate',
        ...(opts.twDpd ? { dpd: opts.twDpd } : {}),
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  });
  const ping = async (ns: string, from: string, to: string) =>
    (
      await lab.exec(ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', '-I', from, to], {
        check: false,
        timeoutMs: 15_000,
      })
    ).code;
  return { lab, tw, sw, charon: () => charon!, restartCharon: startSwan, twinsec, ping };
}

async function established(s: Setup, what: string): Promise<void> {
  const c = s.charon();
  await c.waitFor(() => c.established('gw'), 60_000, `strongSwan ISAKMP SA ESTABLISHED (${what})`);
  await s.twinsec.waitForState('t1', 'established', 20_000);
  await waitFor(async () => (await s.ping(s.tw, TW_HOST, SW_HOST)) === 0, 15_000, {
    what: `ping through the tunnel (${what})`,
    intervalMs: 200,
  });
}

/** The real charon processes in `ns` (by /proc/PID/comm; the spawned pid may be a wrapper's). */
async function charonPids(lab: Lab, ns: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await lab.pids(ns)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'charon') out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

const isProbe = (e: TwinsecLogEvent) =>
  e.event === 'ike-debug' && e.msg.includes('DPD: nothing from the peer');

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
if (!skip) Lab.sweepStale();

t.test(
  'IKEv1 DPD: charon killed (SIGKILL), twinsec declares it dead in time and rebuilds the tunnel',
  { skip },
  async (t) => {
    const s = await setup(t, { twDpd: { delay: DPD_DELAY, timeout: DPD_TIMEOUT } });
    const { lab, sw, twinsec } = s;
    await established(s, 'first');
    // Let at least one probe be answered, so the peer was alive and the R-U-THERE/ACK path works.
    await waitFor(() => twinsec.logEvents().some(isProbe), (DPD_DELAY + 5) * 1000, {
      what: 'a first DPD probe by twinsec',
      intervalMs: 200,
    });
    await sleep(500);
    t.ok(
      (await twinsec.status()).connections.t1?.state === 'established',
      'a DPD probe to the live charon was answered (still established)',
    );

    const pids = await charonPids(lab, sw);
    t.equal(pids.length, 1, `one charon process in the namespace (${pids.join(', ')})`);
    const killedAt = Date.now();
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await charonPids(lab, sw)).length === 0, 5000, { what: 'charon gone' });
    const eventsBefore = twinsec.logEvents().length;

    const dead = await waitFor(
      () =>
        twinsec
          .logEvents()
          .slice(eventsBefore)
          .find((e) => e.event === 'ike-failure' && e.reason === 'dpd_timeout'),
      (DPD_DELAY + DPD_TIMEOUT) * 1000 + 10_000,
      { what: 'twinsec dpd_timeout', intervalMs: 100 },
    );
    const events = twinsec.logEvents();
    // The failed probe: the last one before the verdict. The last sign of life: the log line before that
    // probe's own run (the previous probe's answer came before it), bounded by the kill.
    const probes = events.filter((e) => isProbe(e) && e.at <= dead.at);
    const failedProbe = probes.at(-1);
    t.ok(failedProbe, 'twinsec sent a DPD probe (R-U-THERE) after the kill');
    // The probe before it was answered (the SA stayed up): the peer's last sign of life, from the log alone.
    const lastAnswered = probes.at(-2);
    t.ok(lastAnswered && lastAnswered.at < killedAt, 'an earlier probe, before the kill, was answered');
    const aliveToProbe = (failedProbe?.at ?? 0) - (lastAnswered?.at ?? 0);
    const aliveToDead = dead.at - (lastAnswered?.at ?? 0);
    // Each DPD check is drawn within the last DPD_JITTER of the delay (liveness.ts: thousands of
    // tunnels that came up together must not probe together), never later than the delay.
    t.ok(
      aliveToProbe >= DPD_DELAY * 1000 * (1 - DPD_JITTER) - 50 &&
        aliveToProbe <= DPD_DELAY * 1000 + MARGIN_MS,
      `the next probe ${aliveToProbe} ms after the last answered one (delay ${DPD_DELAY * 1000} ms, ` +
        `jittered by up to ${DPD_JITTER * 100} %)`,
    );
    t.ok(
      aliveToDead <= (DPD_DELAY + DPD_TIMEOUT) * 1000 + MARGIN_MS,
      `dead ${aliveToDead} ms after the last answered probe (<= delay + timeout + ${MARGIN_MS} ms)`,
    );
    const probeAfterKill = (failedProbe?.at ?? 0) - killedAt;
    const probeToDead = dead.at - (failedProbe?.at ?? 0);
    const killToDead = dead.at - killedAt;
    t.comment(
      `DPD figures (twinsecd log): last answered R-U-THERE -> next ${aliveToProbe} ms -> dead ${aliveToDead} ms; kill -> R-U-THERE ${probeAfterKill} ms, R-U-THERE -> dead ${probeToDead} ms, ` +
        `kill -> dead ${killToDead} ms (delay ${DPD_DELAY} s + timeout ${DPD_TIMEOUT} s)`,
    );
    t.ok(
      probeAfterKill <= DPD_DELAY * 1000 + MARGIN_MS,
      `the unanswered probe went out within delay of the kill (${probeAfterKill} ms)`,
    );
    t.ok(
      probeToDead >= DPD_TIMEOUT * 1000 - 50 && probeToDead <= DPD_TIMEOUT * 1000 + MARGIN_MS,
      `dead ${probeToDead} ms after the unanswered probe (timeout ${DPD_TIMEOUT * 1000} ms)`,
    );
    t.ok(
      killToDead > 0 && killToDead <= (DPD_DELAY + DPD_TIMEOUT) * 1000 + MARGIN_MS,
      `peer declared dead ${killToDead} ms after SIGKILL (<= delay + timeout + ${MARGIN_MS} ms)`,
    );
    // The state line follows the failure line by a few milliseconds: read the log again for it.
    const down = await waitFor(
      () =>
        twinsec
          .logEvents()
          .find(
            (e) =>
              e.event === 'ike-state' &&
              e.to === 'down' &&
              e.at >= dead.at &&
              /peer dead/.test(String(e.reason)),
          ),
      5000,
      { what: 'twinsec ike-state down (peer dead)', intervalMs: 100 },
    ).catch(() => undefined);
    t.ok(down, `twinsec's ISAKMP SA went down (${down?.reason})`);
    const st = (await twinsec.status()).connections.t1;
    t.not(st?.state, 'established', `twinsec t1 not established after the verdict (${st?.state})`);
    t.same(st?.children ?? [], [], 'no IPsec SA left in twinsec');
    t.ok(twinsec.proc.running, 'twinsecd still running');

    // charon comes back; twinsec is retrying on its backoff (main mode I1 retransmissions reach it).
    const restartedAt = Date.now();
    const charon2 = await s.restartCharon();
    await established(s, 'after the restart');
    const rebuilt = twinsec
      .logEvents()
      .filter((e) => e.event === 'ike-state' && e.to === 'established' && e.at > dead.at);
    t.ok(rebuilt.length >= 1, 'twinsec established a new ISAKMP SA after the verdict');
    t.comment(
      `tunnel rebuilt ${rebuilt[0] ? rebuilt[0].at - restartedAt : '-'} ms after charon was started again`,
    );
    const sa = await charon2.established('gw');
    t.ok(sa && !sa.initiator, 'the new charon holds the SA twinsec initiated');
    t.equal(await s.ping(s.tw, TW_HOST, SW_HOST), 0, 'ping twinsec LAN -> strongSwan LAN again');
    t.equal(await s.ping(sw, SW_HOST, TW_HOST), 0, 'ping strongSwan LAN -> twinsec LAN again');
    t.equal((await twinsec.status()).connections.t1?.children.length, 1, 'twinsec holds one IPsec SA pair');
  },
);

t.test(
  "IKEv1 DPD: charon's R-U-THERE on an idle tunnel is answered, charon keeps its SA",
  { skip },
  async (t) => {
    const s = await setup(t, {
      swConn: { dpdDelay: SW_DPD_DELAY, extra: { dpd_timeout: `${SW_DPD_TIMEOUT}s` } },
    });
    const { twinsec } = s;
    const c = s.charon();
    await established(s, 'first');
    const before = await c.established('gw');
    const rutRe = /generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]/g;
    const requestsAtStart = (c.log().match(rutRe) ?? []).length;
    // Idle: no pings, no IKE from twinsec (no DPD of its own, hour-long lifetimes).
    await sleep(IDLE_MS);
    const log = c.log();
    const requests = (log.match(rutRe) ?? []).length;
    const acks = (log.match(/parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]/g) ?? []).length;
    t.comment(`charon sent ${requests} R-U-THERE, parsed ${acks} R-U-THERE-ACK in ${IDLE_MS} ms idle`);
    t.ok(
      requests - requestsAtStart >= Math.floor(IDLE_MS / 1000 / SW_DPD_DELAY) - 2,
      `charon probed the idle tunnel every ~${SW_DPD_DELAY} s (${requests})`,
    );
    t.ok(
      acks >= requests - 1 && acks >= 3,
      `twinsec answered them with R-U-THERE-ACK (${acks} of ${requests})`,
    );
    t.notMatch(log, /DPD check timed out|giving up after|deleting IKE_SA/, 'charon never gave up on twinsec');
    const after = await c.established('gw');
    t.equal(
      after?.uniqueId,
      before?.uniqueId,
      `charon still holds the same ISAKMP SA (#${before?.uniqueId})`,
    );
    t.equal((await twinsec.status()).connections.t1?.state, 'established', 'twinsec still established');
    t.equal(await s.ping(s.tw, TW_HOST, SW_HOST), 0, 'and the tunnel still carries pings');
  },
);
