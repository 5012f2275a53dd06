import t from 'tap';
import { TwinsecError } from '../../src/errors.js';
import { v1EspInteg } from '../../src/ike/crypto/v1-algs.js';
import {
  attrNumber,
  checkPhase1Chosen,
  checkPhase2Chosen,
  decodeEsp,
  decodePhase1,
  espAlgNames,
  espKeyLengths,
  espSuites,
  parseV1Proposal,
  parseV1Proposals,
  phase1Name,
  phase1Offer,
  phase2Name,
  phase2Offer,
  selectPhase1,
  selectPhase2,
  type V1Proposal,
  type V1Transform,
} from '../../src/ike/v1/proposal.js';
import { EncrId, IntegId } from '../../src/ike/wire/constants.js';
import { EncapsulationMode } from '../../src/ike/wire/v1/constants.js';

const ike = (...x: string[]) => x.map((p) => parseV1Proposal(p, 'ike'));
const esp = (...x: string[]) => x.map((p) => parseV1Proposal(p, 'esp'));
const COOKIES = Buffer.alloc(0);
const SPI_PEER = Buffer.from('c0ffee01', 'hex');
const SPI_OURS = Buffer.from('0badf00d', 'hex');
/** A peer's phase-1 SA payload: one ISAKMP proposal with these transforms. */
const p1 = (transforms: V1Transform[]): V1Proposal[] => [{ num: 1, protocolId: 1, spi: COOKIES, transforms }];
const attrs = (tr: V1Transform) => tr.attrs.map((a) => [a.type, a.value]);

t.test('Alibaba default aes128-sha1-modp1024: phase-1 transform (RFC 2409 App. A)', async (t) => {
  const [spec] = ike('aes128-sha1-modp1024');
  t.same(spec, {
    text: 'aes128-sha1-modp1024',
    kind: 'ike',
    encr: [{ id: 7, keyLen: 128 }],
    integ: [2],
    groups: [2],
  });
  const [tr] = phase1Offer(ike('aes128-sha1-modp1024'), { lifeSeconds: 28800 });
  t.equal(tr?.id, 1, 'KEY_IKE');
  t.same(attrs(tr as V1Transform), [
    [1, 7],
    [14, 128],
    [2, 2],
    [3, 1],
    [4, 2],
    [11, 1],
    [12, 28800],
  ]);
});

t.test('Alibaba default aes128-sha1-modp1024: ESP transform (RFC 2407 §4.5)', async (t) => {
  const [p] = phase2Offer(esp('aes128-sha1-modp1024'), {
    spi: SPI_OURS,
    lifeSeconds: 3600,
    encap: EncapsulationMode.UDP_TUNNEL,
  });
  t.equal(p?.protocolId, 3);
  t.same(p?.spi, SPI_OURS);
  t.equal(p?.transforms.length, 1);
  t.same(espSuites(esp('aes128-sha1-modp1024')[0]!, { lifeSeconds: 3600, encap: 3 }), [
    { transformId: 12, keyLen: 128, auth: 2, group: 2, encap: 3, lifeSeconds: 3600 },
  ]);
  const tr = p?.transforms[0] as V1Transform;
  t.equal(tr.id, 12, 'ESP_AES');
  t.same(attrs(tr), [
    [1, 1],
    [2, 3600],
    [3, 2],
    [4, 3],
    [5, 2],
    [6, 128],
  ]);
  const s = decodeEsp(tr);
  t.equal(s && phase2Name(s), 'aes128-sha1-modp1024');
  t.same(s && espKeyLengths(s), { encrId: EncrId.AES_CBC, encrKeyLen: 16, integKeyLen: 20 });
});

