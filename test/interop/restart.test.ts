/**
 * Restart interop: one side of a twinsec <-> strongSwan tunnel is killed with SIGKILL and comes back.
 *
 * (a) charon killed: twinsec (dpd 1 s / 4 s) reports t1 down within delay + timeout (+2 s slack), logs
 *     the DPD failure, and once charon is back (same config) rebuilds the tunnel by itself.
 * (b) twinsecd killed and restarted with the same config (same TUN name): a ping crosses the tunnel
 *     within 5 s of the restart, and INITIAL_CONTACT leaves strongSwan with exactly one IKE SA.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]   (LANs on loopback, as in esp.test.ts)
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { type Charon, charonUnavailable, settleToOneIkeSa, startCharon } from '../lab/strongswan.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, twinsecUnavailable } from '../lab/twinsec.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const TW_HOST = '198.18.1.1';
const SW_HOST = '198.19.1.1';
const PSK = 'restart-interop-test-psk-0123456789';
const IKE = 'aes256gcm16-prfsha256-x25519';
const ESP = 'aes256gcm16-x25519';

const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');

async function setup(t: Test, dpd?: { delay: number; timeout: number }) {
  const lab = new Lab(t);
  const tw = await lab.addNamespace('tw');
  const sw = await lab.addNamespace('sw');
  await lab.link(
    { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
    { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
  );
  await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
  await lab.loopbackAddresses(sw, `${SW_HOST}/32`);
  const startSwan = () =>
    startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version: 2,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: [IKE],
          espProposals: [ESP],
          localTs: [SW_LAN],
          remoteTs: [TW_LAN],
          startAction: 'none',
        },
      ],
    });
  const config: TwinsecConfigYaml = {
    log: { level: 'debug' },
    tun: { name: `tswr${process.pid.toString(16).slice(-5)}` },
    connections: {
      t1: {
        version: 2,
        local: TW_WAN,
        remote: SW_WAN,
        psk: PSK,
        ike: { proposals: [IKE], lifetime: 3600 },
        esp: { proposals: [ESP], lifetime: 1200 },
        localSubnets: [TW_LAN],
        remoteSubnets: [SW_LAN],
        start: 'initiate',
        encapsulation: 'auto',
        ...(dpd ? { dpd } : {}),
      },
    },
    routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
  };
  const ping1 = async () =>
    (await lab.exec(tw, 'ping', ['-n', '-I', TW_HOST, '-c', '1', '-W', '1', SW_HOST], { check: false }))
      .code === 0;
  return { lab, tw, sw, startSwan, config, ping1 };
}

/** Tunnel up on both sides and a ping across it. */
async function upAndPing(charon: Charon, twinsec: Twinsec, ping1: () => Promise<boolean>, ms: number) {
  await charon.waitFor(() => charon.established('gw'), ms, 'strongSwan IKE_SA ESTABLISHED');
  await twinsec.waitForState('t1', 'established', ms);
  await waitFor(ping1, 8000, { what: 'ping through the tunnel', intervalMs: 100 });
}

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'charon killed with -9: DPD reports t1 down in time; rebuilt once charon returns',
  { skip },
  async (t) => {
    const DPD = { delay: 1, timeout: 4 };
    const { lab, tw, sw, startSwan, config, ping1 } = await setup(t, DPD);
    let charon = await startSwan();
    const twinsec = await startTwinsec(lab, tw, config);
    t.teardown(() => {
      if (t.passing()) return;
      t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 60)}`);
      t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec.log(), 80)}`);
    });
    await upAndPing(charon, twinsec, ping1, 12_000);
    t.pass('tunnel up, ping works');

    const victims = await lab.pids(sw);
    const killedAt = Date.now();
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    await charon.proc.exited;
    t.ok((await lab.pids(sw)).length === 0, `every process of ${sw} killed (${victims.join(' ')})`);

    // Poll status; the detection time is bounded by the first poll that saw t1 not established.
    const bound = (DPD.delay + DPD.timeout + 2) * 1000;
    let lastEstablishedAt = killedAt;
    let downAt = 0;
    let downState = '';
    while (Date.now() - killedAt < bound + 3000) {
      const polledAt = Date.now();
      const st = (await twinsec.status()).connections.t1;
      if (st?.state !== 'established') {
        downAt = polledAt;
        downState = st?.state ?? '(absent)';
        break;
      }
      lastEstablishedAt = polledAt;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.ok(downAt > 0, `t1 left 'established' (now ${downState})`);
    const detect = downAt - killedAt;
    t.comment(
      `DPD detection: t1 seen '${downState}' ${detect} ms after SIGKILL (last seen established at +${lastEstablishedAt - killedAt} ms)`,
    );
    t.ok(downAt > 0 && detect <= bound, `DPD detection ${detect} ms <= ${bound} ms (delay + timeout + 2 s)`);
    const dpdLine = twinsec
      .log()
      .split('\n')
      .find((l) => l.includes('ike-failure') && l.includes('dpd_timeout'));
    t.ok(dpdLine, 'twinsecd logged the DPD failure (ike-failure, dpd_timeout)');
    if (dpdLine) t.comment(`log: ${dpdLine.slice(0, 300)}`);

    const restartAt = Date.now();
    charon = await startSwan();
    const c = charon;
    await upAndPing(c, twinsec, ping1, 40_000);
    const rebuild = Date.now() - restartAt;
    t.comment(`rebuild: tunnel re-established and ping through ${rebuild} ms after charon restart`);
    t.pass(`twinsec rebuilt t1 by itself (${rebuild} ms after charon came back)`);
    const sas = (await c.listSas()).filter((s) => s.name === 'gw');
    t.equal(sas.length, 1, 'restarted strongSwan holds one IKE SA');
    t.equal(sas[0]?.initiator, false, 'twinsec initiated it');
  },
);

