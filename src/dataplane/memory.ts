/**
 * In-memory data plane: records installed SAs and routes. Used by exchange tests and until the
 * native ESP engine is attached; counters stay at zero because no packet crosses it.
 */
import type { ChildSaSpec, DataPlane, Endpoint, ForwardingEntry, SaCounters } from './types.js';

export class MemoryDataPlane implements DataPlane {
  readonly sas = new Map<number, ChildSaSpec>();
  routes: ForwardingEntry[] = [];

  installSa(sa: ChildSaSpec): void {
    this.sas.set(sa.spiIn >>> 0, sa);
  }
  removeSa(spiIn: number): void {
    this.sas.delete(spiIn >>> 0);
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
  #moved: (spiIn: number, from: Endpoint) => void = () => {};
  updateSa(spiIn: number, local: Endpoint, remote: Endpoint): boolean {
    const sa = this.sas.get(spiIn >>> 0);
    if (!sa) return false;
    this.sas.set(spiIn >>> 0, { ...sa, local, remote });
    return true;
  }
  onPeerMoved(handler: (spiIn: number, from: Endpoint) => void): void {
    this.#moved = handler;
  }
  /** Test face: authenticated ESP for spiIn arrived from `from`. */
  peerMoved(spiIn: number, from: Endpoint): void {
    const sa = this.sas.get(spiIn >>> 0);
    if (sa && (sa.remote.address !== from.address || sa.remote.port !== from.port)) this.#moved(spiIn, from);
  }
  async close(): Promise<void> {
    this.sas.clear();
  }
}
