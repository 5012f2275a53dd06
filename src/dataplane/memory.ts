/**
 * In-memory data plane: records installed SAs and routes. Used by exchange tests and until the
 * native ESP engine is attached; counters stay at zero because no packet crosses it.
 */
import type { ChildSaSpec, DataPlane, Endpoint, ForwardingEntry, SaCounters } from './types.js';

export class MemoryDataPlane implements DataPlane {
  readonly sas = new Map<number, ChildSaSpec>();
  routes: ForwardingEntry[] = [];
  #onPeerMoved: ((spiIn: number, from: Endpoint) => void) | undefined;

  installSa(sa: ChildSaSpec): void {
    this.sas.set(sa.spiIn >>> 0, sa);
  }
  removeSa(spiIn: number): void {
    this.sas.delete(spiIn >>> 0);
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
    if (!this.sas.has(spiIn >>> 0)) return undefined;
    return { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0 };
  }
  setRoutes(routes: ForwardingEntry[]): void {
    this.routes = routes.map((r) => ({ destination: r.destination, connections: [...r.connections] }));
  }
  drops(): Record<string, number> {
    return {};
  }
  /** No packets cross this data plane, so a probe is never sent. */
  injectProbe(): boolean {
    return false;
  }
  watchProbe(): void {}
  async close(): Promise<void> {
    this.sas.clear();
  }
}
