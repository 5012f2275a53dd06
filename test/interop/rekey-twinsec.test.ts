/**
 * twinsec's own rekeys against strongSwan: twinsec (esp.lifetime 10 s, ike.lifetime 25 s) rekeys its
 * CHILD_SAs at 8-9 s and its IKE SA at 20-22.5 s while pings cross the tunnel at 50/s for 30 s;
 * charon has hour-long lifetimes, so every rekey is twinsec's. No echo may be lost.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]   (LANs on loopback, as in esp.test.ts)
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../lab/netns.js';
import { charonUnavailable, startCharon } from '../lab/strongswan.js';
import { startTwinsec, twinsecUnavailable } from '../lab/twinsec.js';

const TW_WAN = '192.0.2.1';
const SW_WAN = '192.0.2.2';
const TW_LAN = '198.18.1.0/24';
const SW_LAN = '198.19.1.0/24';
const TW_HOST = '198.18.1.1';
const SW_HOST = '198.19.1.1';
const PSK = 'rekey-tw-interop-test-psk-0123456789';

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'twinsec rekeys its CHILD_SAs and IKE SA (lifetimes 10 s / 25 s) under 50 pings/s: nothing lost',
  { skip },
  async (t) => {
    const lab = new Lab(t);
    const tw = await lab.addNamespace('tw');
    const sw = await lab.addNamespace('sw');
    await lab.link(
      { ns: tw, ifname: 'wan0', address: `${TW_WAN}/24` },
      { ns: sw, ifname: 'wan0', address: `${SW_WAN}/24` },
    );
    await lab.loopbackAddresses(tw, `${TW_HOST}/32`);
    await lab.loopbackAddresses(sw, `${SW_HOST}/32`);
    const charon = await startCharon(lab, sw, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'gw',
          version: 2,
          local: SW_WAN,
          remote: TW_WAN,
          psk: PSK,
          ikeProposals: ['aes256gcm16-prfsha256-x25519'],
          espProposals: ['aes256gcm16-x25519'],
          localTs: [SW_LAN],
          remoteTs: [TW_LAN],
          startAction: 'none',
          rekeyTime: 3600,
          childRekeyTime: 3600,
          childLifeTime: 7200,
        },
      ],
    });
    const twinsec = await startTwinsec(lab, tw, {
      log: { level: 'debug' },
      connections: {
        t1: {
          version: 2,
          local: TW_WAN,
          remote: SW_WAN,
          psk: PSK,
          ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 25 },
          esp: { proposals: ['aes256gcm16-x25519'], lifetime: 10 },
          localSubnets: [TW_LAN],
          remoteSubnets: [SW_LAN],
          start: 'initiate',
          encapsulation: 'auto',
        },
      },
      routes: [{ destination: SW_LAN, via: [{ connection: 't1', weight: 100 }], publish: true }],
    });
    t.teardown(() => {
      if (t.passing()) return;
      t.comment(`--- charon log (tail) ---\n${charon.log().split('\n').slice(-80).join('\n')}`);
      t.comment(`--- twinsecd log (tail) ---\n${twinsec.log().split('\n').slice(-80).join('\n')}`);
    });
    await charon.waitFor(() => charon.established('gw'), 12_000, 'strongSwan IKE_SA ESTABLISHED');
    await twinsec.waitForState('t1', 'established', 12_000);
    await waitFor(
      async () =>
        (await lab.exec(tw, 'ping', ['-n', '-I', TW_HOST, '-c', '1', '-W', '1', SW_HOST], { check: false }))
          .code === 0,
      8000,
      { what: 'first ping', intervalMs: 100 },
    );
    const r = await lab.exec(
      tw,
      'ping',
      ['-n', '-I', TW_HOST, '-c', '1500', '-i', '0.02', '-W', '2', SW_HOST],
      {
        check: false,
        timeoutMs: 90_000,
      },
    );
    const sent = Number(/(\d+) packets transmitted/.exec(r.stdout)?.[1] ?? 0);
    const got = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
    t.equal(sent, 1500, 'ping sent 1500 echoes');
    t.equal(got, sent, `0 lost (${r.stdout.trim().split('\n').pop()})`);
    const twLog = twinsec.log().split('\n');
    const childRekeys = twLog.filter((l) => l.includes('child-down') && l.includes('rekeyed'));
    t.ok(childRekeys.length >= 3, `twinsec rekeyed its CHILD_SAs several times (${childRekeys.length})`);
    const ikeRekeys = twLog.filter((l) => l.includes('ike-state') && /rekeyed to IKE SA #/.test(l));
    t.ok(ikeRekeys.length >= 1, `twinsec rekeyed its IKE SA (${ikeRekeys.length})`);
    t.notOk(
      twLog.some((l) => l.includes('lifetime expired')),
      'no SA reached its hard limit',
    );
    const received = charon.log().match(/(?:received|parsed) CREATE_CHILD_SA request/g) ?? [];
    t.ok(
      received.length >= childRekeys.length + ikeRekeys.length,
      `strongSwan answered the CREATE_CHILD_SAs (${received.length})`,
    );
    t.notOk(/generating CREATE_CHILD_SA request/.test(charon.log()), 'strongSwan started no rekey');
    // charon keeps a rekeyed CHILD_SA a few seconds for late packets (delete_rekeyed_delay).
    const sas = await charon.waitFor(
      async () => {
        const l = await charon.listSas();
        return l.length === 1 && l[0]!.children.length === 1 ? l : undefined;
      },
      15_000,
      'strongSwan down to one IKE SA and one CHILD_SA',
    );
    t.equal(sas.length, 1, 'strongSwan holds exactly one IKE SA');
    t.equal(sas[0]?.state, 'ESTABLISHED');
    t.equal(sas[0]?.children.length, 1, 'and exactly one CHILD_SA');
    t.equal(sas[0]?.children[0]?.state, 'INSTALLED');
    const st = (await twinsec.status()).connections.t1!;
    t.equal(st.state, 'established');
    t.equal(st.children.length, 1, 'old CHILD_SAs deleted');
  },
);
