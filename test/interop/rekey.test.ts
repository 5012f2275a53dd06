/**
 * Rekeying interop: strongSwan rekeys the CHILD_SA every 5 s and the IKE SA every 12 s while pings
 * cross the tunnel at 50/s for 30 s; twinsec answers the CREATE_CHILD_SAs make-before-break, no echo is lost.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]   (LANs on loopback, as in esp.test.ts)
 */
import t from 'tap';
import { labUnavailable } from '../lab/netns.js';
import { charonUnavailable } from '../lab/strongswan.js';
import { twinsecUnavailable } from '../lab/twinsec.js';
import { PINGS, pingThroughRekeys } from './rekey-lab.js';

const PSK = 'rekey-interop-test-psk-0123456789';

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'strongSwan rekeys the CHILD_SA every 5 s and the IKE SA every 12 s under 50 pings/s for 30 s: nothing lost',
  { skip },
  async (t) => {
    const { charon, twinsec, sent, got, summary } = await pingThroughRekeys(t, {
      psk: PSK,
      charon: {
        rekeyTime: 12,
        extra: { rand_time: '0s', over_time: '60s' },
        childRekeyTime: 5,
        childLifeTime: 60,
        childExtra: { rand_time: '0s' },
      },
      ikeLifetime: 3600,
      espLifetime: 1200,
      timeoutMs: 60000,
    });
    t.equal(sent, PINGS, `ping sent ${PINGS} echoes`);
    t.equal(got, sent, `0 lost (${summary})`);
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
