import t from 'tap';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  parseProposal,
  parseProposals,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../../src/ike/proposal.js';
import {
  DhId,
  EncrId,
  EsnId,
  IntegId,
  PrfId,
  ProtocolId,
  TransformType,
} from '../../src/ike/wire/constants.js';
import type { Proposal } from '../../src/ike/wire/types.js';

const IKE = ProtocolId.IKE;
const ESP = ProtocolId.ESP;
const NO_SPI = Buffer.alloc(0);
const ike = (...texts: string[]) => texts.map((x) => parseProposal(x, 'ike'));
const esp = (...texts: string[]) => texts.map((x) => parseProposal(x, 'esp'));
/** The peer's offer as it would arrive on the wire. */
const offer = (
  kind: 'ike' | 'esp',
  texts: string[],
  spi = kind === 'ike' ? NO_SPI : Buffer.from('0a0b0c0d', 'hex'),
) => texts.map((x, i) => toWireProposal(parseProposal(x, kind), i + 1, kind === 'ike' ? IKE : ESP, spi));

t.test('IKE: basic selection carries the peer proposal number and SPI', async (t) => {
  const c = selectProposal(
    ike('aes256gcm16-prfsha256-x25519'),
    offer('ike', ['aes256gcm16-prfsha256-x25519']),
    IKE,
  );
  t.same(c, {
    num: 1,
    spi: NO_SPI,
    encr: { id: EncrId.AES_GCM_16, keyLen: 256 },
    integ: null,
    prf: PrfId.HMAC_SHA2_256,
    dh: DhId.CURVE25519,
    esn: false,
  });
  const theirs = offer('ike', ['aes128-sha1-modp1024', 'aes256-sha256-modp2048']);
  const c2 = selectProposal(ike('aes256-sha256-modp2048'), theirs, IKE);
  t.equal(c2?.num, 2);
  t.equal(c2?.integ, IntegId.HMAC_SHA2_256_128);
  t.equal(c2?.prf, PrfId.HMAC_SHA2_256);
});

t.test('algorithm preference: ours by default, theirs with preferOurs=false', async (t) => {
  const ours = ike('aes256-aes128-sha256-sha1-ecp256-modp2048');
  const theirs = offer('ike', ['aes128-aes256-sha1-sha256-modp2048-ecp256']);
  const a = selectProposal(ours, theirs, IKE)!;
  t.same(
    [a.encr.keyLen, a.integ, a.prf, a.dh],
    [256, IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256, DhId.ECP256],
  );
  const b = selectProposal(ours, theirs, IKE, { preferOurs: false })!;
  t.same([b.encr.keyLen, b.integ, b.prf, b.dh], [128, IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1, DhId.MODP2048]);
});

t.test('proposal preference across proposals', async (t) => {
  const ours = ike('aes256gcm16-prfsha256-x25519', 'aes256-sha256-modp2048');
  const theirs = offer('ike', ['aes256-sha256-modp2048', 'aes256gcm16-prfsha256-x25519']);
  const a = selectProposal(ours, theirs, IKE)!;
  t.equal(a.num, 2, 'our first proposal, found in their second');
  t.equal(a.encr.id, EncrId.AES_GCM_16);
  const b = selectProposal(ours, theirs, IKE, { preferOurs: false })!;
  t.equal(b.num, 1, 'their first proposal');
  t.equal(b.encr.id, EncrId.AES_CBC);
});