t.test(
  'twinsecd killed with -9 and restarted: traffic back within 5 s, one IKE SA at strongSwan',
  { skip },
  async (t) => {
    const { lab, tw, startSwan, config, ping1 } = await setup(t);
    const charon = await startSwan();
    let twinsec = await startTwinsec(lab, tw, config);
    t.teardown(() => {
      if (t.passing()) return;
      t.comment(`--- charon log (tail) ---\n${tail(charon.log(), 60)}`);
      t.comment(`--- twinsecd log (tail) ---\n${tail(twinsec.log(), 80)}`);
    });
    await upAndPing(charon, twinsec, ping1, 12_000);
    t.pass('tunnel up, ping works');
    const oldSa = await charon.established('gw');

    twinsec.proc.child.kill('SIGKILL');
    const ex = await twinsec.proc.exited;
    t.equal(ex.signal, 'SIGKILL', 'twinsecd died of SIGKILL');
    // The TUN device goes with the process (not persistent); anything left would block the restart.
    const links = await lab.exec(tw, 'ip', ['-o', 'link', 'show'], { check: false });
    const routes = await lab.exec(tw, 'ip', ['route', 'show', 'table', 'all'], { check: false });
    t.notMatch(links.stdout, config.tun!.name!, `TUN ${config.tun!.name} gone after the kill`);
    t.notMatch(routes.stdout, SW_LAN.split('/')[0]!, 'no stale route to the remote LAN');

    const restartAt = Date.now();
    twinsec = await startTwinsec(lab, tw, config);
    // Ping every 100 ms (each a separate one-shot echo with 1 s to answer) until one succeeds.
    let firstOk = 0;
    const pending: Promise<void>[] = [];
    while (!firstOk && Date.now() - restartAt < 15_000) {
      pending.push(
        ping1().then((ok) => {
          if (ok && !firstOk) firstOk = Date.now();
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(pending);
    const toTraffic = firstOk - restartAt;
    t.comment(
      `restart-to-traffic: first echo answered ${firstOk ? `${toTraffic} ms` : 'never (15 s)'} after restart`,
    );
    t.ok(firstOk && toTraffic < 5000, `traffic back ${toTraffic} ms after the restart (< 5000 ms)`);

    // INITIAL_CONTACT: strongSwan drops the stale IKE SA (allow a couple of seconds).
    const gw = await settleToOneIkeSa(charon, 'gw');
    t.comment(
      `strongSwan IKE SAs for gw: ${gw.length} (${gw.map((s) => `#${s.uniqueId} ${s.state}`).join(', ')})`,
    );
    t.equal(gw.length, 1, 'strongSwan lists exactly one IKE SA');
    t.not(gw[0]?.uniqueId, oldSa?.uniqueId, 'and it is the new one');
    const ic = charon
      .log()
      .split('\n')
      .filter((l) => /destroying duplicate IKE_SA.*INITIAL_CONTACT/.test(l));
    t.ok(ic.length > 0, 'charon dropped the stale IKE SA on INITIAL_CONTACT');
    t.comment(`charon: ${ic.join('\n')}`);
  },
);
