/**
 * IKEv1 identification payloads (RFC 2407 §4.6.2) in both of their jobs: the phase 1 identity
 * (IDii/IDir, authenticated by HASH_I/HASH_R) and the quick mode client IDs (IDci/IDcr, RFC 2409
 * §5.5) that carry the traffic selectors. Selectors are the IKEv2 TrafficSelector shape, so the
 * responder narrowing and the data plane hand-off are shared with IKEv2.
 */
import { WireError } from '../../errors.js';
import { type Identity, parseIdentity } from '../identity.js';
import { TsType } from '../wire/constants.js';
import { cidrToTs, formatAddress, parseAddress, tsRangeToCidrs } from '../wire/ts.js';
import type { TrafficSelector } from '../wire/types.js';

/** RFC 2407 §4.6.2.1 identification types. */
export enum IdTypeV1 {
  IPV4_ADDR = 1,
  FQDN = 2,
  USER_FQDN = 3,
  IPV4_ADDR_SUBNET = 4,
  IPV6_ADDR = 5,
  IPV6_ADDR_SUBNET = 6,
  IPV4_ADDR_RANGE = 7,
  IPV6_ADDR_RANGE = 8,
  KEY_ID = 11,
}

/** The body of an ID payload as the codec (wire/v1) carries it. */
export interface IdV1 {
  idType: number;
  protocolId: number;
  port: number;
  data: Buffer;
}

const UDP = 17;
const IKE_PORT = 500;

/**
 * Our phase 1 ID. RFC 2407 §4.6.2 allows protocol/port 0/0 or UDP/500 in phase 1; strongSwan sends
 * 0/0 and so do we. The type numbers of IKEv1 and IKEv2 coincide for every identity we support.
 */
export function phase1Id(text: string): IdV1 {
  const id = parseIdentity(text);
  return { idType: id.type, protocolId: 0, port: 0, data: id.data };
}

/** The peer's phase 1 ID as an identity; a protocol/port other than 0/0 or UDP/500 is invalid. */
export function phase1Identity(p: IdV1): Identity {
  const zero = p.protocolId === 0 && p.port === 0;
  const ike = p.protocolId === UDP && (p.port === IKE_PORT || p.port === 0);
  if (!zero && !ike) throw new WireError(`phase 1 ID with protocol ${p.protocolId} port ${p.port}`);
  return { type: p.idType, data: p.data };
}

/**
 * A quick mode client ID for a selector: a host address, a subnet, or a range (whichever states it
 * exactly, as strongSwan chooses). IKEv1 IDs carry one port, so a port range other than "any" has
 * no ID form: null.
 */
export function selectorToId(ts: TrafficSelector): IdV1 | null {
  let port = 0;
  if (ts.startPort === ts.endPort) port = ts.startPort;
  else if (ts.startPort !== 0 || ts.endPort !== 65535) return null;
  const v4 = ts.tsType === TsType.IPV4;
  const cidrs = tsRangeToCidrs(ts);
  const head = { protocolId: ts.ipProtocol, port };
  if (cidrs.length === 1) {
    const [addr, prefix] = cidrs[0]!.split('/') as [string, string];
    const bytes = parseAddress(addr);
    if (Number(prefix) === bytes.length * 8) {
      return { ...head, idType: v4 ? IdTypeV1.IPV4_ADDR : IdTypeV1.IPV6_ADDR, data: bytes };
    }
    const mask = maskBytes(Number(prefix), bytes.length);
    return {
      ...head,
      idType: v4 ? IdTypeV1.IPV4_ADDR_SUBNET : IdTypeV1.IPV6_ADDR_SUBNET,
      data: Buffer.concat([bytes, mask]),
    };
  }
  return {
    ...head,
    idType: v4 ? IdTypeV1.IPV4_ADDR_RANGE : IdTypeV1.IPV6_ADDR_RANGE,
    data: Buffer.concat([parseAddress(ts.startAddr), parseAddress(ts.endAddr)]),
  };
}

/** A quick mode client ID as a selector; anything else (FQDN, bad lengths, holes in a mask) throws. */
export function idToSelector(p: IdV1): TrafficSelector {
  const ports = p.port === 0 ? { startPort: 0, endPort: 65535 } : { startPort: p.port, endPort: p.port };
  const sized = (n: number): Buffer => {
    if (p.data.length !== n)
      throw new WireError(`ID type ${p.idType}: ${p.data.length} bytes, expected ${n}`);
    return p.data;
  };
  switch (p.idType) {
    case IdTypeV1.IPV4_ADDR:
    case IdTypeV1.IPV6_ADDR: {
      const a = sized(p.idType === IdTypeV1.IPV4_ADDR ? 4 : 16);
      return cidrToTs(formatAddress(a), p.protocolId, ports.startPort, ports.endPort);
    }
    case IdTypeV1.IPV4_ADDR_SUBNET:
    case IdTypeV1.IPV6_ADDR_SUBNET: {
      const n = p.idType === IdTypeV1.IPV4_ADDR_SUBNET ? 4 : 16;
      const d = sized(2 * n);
      const prefix = prefixOf(d.subarray(n));
      return cidrToTs(
        `${formatAddress(d.subarray(0, n))}/${prefix}`,
        p.protocolId,
        ports.startPort,
        ports.endPort,
      );
    }
    case IdTypeV1.IPV4_ADDR_RANGE:
    case IdTypeV1.IPV6_ADDR_RANGE: {
      const n = p.idType === IdTypeV1.IPV4_ADDR_RANGE ? 4 : 16;
      const d = sized(2 * n);
      const start = d.subarray(0, n);
      const end = d.subarray(n);
      if (Buffer.compare(start, end) > 0) throw new WireError('ID address range ends before it starts');
      return {
        tsType: n === 4 ? TsType.IPV4 : TsType.IPV6,
        ipProtocol: p.protocolId,
        ...ports,
        startAddr: formatAddress(start),
        endAddr: formatAddress(end),
      };
    }
    default:
      throw new WireError(`ID type ${p.idType} cannot name a traffic selector`);
  }
}

function maskBytes(prefix: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

/** The prefix length of a contiguous netmask; a mask with holes is not a subnet. */
function prefixOf(mask: Buffer): number {
  let prefix = 0;
  let ended = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      if (set && ended) throw new WireError('ID subnet mask is not contiguous');
      if (set) prefix++;
      else ended = true;
    }
  }
  return prefix;
}
