/**
 * The boundary between the handshake and the packet path (strongSwan's kernel interface, in spirit).
 * The IKE side installs and removes SAs and routes; it never sees a data packet.
 */

export interface Endpoint {
  address: string;
  port: number;
}

/** One direction-pair of a negotiated CHILD_SA, as the data plane needs it. */
export interface ChildSaSpec {
  connection: string;
  /** SPIs as 32-bit unsigned integers. */
  spiIn: number;
  spiOut: number;
  /** ESP transform names in strongSwan syntax: encr 'aes256gcm16', integ 'sha256' or null for AEAD. */
  encr: string;
  integ: string | null;
  /** Key material (for AEAD the 4-byte salt is appended to the key, RFC 4106). */
  encrKeyIn: Buffer;
  encrKeyOut: Buffer;
  integKeyIn: Buffer | null;
  integKeyOut: Buffer | null;
  esn: boolean;
  encapsulation: 'udp' | 'esp';
  local: Endpoint;
  remote: Endpoint;
  /** Traffic selectors as CIDR strings (with protocol/ports folded out for now). */
  tsLocal: string[];
  tsRemote: string[];
  /**
   * Default true: the pair becomes the connection's outbound SA at once. False (rekey responder):
   * the old outbound SA stays in use until the peer sends on the new one or the old one is removed.
   */
  activate?: boolean;
}

export interface SaCounters {
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
}

/** One forwarding entry as the data plane sees it: the connections carrying a prefix right now. */
export interface ForwardingEntry {
  destination: string;
  /** Several connections share the prefix by a per-flow hash; empty means drop (no route). */
  connections: string[];
}

export interface DataPlane {
  installSa(sa: ChildSaSpec): void;
  removeSa(spiIn: number): void;
  counters(spiIn: number): SaCounters | undefined;
  /** Replaces the forwarding table atomically. */
  setRoutes(routes: ForwardingEntry[]): void;
  /** Packets dropped since start, by reason (malformed, replay, integrity, ...). */
  drops(): Record<string, number>;
  /** Encrypts a crafted inner packet into the connection's current outbound SA; false if none. */
  injectProbe(connection: string, packet: Buffer): boolean;
  /** Inbound echo replies with this ICMP identifier go to the daemon's probe handler, not the LAN. */
  watchProbe(icmpId: number, on: boolean): void;
  /**
   * The peer of the pair installed under spiIn moved (a NAT mapping changed, RFC 7296 §2.23): from now on
   * its outbound ESP goes from `local` to `remote` (ports only matter for ESP-in-UDP). The inbound SA is
   * unchanged. Unknown spiIn: false.
   */
  updateSa(spiIn: number, local: Endpoint, remote: Endpoint): boolean;
  /**
   * Registers the handler told when ESP whose ICV verified (and that passed the replay check) arrived on
   * an SA from an address or UDP port other than the SA's remote endpoint. The SA is not changed: the IKE
   * side confirms the move with a liveness check and then calls updateSa (as strongSwan does on a kernel
   * mapping event). Reported at most once per SA per second while packets keep arriving from elsewhere.
   */
  onPeerMoved(handler: (spiIn: number, from: Endpoint) => void): void;
  close(): Promise<void>;
}
