/**
 * The IKEv2 COOKIE challenge (RFC 7296 §2.6) against spoofed IKE_SA_INIT floods: above the
 * half-open thresholds the responder answers N(COOKIE) only and keeps nothing; a real initiator
 * repeats its request with the cookie (Ni unchanged) and gets its IKE SA; the secret rotates on
 * the injected clock and the previous one is honoured for a grace period; forged, moved or
 * expired cookies are refused.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DEFAULT_TIMING } from '../../src/ike/core/protocol.js';
import { DEFAULT_LIMITS } from '../../src/ike/core/sa-table.js';
import { dhGenerate } from '../../src/ike/crypto/dh.js';
import { parseProposals, toWireProposal } from '../../src/ike/proposal.js';
import { COOKIE_LENGTH } from '../../src/ike/v2/cookie.js';
import { findNonce, notifies, notify } from '../../src/ike/v2/payload-find.js';
import {
  ExchangeType,
  HeaderFlag,
  NotifyType,
  PayloadType,
  ProtocolId,
} from '../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage } from '../../src/ike/wire/message.js';
import type { IkeMessage, Payload } from '../../src/ike/wire/types.js';
import { FakeClock, fixedJitter } from './fake-clock.js';
import { A, B, conn, mirror, pair, state, stopOnFakeClock } from './pair.js';

/** The responder accepts any peer (a cloud gateway many sites dial into): spoofed sources reach it. */
const ANY = { remote: '%any' };

const KE = dhGenerate(31).publicKey;
const OFFER = parseProposals('aes256gcm16-prfsha256-x25519', 'ike');

/** An IKE_SA_INIT request as an initiator (or a flood) sends it; the cookie first when given. */
function initRequest(spiI: Buffer, ni: Buffer, cookie?: Buffer): Buffer {
  const payloads: Payload[] = [];
  if (cookie) payloads.push(notify(NotifyType.COOKIE, cookie));
  payloads.push(
    {
      type: PayloadType.SA,
      proposals: OFFER.map((p, i) => toWireProposal(p, i + 1, ProtocolId.IKE, Buffer.alloc(0))),
    },
    { type: PayloadType.KE, group: 31, data: KE },
    { type: PayloadType.NONCE, data: ni },
  );
  return encodeMessage({
    header: {
      spiI,
      spiR: Buffer.alloc(8),
      version: 0x20,
      exchange: ExchangeType.IKE_SA_INIT,
      flags: HeaderFlag.INITIATOR,
      messageId: 0,
    },
    payloads,
  });
}

const isCookie = (m: IkeMessage): boolean => notifies(m.payloads.slice(0, 1), NotifyType.COOKIE).length === 1;
const cookieOf = (m: IkeMessage): Buffer => notifies(m.payloads, NotifyType.COOKIE)[0]!.data;

t.test(
  'a spoofed flood gets N(COOKIE) above the threshold, stays bounded, and a real initiator gets through',
  async (t) => {
    const clock = new FakeClock();
    const c = conn('t1', { start: 'listen' });
    const p = await pair([c], [mirror(c, ANY)], { clock, random: fixedJitter(0) });
    t.teardown(() => stopOnFakeClock(clock, p));
    const b = p.b.daemon.ike!;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const remote = { address: `10.${(i >> 8) & 255}.${i & 255}.7`, port: 500 };
      b.handle({
        data: initRequest(randomBytes(8), randomBytes(32)),
        local: { address: B, port: 500 },
        remote,
      });
    }
    const th = DEFAULT_TIMING.cookieThreshold;
    t.equal(b.table.halfOpenCount, th, `${th} half-open SAs (the threshold), no more`);
    t.equal(b.table.size, th, 'no other IKE SA was made');
    t.equal(
      b.dropped.get('cookie_required'),
      N - th,
      'every request above the threshold was answered with a cookie',
    );
    const answers = p.net.log
      .filter((s) => s.from.address === B && s.response)
      .map((s) => decodeMessage(s.data));
    t.equal(answers.length, N, 'one answer per request (no amplification)');
    const cookies = answers.filter(isCookie);
    t.equal(cookies.length, N - th);
    t.ok(
      cookies.every(
        (m) =>
          m.payloads.length === 1 &&
          cookieOf(m).length === COOKIE_LENGTH &&
          m.header.spiR.equals(Buffer.alloc(8)),
      ),
      'N(COOKIE) only, no responder SPI (stateless)',
    );

    // The real initiator comes while cookies are required: it repeats IKE_SA_INIT with the cookie.
    p.a.daemon.ike!.initiate('t1');
    await clock.until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established', 5000);
    t.same(p.a.failures, [], 'no failure on the way');
    const reqs = p.net.log
      .filter((s) => s.from.address === A && s.exchange === ExchangeType.IKE_SA_INIT && !s.response)
      .map((s) => decodeMessage(s.data));
    t.equal(reqs.length, 2, 'the first request and its repetition with the cookie');
    t.notOk(isCookie(reqs[0]!), 'no cookie at first');
    t.ok(isCookie(reqs[1]!), 'the cookie is the first payload of the repetition (§2.6)');
    t.ok(
      findNonce(reqs[1]!.payloads)!.data.equals(findNonce(reqs[0]!.payloads)!.data),
      'Ni unchanged (§2.6)',
    );

    // pair() sets halfOpenTimeout to 2 s: the flood's SAs go, the real one stays.
    await clock.advance(2001);
    t.equal(b.table.halfOpenCount, 0);
    t.equal(b.table.size, 1);
    t.equal(state(p.b, 't1'), 'established');
  },
);

