/**
 * IKEv1 SA transforms as plain data and their meaning: a phase-1 transform (RFC 2409 Appendix A
 * attributes) or an ESP transform (RFC 2407 §4.5 attributes) to a suite and back. The attribute
 * form `{ type, value }` is the one the ISAKMP codec uses: numbers for basic (TV) values, Buffers
 * for variable (TLV) ones, which may arrive for any value and are read as big-endian numbers.
 */

import { LifeType, Phase1Attr, Phase2Attr } from '../wire/v1/constants.js';
import { V1_KEY_IKE } from './v1-algs.js';

/** A data attribute: numbers for basic (TV) values, Buffers for variable (TLV) ones. */
export interface V1Attr {
  type: number;
  value: number | Buffer;
}
export interface V1Transform {
  num: number;
  id: number;
  attrs: V1Attr[];
}
export interface V1Proposal {
  num: number;
  /** PROTO_ISAKMP 1 for phase 1, PROTO_IPSEC_ESP 3 (RFC 2407 §4.4.1). */
  protocolId: number;
  spi: Buffer;
  transforms: V1Transform[];
}

export interface V1Phase1Suite {
  encr: number;
  keyLen: number;
  hash: number;
  group: number;
  auth: number;
  /** Seconds; null when the transform carries none. */
  lifeSeconds: number | null;
}
export interface V1EspSuite {
  transformId: number;
  keyLen: number;
  auth: number | null;
  /** PFS group, null without PFS. */
  group: number | null;
  encap: number;
  lifeSeconds: number | null;
}

/** An attribute value as a number; a variable value longer than 6 significant bytes is Infinity. */
export function attrNumber(v: number | Buffer): number {
  if (typeof v === 'number') return v;
  const start = v.findIndex((x) => x !== 0);
  if (start < 0) return 0;
  const rest = v.subarray(start);
  return rest.length > 6 ? Number.POSITIVE_INFINITY : rest.readUIntBE(0, rest.length);
}

/** Durations above 16 bits go as 4-byte variable values (RFC 2408 §3.3 TLV form). */
function durationValue(seconds: number): number | Buffer {
  if (seconds <= 0xffff) return seconds;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(Math.min(seconds, 0xffffffff));
  return b;
}

interface AttrTypes {
  lifeType: number;
  lifeDuration: number;
  known: ReadonlySet<number>;
}
const P1_TYPES: AttrTypes = {
  lifeType: Phase1Attr.LIFE_TYPE,
  lifeDuration: Phase1Attr.LIFE_DURATION,
  known: new Set(Object.values(Phase1Attr).filter((v): v is number => typeof v === 'number')),
};
const P2_TYPES: AttrTypes = {
  lifeType: Phase2Attr.SA_LIFE_TYPE,
  lifeDuration: Phase2Attr.SA_LIFE_DURATION,
  known: new Set(Object.values(Phase2Attr).filter((v): v is number => typeof v === 'number')),
};

/**
 * Reads a transform's attributes: the values by type (each type at most once) and the seconds
 * lifetime (RFC 2407 §4.5: a life type is followed by its duration; kilobyte limits are read past,
 * twinsec enforces none). Null for an unknown or repeated type, or a duration with no type.
 */
function readAttrs(t: V1Transform, types: AttrTypes): { v: Map<number, number>; life: number | null } | null {
  const v = new Map<number, number>();
  let lifeType: number | null = null;
  let life: number | null = null;
  for (const a of t.attrs) {
    const n = attrNumber(a.value);
    if (a.type === types.lifeType) lifeType = n;
    else if (a.type === types.lifeDuration) {
      if (lifeType === null) return null;
      if (lifeType === LifeType.SECONDS) life = n;
      lifeType = null;
    } else if (!types.known.has(a.type) || v.has(a.type)) return null;
    else v.set(a.type, n);
  }
  return { v, life };
}

/** Decodes a phase-1 transform into a suite; null when it is not a complete KEY_IKE suite. */
export function decodePhase1(t: V1Transform): V1Phase1Suite | null {
  if (t.id !== V1_KEY_IKE) return null;
  const r = readAttrs(t, P1_TYPES);
  if (!r) return null;
  const encr = r.v.get(Phase1Attr.ENCRYPTION_ALGORITHM);
  const hash = r.v.get(Phase1Attr.HASH_ALGORITHM);
  const group = r.v.get(Phase1Attr.GROUP_DESCRIPTION);
  const auth = r.v.get(Phase1Attr.AUTHENTICATION_METHOD);
  if (encr === undefined || hash === undefined || group === undefined || auth === undefined) return null;
  const keyLen = r.v.get(Phase1Attr.KEY_LENGTH) ?? 0;
  return { encr, keyLen, hash, group, auth, lifeSeconds: r.life };
}

/** Decodes an ESP transform; null for unknown attributes, no encapsulation mode, or an ESN attribute. */
export function decodeEsp(t: V1Transform): V1EspSuite | null {
  const r = readAttrs(t, P2_TYPES);
  if (!r) return null;
  const encap = r.v.get(Phase2Attr.ENCAPSULATION_MODE);
  if (encap === undefined || r.v.has(Phase2Attr.ESN)) return null;
  return {
    transformId: t.id,
    keyLen: r.v.get(Phase2Attr.KEY_LENGTH) ?? 0,
    auth: r.v.get(Phase2Attr.AUTHENTICATION_ALGORITHM) ?? null,
    group: r.v.get(Phase2Attr.GROUP_DESCRIPTION) ?? null,
    encap,
    lifeSeconds: r.life,
  };
}

const lifeAttrs = (types: AttrTypes, s: number | null): V1Attr[] =>
  s === null
    ? []
    : [
        { type: types.lifeType, value: LifeType.SECONDS },
        { type: types.lifeDuration, value: durationValue(s) },
      ];

/** A phase-1 transform; the order (encryption, key length, hash, auth, group, life) is not significant. */
export function encodePhase1(s: V1Phase1Suite, num: number): V1Transform {
  const attrs: V1Attr[] = [{ type: Phase1Attr.ENCRYPTION_ALGORITHM, value: s.encr }];
  if (s.keyLen) attrs.push({ type: Phase1Attr.KEY_LENGTH, value: s.keyLen });
  attrs.push(
    { type: Phase1Attr.HASH_ALGORITHM, value: s.hash },
    { type: Phase1Attr.AUTHENTICATION_METHOD, value: s.auth },
    { type: Phase1Attr.GROUP_DESCRIPTION, value: s.group },
    ...lifeAttrs(P1_TYPES, s.lifeSeconds),
  );
  return { num, id: V1_KEY_IKE, attrs };
}

/** An ESP transform. */
export function encodeEsp(s: V1EspSuite, num: number): V1Transform {
  const attrs: V1Attr[] = [...lifeAttrs(P2_TYPES, s.lifeSeconds)];
  if (s.group !== null) attrs.push({ type: Phase2Attr.GROUP_DESCRIPTION, value: s.group });
  attrs.push({ type: Phase2Attr.ENCAPSULATION_MODE, value: s.encap });
  if (s.auth !== null) attrs.push({ type: Phase2Attr.AUTHENTICATION_ALGORITHM, value: s.auth });
  if (s.keyLen) attrs.push({ type: Phase2Attr.KEY_LENGTH, value: s.keyLen });
  return { num, id: s.transformId, attrs };
}