t.test('aes256-sha256-modp2048 and long lifetimes as variable attributes', async (t) => {
  const [tr] = phase1Offer(ike('aes256-sha256-modp2048'), { lifeSeconds: 86400 });
  const a = attrs(tr as V1Transform);
  t.same(a.slice(0, 5), [
    [1, 7],
    [14, 256],
    [2, 4],
    [3, 1],
    [4, 14],
  ]);
  t.same(a[6], [12, Buffer.from('00015180', 'hex')]);
  const s = decodePhase1(tr as V1Transform);
  t.equal(s?.lifeSeconds, 86400);
  t.equal(s && phase1Name(s), 'aes256-sha256-modp2048');
  const [e] = phase2Offer(esp('aes256-sha256'), { spi: SPI_OURS, lifeSeconds: null, encap: 1 });
  const es = decodeEsp(e?.transforms[0] as V1Transform);
  t.same(es && espAlgNames(es), { encr: 'aes256', integ: 'sha256' });
  t.equal(es?.group, null, 'no PFS');
  // RFC 4868: HMAC-SHA-256 with a 128-bit ICV, as strongSwan installs it.
  t.equal(v1EspInteg(5).integId, IntegId.HMAC_SHA2_256_128);
  t.same(es && espKeyLengths(es), { encrId: EncrId.AES_CBC, encrKeyLen: 32, integKeyLen: 32 });
});

t.test('aes256gcm16 for ESP: transform 20, no auth attribute, salt in KEYMAT', async (t) => {
  const [p] = phase2Offer(esp('aes256gcm16'), { spi: SPI_OURS, lifeSeconds: 3600, encap: 1 });
  const tr = p?.transforms[0] as V1Transform;
  t.equal(tr.id, 20);
  t.notOk(
    tr.attrs.some((a) => a.type === 5),
    'no auth algorithm',
  );
  const s = decodeEsp(tr);
  t.equal(s && phase2Name(s), 'aes256gcm16');
  t.same(s && espKeyLengths(s), { encrId: EncrId.AES_GCM_16, encrKeyLen: 36, integKeyLen: 0 });
  t.same(esp('aes256gcm16-sha256')[0]?.integ, [], 'integrity dropped next to AEAD');
});

t.test('3des in both phases', async (t) => {
  const [tr] = phase1Offer(ike('3des-sha1-modp1024'), { lifeSeconds: 28800 });
  t.same(attrs(tr as V1Transform).slice(0, 2), [
    [1, 5],
    [2, 2],
  ]);
  t.equal(phase1Name(decodePhase1(tr as V1Transform)!), '3des-sha1-modp1024');
  const [p] = phase2Offer(esp('3des-sha1'), { spi: SPI_OURS, lifeSeconds: 3600, encap: 1 });
  t.equal(p?.transforms[0]?.id, 3, 'ESP_3DES');
  t.notOk(
    p?.transforms[0]?.attrs.some((a) => a.type === 6),
    'no key length',
  );
  t.same(espKeyLengths(decodeEsp(p?.transforms[0] as V1Transform)!).encrKeyLen, 24);
});

