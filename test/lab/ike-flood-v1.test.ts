/**
 * Security issue #11, load item (a) for IKEv1: a flood of spoofed main mode first messages against
 * the cloud gateway of the HA lab (ike-flood-case.ts; the cloud's `any` connection is IKEv1 main
 * mode here). IKEv1 has no stateless challenge: each message 1 costs the responder an unproven SA,
 * capped per source and in total, the oldest making room (src/ike/core/sa-table.ts).
 *
 * What must hold during 12 s of >= 5,000 spoofed messages/s (counted in the router): unproven SAs
 * displaced at the cap; no health change or route switch, the same HA IKE SAs, LAN pings flowing
 * (>= 98 %), t1's CHILD_SA rekeyed; the cloud twinsecd's RSS growth below
 * 256 MiB, its heap after a full GC below 40 MiB more (4,096 unproven SAs held); `status` median < 50 ms.
 * Measured and printed, not asserted: a new IKEv1 branch gateway started 2 s in, established within
 * 5 s, its quick mode rekeyed (5 s) and its phase 1 re-authenticated (8 s), a ping through it.
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
      // Up to 4,096 unproven SAs stay held for up to 10 s (about 6 KB of heap each).
      rssBound: 256 * 1024 * 1024,
      heapBound: 40 * 1024 * 1024,
      // At the total cap (4,096) the oldest unproven SA makes room, so at 6,500 spoofed messages/s
      // one lives about 0.6 s, longer than the branch's round trip. But the gateway cannot take
      // 6,500 first messages a second (each costs an SA: IKEv1 has no stateless challenge), so the
      // kernel drops some of every peer's datagrams at its socket, and a branch whose retransmissions
      // keep losing gives up: in-5-s establishment is printed, not asserted (met in about half the
      // loaded runs). The established tunnels' health is asserted.
      branchMeasuredOnly: 'IKEv1 has no stateless challenge; the flood takes a share of every peer',
    });
  },
);
