/**
 * The raw payload bytes the codec hands out are the ones strongSwan's hashes cover: with the
 * SKEYID and SKEYID_a charon logged during the capture (capture-v1.sh, a throwaway PSK), HASH_I
 * and HASH_R (RFC 2409 §5: SAi_b and IDii_b/IDir_b are payload bodies without generic headers)
 * and quick mode's HASH(1..3) and the informational HASH(1) (§5.5, §5.7: the payloads after the
 * HASH payload with their headers, without the cipher padding) all recompute to what was sent.
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { ExchangeTypeV1 } from '../../src/ike/wire/v1/constants.js';
import { decodeMessageV1, isEncryptedV1, rawPayloadsV1 } from '../../src/ike/wire/v1/message.js';
import type { HeaderV1, RawPayloadV1 } from '../../src/ike/wire/v1/types.js';

const DIR = new URL('../../../test/fixtures/strongswan/v1/', import.meta.url);
const text = (f: string) => readFileSync(new URL(f, DIR), 'utf8').trim();

interface Msg {
  exchange: number;
  header: HeaderV1;
  /** In clear, or decrypted: the cipher padding after the chain is not part of any payload. */
  raw: RawPayloadV1[];
}

function load(variant: string): { msgs: Msg[]; skeyid: Buffer; skeyidA: Buffer } {
  const msgs = readdirSync(DIR)
    .filter((f) => f.startsWith(`${variant}.`) && f.endsWith('.hex'))
    .sort()
    .map((f) => {
      const buf = Buffer.from(text(f), 'hex');
      const m = decodeMessageV1(buf);
      const raw = isEncryptedV1(m)
        ? rawPayloadsV1(m.firstPayload, Buffer.from(text(f.replace(/\.hex$/, '.plain')), 'hex'), true)
        : rawPayloadsV1(buf[16]!, buf.subarray(28));
      return { exchange: m.header.exchange, header: m.header, raw };
    });
  const keys = Object.fromEntries(
    text(`${variant}.keys`)
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
  return { msgs, skeyid: Buffer.from(keys.skeyid!, 'hex'), skeyidA: Buffer.from(keys.skeyid_a!, 'hex') };
}

const body = (m: Msg, type: number) => m.raw.find((r) => r.type === type)!.body;
const hashOf = (m: Msg) => {
  const h = m.raw.filter((r) => r.type === 8);
  return h[h.length - 1]!.body;
};
const mid = (m: Msg) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(m.header.messageId);
  return b;
};
/** Everything after the leading HASH payload, generic headers included, padding excluded. */
const afterHash = (m: Msg) => Buffer.concat(m.raw.slice(1).map((r) => r.raw));

type Check = [computed: string, sent: string, what: string];

/** Which message carries what in phase 1: main mode spreads it over 6, aggressive over 3. */
interface Phase1 {
  sa: Msg;
  keI: Msg;
  keR: Msg;
  idI: Msg;
  idR: Msg;
  hashI: Msg;
  hashR: Msg;
}

function phase1Hashes(alg: string, skeyid: Buffer, p: Phase1): Check[] {
  const prf = (...parts: Buffer[]) =>
    createHmac(alg, skeyid).update(Buffer.concat(parts)).digest().toString('hex');
  // The cookies from a responder message: message 1 has no responder cookie yet.
  const { spiI, spiR } = p.keR.header;
  const [gxi, gxr, sai] = [body(p.keI, 4), body(p.keR, 4), body(p.sa, 1)];
  return [
    [prf(gxi, gxr, spiI, spiR, sai, body(p.idI, 5)), hashOf(p.hashI).toString('hex'), 'HASH_I'],
    [prf(gxr, gxi, spiR, spiI, sai, body(p.idR, 5)), hashOf(p.hashR).toString('hex'), 'HASH_R'],
  ];
}

function quickHashes(alg: string, skeyidA: Buffer, msgs: Msg[]): Check[] {
  const prf = (...parts: Buffer[]) =>
    createHmac(alg, skeyidA).update(Buffer.concat(parts)).digest().toString('hex');
  const [q1, q2, q3] = msgs.filter((m) => m.exchange === ExchangeTypeV1.QUICK) as [Msg, Msg, Msg];
  const [ni, nr] = [body(q1, 10), body(q2, 10)];
  const sent = (m: Msg) => hashOf(m).toString('hex');
  return [
    [prf(mid(q1), afterHash(q1)), sent(q1), 'quick mode HASH(1)'],
    [prf(mid(q2), ni, afterHash(q2)), sent(q2), 'quick mode HASH(2)'],
    [prf(Buffer.from([0]), mid(q3), ni, nr), sent(q3), 'quick mode HASH(3)'],
    ...msgs
      .filter((m) => m.exchange === ExchangeTypeV1.INFORMATIONAL)
      .map((m): Check => [prf(mid(m), afterHash(m)), sent(m), 'informational HASH(1)']),
  ];
}

t.test('main mode: HASH_I and HASH_R over SAi_b and the ID bodies (HMAC-SHA-256)', async (t) => {
  const { msgs, skeyid, skeyidA } = load('main-psk');
  const [m1, , m3, m4, m5, m6] = msgs as [Msg, Msg, Msg, Msg, Msg, Msg];
  const p1 = { sa: m1, keI: m3, keR: m4, idI: m5, idR: m6, hashI: m5, hashR: m6 };
  const checks = [...phase1Hashes('sha256', skeyid, p1), ...quickHashes('sha256', skeyidA, msgs)];
  t.ok(checks.length >= 9, `${checks.length} hashes: phase 1, quick mode, DPD and Delete informationals`);
  for (const [computed, sent, what] of checks) t.equal(computed, sent, what);
});

t.test('aggressive mode: HASH_R in clear, HASH_I encrypted (HMAC-SHA-1)', async (t) => {
  const { msgs, skeyid, skeyidA } = load('aggr-psk');
  const [a1, a2, a3] = msgs as [Msg, Msg, Msg];
  const p1 = { sa: a1, keI: a1, keR: a2, idI: a1, idR: a2, hashI: a3, hashR: a2 };
  const checks = [...phase1Hashes('sha1', skeyid, p1), ...quickHashes('sha1', skeyidA, msgs)];
  t.ok(checks.length >= 9, `${checks.length} hashes: phase 1, quick mode, DPD and Delete informationals`);
  for (const [computed, sent, what] of checks) t.equal(computed, sent, what);
});
