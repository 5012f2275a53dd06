/**
 * NAT detection (RFC 7296 §2.23): SHA-1 over SPIs, address and port. A mismatch on the peer's
 * source hash means the peer is behind a NAT (or fakes one to force UDP encapsulation, as
 * strongSwan's userspace ESP does); a mismatch on the destination hash means we are.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Endpoint } from '../../../dataplane/types.js';
import { parseAddress } from '../../wire/ts.js';

export function natHash(spiI: Buffer, spiR: Buffer, ep: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(ep.port);
  return createHash('sha1').update(spiI).update(spiR).update(parseAddress(ep.address)).update(port).digest();
}

/** A source hash that never matches: announces a NAT so the peer floats to UDP encapsulation. */
export function fakeNatHash(): Buffer {
  return randomBytes(20);
}

export interface NatResult {
  /** The peer is behind a NAT (its source hashes did not match what we saw). */
  remote: boolean;
  /** We are behind a NAT (its view of our address/port did not match ours). */
  local: boolean;
}

/**
 * `sourceHashes` come from the peer's NAT_DETECTION_SOURCE_IP notifies (there may be several),
 * `destHash` from its NAT_DETECTION_DESTINATION_IP. Returns null when the peer sent none (no NAT-T).
 */
export function detectNat(
  spiI: Buffer,
  spiR: Buffer,
  local: Endpoint,
  remote: Endpoint,
  sourceHashes: Buffer[],
  destHash: Buffer | undefined,
): NatResult | null {
  if (sourceHashes.length === 0 || !destHash) return null;
  const expectSrc = natHash(spiI, spiR, remote);
  const expectDst = natHash(spiI, spiR, local);
  return { remote: !sourceHashes.some((h) => h.equals(expectSrc)), local: !destHash.equals(expectDst) };
}
