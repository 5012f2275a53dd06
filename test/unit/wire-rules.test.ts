import t from 'tap';
import { ExchangeType, NotifyType, PayloadType as P } from '../../src/ike/wire/constants.js';
import { checkMessageRules, findMessageRule, MESSAGE_RULES } from '../../src/ike/wire/rules.js';
import type { Payload } from '../../src/ike/wire/types.js';

const empty = Buffer.alloc(0);
/** The smallest payload of each type: the rules look at types and notify types only. */
function p(type: number): Payload {
  switch (type) {
    case P.SA:
      return { type, proposals: [] };
    case P.KE:
      return { type, group: 31, data: empty };
    case P.IDi:
    case P.IDr:
      return { type, idType: 2, data: empty };
    case P.AUTH:
      return { type, method: 2, data: empty };
    case P.NONCE:
      return { type, data: empty };
    case P.VENDOR:
      return { type, data: empty };
    case P.NOTIFY:
      return n(NotifyType.INITIAL_CONTACT);
    case P.DELETE:
      return { type, protocolId: 1, spiSize: 0, spis: [] };
    case P.TSi:
    case P.TSr:
      return { type, selectors: [] };
    case P.SK:
      return { type, firstInner: 0, data: empty };
    default:
      return { type, critical: false, body: empty };
  }
}
const n = (notifyType: number): Payload => ({ type: 41, protocolId: 0, spi: empty, notifyType, data: empty });
const ps = (...types: number[]) => types.map(p);

const { IKE_SA_INIT: INIT, IKE_AUTH: AUTH, CREATE_CHILD_SA: CHILD, INFORMATIONAL: INFO } = ExchangeType;
const REQ = false;
const RESP = true;

