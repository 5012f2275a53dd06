/**
 * Security issue #11 item 10b: new SPIs are checked against the ones in use. An injected Random
 * hands out a duplicate first; the generators must skip it.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Random } from '../../src/ike/core/clock.js';
import type { BaseIkeSa } from '../../src/ike/core/ike-sa.js';
import { newIkeSpi } from '../../src/ike/core/ike-sa.js';
import { SaTable } from '../../src/ike/core/sa-table.js';
import { childSpi, newSpi } from '../../src/ike/v2/tasks/child-create.js';

/** Returns `first` (in order) before falling back to real randomness. */
function scripted(first: Buffer[]): Random & { calls: number } {
  const queue = [...first];
  const r = {
    calls: 0,
    bytes(n: number): Buffer {
      r.calls++;
      const next = queue.shift();
      return next ? Buffer.from(next.subarray(0, n)) : randomBytes(n);
    },
    float: () => Math.random(),
  };
  return r;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

type AnySa = BaseIkeSa<unknown>;
const fakeSa = (spi: Buffer): AnySa =>
  ({
    ourSpi: spi,
    remote: { address: '192.0.2.9', port: 500 },
    children: [],
    conn: { name: 'c' },
  }) as unknown as AnySa;

t.test('an inbound ESP SPI already in use is skipped', async (t) => {
  const table = new SaTable();
  table.setChildOwner(0x11223344, fakeSa(Buffer.alloc(8, 1)));
  const random = scripted([u32(0x11223344), u32(0x55667788)]);
  t.equal(childSpi({ ctx: { random, table } as never }), 0x55667788, 'the duplicate is not handed out');
  t.equal(random.calls, 2);
});

t.test('newSpi: reserved values and taken ones are skipped', async (t) => {
  const random = scripted([u32(7), u32(1000), u32(2000)]);
  t.equal(
    newSpi(random, (s) => s === 1000),
    2000,
  );
});

t.test('an IKE SPI already in the table is skipped, and zero is never used', async (t) => {
  const table = new SaTable();
  const dup = Buffer.from('0102030405060708', 'hex');
  table.add(fakeSa(dup));
  const fresh = Buffer.from('1112131415161718', 'hex');
  const random = scripted([Buffer.alloc(8), Buffer.from(dup), fresh]);
  const spi = newIkeSpi({ random, table } as never);
  t.same(spi, fresh, 'neither the zero SPI nor the duplicate');
  t.equal(random.calls, 3);
});
