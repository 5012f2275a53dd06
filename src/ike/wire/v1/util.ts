/** Small checks shared by the ISAKMP codec files; every failure is a WireError naming where. */
import { WireError } from '../../../errors.js';

export function fail(where: string, what: string): never {
  throw new WireError(`${where}: ${what}`);
}

export function checkUint(where: string, field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) fail(where, `${field} ${v} out of range 0..${max}`);
}

export function need(where: string, body: Buffer, min: number, field = 'payload'): void {
  if (body.length < min) fail(where, `${field} of ${body.length} bytes is shorter than ${min}`);
}

/** Decoded buffers are copies, so callers may keep them after the datagram buffer is reused. */
export const copy = (b: Buffer): Buffer => Buffer.from(b);

/** Big-endian fixed-width header fields: [value, bytes] pairs, checked then written in order. */
export function fields(where: string, spec: [string, number, 1 | 2 | 3 | 4][]): Buffer {
  const out = Buffer.alloc(spec.reduce((n, [, , w]) => n + w, 0));
  let off = 0;
  for (const [name, v, w] of spec) {
    checkUint(where, name, v, 2 ** (8 * w) - 1);
    out.writeUIntBE(v, off, w);
    off += w;
  }
  return out;
}
