/**
 * What the IKEv1 and IKEv2 hub tests share: N sites in one initiating daemon (all from its one
 * address), the hub's limits, and looking at the hub's IKE SAs.
 */
import type { Test } from 'tap';
import type { LimitsConfig } from '../../src/config/types.js';
import type { FakeClock } from './fake-clock.js';
import { type pair, state } from './pair.js';

export const N = 24;
export const site = (i: number) => `site${i}.bench.example`;

/** The hub's limits: all N sites may be half-open (and, IKEv1, unproven) from the one address at once. */
export function hubLimits(v1UnprovenPerPeer: number): LimitsConfig {
  return {
    halfOpen: 1024,
    halfOpenPerPeer: 64,
    ikeSas: 8192,
    ikeSasPerPeer: 256,
    childrenPerIke: 16,
    cookieThreshold: 30,
    cookieThresholdPerPeer: 3,
    halfOpenTimeout: 30,
    v1Unproven: 4096,
    v1UnprovenPerPeer,
  };
}

export type Pair = Awaited<ReturnType<typeof pair>>;

/** The hub's IKE SAs (white box), newest first. */
export function hubSas<T>(p: Pair): T[] {
  const core = p.b.daemon.ike!;
  return core.sasOf('hub').map((v) => core.table.get(v.spiR) as T);
}

export async function allUp(t: Test, clock: FakeClock, p: Pair): Promise<void> {
  await clock.until(
    () =>
      Array.from({ length: N }, (_, i) => state(p.a, `s${i}`)).every((s) => s === 'established') &&
      p.a.dp.sas.size === N &&
      p.b.dp.sas.size === N,
    20_000,
  );
  t.pass(`all ${N} sites established, ${N} pairs on each side`);
}

/**
 * Starts the sites a few at a time, the next few while the earlier ones are up (as the load tester
 * ramps up), so each negotiation meets other sites' installed SAs.
 */
export async function startInGroups(clock: FakeClock, p: Pair): Promise<void> {
  for (let i = 0; i < N; i += 4) {
    for (let j = i; j < i + 4; j++) p.a.daemon.up(`s${j}`);
    await clock.advance(500);
  }
}