/** [name, exchange, response?, payloads, encrypted?, expected: null or a pattern of the reason] */
const CASES: [string, number, boolean, Payload[], boolean, RegExp | null][] = [
  ['INIT request', INIT, REQ, ps(P.SA, P.KE, P.NONCE, P.NOTIFY, P.NOTIFY, P.VENDOR), false, null],
  ['INIT request with an unknown payload type', INIT, REQ, [...ps(P.SA, P.KE, P.NONCE), p(200)], false, null],
  ['INIT request without KE', INIT, REQ, ps(P.SA, P.NONCE), false, /IKE_SA_INIT request: KE payload missing/],
  ['INIT request with two SAs', INIT, REQ, ps(P.SA, P.SA, P.KE, P.NONCE), false, /2 SA payloads, at most 1/],
  [
    'INIT request with CERTREQ',
    INIT,
    REQ,
    ps(P.SA, P.KE, P.NONCE, P.CERTREQ),
    false,
    /CERTREQ payload not allowed/,
  ],
  [
    'INIT request encrypted',
    INIT,
    REQ,
    ps(P.SA, P.KE, P.NONCE),
    true,
    /IKE_SA_INIT request must not be encrypted/,
  ],
  ['INIT request with SK', INIT, REQ, ps(P.SK), false, /must not be encrypted/],
  ['INIT request with IDi', INIT, REQ, ps(P.SA, P.KE, P.NONCE, P.IDi), false, /IDi payload not allowed/],
  ['INIT response with CERTREQ', INIT, RESP, ps(P.SA, P.KE, P.NONCE, P.CERTREQ, P.CERTREQ), false, null],
  ['INIT response INVALID_KE_PAYLOAD only', INIT, RESP, [n(NotifyType.INVALID_KE_PAYLOAD)], false, null],
  ['INIT response NO_PROPOSAL_CHOSEN only', INIT, RESP, [n(NotifyType.NO_PROPOSAL_CHOSEN)], false, null],
  ['INIT response COOKIE only', INIT, RESP, [n(NotifyType.COOKIE)], false, null],
  [
    'INIT response status notify only',
    INIT,
    RESP,
    [n(NotifyType.NAT_DETECTION_SOURCE_IP)],
    false,
    /SA payload missing/,
  ],
  ['INIT response empty', INIT, RESP, [], false, /IKE_SA_INIT response: SA payload missing/],
  ['INIT request COOKIE only', INIT, REQ, [n(NotifyType.COOKIE)], false, /SA payload missing/],
  ['INIT response error still bounded', INIT, RESP, [n(17), ...ps(P.KE, P.KE)], false, /2 KE payloads/],
  [
    'INIT too many notifies',
    INIT,
    REQ,
    [...ps(P.SA, P.KE, P.NONCE), ...Array.from({ length: 21 }, () => p(P.NOTIFY))],
    false,
    /21 NOTIFY payloads, at most 20/,
  ],

  ['AUTH request', AUTH, REQ, ps(P.IDi, P.NOTIFY, P.IDr, P.AUTH, P.SA, P.TSi, P.TSr, P.NOTIFY), true, null],
  [
    'AUTH request with certificates and CP',
    AUTH,
    REQ,
    ps(P.IDi, P.CERT, P.CERTREQ, P.AUTH, P.CP, P.SA, P.TSi, P.TSr),
    true,
    null,
  ],
  ['AUTH request, EAP round', AUTH, REQ, ps(P.EAP), true, null],
  ['AUTH request, childless', AUTH, REQ, ps(P.IDi, P.AUTH), true, null],
  ['AUTH request outer view', AUTH, REQ, ps(P.SK), false, null],
  ['AUTH request in the clear', AUTH, REQ, ps(P.IDi, P.AUTH), false, /IKE_AUTH request must be encrypted/],
  ['AUTH request, plaintext beside SK', AUTH, REQ, ps(P.IDi, P.SK), false, /IDi payload must be encrypted/],
  ['AUTH request, nested SK', AUTH, REQ, ps(P.IDi, P.SK), true, /SK payload inside an encrypted payload/],
  ['AUTH request, SA without TS', AUTH, REQ, ps(P.IDi, P.AUTH, P.SA), true, /SA without TSi, TSr/],
  ['AUTH request, TSi alone', AUTH, REQ, ps(P.IDi, P.AUTH, P.TSi), true, /TSi without SA, TSr/],
  ['AUTH request with KE', AUTH, REQ, ps(P.IDi, P.AUTH, P.KE), true, /KE payload not allowed/],
  ['AUTH request with two AUTHs', AUTH, REQ, ps(P.IDi, P.AUTH, P.AUTH), true, /2 AUTH payloads/],
  ['AUTH response', AUTH, RESP, ps(P.IDr, P.AUTH, P.SA, P.TSi, P.TSr), true, null],
  ['AUTH response AUTHENTICATION_FAILED only', AUTH, RESP, [n(NotifyType.AUTHENTICATION_FAILED)], true, null],
  [
    'AUTH response, child failed',
    AUTH,
    RESP,
    [...ps(P.IDr, P.AUTH), n(NotifyType.TS_UNACCEPTABLE)],
    true,
    null,
  ],
  [
    'AUTH response with IDi',
    AUTH,
    RESP,
    ps(P.IDi, P.AUTH),
    true,
    /IKE_AUTH response: IDi payload not allowed/,
  ],
  [
    'AUTH response with CERTREQ',
    AUTH,
    RESP,
    ps(P.IDr, P.AUTH, P.CERTREQ),
    true,
    /CERTREQ payload not allowed/,
  ],

  [
    'CHILD request',
    CHILD,
    REQ,
    [n(NotifyType.REKEY_SA), ...ps(P.SA, P.NONCE, P.KE, P.TSi, P.TSr)],
    true,
    null,
  ],
  ['CHILD request, IKE rekey', CHILD, REQ, ps(P.SA, P.NONCE, P.KE), true, null],
  [
    'CHILD request without nonce',
    CHILD,
    REQ,
    ps(P.SA, P.TSi, P.TSr),
    true,
    /CREATE_CHILD_SA request: NONCE payload missing/,
  ],
  ['CHILD request with one TS', CHILD, REQ, ps(P.SA, P.NONCE, P.TSi), true, /TSi without TSr/],
  ['CHILD request in the clear', CHILD, REQ, ps(P.SA, P.NONCE), false, /must be encrypted/],
  ['CHILD response', CHILD, RESP, ps(P.SA, P.NONCE, P.TSi, P.TSr), true, null],
  ['CHILD response NO_ADDITIONAL_SAS', CHILD, RESP, [n(NotifyType.NO_ADDITIONAL_SAS)], true, null],
  ['CHILD response TEMPORARY_FAILURE', CHILD, RESP, [n(NotifyType.TEMPORARY_FAILURE)], true, null],
  [
    'CHILD response status only',
    CHILD,
    RESP,
    [n(NotifyType.ADDITIONAL_TS_POSSIBLE)],
    true,
    /SA payload missing/,
  ],
  ['CHILD request error-only', CHILD, REQ, [n(NotifyType.NO_PROPOSAL_CHOSEN)], true, /SA payload missing/],

  ['INFO empty (liveness)', INFO, REQ, [], true, null],
  ['INFO empty response', INFO, RESP, [], true, null],
  ['INFO delete and notify', INFO, REQ, ps(P.DELETE, P.DELETE, P.NOTIFY), true, null],
  ['INFO with CP', INFO, RESP, ps(P.CP), true, null],
  ['INFO in the clear', INFO, REQ, [], false, /INFORMATIONAL request must be encrypted/],
  ['INFO with SA', INFO, REQ, ps(P.SA), true, /SA payload not allowed/],
  ['INFO outer view', INFO, RESP, ps(P.SK), false, null],
  [
    'INFO too many deletes',
    INFO,
    REQ,
    Array.from({ length: 21 }, () => p(P.DELETE)),
    true,
    /21 DELETE payloads/,
  ],

  ['unknown exchange', 99, REQ, [], false, /no rules for exchange type 99/],
  ['IKEv1 exchange number', 2, REQ, [], false, /no rules for exchange type 2/],
];

t.test('message rules', async (t) => {
  for (const [name, exchange, response, payloads, encrypted, expected] of CASES) {
    const reason = checkMessageRules(exchange, response, payloads, encrypted);
    if (expected === null) t.equal(reason, null, name);
    else t.match(reason, expected, name);
  }
});

t.test('the table is consistent', async (t) => {
  for (const rule of MESSAGE_RULES) {
    const label = `${ExchangeType[rule.exchange]} ${rule.response ? 'response' : 'request'}`;
    t.equal(findMessageRule(rule.exchange, rule.response), rule, `${label}: one rule per message`);
    const types = rule.payloads.map((r) => r.type);
    t.equal(new Set(types).size, types.length, `${label}: each payload type once`);
    t.ok(
      rule.payloads.every((r) => r.min >= 0 && r.min <= r.max),
      `${label}: 0 <= min <= max`,
    );
    const protectedRule = rule.payloads.some((r) => r.encrypted);
    t.ok(
      rule.payloads.every((r) => r.encrypted === protectedRule),
      `${label}: protection is all or nothing`,
    );
    t.equal(protectedRule, rule.exchange !== INIT, `${label}: only IKE_SA_INIT travels in the clear`);
    for (const group of rule.together) {
      t.ok(
        group.every((g) => types.includes(g)),
        `${label}: grouped types are in the table`,
      );
    }
  }
  t.equal(MESSAGE_RULES.length, 8);
});
