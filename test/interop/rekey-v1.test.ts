/**
 * IKEv1 against strongSwan: twinsec (esp.lifetime 10 s, ike.lifetime 25 s) rekeys its IPsec SAs with
 * quick mode at 8-9 s and re-authenticates its ISAKMP SA (a new main mode, RFC 2409 has no phase 1
 * rekey) at 20-22.5 s, make-before-break, while pings cross the tunnel at 50/s for 30 s; charon has
 * hour-long lifetimes, so every renewal is twinsec's. The Alibaba default suite. No echo may be lost.
 */
import t from 'tap';
import { labUnavailable } from '../lab/netns.js';
import { charonUnavailable } from '../lab/strongswan.js';
import { twinsecUnavailable } from '../lab/twinsec.js';
import { PINGS, pingThroughRekeys } from './rekey-lab.js';

const skip = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();

t.test(
  'IKEv1: quick mode rekeys and a phase 1 re-authentication under 50 pings/s, nothing lost',
  { skip },
  async (t) => {
    const { charon, twinsec, sent, got, summary } = await pingThroughRekeys(t, {
      psk: 'rekey-v1-interop-test-psk-0123456789',
      version: 1,
      ike: 'aes128-sha1-modp1024',
      esp: 'aes128-sha1-modp1024',
      charon: { rekeyTime: 3600, childRekeyTime: 3600, childLifeTime: 7200 },
      ikeLifetime: 25,
      espLifetime: 10,
      timeoutMs: 90000,
    });
    t.equal(sent, PINGS, `ping sent ${PINGS} echoes`);
    t.equal(got, sent, `0 lost (${summary})`);
    const twLog = twinsec.log().split('\n');
    const rekeys = twLog.filter((l) => l.includes('child-down') && l.includes('"rekeyed"'));
    t.ok(rekeys.length >= 2, `twinsec rekeyed its IPsec SAs with quick mode (${rekeys.length})`);
    const reauth = twLog.filter((l) => l.includes('re-authenticated as ISAKMP SA'));
    t.ok(reauth.length >= 1, `twinsec re-authenticated its ISAKMP SA (${reauth.length})`);
    t.notOk(
      twLog.some((l) => l.includes('lifetime expired')),
      'no SA reached its hard limit',
    );
    // twinsec keeps renewing (IPsec SAs every 8-9 s, the ISAKMP SA every 20-22.5 s), so strongSwan is
    // looked at between renewals: one ISAKMP SA left, the replaced one deleted by twinsec's DELETE.
    t.match(
      charon.log(),
      /received DELETE for IKE_SA/,
      "strongSwan deleted the old ISAKMP SA on twinsec's DELETE",
    );
    t.match(
      charon.log(),
      /received DELETE for ESP CHILD_SA/,
      "and the replaced IPsec SAs on twinsec's DELETEs",
    );
    const sas = await charon.waitFor(
      async () => {
        const l = (await charon.listSas()).filter((x) => x.state === 'ESTABLISHED');
        return l.length === 1 && l[0]!.children.some((c) => c.state === 'INSTALLED') ? l : undefined;
      },
      15_000,
      'strongSwan down to one ISAKMP SA',
    );
    t.equal(sas[0]?.version, 1);
    const st = (await twinsec.status()).connections.t1!;
    t.equal(st.state, 'established');
    t.ok(
      st.children.length >= 1 && st.children.length <= 2,
      `twinsec holds the current IPsec SA (${st.children.length})`,
    );
  },
);