t.test('per source: from 3 half-open SAs on, that source needs a cookie', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', { start: 'listen' });
  const p = await pair([c], [mirror(c, ANY)], { clock, random: fixedJitter(0) });
  t.teardown(() => stopOnFakeClock(clock, p));
  const b = p.b.daemon.ike!;
  const send = (address: string) =>
    b.handle({
      data: initRequest(randomBytes(8), randomBytes(32)),
      local: { address: B, port: 500 },
      remote: { address, port: 500 },
    });
  for (let i = 0; i < 10; i++) send('198.51.100.1');
  const per = DEFAULT_TIMING.cookieThresholdPerPeer;
  t.equal(b.table.halfOpenOf('198.51.100.1'), per);
  t.equal(b.dropped.get('cookie_required'), 10 - per);
  send('198.51.100.2');
  t.equal(b.table.halfOpenOf('198.51.100.2'), 1, 'another source is not held to it');
});

t.test(
  'cookies: echoed ones are accepted, forged/moved/expired ones refused, the secret rotates with grace',
  async (t) => {
    const clock = new FakeClock();
    const c = conn('t1', { start: 'listen' });
    // Cookies always (threshold 0); half-open SAs outlive the test's clock steps.
    const timing = { cookieThreshold: 0, halfOpenTimeout: 3_600_000 };
    const p = await pair([c], [mirror(c, ANY)], { clock, random: fixedJitter(0), timing });
    t.teardown(() => stopOnFakeClock(clock, p));
    const b = p.b.daemon.ike!;
    const X = '198.51.100.9';
    /** Sends one request to the responder and returns its answer. */
    const ask = (spi: Buffer, ni: Buffer, cookie?: Buffer, address = X): IkeMessage => {
      const before = p.net.log.length;
      b.handle({
        data: initRequest(spi, ni, cookie),
        local: { address: B, port: 500 },
        remote: { address, port: 500 },
      });
      const out = p.net.log.slice(before).filter((s) => s.from.address === B && s.to.address === address);
      t.equal(out.length, 1, 'one answer');
      return decodeMessage(out[0]!.data);
    };
    const accepted = (m: IkeMessage): boolean => m.payloads.some((x) => x.type === PayloadType.SA);
    const fresh = () => [randomBytes(8), randomBytes(32)] as const;

    const [s1, n1] = fresh();
    const a1 = ask(s1, n1);
    t.ok(isCookie(a1), 'no cookie: N(COOKIE)');
    t.equal(b.table.size, 0, 'nothing kept');
    t.ok(accepted(ask(s1, n1, cookieOf(a1))), 'the echoed cookie is accepted');
    t.equal(b.table.halfOpenCount, 1);

    const [s2, n2] = fresh();
    const c2 = cookieOf(ask(s2, n2));
    const forged = Buffer.from(c2);
    forged.writeUInt8(forged.readUInt8(forged.length - 1) ^ 1, forged.length - 1);
    t.ok(isCookie(ask(s2, n2, forged)), 'a forged cookie is refused (a new cookie instead)');
    t.equal(b.dropped.get('invalid_cookie'), 1);
    t.ok(isCookie(ask(s2, n2, c2, '198.51.100.10')), 'a cookie from another source address is refused');
    t.ok(isCookie(ask(s2, randomBytes(32), c2)), 'a cookie with another Ni is refused');
    t.ok(isCookie(ask(randomBytes(8), n2, c2)), 'a cookie with another SPIi is refused');
    t.equal(b.table.halfOpenCount, 1, 'no SA for any of them');

    // Rotation: after the secret's lifetime new cookies carry a new version; an old one is still
    // good within the grace period.
    const [s3, n3] = fresh();
    const c3 = cookieOf(ask(s3, n3));
    await clock.advance(DEFAULT_TIMING.cookieSecretLifetime);
    const [s4, n4] = fresh();
    const c4 = cookieOf(ask(s4, n4));
    t.not(c4.readUInt32BE(0), c3.readUInt32BE(0), 'a new secret (version id) after the lifetime');
    t.ok(accepted(ask(s3, n3, c3)), 'the previous secret is accepted within the grace period');
    t.ok(accepted(ask(s4, n4, c4)), 'and the current one');
    // Beyond lifetime + grace the previous secret is gone.
    const [s5, n5] = fresh();
    const c5 = cookieOf(ask(s5, n5));
    t.equal(c5.readUInt32BE(0), c4.readUInt32BE(0));
    await clock.advance(DEFAULT_TIMING.cookieSecretLifetime + DEFAULT_TIMING.cookieSecretGrace + 1);
    t.ok(isCookie(ask(s5, n5, c5)), 'a cookie older than lifetime + grace is refused');
    t.equal(b.table.halfOpenCount, 3);
  },
);

t.test('a source that answers cookies still meets the per-source half-open cap', async (t) => {
  const clock = new FakeClock();
  const c = conn('t1', { start: 'listen' });
  const p = await pair([c], [mirror(c, ANY)], {
    clock,
    random: fixedJitter(0),
    timing: { cookieThreshold: 0 },
  });
  t.teardown(() => stopOnFakeClock(clock, p));
  const b = p.b.daemon.ike!;
  const Y = '198.51.100.20';
  const local = { address: B, port: 500 };
  const remote = { address: Y, port: 500 };
  for (let i = 0; i < 20; i++) {
    const spi = randomBytes(8);
    const ni = randomBytes(32);
    const before = p.net.log.length;
    b.handle({ data: initRequest(spi, ni), local, remote });
    const cookie = cookieOf(decodeMessage(p.net.log[before]!.data));
    b.handle({ data: initRequest(spi, ni, cookie), local, remote });
  }
  t.equal(b.table.halfOpenOf(Y), DEFAULT_LIMITS.halfOpenPerPeer);
  t.equal(b.dropped.get('limit'), 20 - DEFAULT_LIMITS.halfOpenPerPeer);
});
