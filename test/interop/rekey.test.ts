/**
 * CHILD_SA rekeying interop: strongSwan (charon, child rekey_time = 5s) rekeys while pings cross the
 * tunnel at 50/s for ~20 s; twinsec answers the CREATE_CHILD_SAs make-before-break, no echo is lost.
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
const PSK = 'rekey-interop-test-psk-0123456789';

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'strongSwan rekeys the CHILD_SA every 5 s and the IKE SA every 12 s under 50 pings/s for 30 s: nothing lost',
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
          rekeyTime: 12,
          extra: { rand_time: '0s', over_time: '60s' },
          childRekeyTime: 5,
          childLifeTime: 60,
          childExtra: { rand_time: '0s' },
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
          ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 },
          esp: { proposals: ['aes256gcm16-x25519'], lifetime: 1200 },
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
        timeoutMs: 60_000,
      },
    );
    const sent = Number(/(\d+) packets transmitted/.exec(r.stdout)?.[1] ?? 0);
    const got = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
    t.equal(sent, 1500, 'ping sent 1500 echoes');
    t.equal(got, sent, `0 lost (${r.stdout.trim().split('\n').pop()})`);
    const rekeys = charon.log().match(/generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)/g) ?? [];
    t.ok(rekeys.length >= 4, `charon rekeyed the CHILD_SA several times (${rekeys.length} log lines)`);
    // An IKE SA rekey request carries SA, Nonce and KE but no REKEY_SA notify and no selectors.
    const ikeRekeys = charon.log().match(/generating CREATE_CHILD_SA request \d+ \[ SA No KE \]/g) ?? [];
    t.ok(ikeRekeys.length >= 1, `charon rekeyed the IKE SA (${ikeRekeys.length} log lines)`);
    const sas = await charon.listSas();
    t.equal(sas.length, 1, 'strongSwan holds exactly one IKE SA afterwards');
    const st = (await twinsec.status()).connections.t1!;
    t.equal(st.state, 'established');
    t.equal(st.children.length, 1, 'old CHILD_SAs deleted');
  },
);
