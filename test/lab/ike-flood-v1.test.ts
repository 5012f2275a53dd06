/**
 * Security issue #11, load item (a) for IKEv1: a flood of spoofed main mode first messages against
 * the cloud gateway of the HA lab (ike-flood-case.ts; the cloud's `any` connection is IKEv1 main
 * mode here). IKEv1 has no stateless challenge: each message 1 costs the responder an unproven SA,
 * capped per source and in total, the oldest making room (src/ike/core/sa-table.ts).
 *
 * What must hold during 12 s of >= 5,000 spoofed messages/s (counted in the router): unproven SAs
 * displaced at the cap; no health change or route switch, the same HA IKE SAs, LAN pings flowing
 * (>= 98 %), t1's CHILD_SA rekeyed; a new IKEv1 branch gateway started 2 s in established within
 * 5 s, its quick mode rekeyed (5 s) and its phase 1 re-authenticated (8 s) during the flood, a
 * ping through it; the cloud twinsecd's RSS growth below
 * 128 MiB, its heap after a full GC below 16 MiB more; `status` median < 50 ms.
 */
import t from 'tap';
import { floodCase } from './ike-flood-case.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable();

t.test(
  'IKEv1 main mode flood from spoofed sources: bounded, no failover, a new peer gets in, rekeys complete',
  { skip },
  async (t) => {
    await floodCase(t, new Lab(t), {
      version: 1,
      seconds: 12,
      rate: 6500,
      branchAt: 2,
      espRekey: 5,
      ikeRekey: 8,
      t1EspRekey: 12,
      rssBound: 128 * 1024 * 1024,
      // At the total cap (256) the oldest unproven SA makes room, so at 6,500 spoofed messages/s one
      // lives about 256 / 6,500 s = 40 ms: less than the branch's round trip through the gateway's
      // queue under the flood, so its message 3 finds its SA gone (IKEv1 has no stateless cookie).
      branchTodo: 'IKEv1 unproven SAs displaced oldest-first outlive a round trip only below cap/rate',
    });
  },
);