t.test('IKE mismatches yield null', async (t) => {
  const ours = ike('aes256-sha256-modp2048');
  t.equal(selectProposal(ours, offer('ike', ['aes128-sha256-modp2048']), IKE), null, 'key length');
  t.equal(selectProposal(ours, offer('ike', ['aes256-sha1-modp2048']), IKE), null, 'integrity');
  t.equal(selectProposal(ours, offer('ike', ['aes256-sha256-prfsha1-modp2048']), IKE), null, 'PRF');
  t.equal(selectProposal(ours, offer('ike', ['aes256-sha256-ecp256']), IKE), null, 'DH');
  t.equal(selectProposal(ours, offer('esp', ['aes256-sha256']), IKE), null, 'protocol');
  t.equal(selectProposal(ours, [], IKE), null, 'empty offer');
  const noKeyLen: Proposal = {
    num: 1,
    protocolId: IKE,
    spi: NO_SPI,
    transforms: [
      { type: TransformType.ENCR, id: EncrId.AES_CBC },
      { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
      { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
      { type: TransformType.DH, id: DhId.MODP2048 },
    ],
  };
  t.equal(selectProposal(ours, [noKeyLen], IKE), null, 'AES without a key length attribute');
  const noDh = {
    ...noKeyLen,
    transforms: [
      { type: TransformType.ENCR, id: EncrId.AES_CBC, keyLength: 256 },
      ...noKeyLen.transforms.slice(1, 3),
    ],
  };
  t.equal(selectProposal(ours, [noDh], IKE), null, 'IKE without DH');
  t.ok(selectProposal(ours, [noDh], IKE, { ignoreDh: true }), 'unless DH is ignored');
});

t.test('AEAD: integrity transforms in the peer offer are ignored', async (t) => {
  const theirs: Proposal[] = [
    {
      num: 1,
      protocolId: IKE,
      spi: NO_SPI,
      transforms: [
        { type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 128 },
        { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
        { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
        { type: TransformType.DH, id: DhId.ECP256 },
      ],
    },
  ];
  const c = selectProposal(ike('aes128gcm16-prfsha256-ecp256'), theirs, IKE)!;
  t.equal(c.integ, null);
  t.notOk(chosenToWire(c, IKE).transforms.some((x) => x.type === TransformType.INTEG));
});

t.test('unknown transform types and RFC 9370 additional key exchanges', async (t) => {
  const base = offer('ike', ['aes128gcm16-prfsha256-ecp256'])[0]!;
  const ours = ike('aes128gcm16-prfsha256-ecp256');
  const withUnknown = { ...base, transforms: [...base.transforms, { type: 99, id: 1 }] };
  t.equal(selectProposal(ours, [withUnknown], IKE), null, 'unknown type: proposal skipped');
  t.equal(
    selectProposal(ours, [withUnknown, { ...base, num: 2 }], IKE)?.num,
    2,
    'next proposal still considered',
  );
  const optionalKe = { ...base, transforms: [...base.transforms, { type: 6, id: 36 }, { type: 6, id: 0 }] };
  t.ok(selectProposal(ours, [optionalKe], IKE), 'optional ADDKE (with NONE) accepted without it');
  const mandatoryKe = { ...base, transforms: [...base.transforms, { type: 6, id: 36 }] };
  t.equal(selectProposal(ours, [mandatoryKe], IKE), null, 'mandatory ADDKE refused');
});

t.test('ESP PFS semantics (strongSwan select_algo)', async (t) => {
  const sel = (ours: string, theirs: string, opts = {}) =>
    selectProposal(esp(ours), offer('esp', [theirs]), ESP, opts);
  t.equal(sel('aes128gcm16', 'aes128gcm16')?.dh, null, 'no PFS either side');
  t.equal(sel('aes128gcm16-modp2048', 'aes128gcm16-modp2048')?.dh, DhId.MODP2048, 'PFS both sides');
  t.equal(sel('aes128gcm16-modp2048', 'aes128gcm16'), null, 'we require PFS, they offer none');
  t.equal(sel('aes128gcm16', 'aes128gcm16-modp2048'), null, 'they require PFS, we have none');
  t.equal(sel('aes128gcm16', 'aes128gcm16-modp2048-none')?.dh, null, 'they make PFS optional');
  t.equal(sel('aes128gcm16-modp2048-none', 'aes128gcm16')?.dh, null, 'we make PFS optional');
  t.equal(sel('aes128gcm16-none-modp2048', 'aes128gcm16-modp2048-none')?.dh, null, 'our order: none first');
  t.equal(
    sel('aes128gcm16-modp2048-none', 'aes128gcm16-none-modp2048')?.dh,
    DhId.MODP2048,
    'our order: group first',
  );
  t.equal(sel('aes128gcm16-ecp256', 'aes128gcm16-modp2048'), null, 'different groups');
  t.equal(sel('aes128gcm16-ecp256', 'aes128gcm16', { ignoreDh: true })?.dh, null, 'ignoreDh (IKE_AUTH)');
  t.equal(sel('aes128gcm16', 'aes128gcm16-modp2048', { ignoreDh: true })?.dh, null, 'ignoreDh both ways');
  t.equal(sel('aes128gcm16-ecp256', 'aes128gcm16-ecp256', { ignoreDh: true })?.dh, null, 'ignoreDh drops DH');
});

t.test('ESP ESN semantics', async (t) => {
  const sel = (ours: string, theirs: string, preferOurs = true) =>
    selectProposal(esp(ours), offer('esp', [theirs]), ESP, { preferOurs });
  t.equal(sel('aes128gcm16', 'aes128gcm16')?.esn, false, 'noesn default on both sides');
  t.equal(sel('aes128gcm16-esn', 'aes128gcm16'), null, 'we require ESN');
  t.equal(sel('aes128gcm16', 'aes128gcm16-esn'), null, 'they require ESN');
  t.equal(sel('aes128gcm16-esn-noesn', 'aes128gcm16-noesn-esn')?.esn, true, 'ours preferred');
  t.equal(sel('aes128gcm16-esn-noesn', 'aes128gcm16-noesn-esn', false)?.esn, false, 'theirs preferred');
  const noEsn: Proposal = {
    num: 1,
    protocolId: ESP,
    spi: Buffer.alloc(4, 1),
    transforms: [{ type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 128 }],
  };
  t.equal(selectProposal(esp('aes128gcm16'), [noEsn], ESP), null, 'ESP without an ESN transform');
  const withPrf = {
    ...noEsn,
    transforms: [...noEsn.transforms, { type: TransformType.PRF, id: 5 }, { type: TransformType.ESN, id: 0 }],
  };
  t.equal(selectProposal(esp('aes128gcm16'), [withPrf], ESP), null, 'ESP with a PRF transform');
});

t.test('ESP classic: key lengths and integrity', async (t) => {
  const c = selectProposal(
    esp('aes256-aes128-sha512-sha256'),
    offer('esp', ['aes128gcm16', 'aes128-aes192-sha1-sha256']),
    ESP,
  )!;
  t.same(
    [c.num, c.encr, c.integ, c.prf, c.dh, c.esn],
    [2, { id: EncrId.AES_CBC, keyLen: 128 }, IntegId.HMAC_SHA2_256_128, null, null, false],
  );
  t.same(c.spi, Buffer.from('0a0b0c0d', 'hex'), 'their SPI');
  t.equal(selectProposal(esp('aes192-sha256'), offer('esp', ['aes128-aes256-sha256']), ESP), null);
});

t.test('responder reply and initiator validation round trip', async (t) => {
  const initiatorOffer = parseProposals(
    'aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-x25519, aes256-sha256-modp2048',
    'ike',
  );
  const wire = initiatorOffer.map((p, i) => toWireProposal(p, i + 1, IKE, NO_SPI));
  const responderConfig = ike('aes128gcm16-prfsha256-x25519');
  const chosen = selectProposal(responderConfig, wire, IKE)!;
  const reply = chosenToWire(chosen, IKE);
  t.same(reply, {
    num: 1,
    protocolId: IKE,
    spi: NO_SPI,
    transforms: [
      { type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 128 },
      { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
      { type: TransformType.DH, id: DhId.CURVE25519 },
    ],
  });
  const back = wireToChosen(reply);
  t.same(back, chosen);
  t.ok(checkChosenInOffer(back, initiatorOffer));

  const tweak = (c: Partial<Chosen>) => checkChosenInOffer({ ...back, ...c }, initiatorOffer);
  t.notOk(tweak({ encr: { id: EncrId.AES_GCM_16, keyLen: 192 } }), 'key length not offered');
  t.notOk(tweak({ prf: PrfId.HMAC_SHA2_512 }), 'PRF not offered');
  t.notOk(tweak({ dh: DhId.MODP2048 }), 'group offered only with the other cipher');
  t.notOk(tweak({ integ: IntegId.HMAC_SHA2_256_128 }), 'integrity with AEAD');
  t.notOk(tweak({ dh: null }), 'IKE without DH');
  t.notOk(tweak({ esn: true }), 'ESN in IKE');
  t.ok(
    tweak({
      encr: { id: EncrId.AES_CBC, keyLen: 256 },
      integ: IntegId.HMAC_SHA2_256_128,
      dh: DhId.MODP2048,
    }),
    'second proposal',
  );
});

t.test('ESP reply: responder SPI, ESN always present, PFS check', async (t) => {
  const ours = esp('aes256gcm16-esn-noesn', 'aes256-sha256');
  const chosen = selectProposal(ours, offer('esp', ['aes256gcm16-esn']), ESP)!;
  const mySpi = Buffer.from('11223344', 'hex');
  const reply = chosenToWire(chosen, ESP, mySpi);
  t.same(reply.spi, mySpi, 'responder SPI overrides');
  t.same(reply.transforms.at(-1), { type: TransformType.ESN, id: EsnId.YES });
  t.same(chosenToWire({ ...chosen, esn: false }, ESP).transforms.at(-1), {
    type: TransformType.ESN,
    id: EsnId.NO,
  });
  const back = wireToChosen(reply);
  t.equal(back.esn, true);
  t.ok(checkChosenInOffer(back, esp('aes256gcm16-esn')));
  t.notOk(checkChosenInOffer(back, esp('aes256gcm16')), 'ESN not offered');
  const pfsOffer = esp('aes256gcm16-modp2048');
  t.notOk(checkChosenInOffer({ ...back, esn: false }, pfsOffer), 'PFS required but none chosen');
  t.ok(checkChosenInOffer({ ...back, esn: false }, pfsOffer, { ignoreDh: true }), 'IKE_AUTH: DH ignored');
  t.ok(checkChosenInOffer({ ...back, esn: false, dh: DhId.MODP2048 }, pfsOffer));
  t.ok(checkChosenInOffer({ ...back, esn: false }, esp('aes256gcm16-modp2048-none')), 'optional PFS');
});

t.test('wireToChosen validates the reply shape', async (t) => {
  const p = (transforms: Proposal['transforms']): Proposal => ({
    num: 1,
    protocolId: ESP,
    spi: Buffer.alloc(4),
    transforms,
  });
  const gcm = { type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 128 };
  t.throws(() => wireToChosen(p([gcm, { ...gcm, keyLength: 256 }])), {
    code: 'ERR_PROPOSAL',
    message: /several/,
  });
  t.throws(() => wireToChosen(p([{ type: TransformType.ESN, id: 0 }])), {
    code: 'ERR_PROPOSAL',
    message: /no encryption/,
  });
  t.throws(() => wireToChosen(p([gcm, { type: 42, id: 1 }])), {
    code: 'ERR_PROPOSAL',
    message: /unknown transform/,
  });
  t.throws(() => wireToChosen(p([gcm, { type: 6, id: 36 }])), { code: 'ERR_PROPOSAL' });
  t.same(
    wireToChosen(
      p([gcm, { type: 6, id: 0 }, { type: TransformType.DH, id: 0 }, { type: TransformType.INTEG, id: 0 }]),
    ),
    {
      num: 1,
      spi: Buffer.alloc(4),
      encr: { id: EncrId.AES_GCM_16, keyLen: 128 },
      integ: null,
      prf: null,
      dh: null,
      esn: false,
    },
  );
  t.equal(
    wireToChosen(p([{ type: TransformType.ENCR, id: EncrId.AES_CBC }])).encr.keyLen,
    0,
    'missing key length is 0',
  );
});
