/**
 * The contract between the TypeScript control plane and the native ESP engine
 * (build/Release/twinsec_native.node, `createEngine`). JavaScript installs SAs and routes, sends
 * and receives IKE on the shared NAT-T socket, injects health probes and reads counters; it never
 * sees a data packet.
 */
import type { ChildSaSpec } from './types.js';

export interface EngineOptions {
  /** TUN device to create (removed again by close()). */
  tunName: string;
  mtu: number;
  /** UDP port shared by ESP-in-UDP and IKE after NAT-T floating (RFC 3948), normally 4500. */
  nattPort: number;
  /** One UDP socket (addr:nattPort) and one raw ESP socket (IP protocol 50) per local address. */
  localAddresses: string[];
  /**
   * Packet priority (SO_PRIORITY) and outer DSCP of control traffic: IKE on the NAT-T port, health
   * probes and echo replies to requests that came in through a tunnel (at most 2,000 a second).
   * Bulk ESP is not marked. Default { priority: 7, dscp: 48 } (TC_PRIO_CONTROL, CS6); zeros: none.
   */
  qos?: { priority: number; dscp: number };
  /** An IKE message arrived on the NAT-T port; the 4-byte non-ESP marker is already stripped. */
  onIke: (data: Buffer, local: string, localPort: number, remote: string, remotePort: number) => void;
  /**
   * An inbound decrypted packet matched a probe watch (watchProbe): it is delivered here instead of
   * being written to the TUN. `monotonicNs` is CLOCK_MONOTONIC, comparable to process.hrtime.bigint().
   */
  onProbe: (connection: string, packet: Buffer, monotonicNs: bigint) => void;
  /**
   * ESP whose ICV verified and that passed the replay check arrived on the SA installed under spiIn
   * from remote:remotePort (port 0 for raw ESP, which has none), not from the SA's remote endpoint: the
   * peer's NAT mapping may have changed (RFC 7296 §2.23). The engine keeps sending to the old endpoint
   * until updateSa. At most once per SA per second; without this option nothing is reported.
   */
  onPeerMoved?: (spiIn: number, remote: string, remotePort: number) => void;
  /**
   * The pair installed under spiIn crossed its soft packet/byte mark (hard false: rekey it now,
   * RFC 7296 §2.8) or reached its hard limit (hard true: it drops packets from now on; without ESN
   * its outbound sequence numbers are used up, RFC 4303 §3.3.3). Once per pair and mark, from the
   * packet threads through the same bounded queue as onPeerMoved (a report the queue refused is
   * tried again 100 ms later). Without this option nothing is reported; the limits hold anyway.
   */
  onSaLimit?: (spiIn: number, hard: boolean) => void;
}

/**
 * A ChildSaSpec (types.ts, where every field is described) with its endpoints flattened;
 * NativeDataPlane maps one to the other. The engine sends from local's socket on the NAT-T port,
 * so localPort is checked but not used. `activate` false: the pair also becomes current on
 * activateSa(spiIn). `selectorRoutes` true: its tsRemote prefixes forward to its connection (setRoutes
 * says how the two kinds of entries combine).
 */
export interface EngineSa extends Omit<ChildSaSpec, 'local' | 'remote'> {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
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
  | 'queue'
  /** Outbound without ESN: the sequence number would pass 2^32 - 1 (RFC 4303 §3.3.3). */
  | 'seqExhausted'
  /** The SA reached its hard packet or byte limit (ChildSaSpec.limits). */
  | 'expired';

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
   * The peer of the pair installed under spiIn moved (RFC 7296 §2.23): its outbound ESP leaves from
   * local (one of localAddresses; localPort is checked, not used) to remote:remotePort (the port only
   * counts for ESP-in-UDP) from the engine's next batch on, atomically. Keys, sequence numbers, the
   * inbound SA and its replay window, and the counters carry on. Unknown spiIn: false. Throws a
   * TypeError when local is not one of localAddresses or remote is not an address of its family.
   */
  updateSa(spiIn: number, local: string, localPort: number, remote: string, remotePort: number): boolean;
  /**
   * Removes the pair installed under spiIn; a connection left without an outbound SA has none.
   * Removing the current pair makes the connection's newest remaining pair current, activated or
   * not.
   */
  removeSa(spiIn: number): void;
  /**
   * Replaces the forwarding table atomically: destination prefix -> the connections carrying it now
   * (several share traffic by a 5-tuple flow hash). Longest prefix match per packet, across these
   * routes and the selector routes of SAs installed with `selectorRoutes` (each tsRemote prefix -> the
   * SA's connection, while it has an SA); on equal length these routes win.
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
  /**
   * Gives this process's UDP sockets bound to a local address at `port` (the IKE port, whose sockets
   * Node's dgram owns) the qos marking for all they send; returns how many were marked.
   */
  markIkeSockets(port: number): number;
  /**
   * Echo requests arriving through a tunnel for one of `addresses` (this host's own) are answered by
   * the engine, back through the request's connection with the qos marking, instead of by the kernel
   * through the TUN device (up to 2,000 a second; beyond that the kernel answers). Replaces the set.
   */
  answerEcho(addresses: string[]): void;
  /**
   * Control packets the TX thread sent ahead of bulk since start (marked when the qos marking is on):
   * health probes, the engine's own echo answers, the kernel's echo replies to tunnelled requests,
   * routing protocol packets (BFD, BGP); `unmarked`: replies and routing packets sent as bulk because
   * the marked-packet budget (2,000 a second) was spent.
   */
  controlCounters(): {
    probe: number;
    echoAnswer: number;
    echoReply: number;
    routing: number;
    unmarked: number;
  };
  /**
   * Route-based connection: gives `connection` its own TUN device `name` (removed by close()). What
   * the host routes into it is encrypted into that connection's current SA (no route lookup); what
   * the connection's SAs decrypt comes out of it. It starts without carrier (operationally down).
   */
  addInterface(connection: string, name: string, mtu: number): void;
  /** Carrier of the connection's device: without it the device is operationally down. False: no device. */
  setCarrier(connection: string, up: boolean): boolean;
  /** Stops the packet threads, closes the sockets and removes the TUN device. Idempotent. */
  close(): void;
}

export type CreateEngine = (opts: EngineOptions) => NativeEngine;
