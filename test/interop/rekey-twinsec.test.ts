/**
 * twinsec's own rekeys against strongSwan: twinsec (esp.lifetime 10 s, ike.lifetime 25 s) rekeys its
 * CHILD_SAs at 8-9 s and its IKE SA at 20-22.5 s while pings cross the tunnel at 50/s for 30 s;
 * charon has hour-long lifetimes, so every rekey is twinsec's. No echo may be lost.
 *
 *   [tw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [sw]   (LANs on loopback, as in esp.test.ts)
 */
import t from 'tap';
import { labUnavailable } from '../lab/netns.js';
import { charonUnavailable } from '../lab/strongswan.js';
import { twinsecUnavailable } from '../lab/twinsec.js';
import { PINGS, pingThroughRekeys } from './rekey-lab.js';

const PSK = 'rekey-tw-interop-test-psk-0123456789';

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'twinsec rekeys its CHILD_SAs and IKE SA (lifetimes 10 s / 25 s) under 50 pings/s: nothing lost',
  { skip },
  async (t) => {
    const { charon, twinsec, sent, got, summary } = await pingThroughRekeys(t, {
      psk: PSK,
      charon: { rekeyTime: 3600, childRekeyTime: 3600, childLifeTime: 7200 },
      ikeLifetime: 25,
      espLifetime: 10,
      timeoutMs: 90000,
    });
    t.equal(sent, PINGS, `ping sent ${PINGS} echoes`);
    t.equal(got, sent, `0 lost (${summary})`);
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
