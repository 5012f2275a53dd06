import t from 'tap';
import { WireError } from '../../src/errors.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../src/ike/wire/constants.js';
import { decodeHeader, encodeHeader, HEADER_LENGTH } from '../../src/ike/wire/header.js';
import type { IkeHeader } from '../../src/ike/wire/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
  throw new Error('expected a WireError');
}

const header: IkeHeader = {
  spiI: hex('0102030405060708'),
  spiR: hex('1112131415161718'),
  nextPayload: PayloadType.SA,
  version: 0x20,
  exchange: ExchangeType.IKE_SA_INIT,
  flags: HeaderFlag.INITIATOR,
  messageId: 0x01020304,
  length: 300,
};
// RFC 7296 §3.1 layout, field by field.
const bytes = hex('0102030405060708 1112131415161718 21 20 22 08 01020304 0000012c');

t.test('encodes the RFC 7296 §3.1 layout and decodes it back', async (t) => {
  t.equal(HEADER_LENGTH, 28);
  t.same(encodeHeader(header), bytes);
  const padded = Buffer.concat([bytes, Buffer.alloc(300 - 28)]);
  t.strictSame(decodeHeader(padded), header);
  t.same(encodeHeader(decodeHeader(padded)), bytes);
});

t.test('decoded SPIs are copies, not views of the datagram', async (t) => {
  const buf = Buffer.concat([bytes, Buffer.alloc(300 - 28)]);
  const h = decodeHeader(buf);
  buf.fill(0);
  t.same(h.spiI, hex('0102030405060708'));
});

t.test('decode rejects short buffers and bad length fields', async (t) => {
  t.match(
    wireError(() => decodeHeader(Buffer.alloc(27))).message,
    /27 bytes is shorter than the 28-byte header/,
  );
  const small = Buffer.from(bytes);
  small.writeUInt32BE(27, 24);
  t.match(wireError(() => decodeHeader(small)).message, /length field 27 is below 28/);
  t.match(wireError(() => decodeHeader(bytes)).message, /length field 300 exceeds the 28 bytes received/);
  const exact = Buffer.from(bytes);
  exact.writeUInt32BE(28, 24);
  t.equal(decodeHeader(exact).length, 28);
});

t.test('encode rejects values that do not fit', async (t) => {
  t.match(
    wireError(() => encodeHeader({ ...header, spiI: Buffer.alloc(7) })).message,
    /initiator SPI is 7 bytes/,
  );
  t.match(
    wireError(() => encodeHeader({ ...header, spiR: Buffer.alloc(9) })).message,
    /responder SPI is 9 bytes/,
  );
  t.match(wireError(() => encodeHeader({ ...header, messageId: 2 ** 32 })).message, /message ID 4294967296/);
  t.match(wireError(() => encodeHeader({ ...header, exchange: 256 })).message, /exchange type 256/);
  t.match(wireError(() => encodeHeader({ ...header, flags: -1 })).message, /flags -1/);
  t.match(wireError(() => encodeHeader({ ...header, length: 20 })).message, /length 20 is below 28/);
});
