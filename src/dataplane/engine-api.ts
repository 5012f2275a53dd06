/**
 * The contract between the TypeScript control plane and the native ESP engine
 * (build/Release/twinsec_native.node, `createEngine`). JavaScript installs SAs and routes, sends
 * and receives IKE on the shared NAT-T socket, injects health probes and reads counters; it never
 * sees a data packet.
 */

export interface EngineOptions {
  /** TUN device to create (removed again by close()). */
  tunName: string;
  mtu: number;
  /** UDP port shared by ESP-in-UDP and IKE after NAT-T floating (RFC 3948), normally 4500. */
  nattPort: number;
  /** One UDP socket (addr:nattPort) and one raw ESP socket (IP protocol 50) per local address. */
  localAddresses: string[];
  /** An IKE message arrived on the NAT-T port; the 4-byte non-ESP marker is already stripped. */
  onIke: (data: Buffer, local: string, localPort: number, remote: string, remotePort: number) => void;
  /**
   * An inbound decrypted packet matched a probe watch (watchProbe): it is delivered here instead of
   * being written to the TUN. `monotonicNs` is CLOCK_MONOTONIC, comparable to process.hrtime.bigint().
   */
  onProbe: (connection: string, packet: Buffer, monotonicNs: bigint) => void;
}

export interface EngineSa {
  connection: string;
  spiIn: number;
  spiOut: number;
  /** strongSwan names: aes128gcm16 aes192gcm16 aes256gcm16 aes128 aes192 aes256. */
  encr: string;
  /** null for AEAD; sha1 sha256 sha384 sha512 (HMAC, RFC 2404 / RFC 4868 truncation). */
  integ: string | null;
  /** GCM: key followed by the 4-byte salt (RFC 4106). */
  encrKeyIn: Buffer;
  encrKeyOut: Buffer;
  integKeyIn: Buffer | null;
  integKeyOut: Buffer | null;
  esn: boolean;
  encapsulation: 'udp' | 'esp';
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Traffic selectors as CIDRs: inbound packets must come from tsRemote and go to tsLocal. */
  tsLocal: string[];
  tsRemote: string[];
  /**
   * Default true: the new outbound SA becomes the connection's current one at once. false
   * (make-before-break, RFC 7296 §2.8, e.g. the responder of a CHILD_SA rekey): the inbound SA
   * accepts packets at once, but the connection keeps sending on its current pair until
   * activateSa(spiIn) or until the first authenticated packet arrives on this spiIn (the peer
   * has installed the new SA), whichever comes first. If the connection has no current pair,
   * the new one is used at once anyway.
   */
  activate?: boolean;
}

export interface EngineCounters {
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
}

export type DropReason =
  | 'malformed'
  | 'noSa'
  | 'replay'
  | 'integrity'
  | 'policy'
  | 'noRoute'
  | 'mtu'
  | 'queue';

export interface NativeEngine {
  /** Sends an IKE message from local:nattPort with the non-ESP marker. */
  sendIke(local: string, remote: string, remotePort: number, data: Buffer): void;
  /** One-byte 0xFF NAT keep-alive from local:nattPort. */
  sendKeepalive(local: string, remote: string, remotePort: number): void;
  /**
   * Installs the inbound SA (spiIn) and the outbound SA (spiOut); unless `sa.activate` is false,
   * the outbound one becomes the connection's current SA atomically. Throws on unknown
   * algorithms or bad key lengths.
   */
  installSa(sa: EngineSa): void;
  /**
   * Makes the pair installed under spiIn the connection's current outbound SA atomically (also a
   * pair that was current before: the latest activation wins). Unknown spiIn: no-op.
   */
  activateSa(spiIn: number): void;
  /**
   * Removes the pair installed under spiIn; a connection left without an outbound SA has none.
   * Removing the current pair makes the connection's newest remaining pair current, activated or
   * not.
   */
  removeSa(spiIn: number): void;
  /**
   * Replaces the forwarding table atomically: destination prefix -> the connections carrying it now
   * (several share traffic by a 5-tuple flow hash). Longest prefix match per packet.
   */
  setRoutes(routes: { destination: string; connections: string[] }[]): void;
  /** Counters of the pair installed under spiIn (in = inbound SA, out = its outbound SA). */
  counters(spiIn: number): EngineCounters | undefined;
  /** Packets dropped since start, by reason. */
  drops(): Record<DropReason, number>;
  /** Encrypts an inner IPv4/IPv6 packet into the connection's current outbound SA; false if none. */
  injectProbe(connection: string, packet: Buffer): boolean;
  /** Deliver inbound ICMP/ICMPv6 echo replies with this identifier to onProbe (on) or stop (off). */
  watchProbe(icmpId: number, on: boolean): void;
  /** Stops the packet threads, closes the sockets and removes the TUN device. Idempotent. */
  close(): void;
}

export type CreateEngine = (opts: EngineOptions) => NativeEngine;
