/**
 * Dual-tunnel failover with all four tunnels on IKEv1 (main mode + quick mode, PSK): the same lab
 * (ha-lab.ts, `version: 1`), the same two cases and the same figures as ha.test.ts (ha-cases.ts):
 * longest run of lost pings <= 500 ms each way and the only loss, both gateways on the standby during
 * the cut and back after the repair, no ping lost after the repair.
 *
 * IKEv1 specifics: ISAKMP aes128-sha256-modp2048 (IKEv1 has no AEAD ISAKMP cipher), ESP aes256gcm16.
 * Each on-prem tunnel has its own local ID (onprem-link1/onprem-link2.example.net), so the
 * INITIAL-CONTACT of one tunnel's main mode never deletes the other tunnel's SAs (config warning in
 * src/config/warnings.ts); a shared ID pair would show here as a standby that looks down.
 * ha-cases.ts also checks that status reports `version: 1` for every connection.
 */
import t from 'tap';
import { FAILOVER_CASES, failover } from './ha-cases.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable();
if (skip) {
  t.plan(0, skip);
} else {
  Lab.sweepStale();
  for (const c of FAILOVER_CASES) t.test(`IKEv1 ${c.title}`, (t) => failover(t, c.mode, { version: 1 }));
}
