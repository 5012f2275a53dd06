/**
 * In-memory data plane: records installed SAs and routes. Used by exchange tests and until the
 * native ESP engine is attached. No packet crosses it; a test stands in for traffic with
 * `traffic()`, which counts like the engine (native/sa_limits.h): the SA's volume limits, the
 * non-ESN sequence space (RFC 4303 §3.3.3), and the soft/hard reports to onSaLimit.
 */
import {
  type ChildSaSpec,
  type DataPlane,
  type Endpoint,
  type ForwardingEntry,
  type SaCounters,
  type SaVolumeLimits,
  SEQ_LAST_32,
  SEQ_SOFT_32,
  SEQ_SOFT_32_IN,
} from './types.js';

interface Meter {
  packets: number;
  bytes: number;
}

/** One direction's limits as the engine applies them (SaMeter::Init); Infinity = none. */
interface Limits {
  softPackets: number;
  hardPackets: number;
  softBytes: number;
  hardBytes: number;
}

function effectiveLimits(sa: ChildSaSpec, outbound: boolean): Limits {
  const l: SaVolumeLimits = sa.limits ?? {};
  const v = (x: number | undefined): number => (x === undefined || x === 0 ? Infinity : x);
  const r: Limits = {
    softPackets: v(l.softPackets),
    hardPackets: v(l.hardPackets),
    softBytes: v(l.softBytes),
    hardBytes: v(l.hardBytes),
  };
  if (!outbound) {
    // Halfway to the hard limit: the peer's mark comes first (SaMeter::Init).
    const later = (soft: number, hard: number): number =>
      soft < hard && hard !== Infinity ? soft + Math.floor((hard - soft) / 2) : soft;
    r.softPackets = later(r.softPackets, r.hardPackets);
    r.softBytes = later(r.softBytes, r.hardBytes);
  }
  if (!sa.esn) {
    r.softPackets = Math.min(r.softPackets, outbound ? SEQ_SOFT_32 : SEQ_SOFT_32_IN);
    if (outbound) r.hardPackets = Math.min(r.hardPackets, SEQ_LAST_32);
  }
  return r;
}

interface Traffic {
  in: Meter;
  out: Meter;
  softSent: boolean;
  hardSent: boolean;
}

export class MemoryDataPlane implements DataPlane {
  readonly sas = new Map<number, ChildSaSpec>();
  routes: ForwardingEntry[] = [];
  #onPeerMoved: ((spiIn: number, from: Endpoint) => void) | undefined;
  #onSaLimit: ((spiIn: number, hard: boolean) => void) | undefined;
  readonly #traffic = new Map<number, Traffic>();
  readonly #drops = { seqExhausted: 0, expired: 0 };

  installSa(sa: ChildSaSpec): void {
    this.sas.set(sa.spiIn >>> 0, sa);
    // Reinstalling under the same inbound SPI replaces the pair: its counters restart (as in the engine).
    this.#traffic.set(sa.spiIn >>> 0, {
      in: { packets: 0, bytes: 0 },
      out: { packets: 0, bytes: 0 },
      softSent: false,
      hardSent: false,
    });
  }
  removeSa(spiIn: number): void {
    this.sas.delete(spiIn >>> 0);
    this.#traffic.delete(spiIn >>> 0);
  }
  onSaLimit(handler: (spiIn: number, hard: boolean) => void): void {
    this.#onSaLimit = handler;
  }
  /**
   * Test hook standing in for traffic through the engine: `packets` packets of `bytes` inner bytes in
   * all (evenly spread) on the pair installed under spiIn, in one direction. Counts them against the
   * pair's limits as the engine does: what passes the hard limit (or, outbound without ESN, sequence
   * number 2^32 - 1) is dropped ('expired' / 'seqExhausted'); crossing the soft mark, and reaching the
   * hard limit, is reported to the onSaLimit handler once per pair and mark, from a microtask (the
   * engine's reports come through an event queue too). Returns how many packets went through.
   */
  traffic(spiIn: number, dir: 'in' | 'out', packets: number, bytes = packets * 100): number {
    const sa = this.sas.get(spiIn >>> 0);
    const t = this.#traffic.get(spiIn >>> 0);
    if (!sa || !t || packets <= 0) return 0;
    const lim = effectiveLimits(sa, dir === 'out');
    const m = t[dir];
    const per = bytes / packets;
    let ok = Math.min(packets, lim.hardPackets - m.packets);
    if (per > 0) ok = Math.min(ok, Math.floor((lim.hardBytes - m.bytes) / per));
    ok = Math.max(0, ok);
    m.packets += ok;
    m.bytes += Math.round(ok * per);
    const report = (hard: boolean): void => {
      queueMicrotask(() => {
        if (this.#traffic.get(spiIn >>> 0) === t) this.#onSaLimit?.(spiIn >>> 0, hard);
      });
    };
    if (ok < packets) {
      const seq = dir === 'out' && !sa.esn && m.packets >= SEQ_LAST_32 && lim.hardPackets === SEQ_LAST_32;
      this.#drops[seq ? 'seqExhausted' : 'expired'] += packets - ok;
      if (!t.hardSent) {
        t.hardSent = true;
        report(true);
      }
    }
    if (!t.softSent && (m.packets >= lim.softPackets || m.bytes >= lim.softBytes)) {
      t.softSent = true;
      report(false);
    }
    return ok;
  }
  /** Records the new endpoints in a copy of the spec (the caller's objects are left alone). */
  updateSa(spiIn: number, local: Endpoint, remote: Endpoint): boolean {
    const sa = this.sas.get(spiIn >>> 0);
    if (!sa) return false;
    this.sas.set(spiIn >>> 0, { ...sa, local: { ...local }, remote: { ...remote } });
    return true;
  }
  onPeerMoved(handler: (spiIn: number, from: Endpoint) => void): void {
    this.#onPeerMoved = handler;
  }
  /**
   * Test hook standing in for the engine's report: authenticated ESP on spiIn came from `from`.
   * Like the engine, tells the handler only when the SA exists and `from` is not its remote
   * endpoint (the address alone for raw ESP, which has no ports). True when it told it.
   */
  peerMoved(spiIn: number, from: Endpoint): boolean {
    const sa = this.sas.get(spiIn >>> 0);
    if (!sa || !this.#onPeerMoved) return false;
    const same =
      sa.remote.address === from.address && (sa.encapsulation === 'esp' || sa.remote.port === from.port);
    if (same) return false;
    this.#onPeerMoved(spiIn >>> 0, { ...from });
    return true;
  }
  counters(spiIn: number): SaCounters | undefined {
    const t = this.#traffic.get(spiIn >>> 0);
    if (!this.sas.has(spiIn >>> 0) || !t) return undefined;
    return { bytesIn: t.in.bytes, bytesOut: t.out.bytes, packetsIn: t.in.packets, packetsOut: t.out.packets };
  }
  setRoutes(routes: ForwardingEntry[]): void {
    this.routes = routes.map((r) => ({ destination: r.destination, connections: [...r.connections] }));
  }
  /** Only the drops traffic() can cause, once it caused some. */
  drops(): Record<string, number> {
    const d: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.#drops)) if (v > 0) d[k] = v;
    return d;
  }
  /** No packets cross this data plane, so a probe is never sent. */
  injectProbe(): boolean {
    return false;
  }
  watchProbe(): void {}
  async close(): Promise<void> {
    this.sas.clear();
    this.#traffic.clear();
  }
}