t.test('refusals and invalid proposals', async (t) => {
  const bad: [string, 'ike' | 'esp', RegExp][] = [
    ['des-sha1-modp1024', 'ike', /DES is refused/],
    ['des-md5', 'esp', /DES is refused/],
    ['aes128gcm16-sha256-modp2048', 'ike', /not an IKEv1 phase-1 encryption/],
    ['aes128-aes128gcm16-sha1', 'esp', /can't be mixed/],
    ['aes128-sha1', 'ike', /DH group is mandatory/],
    ['aes128-modp1024', 'ike', /integrity algorithm is mandatory/],
    ['aes128', 'esp', /integrity algorithm is mandatory/],
    ['sha1-modp1024', 'ike', /encryption algorithm is mandatory/],
    ['aes128-sha1-x25519', 'ike', /unknown algorithm 'x25519'/],
    ['aes128--sha1', 'esp', /empty algorithm/],
    ['aes128-sha1-esn', 'esp', /extended sequence numbers/],
    ['', 'ike', /empty proposal/],
  ];
  for (const [text, kind, re] of bad) {
    t.throws(() => parseV1Proposal(text, kind), { name: 'TwinsecError', message: re }, text);
  }
  t.type(
    t.throws(() => parseV1Proposals([], 'ike')),
    TwinsecError,
  );
  t.equal(parseV1Proposals('aes128-sha1-modp1024, 3des-md5-modp1536', 'ike').length, 2);
  t.same(ike('aes128-sha1-prfsha1-modp1024')[0]?.integ, [2], 'PRF keyword ignored');
  t.same(esp('aes128-sha1-none')[0]?.groups, [], 'none alone = no PFS');
});

t.test('phase-1 selection: peer order by default, ours with preferOurs, key lengths', async (t) => {
  const ours = ike('aes256-sha256-modp2048', 'aes128-sha1-modp1024');
  const peer = phase1Offer(ike('aes128-sha1-modp1024', 'aes256-sha256-modp2048'), { lifeSeconds: 28800 });
  const c = selectPhase1(ours, p1(peer), { lifeSeconds: 28800 });
  t.equal(c && phase1Name(c.suite), 'aes128-sha1-modp1024');
  t.equal(c?.transform, peer[0], "the peer's transform, to echo unchanged");
  t.equal(c?.proposalNum, 1);
  const o = selectPhase1(ours, p1(peer), { lifeSeconds: 28800, preferOurs: true });
  t.equal(o && phase1Name(o.suite), 'aes256-sha256-modp2048');
  t.equal(o?.transform.num, 2);
  const aes192 = phase1Offer(ike('aes192-sha1-modp1024'), { lifeSeconds: 28800 });
  t.equal(selectPhase1(ike('aes128-sha1-modp1024'), p1(aes192), { lifeSeconds: 28800 }), null);
  const noKeyLen = { ...aes192[0]!, attrs: aes192[0]!.attrs.filter((a) => a.type !== 14) };
  t.equal(selectPhase1(ike('aes-sha1-modp1024'), p1([noKeyLen]), { lifeSeconds: 28800 }), null);
  const rsa = { ...peer[0]!, attrs: peer[0]!.attrs.map((a) => (a.type === 3 ? { type: 3, value: 3 } : a)) };
  t.equal(selectPhase1(ours, p1([rsa]), { lifeSeconds: 28800 }), null, 'PSK only');
  const odd = { ...peer[0]!, attrs: [...peer[0]!.attrs, { type: 99, value: 1 }] };
  t.equal(selectPhase1(ours, p1([odd]), { lifeSeconds: 28800 }), null, 'unknown attribute');
  t.equal(selectPhase1(ours, [{ ...p1(peer)[0]!, protocolId: 3 }], { lifeSeconds: 28800 }), null);
});

t.test('lifetimes: the shorter wins, a longer offer gets RESPONDER-LIFETIME', async (t) => {
  const ours = ike('aes128-sha1-modp1024');
  const offer = (life: number | null) => p1(phase1Offer(ours, { lifeSeconds: life }));
  t.match(selectPhase1(ours, offer(86400), { lifeSeconds: 28800 }), {
    lifeSeconds: 28800,
    responderLifetime: true,
    suite: { lifeSeconds: 28800 },
  });
  t.match(selectPhase1(ours, offer(3600), { lifeSeconds: 28800 }), {
    lifeSeconds: 3600,
    responderLifetime: false,
  });
  t.match(selectPhase1(ours, offer(28800), { lifeSeconds: 28800 }), {
    lifeSeconds: 28800,
    responderLifetime: false,
  });
  t.match(selectPhase1(ours, offer(null), { lifeSeconds: 28800 }), {
    lifeSeconds: 28800,
    responderLifetime: false,
  });
  t.match(selectPhase1(ours, offer(0), { lifeSeconds: 28800 }), {
    lifeSeconds: 28800,
    responderLifetime: true,
  });
  const e = esp('aes128-sha1');
  const q = (life: number | null) => phase2Offer(e, { spi: SPI_PEER, lifeSeconds: life, encap: 1 });
  // RFC 2407 §4.5: no lifetime means 28800 s, longer than our 3600.
  t.match(selectPhase2(e, q(null), { lifeSeconds: 3600, natT: false }), {
    lifeSeconds: 3600,
    responderLifetime: true,
  });
  t.match(selectPhase2(e, q(1200), { lifeSeconds: 3600, natT: false }), {
    lifeSeconds: 1200,
    responderLifetime: false,
  });
  const huge = q(1)[0]!;
  huge.transforms[0]!.attrs[1] = { type: 2, value: Buffer.from('ffffffffffffffff', 'hex') };
  t.match(selectPhase2(e, [huge], { lifeSeconds: 3600, natT: false }), {
    lifeSeconds: 3600,
    responderLifetime: true,
  });
});

t.test('phase-2 selection: encapsulation, PFS, AEAD, bundles', async (t) => {
  const ours = esp('aes128-sha1-modp1024');
  const offer = (text: string, encap: number) =>
    phase2Offer(esp(text), { spi: SPI_PEER, lifeSeconds: 3600, encap });
  const c = selectPhase2(ours, offer('aes128-sha1-modp1024', EncapsulationMode.UDP_TUNNEL), {
    lifeSeconds: 3600,
    natT: true,
  });
  t.same(c?.spi, SPI_PEER, "the peer's inbound SPI");
  t.equal(c && phase2Name(c.suite), 'aes128-sha1-modp1024');
  t.equal(c?.suite.encap, 3);
  const draft = offer('aes128-sha1-modp1024', EncapsulationMode.UDP_TUNNEL_DRAFT);
  t.equal(selectPhase2(ours, draft, { lifeSeconds: 3600, natT: true })?.suite.encap, 61443);
  t.equal(selectPhase2(ours, draft, { lifeSeconds: 3600, natT: false }), null, 'NAT-T mode without NAT');
  t.equal(selectPhase2(ours, offer('aes128-sha1-modp1024', 1), { lifeSeconds: 3600, natT: true }), null);
  t.equal(
    selectPhase2(ours, offer('aes128-sha1', 1), { lifeSeconds: 3600, natT: false }),
    null,
    'PFS required',
  );
  t.equal(
    selectPhase2(esp('aes128-sha1'), offer('aes128-sha1-modp1024', 1), { lifeSeconds: 3600, natT: false }),
    null,
  );
  const optional = esp('aes128-sha1-modp1024-none');
  t.ok(selectPhase2(optional, offer('aes128-sha1', 1), { lifeSeconds: 3600, natT: false }));
  t.ok(selectPhase2(optional, offer('aes128-sha1-modp1024', 1), { lifeSeconds: 3600, natT: false }));
  const gcm = offer('aes256gcm16', 1);
  t.equal(selectPhase2(esp('aes256gcm16'), gcm, { lifeSeconds: 3600, natT: false })?.suite.auth, null);
  gcm[0]!.transforms[0]!.attrs.push({ type: 5, value: 2 });
  t.equal(selectPhase2(esp('aes256gcm16'), gcm, { lifeSeconds: 3600, natT: false }), null, 'GCM with auth');
  const bundle = [
    ...offer('aes128-sha1-modp1024', 1),
    { ...offer('aes128-sha1-modp1024', 1)[0]!, protocolId: 2 },
  ];
  t.equal(selectPhase2(ours, bundle, { lifeSeconds: 3600, natT: false }), null, 'AH+ESP bundle');
  const two = [...offer('3des-sha1', 1), { ...offer('aes128-sha1', 1)[0]!, num: 2 }];
  const pick = selectPhase2(esp('aes128-sha1', '3des-sha1'), two, { lifeSeconds: 3600, natT: false });
  t.equal(pick?.proposalNum, 1, "peer's first matching proposal");
  t.equal(pick && phase2Name(pick.suite), '3des-sha1');
});

t.test('initiator: the answer must be one transform we offered', async (t) => {
  const offered = phase1Offer(ike('aes256-sha256-modp2048', 'aes128-sha1-modp1024'), { lifeSeconds: 28800 });
  const s = checkPhase1Chosen(offered, p1([offered[1]!]));
  t.equal(s && phase1Name(s), 'aes128-sha1-modp1024');
  t.equal(checkPhase1Chosen(offered, p1(offered)), null, 'two transforms');
  const other = phase1Offer(ike('aes128-sha1-modp2048'), { lifeSeconds: 28800 });
  t.equal(checkPhase1Chosen(offered, p1(other)), null, 'not offered');
  const longer = phase1Offer(ike('aes128-sha1-modp1024'), { lifeSeconds: 86400 });
  t.equal(checkPhase1Chosen(offered, p1(longer))?.lifeSeconds, 28800, 'a longer answer never extends ours');
  const shorter = phase1Offer(ike('aes128-sha1-modp1024'), { lifeSeconds: 3600 });
  t.equal(checkPhase1Chosen(offered, p1(shorter))?.lifeSeconds, 3600);

  const ours = phase2Offer(esp('aes256gcm16', 'aes128-sha1-modp1024'), {
    spi: SPI_OURS,
    lifeSeconds: 3600,
    encap: 3,
  });
  const reply = (num: number, tr: V1Transform, spi = SPI_PEER): V1Proposal[] => [
    { num, protocolId: 3, spi, transforms: [tr] },
  ];
  const e = checkPhase2Chosen(ours, reply(2, ours[1]!.transforms[0]!));
  t.equal(e && phase2Name(e), 'aes128-sha1-modp1024');
  t.equal(e?.lifeSeconds, 3600);
  const noLife = { ...ours[1]!.transforms[0]!, attrs: ours[1]!.transforms[0]!.attrs.slice(2) };
  t.equal(checkPhase2Chosen(ours, reply(2, noLife))?.lifeSeconds, 3600, 'no lifetime in the answer: ours');
  const [short] = phase2Offer(esp('aes128-sha1-modp1024'), { spi: SPI_PEER, lifeSeconds: 1200, encap: 3 });
  t.equal(
    checkPhase2Chosen(ours, reply(2, short!.transforms[0]!))?.lifeSeconds,
    1200,
    'a shorter one is kept',
  );
  t.equal(
    checkPhase2Chosen(ours, reply(1, ours[1]!.transforms[0]!)),
    null,
    'transform from another proposal',
  );
  t.equal(checkPhase2Chosen(ours, reply(2, ours[1]!.transforms[0]!, Buffer.alloc(2))), null, 'bad SPI');
  const tunnel = {
    ...ours[0]!.transforms[0]!,
    attrs: ours[0]!.transforms[0]!.attrs.map((a) => (a.type === 4 ? { type: 4, value: 1 } : a)),
  };
  t.equal(checkPhase2Chosen(ours, reply(1, tunnel)), null, 'encapsulation changed');
});

t.test('attribute values in either form', async (t) => {
  t.equal(attrNumber(7), 7);
  t.equal(attrNumber(Buffer.from('00015180', 'hex')), 86400);
  t.equal(attrNumber(Buffer.from('0000000000015180', 'hex')), 86400);
  t.equal(attrNumber(Buffer.alloc(0)), 0);
  t.equal(attrNumber(Buffer.from('0100000000000000', 'hex')), Number.POSITIVE_INFINITY);
  const tr: V1Transform = {
    num: 1,
    id: 1,
    attrs: [
      { type: 1, value: Buffer.of(7) },
      { type: 14, value: 128 },
      { type: 2, value: 2 },
      { type: 3, value: 1 },
      { type: 4, value: 2 },
      { type: 11, value: 2 },
      { type: 12, value: Buffer.from('00100000', 'hex') },
    ],
  };
  t.match(decodePhase1(tr), { encr: 7, keyLen: 128 });
  t.equal(decodePhase1(tr)?.lifeSeconds, null, 'kilobytes are not seconds');
  t.equal(
    decodePhase1({ ...tr, attrs: [{ type: 12, value: 5 }, ...tr.attrs] }),
    null,
    'duration without type',
  );
  t.equal(decodePhase1({ ...tr, attrs: [...tr.attrs, { type: 2, value: 4 }] }), null, 'repeated attribute');
  t.equal(decodePhase1({ ...tr, id: 2 }), null, 'not KEY_IKE');
  t.equal(decodeEsp({ num: 1, id: 12, attrs: [{ type: 5, value: 2 }] }), null, 'no encapsulation mode');
});
