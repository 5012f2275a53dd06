/**
 * The read-only view of IKE and CHILD SAs that the daemon, status, HA and metrics use. Nothing
 * outside src/ike/ reads or writes SA internals; both protocol versions present their SAs this way.
 */
import type { Endpoint } from '../../dataplane/types.js';

export type SaPhase = 'init' | 'auth' | 'established' | 'deleting' | 'dead';

export type ChildState = 'installed' | 'rekeying' | 'rekeyed' | 'deleted';

export interface ChildSaView {
  readonly spiIn: number;
  readonly spiOut: number;
  readonly state: ChildState;
  /** strongSwan names: 'aes256gcm16', 'sha256' (null for AEAD), the PFS group or null. */
  readonly encr: string;
  readonly integ: string | null;
  readonly dh: string | null;
  readonly encapsulation: 'udp' | 'esp';
  /** CIDR strings. */
  readonly tsLocal: readonly string[];
  readonly tsRemote: readonly string[];
}

export interface IkeSaView {
  readonly serial: number;
  readonly version: 1 | 2;
  readonly name: string;
  readonly initiator: boolean;
  readonly phase: SaPhase;
  readonly spiI: Buffer;
  readonly spiR: Buffer;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly createdAt: number;
  readonly children: readonly ChildSaView[];
}

/** 8-digit hex of an ESP SPI, as status, logs and strongSwan print it. */
export const spiHex = (spi: number): string => (spi >>> 0).toString(16).padStart(8, '0');
