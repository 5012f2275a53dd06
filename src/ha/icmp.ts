/**
 * ICMP echo packets for health probes (RFC 792 over IPv4, RFC 4443 over IPv6): built here as full
 * inner IP packets that the data plane encrypts into one connection's SA, and parsed back when a
 * reply matches a watched identifier.
 */
import { isIPv4 } from 'node:net';
import { parseAddress } from '../ike/wire/ts.js';

function checksum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export interface Echo {
  source: string;
  destination: string;
  id: number;
  seq: number;
  payload: Buffer;
}

/** An echo request as a complete IPv4 or IPv6 packet. */
export function buildEchoRequest(e: Echo): Buffer {
  const src = parseAddress(e.source);
  const dst = parseAddress(e.destination);
  const icmp = Buffer.alloc(8 + e.payload.length);
  const v4 = isIPv4(e.source);
  icmp[0] = v4 ? 8 : 128;
  icmp.writeUInt16BE(e.id, 4);
  icmp.writeUInt16BE(e.seq, 6);
  e.payload.copy(icmp, 8);
  if (v4) {
    icmp.writeUInt16BE(checksum(icmp), 2);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + icmp.length, 2);
    ip.writeUInt16BE(e.seq, 4); // identification
    ip[8] = 64; // TTL
    ip[9] = 1; // ICMP
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    return Buffer.concat([ip, icmp]);
  }
  // ICMPv6 checksum covers a pseudo-header (RFC 8200 §8.1).
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo[39] = 58;
  icmp.writeUInt16BE(checksum(Buffer.concat([pseudo, icmp])), 2);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = 58;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, icmp]);
}

/** The identifier and sequence number of an echo reply, or null for anything else. */
export function parseEchoReply(pkt: Buffer): { id: number; seq: number } | null {
  if (pkt.length < 1) return null;
  const version = pkt[0]! >> 4;
  if (version === 4) {
    const ihl = (pkt[0]! & 0x0f) * 4;
    if (ihl < 20 || pkt.length < ihl + 8 || pkt[9] !== 1 || pkt[ihl] !== 0) return null;
    return { id: pkt.readUInt16BE(ihl + 4), seq: pkt.readUInt16BE(ihl + 6) };
  }
  if (version === 6) {
    if (pkt.length < 48 || pkt[6] !== 58 || pkt[40] !== 129) return null;
    return { id: pkt.readUInt16BE(44), seq: pkt.readUInt16BE(46) };
  }
  return null;
}
