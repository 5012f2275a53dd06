/**
 * 10,000 tunnels that came up at the same instant (a hub restarted, its sites all reconnect): their
 * rekeys (RFC 7296 §2.8) and liveness checks (§2.4) must not all fall in the same second, or the hub
 * runs thousands of exchanges in a burst once per cycle. The real timer code (Lifetimes, startDpd)
 * runs here on a simulated clock against SAs that are just what it reads, with a protocol that
 * records when it is asked to rekey or probe: 10,000 SAs run through a day of fake time in about a
 * second (fake-clock.ts scans every timer per step, too slow for 50,000 timers; this one is a heap).
 */
import t from 'tap';
import type { ConnectionConfig } from '../../src/config/types.js';
import { EventBus } from '../../src/events.js';
import { type Clock, type Random, type TimerHandle, Timers } from '../../src/ike/core/clock.js';
import { Lifetimes } from '../../src/ike/core/lifetimes.js';
import { DPD_JITTER, startDpd } from '../../src/ike/core/liveness.js';
import { type AnySa, DEFAULT_TIMING, type IkeProtocol } from '../../src/ike/core/protocol.js';

const N = 10_000;

/** A clock whose timers sit in a binary heap: O(log n) per timer. */
class HeapClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: { at: number; seq: number; id: number; fn: () => void }[] = [];
  readonly #cancelled = new Set<number>();
  #live = 0;
  now(): number {
    return this.#now;
  }
  get live(): number {
    return this.#live;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const e = { at: this.#now + Math.max(0, ms), seq: this.#seq++, id: this.#seq, fn };
    const h = this.#heap;
    h.push(e);
    this.#live++;
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    return { id: e.id };
  }
  clearTimer(t: TimerHandle | undefined): void {
    if (t && !this.#cancelled.has(t.id)) {
      this.#cancelled.add(t.id);
      this.#live--;
    }
  }
  #less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  #pop(): { at: number; id: number; fn: () => void } | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined) return undefined;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
  /** Runs every timer due up to `end` in order, letting promise chains settle after each. */
  async runTo(end: number): Promise<void> {
    for (;;) {
      const top = this.#heap[0];
      if (!top || top.at > end) break;
      this.#pop();
      if (this.#cancelled.delete(top.id)) continue;
      this.#live--;
      this.#now = top.at;
      top.fn();
      for (let i = 0; i < 2; i++) await null;
    }
    this.#now = end;
  }
}

/** A seeded uniform generator (mulberry32): the same spread on every run. */
function seeded(seed: number): Random {
  let a = seed >>> 0;
  return {
    bytes: () => {
      throw new Error('not used');
    },
    float: () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let x = Math.imul(a ^ (a >>> 15), 1 | a);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    },
  };
}

interface FakeSa {
  name: string;
  phase: string;
  lastReceived: number;
  timers: Timers;
  conn: Pick<ConnectionConfig, 'ike' | 'esp'>;
  negotiatedLifetime: undefined;
  childSa: { spiIn: number; state: string };
  children: { spiIn: number; state: string }[];
  child(spiIn: number): { spiIn: number; state: string } | undefined;
  debug(m: string): void;
}

function fakeSa(clock: Clock, i: number, conn: FakeSa['conn']): FakeSa {
  const childSa = { spiIn: 0x1000_0000 + i, state: 'installed' };
  return {
    name: 'sites',
    phase: 'established',
    lastReceived: clock.now(),
    timers: new Timers(clock),
    conn,
    negotiatedLifetime: undefined,
    childSa,
    children: [childSa],
    child: (spiIn) => (spiIn === childSa.spiIn ? childSa : undefined),
    debug: () => {},
  };
}

/** The largest share of `times` (ms) in any window of `width` ms (sliding, exact). */
function busiestWindow(times: number[], width = 1000): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < s.length; j++) {
    while (s[j]! - s[i]! >= width) i++;
    best = Math.max(best, j - i + 1);
  }
  return best / times.length;
}

const CONN = {
  ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 86400 },
  esp: { proposals: ['aes256gcm16'], lifetime: 3600 },
};

/** N SAs established at one instant, DPD on each; returns the probe times of the first rounds. */
async function dpdRun(random: Random, rounds: number): Promise<{ rounds: number[][]; timers: number }> {
  const clock = new HeapClock();
  const delay = 30_000;
  const probes: number[][] = [];
  const round = new Map<FakeSa, number>();
  const proto = {
    liveness: async (sa: AnySa) => {
      const f = sa as unknown as FakeSa;
      const r = round.get(f) ?? 0;
      round.set(f, r + 1);
      if (!probes[r]) probes[r] = [];
      probes[r].push(clock.now());
      f.lastReceived = clock.now(); // the peer answers at once
      return true;
    },
  } as unknown as IkeProtocol;
  for (let i = 0; i < N; i++) {
    const sa = fakeSa(clock, i, CONN);
    startDpd(sa as unknown as AnySa, proto, clock, { delay, timeout: 150_000 }, () => {}, random);
  }
  const timers = clock.live;
  await clock.runTo(delay * rounds);
  return { rounds: probes, timers };
}

