/**
 * IKE messages captured from two strongSwan 5.9.8 charons (test/fixtures/strongswan/capture.sh):
 * each decodes, re-encodes to the identical bytes and passes the message rules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import {
  DhId,
  EncrId,
  ExchangeType,
  HeaderFlag,
  IntegId,
  NotifyType,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformType,
} from '../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage, peekVersion } from '../../src/ike/wire/message.js';
import { checkMessageRules } from '../../src/ike/wire/rules.js';
import type { IkeMessage, NotifyPayload, Payload, SkfPayload, SkPayload } from '../../src/ike/wire/types.js';

const DIR = new URL('../../../test/fixtures/strongswan/', import.meta.url);
const EXCHANGES: Record<string, number> = {
  ike_sa_init: ExchangeType.IKE_SA_INIT,
  ike_auth: ExchangeType.IKE_AUTH,
  informational: ExchangeType.INFORMATIONAL,
};

interface Capture {
  file: string;
  variant: string;
  exchange: number;
  response: boolean;
  buf: Buffer;
  msg: IkeMessage;
}

const captures: Capture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort()
  .map((file) => {
    const [variant = '', , exchange = '', direction] = file.split('.');
    const buf = Buffer.from(readFileSync(new URL(file, DIR), 'utf8').trim(), 'hex');
    return {
      file,
      variant,
      exchange: EXCHANGES[exchange]!,
      response: direction === 'response',
      buf,
      msg: decodeMessage(buf),
    };
  });
const of = (variant: string) => captures.filter((c) => c.variant === variant);
const isNotify = (p: Payload): p is NotifyPayload => p.type === PayloadType.NOTIFY && 'notifyType' in p;
const notifies = (m: IkeMessage) => m.payloads.filter(isNotify).map((p) => p.notifyType);

t.test('all four captured variants are present', async (t) => {
  for (const v of ['gcm-x25519', 'cbc-modp2048', 'invalid-ke', 'frag-x25519']) t.ok(of(v).length >= 6, v);
});

t.test('every capture re-encodes to identical bytes and passes the rules', async (t) => {
  for (const c of captures) {
    t.equal(peekVersion(c.buf), 2, `${c.file}: IKEv2`);
    t.equal(c.msg.header.exchange, c.exchange, `${c.file}: exchange`);
    t.equal((c.msg.header.flags & HeaderFlag.RESPONSE) !== 0, c.response, `${c.file}: response flag`);
    t.equal(encodeMessage(c.msg).toString('hex'), c.buf.toString('hex'), `${c.file}: byte-identical`);
    t.equal(checkMessageRules(c.exchange, c.response, c.msg.payloads, false), null, `${c.file}: rules`);
  }
});

t.test('IKE_SA_INIT with aes256gcm16-prfsha256-x25519', async (t) => {
  const [req, resp] = of('gcm-x25519').map((c) => c.msg);
  t.strictSame(
    req!.payloads.map((p) => p.type),
    [PayloadType.SA, PayloadType.KE, PayloadType.NONCE, 41, 41, 41, 41, 41],
  );
  t.strictSame(notifies(req!), [
    NotifyType.NAT_DETECTION_SOURCE_IP,
    NotifyType.NAT_DETECTION_DESTINATION_IP,
    NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,
    NotifyType.SIGNATURE_HASH_ALGORITHMS,
    NotifyType.REDIRECT_SUPPORTED,
  ]);
  t.strictSame(notifies(resp!).slice(-2), [
    NotifyType.CHILDLESS_IKEV2_SUPPORTED,
    NotifyType.MULTIPLE_AUTH_SUPPORTED,
  ]);
  for (const m of [req!, resp!]) {
    const [sa, ke, nonce] = m.payloads;
    t.strictSame(sa, {
      type: 33,
      proposals: [
        {
          num: 1,
          protocolId: ProtocolId.IKE,
          spi: Buffer.alloc(0),
          transforms: [
            { type: TransformType.ENCR, id: EncrId.AES_GCM_16, keyLength: 256 },
            { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
            { type: TransformType.DH, id: DhId.CURVE25519 },
          ],
        },
      ],
    });
    t.match(ke, { type: 34, group: DhId.CURVE25519 });
    t.equal(ke && 'data' in ke ? ke.data.length : 0, 32, 'X25519 public value');
    t.equal(nonce && 'data' in nonce ? nonce.data.length : 0, 32, 'nonce');
  }
  t.equal(req!.header.spiR.toString('hex'), '0000000000000000');
  t.same(resp!.header.spiI, req!.header.spiI);
  t.equal(req!.header.flags, HeaderFlag.INITIATOR);
  t.equal(resp!.header.flags, HeaderFlag.RESPONSE);
});

t.test('IKE_SA_INIT with aes128-sha256-modp2048', async (t) => {
  const [req] = of('cbc-modp2048').map((c) => c.msg);
  const [sa, ke] = req!.payloads;
  t.match(sa, {
    proposals: [
      {
        transforms: [
          { type: TransformType.ENCR, id: EncrId.AES_CBC, keyLength: 128 },
          // strongSwan lists INTEG before PRF
          { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128 },
          { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256 },
          { type: TransformType.DH, id: DhId.MODP2048 },
        ],
      },
    ],
  });
  t.equal(ke && 'data' in ke ? ke.data.length : 0, 256, 'MODP-2048 public value');
});

t.test('INVALID_KE_PAYLOAD: an error-only response, then the retry', async (t) => {
  const [first, reject, retry] = of('invalid-ke').map((c) => c.msg);
  t.match(first!.payloads[1], { type: 34, group: DhId.CURVE25519 });
  t.strictSame(reject!.payloads, [
    {
      type: 41,
      protocolId: 0,
      spi: Buffer.alloc(0),
      notifyType: NotifyType.INVALID_KE_PAYLOAD,
      data: Buffer.from([0, 14]),
    },
  ]);
  t.equal(reject!.header.spiR.toString('hex'), '0000000000000000', 'no responder SPI yet');
  t.match(retry!.payloads[1], { type: 34, group: DhId.MODP2048 });
  t.strictSame(notifies(retry!), notifies(first!));
});

t.test('encrypted exchanges: header and SK payload only', async (t) => {
  const sk = (c: Capture) => {
    t.equal(c.msg.payloads.length, 1, `${c.file}: one payload`);
    return c.msg.payloads[0] as SkPayload;
  };
  const [, , authReq, authResp, infoReq, infoResp] = of('gcm-x25519');
  t.equal(sk(authReq!).firstInner, PayloadType.IDi, 'IKE_AUTH request starts with IDi');
  t.equal(sk(authResp!).firstInner, PayloadType.IDr, 'IKE_AUTH response starts with IDr');
  t.equal(sk(infoReq!).firstInner, PayloadType.DELETE, 'INFORMATIONAL request carries a Delete');
  t.equal(sk(infoResp!).firstInner, PayloadType.NONE, 'the Delete answer is empty');
  // AES-GCM: 8-byte IV, 16-byte ICV, at least one block of padding length inside.
  t.equal(sk(infoResp!).data.length, 8 + 16 + 1, 'empty payload: IV || pad length || ICV');
  for (const c of of('cbc-modp2048').slice(2)) {
    // AES-CBC with HMAC-SHA-256-128: 16-byte IV, whole blocks, 16-byte ICV.
    t.equal((sk(c).data.length - 32) % 16, 0, `${c.file}: CBC blocks`);
    t.equal(
      checkMessageRules(c.exchange, c.response, c.msg.payloads, true),
      `${ExchangeType[c.exchange]} ${c.response ? 'response' : 'request'}: SK payload inside an encrypted payload`,
    );
  }
});

t.test('RFC 7383 fragments', async (t) => {
  for (const response of [false, true]) {
    const frags = of('frag-x25519')
      .filter((c) => c.exchange === ExchangeType.IKE_AUTH && c.response === response)
      .map((c) => c.msg.payloads[0] as SkfPayload);
    t.ok(frags.length >= 2, 'fragmented');
    t.strictSame(
      frags.map((f) => [f.type, f.fragmentNumber, f.totalFragments, f.firstInner]),
      frags.map((_, i) => [
        PayloadType.SKF,
        i + 1,
        frags.length,
        i === 0 ? (response ? PayloadType.IDr : PayloadType.IDi) : 0,
      ]),
    );
  }
});
