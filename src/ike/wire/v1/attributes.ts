/**
 * Data attributes (RFC 2408 §3.3): the TV form (AF bit set, the value in the 2-byte length field)
 * and the TLV form (AF bit clear, length then value). Transforms (RFC 2409 App. A, RFC 2407 §4.5)
 * and the mode-config Attribute payload carry lists of them. The form is preserved (number for
 * TV, Buffer for TLV): a responder must echo the accepted transform exactly, and the phase-1
 * hashes cover the SA payload as sent, so re-encoding must give the same bytes.
 */
import { ATTR_FORMAT_TV } from './constants.js';
import type { DataAttribute } from './types.js';
import { checkUint, copy, fail } from './util.js';

const ATTR_TYPE_MAX = 0x7fff;

export function encodeAttributes(where: string, attrs: DataAttribute[]): Buffer {
  return Buffer.concat(
    attrs.map((a) => {
      checkUint(where, 'attribute type', a.type, ATTR_TYPE_MAX);
      const head = Buffer.alloc(4);
      if (typeof a.value === 'number') {
        checkUint(where, `attribute ${a.type} TV value`, a.value, 0xffff);
        head.writeUInt16BE(ATTR_FORMAT_TV | a.type, 0);
        head.writeUInt16BE(a.value, 2);
        return head;
      }
      checkUint(where, `attribute ${a.type} TLV length`, a.value.length, 0xffff);
      head.writeUInt16BE(a.type, 0);
      head.writeUInt16BE(a.value.length, 2);
      return Buffer.concat([head, a.value]);
    }),
  );
}

/** `buf` holds exactly the attributes; a partial one at the end is malformed. */
export function decodeAttributes(where: string, buf: Buffer): DataAttribute[] {
  const out: DataAttribute[] = [];
  for (let off = 0; off < buf.length; ) {
    if (buf.length - off < 4) fail(where, `${buf.length - off} bytes left for a 4-byte attribute`);
    const raw = buf.readUInt16BE(off);
    const type = raw & ATTR_TYPE_MAX;
    if (raw & ATTR_FORMAT_TV) {
      out.push({ type, value: buf.readUInt16BE(off + 2) });
      off += 4;
      continue;
    }
    const length = buf.readUInt16BE(off + 2);
    if (length > buf.length - off - 4) {
      fail(where, `attribute ${type} of ${length} value bytes, ${buf.length - off - 4} left`);
    }
    out.push({ type, value: copy(buf.subarray(off + 4, off + 4 + length)) });
    off += 4 + length;
  }
  return out;
}

/**
 * The value as a number whichever the form: life durations arrive as TV or as a 4-byte TLV
 * (RFC 2409 App. A: "Life Duration ... variable"). Up to 6 bytes, the safe-integer range.
 */
export function attributeNumber(a: DataAttribute): number {
  if (typeof a.value === 'number') return a.value;
  if (a.value.length === 0 || a.value.length > 6) {
    fail(`attribute ${a.type}`, `TLV value of ${a.value.length} bytes is not a number`);
  }
  return a.value.readUIntBE(0, a.value.length);
}

/** The first attribute of `type`, or undefined. */
export function findAttribute(attrs: DataAttribute[], type: number): DataAttribute | undefined {
  return attrs.find((a) => a.type === type);
}