t.test(`DPD of ${N} SAs established at one instant: probes spread, and keep spreading`, async (t) => {
  const { rounds, timers } = await dpdRun(seeded(7), 3);
  t.equal(timers, N, 'one DPD timer per SA');
  const first = rounds[0]!;
  t.equal(first.length, N, 'every SA probed once in the first round');
  t.ok(
    first.every((x) => x >= 30_000 * (1 - DPD_JITTER) && x <= 30_000),
    'each first probe within delay minus up to DPD_JITTER of it (24-30 s), never later than the delay',
  );
  const share = busiestWindow(first);
  t.ok(
    share <= 0.2,
    `first round: at most 20 % of the probes in any 1 s window (${(share * 100).toFixed(1)} %)`,
  );
  const third = rounds[2] ?? [];
  t.ok(third.length > 0.5 * N, `third round under way (${third.length} probes)`);
  const later = busiestWindow(third);
  t.ok(later <= share, `third round no burstier (${(later * 100).toFixed(1)} %)`);
  t.comment(
    `DPD 30 s, ${N} SAs: busiest 1 s window ${(share * 100).toFixed(1)} % (round 1), ${(later * 100).toFixed(1)} % (round 3)`,
  );

  // The same run without jitter is what this test guards against: every probe in the same tick.
  const flat = await dpdRun({ bytes: () => Buffer.alloc(0), float: () => 0 }, 1);
  t.equal(busiestWindow(flat.rounds[0]!, 1), 1, 'without jitter all probes fall in the same millisecond');
});

t.test(`rekeys of ${N} IKE SAs and CHILD_SAs established at one instant are spread`, async (t) => {
  for (const [what, conn, ikeWindow, childWindow] of [
    // Lifetimes only: 80-90 % of them (IKE 19.2-21.6 h, CHILD 48-54 min).
    ['lifetimes', CONN, [69_120_000, 77_760_000], [2_880_000, 3_240_000]],
    // Configured rekeyTime: it minus up to 10 % (strongSwan's rand_time default).
    [
      'rekeyTime',
      {
        ike: { ...CONN.ike, rekeyTime: 14_400 },
        esp: { ...CONN.esp, rekeyTime: 3000 },
      },
      [12_960_000, 14_400_000],
      [2_700_000, 3_000_000],
    ],
  ] as const) {
    const clock = new HeapClock();
    const ike: number[] = [];
    const child: number[] = [];
    const sas = new Map<number, FakeSa>();
    const proto = {
      busy: () => false,
      rekeyIke: async () => void ike.push(clock.now()),
      rekeyChild: async () => void child.push(clock.now()),
      deleteChildren: async () => {},
    } as unknown as IkeProtocol;
    const life = new Lifetimes({
      bus: new EventBus(),
      clock,
      random: seeded(11),
      timing: DEFAULT_TIMING,
      stopped: () => false,
      protocol: () => proto,
      ownerOf: (spi) => sas.get(spi) as unknown as AnySa | undefined,
      ikeHard: () => {},
      removeChild: () => {},
    });
    for (let i = 0; i < N; i++) {
      const sa = fakeSa(clock, i, conn as FakeSa['conn']);
      sas.set(sa.childSa.spiIn, sa);
      life.armIke(sa as unknown as AnySa);
      life.armChild(sa as unknown as AnySa, sa.childSa.spiIn);
    }
    t.equal(clock.live, 4 * N, `${what}: four lifetime timers per SA (IKE and CHILD, soft and hard)`);
    // Up to just before the CHILD_SAs' hard limit, then on to the IKE SAs' soft limits (the children
    // are rekeyed only once here: the fake rekey replaces nothing).
    await clock.runTo(childWindow[1]);
    await clock.runTo(ikeWindow[1]);
    t.equal(child.length, N, `${what}: every CHILD_SA rekeyed once`);
    t.equal(ike.length, N, `${what}: every IKE SA rekeyed once`);
    t.ok(
      child.every((x) => x >= childWindow[0] && x <= childWindow[1]) &&
        ike.every((x) => x >= ikeWindow[0] && x <= ikeWindow[1]),
      `${what}: each within its soft-limit window`,
    );
    const c = busiestWindow(child);
    const k = busiestWindow(ike);
    t.ok(c <= 0.01, `${what}: at most 1 % of the CHILD_SA rekeys in any 1 s (${(c * 100).toFixed(2)} %)`);
    t.ok(k <= 0.01, `${what}: at most 1 % of the IKE SA rekeys in any 1 s (${(k * 100).toFixed(2)} %)`);
    t.comment(
      `${what}: busiest 1 s window ${(c * 100).toFixed(2)} % of CHILD_SA rekeys, ${(k * 100).toFixed(2)} % of IKE SA rekeys`,
    );
  }
});
