/**
 * Security issue #11, load item (a): an IKE_SA_INIT flood from spoofed sources against the cloud
 * gateway of the HA lab (ike-flood-case.ts has the set-up; the cloud gateway carries the two
 * health-checked tunnels, 0.1 s x 3, and also answers any peer, `remote: %any`).
 *
 * What must hold during 30 s of >= 5,000 spoofed IKE_SA_INIT/s (counted in the router):
 *   - the gateway answers them statelessly with N(COOKIE) (its `cookie_required` count, and its
 *     answers on the wire);
 *   - no health change and no route switch on either gateway, the HA IKE SAs are the same ones
 *     after the flood, LAN pings keep flowing (>= 98 %), and t1 rekeys its CHILD_SA meanwhile;
 *   - a new branch gateway (twinsecd, which answers the cookie) started 4 s into the flood is
 *     established within 5 s of its start, rekeys its CHILD_SA (7 s) and its IKE SA (12 s) during
 *     the flood, and carries a ping after that;
 *   - the cloud twinsecd's RSS grows by less than 128 MiB at its peak (start, peak and end
 *     printed) and its heap after a full GC by less than 16 MiB;
 *   - `status` on the control socket: median < 50 ms (p95 and max printed).
 */
import t from 'tap';
import { floodCase } from './ike-flood-case.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable();

t.test(
  'IKE_SA_INIT flood from spoofed sources: cookies, no failover, a new peer gets in, rekeys complete, RSS bounded',
  { skip },
  async (t) => {
    await floodCase(t, new Lab(t), {
      version: 2,
      seconds: 30,
      rate: 6500,
      branchAt: 4,
      espRekey: 7,
      ikeRekey: 12,
      t1EspRekey: 20,
      rssBound: 128 * 1024 * 1024,
    });
  },
);
