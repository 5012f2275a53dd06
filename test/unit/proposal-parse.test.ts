import t from 'tap';
import { TwinsecError } from '../../src/errors.js';
import {
  algName,
  chosenToString,
  defaultProposals,
  parseProposal,
  parseProposals,
  specToString,
  toWireProposal,
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

const CBC = EncrId.AES_CBC;
const GCM = EncrId.AES_GCM_16;

t.test('every keyword maps to its transform', async (t) => {
  const encr: [string, number, number][] = [
    ['aes', CBC, 128],
    ['aes128', CBC, 128],
    ['aes192', CBC, 192],
    ['aes256', CBC, 256],
    ['aes128gcm16', GCM, 128],
    ['aes192gcm16', GCM, 192],
    ['aes256gcm16', GCM, 256],
    ['aes128gcm128', GCM, 128],
    ['aes192gcm128', GCM, 192],
    ['aes256gcm128', GCM, 256],
    ['aes128gcm', GCM, 128],
    ['aes256gcm', GCM, 256],
  ];
  for (const [kw, id, keyLen] of encr) {
    const integ = id === CBC ? '-sha256' : '';
    t.same(parseProposal(`${kw}${integ}-modp2048`, 'ike').encr, [{ id, keyLen }], kw);
  }
  const integ: [string, number][] = [
    ['sha', IntegId.HMAC_SHA1_96],
    ['sha1', IntegId.HMAC_SHA1_96],
    ['sha256', IntegId.HMAC_SHA2_256_128],
    ['sha2_256', IntegId.HMAC_SHA2_256_128],
    ['sha384', IntegId.HMAC_SHA2_384_192],
    ['sha2_384', IntegId.HMAC_SHA2_384_192],
    ['sha512', IntegId.HMAC_SHA2_512_256],
    ['sha2_512', IntegId.HMAC_SHA2_512_256],
  ];
  for (const [kw, id] of integ) t.same(parseProposal(`aes128-${kw}`, 'esp').integ, [id], kw);
  t.same(parseProposal('aes128-md5-modp2048', 'ike').integ, [IntegId.HMAC_MD5_96], 'md5 for IKE');
  t.same(parseProposal('aes128-md5', 'esp').integ, [IntegId.HMAC_MD5_96], 'HMAC-MD5-96 for ESP (RFC 2403)');
  const prf: [string, number][] = [
    ['prfsha1', PrfId.HMAC_SHA1],
    ['prfsha256', PrfId.HMAC_SHA2_256],
    ['prfsha384', PrfId.HMAC_SHA2_384],
    ['prfsha512', PrfId.HMAC_SHA2_512],
    ['prfmd5', PrfId.HMAC_MD5],
  ];
  for (const [kw, id] of prf) t.same(parseProposal(`aes128-sha256-${kw}-ecp256`, 'ike').prf, [id], kw);
  const dh: [string, number][] = [
    ['modp768', DhId.MODP768],
    ['modp1024', DhId.MODP1024],
    ['modp1536', DhId.MODP1536],
    ['modp2048', DhId.MODP2048],
    ['modp3072', DhId.MODP3072],
    ['modp4096', DhId.MODP4096],
    ['modp2048s256', DhId.MODP2048S256],
    ['ecp256', DhId.ECP256],
    ['ecp384', DhId.ECP384],
    ['x25519', DhId.CURVE25519],
    ['curve25519', DhId.CURVE25519],
  ];
  for (const [kw, id] of dh) t.same(parseProposal(`aes128-sha256-${kw}`, 'ike').dh, [id], kw);
  t.same(parseProposal('aes128-sha256-esn', 'esp').esn, [EsnId.YES]);
  t.same(parseProposal('aes128-sha256-noesn', 'esp').esn, [EsnId.NO]);
  t.same(parseProposal('aes128-sha256-esn-noesn', 'esp').esn, [EsnId.YES, EsnId.NO], 'both, in order');
});

t.test('order is preference, duplicates collapse, case and blanks are tolerated', async (t) => {
  const s = parseProposal(' AES256-aes128-SHA384-sha256-aes256-ECP384-x25519 ', 'ike');
  t.same(s.encr, [
    { id: CBC, keyLen: 256 },
    { id: CBC, keyLen: 128 },
  ]);
  t.same(s.integ, [IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_256_128]);
  t.same(s.dh, [DhId.ECP384, DhId.CURVE25519]);
  t.equal(s.text, 'AES256-aes128-SHA384-sha256-aes256-ECP384-x25519');
});

t.test('IKE PRF rules', async (t) => {
  t.same(
    parseProposal('aes128-sha256-sha1-modp2048', 'ike').prf,
    [PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA1],
    'derived from integrity algorithms, in order',
  );
  t.same(
    parseProposal('aes128-sha256-prfsha384-modp2048', 'ike').prf,
    [PrfId.HMAC_SHA2_384],
    'explicit PRF wins',
  );
  const aead = parseProposal('aes256gcm16-ecp256', 'ike');
  t.same(
    aead.prf,
    [PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512, PrfId.HMAC_SHA1],
    'AEAD without PRF: default PRF list',
  );
  t.same(aead.integ, []);
  const aeadInteg = parseProposal('aes256gcm16-sha384-ecp384', 'ike');
  t.same(aeadInteg.prf, [PrfId.HMAC_SHA2_384], 'AEAD: integrity keyword implies the PRF (strongSwan)');
  t.same(aeadInteg.integ, [], '...and is then dropped');
  t.same(parseProposal('aes256gcm16-prfsha256-x25519', 'ike'), {
    text: 'aes256gcm16-prfsha256-x25519',
    encr: [{ id: GCM, keyLen: 256 }],
    integ: [],
    prf: [PrfId.HMAC_SHA2_256],
    dh: [DhId.CURVE25519],
    esn: [],
  });
});

t.test('IKE DH rules', async (t) => {
  t.same(parseProposal('aes128-sha256-none-modp2048', 'ike').dh, [DhId.MODP2048], 'none is dropped in IKE');
  t.throws(() => parseProposal('aes128-sha256-none', 'ike'), { message: /DH group is mandatory/ });
  t.throws(() => parseProposal('aes128-sha256', 'ike'), { code: 'ERR_PROPOSAL', message: /DH group/ });
});

t.test('ESP rules', async (t) => {
  t.same(parseProposal('aes256gcm16', 'esp'), {
    text: 'aes256gcm16',
    encr: [{ id: GCM, keyLen: 256 }],
    integ: [],
    prf: [],
    dh: [],
    esn: [EsnId.NO],
  });
  t.same(parseProposal('aes128-sha256-modp2048', 'esp').dh, [DhId.MODP2048], 'DH group = PFS');
  t.same(parseProposal('aes128-sha256-modp2048-none', 'esp').dh, [DhId.MODP2048, DhId.NONE], 'optional PFS');
  t.same(parseProposal('aes128-sha256-none', 'esp').dh, [], 'none alone = no PFS');
  t.same(parseProposal('aes128-sha256-prfsha512', 'esp').prf, [], 'PRFs are ignored in ESP');
  t.same(parseProposal('aes128gcm16-sha256', 'esp').integ, [], 'AEAD drops integrity');
});

t.test('errors', async (t) => {
  const cases: [string, 'ike' | 'esp', RegExp][] = [
    ['aes999-sha256-modp2048', 'ike', /^unknown algorithm 'aes999'$/],
    ['aes128-sha256-modp9999', 'ike', /unknown algorithm 'modp9999'/],
    ['3des-sha1-modp2048', 'ike', /^'3des' is supported for ESP only with IKEv2; use aes for the IKE SA$/],
    ['des-sha1', 'esp', /^DES is refused: its 56-bit key is too weak; use aes or 3des$/],
    ['aes128-des-sha256-modp2048', 'ike', /^DES is refused/],
    ['aes128--sha256-modp2048', 'ike', /empty algorithm/],
    ['', 'ike', /empty proposal/],
    ['   ', 'esp', /empty proposal/],
    ['sha256-modp2048', 'ike', /encryption algorithm is mandatory in IKE/],
    ['sha256', 'esp', /encryption algorithm is mandatory in ESP/],
    ['aes128-modp2048', 'ike', /integrity algorithm is mandatory in IKE/],
    ['aes128', 'esp', /integrity algorithm is mandatory in ESP/],
    ['aes128-aes128gcm16-sha256-modp2048', 'ike', /can't be mixed/],
    ['aes256gcm16-aes256-sha256', 'esp', /can't be mixed/],
    ['aes128-sha256-modp2048-esn', 'ike', /only valid in ESP/],
    ['aes128-default', 'esp', /'default' cannot be combined/],
  ];
  for (const [text, kind, msg] of cases) {
    const err = t.throws(() => parseProposal(text, kind), TwinsecError, `${kind} '${text}'`) as TwinsecError;
    t.equal(err.code, 'ERR_PROPOSAL');
    t.match(err.message, msg);
  }
});

t.test('default proposals', async (t) => {
  const ike = parseProposals('default', 'ike');
  t.equal(ike.length, 2, 'classic + AEAD, like swanctl');
  t.same(ike[0], parseProposal('default', 'ike'));
  t.equal(
    specToString(ike[0]!),
    'aes128-aes192-aes256-sha256-sha384-sha512-sha1-prfsha256-prfsha384-prfsha512-prfsha1-' +
      'ecp256-ecp384-x25519-modp3072-modp4096-modp2048',
  );
  t.equal(
    specToString(ike[1]!),
    'aes128gcm16-aes192gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-prfsha1-' +
      'ecp256-ecp384-x25519-modp3072-modp4096-modp2048',
  );
  const esp = parseProposals(['default'], 'esp');
  t.equal(specToString(esp[0]!), 'aes128-aes192-aes256-sha256-sha384-sha512-sha1-noesn');
  t.equal(specToString(esp[1]!), 'aes128gcm16-aes192gcm16-aes256gcm16-noesn');
  t.not(defaultProposals('ike')[0]!.dh, defaultProposals('ike')[0]!.dh, 'fresh arrays each call');
  t.equal(parseProposals('aes128-sha256-modp2048, aes256gcm16-prfsha256-x25519', 'ike').length, 2);
  t.throws(() => parseProposals([], 'esp'), { code: 'ERR_PROPOSAL' });
});

t.test('the config defaults parse', async (t) => {
  for (const p of ['aes256gcm16-prfsha256-x25519', 'aes256-sha256-modp2048']) t.ok(parseProposal(p, 'ike'));
  for (const p of ['aes256gcm16', 'aes256-sha256']) t.ok(parseProposal(p, 'esp'));
});

t.test('algName and string forms use strongSwan keywords', async (t) => {
  t.equal(algName(TransformType.ENCR, GCM, 256), 'aes256gcm16');
  t.equal(algName(TransformType.ENCR, CBC, 128), 'aes128');
  t.equal(algName(TransformType.ENCR, 23, 128), 'encr_23_128');
  t.equal(algName(TransformType.INTEG, IntegId.HMAC_SHA2_256_128), 'sha256');
  t.equal(algName(TransformType.INTEG, IntegId.HMAC_SHA1_96), 'sha1');
  t.equal(algName(TransformType.PRF, PrfId.HMAC_SHA2_256), 'prfsha256');
  t.equal(algName(TransformType.DH, DhId.CURVE25519), 'x25519');
  t.equal(algName(TransformType.DH, DhId.MODP2048), 'modp2048');
  t.equal(algName(TransformType.DH, DhId.ECP256), 'ecp256');
  t.equal(algName(TransformType.DH, 21), 'ke_21');
  t.equal(algName(TransformType.ESN, EsnId.YES), 'esn');
  t.equal(algName(TransformType.ESN, EsnId.NO), 'noesn');
  t.equal(algName(9, 1), 'transform_9_1');
  for (const text of [
    'aes256gcm16-prfsha384-ecp384',
    'aes128-sha256-prfsha256-modp2048',
    'aes128-sha1-esn-noesn',
  ]) {
    const kind = text.includes('esn') ? 'esp' : 'ike';
    t.equal(specToString(parseProposal(text, kind)), text, `round trip ${text}`);
  }
  t.equal(
    chosenToString({
      num: 1,
      spi: Buffer.alloc(0),
      encr: { id: GCM, keyLen: 128 },
      integ: null,
      prf: PrfId.HMAC_SHA2_256,
      dh: DhId.ECP256,
      esn: false,
    }),
    'aes128gcm16-prfsha256-ecp256',
  );
});

t.test('toWireProposal', async (t) => {
  const ike = toWireProposal(
    parseProposal('aes256-aes128-sha256-prfsha256-ecp256-modp2048', 'ike'),
    1,
    1,
    Buffer.alloc(0),
  );
  t.same(ike, {
    num: 1,
    protocolId: ProtocolId.IKE,
    spi: Buffer.alloc(0),
    transforms: [
      { type: TransformType.ENCR, id: CBC, keyLength: 256 },
      { type: TransformType.ENCR, id: CBC, keyLength: 128 },
      { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
      { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
      { type: TransformType.DH, id: DhId.ECP256 },
      { type: TransformType.DH, id: DhId.MODP2048 },
    ],
  });
  const spi = Buffer.from('c0ffee01', 'hex');
  t.same(toWireProposal(parseProposal('aes128gcm16', 'esp'), 2, ProtocolId.ESP, spi).transforms, [
    { type: TransformType.ENCR, id: GCM, keyLength: 128 },
    { type: TransformType.ESN, id: EsnId.NO },
  ]);
  const pfs = parseProposal('aes128-sha256-x25519-esn', 'esp');
  t.same(toWireProposal(pfs, 1, ProtocolId.ESP, spi).transforms, [
    { type: TransformType.ENCR, id: CBC, keyLength: 128 },
    { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
    { type: TransformType.DH, id: DhId.CURVE25519 },
    { type: TransformType.ESN, id: EsnId.YES },
  ]);
  t.notOk(
    toWireProposal(pfs, 1, ProtocolId.ESP, spi, { omitDh: true }).transforms.some(
      (x) => x.type === TransformType.DH,
    ),
    'omitDh for IKE_AUTH',
  );
  t.same(toWireProposal(pfs, 1, ProtocolId.ESP, spi).spi, spi);
});
