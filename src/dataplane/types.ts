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
  /**
   * ESP transform names in strongSwan syntax: encr aes128gcm16 aes192gcm16 aes256gcm16 aes128
   * aes192 aes256 3des (3DES-CBC, RFC 2451, 24-byte key); integ sha1 sha256 sha384 sha512 (HMAC,
   * RFC 2404 / RFC 4868 truncation), md5 (HMAC-MD5-96, RFC 2403, 16-byte key) or null for AEAD.
   */
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
  /** The peer as seen from here: after NAT the mapped address and port (RFC 3948). */
  remote: Endpoint;
  /**
   * Traffic selectors as CIDR strings (with protocol/ports folded out for now): inbound packets
   * must come from tsRemote and go to tsLocal.
   */
  tsLocal: string[];
  tsRemote: string[];
  /**
   * Default true: the pair becomes the connection's outbound SA at once. False (make-before-break,
   * RFC 7296 §2.8, e.g. the responder of a CHILD_SA rekey): the inbound SA accepts packets at
   * once, but the connection keeps sending on its current pair until the first authenticated
   * packet arrives on this spiIn (the peer has installed the new SA) or the old pair is removed.
   * If the connection has no current pair, the new one is used at once anyway.
   */
  activate?: boolean;
  /**
   * Packet and byte limits of each direction of the pair (strongSwan's rekey_/life_packets and
   * _bytes); absent or 0 = none. Crossing a soft mark is reported once (DataPlane.onSaLimit) so
   * the IKE side rekeys early (RFC 7296 §2.8); at a hard limit the data plane drops the
   * direction's packets. Inbound, the soft marks lie halfway between these and the hard limits:
   * that traffic is the peer's outbound, so the peer's rekey comes first and a one-way flow does
   * not start two colliding rekeys. Bytes are inner packet bytes, as in SaCounters. Without ESN the data
   * plane applies its own limits on top (SEQ_SOFT_32 / SEQ_LAST_32): the 32-bit outbound sequence
   * counter never cycles (RFC 4303 §3.3.3).
   */
  limits?: SaVolumeLimits;
  /**
   * Default false. True for a hub connection's per-site SAs (remote %any, one child SA per site, each
   * under its own engine connection name, see src/ike/core/site-routes.ts): every tsRemote prefix becomes a
   * forwarding entry to this SA's connection while the connection has an SA installed, next to the
   * configured routes (setRoutes). The longest prefix wins; on equal length the configured route. The
   * same prefix from two connections: the one whose SA was installed last, the other again once that
   * one's SAs are removed. Removing a connection's last SA removes its entries.
   */
  selectorRoutes?: boolean;
}

export interface SaVolumeLimits {
  softPackets?: number;
  hardPackets?: number;
  softBytes?: number;
  hardBytes?: number;
}

/** The last outbound sequence number of a non-ESN SA (RFC 4303 §3.3.3); native/sa_limits.h kSeqLast32. */
export const SEQ_LAST_32 = 0xffff_ffff;
/** Where a non-ESN SA's soft mark lies at the latest: 90 % of its sequence space (kSeqSoft32). */
export const SEQ_SOFT_32 = SEQ_LAST_32 - Math.floor(SEQ_LAST_32 / 10);
/** The same for the inbound SA (the peer's counter): 95 %, so that the peer rekeys first (kSeqSoft32In). */
export const SEQ_SOFT_32_IN = SEQ_LAST_32 - Math.floor(SEQ_LAST_32 / 20);

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
  /**
   * Control packets sent ahead of bulk since start (marked when qos is on), by kind: probe,
   * echoAnswer, echoReply, routing (BFD/BGP), and unmarked (echo replies and routing packets sent as
   * bulk because the marked-packet budget was spent). Absent in data planes without marking.
   */
  controlCounters?(): Record<string, number>;
  /** Encrypts a crafted inner packet into the connection's current outbound SA; false if none. */
  injectProbe(connection: string, packet: Buffer): boolean;
  /** Inbound echo replies with this ICMP identifier go to the daemon's probe handler, not the LAN. */
  watchProbe(icmpId: number, on: boolean): void;
  // The two NAT rebinding members below are optional only because a data plane wrapper outside
  // src/ (test/lab/keylog-daemon.ts) does not forward them yet; MemoryDataPlane and
  // NativeDataPlane implement both. Make them required once it does.
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
  /**
   * Registers the handler told when a pair crosses its soft packet/byte mark (hard false) or reaches
   * its hard limit (hard true): ChildSaSpec.limits and, without ESN, the sequence space. Once per
   * pair and mark, off the packet path. Optional: a data plane without volume accounting has none.
   */
  onSaLimit?(handler: (spiIn: number, hard: boolean) => void): void;
  close(): Promise<void>;
}
