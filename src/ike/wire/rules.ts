/**
 * Which payloads each IKEv2 message may carry, as data (after strongSwan's encoding/message.c).
 * The table only checks counts and protection; what the payloads mean is the exchange tasks' job.
 */
import { ExchangeType, NOTIFY_STATUS_MIN, NotifyType, PayloadType } from './constants.js';
import type { Payload } from './types.js';

export interface PayloadRule {
  type: PayloadType;
  min: number;
  max: number;
  /** Must travel inside the SK payload. */
  encrypted: boolean;
}

export interface MessageRule {
  exchange: ExchangeType;
  response: boolean;
  payloads: readonly PayloadRule[];
  /** Payload types that come all together or not at all. */
  together: readonly (readonly PayloadType[])[];
  /**
   * A message carrying one of these notifies need not meet the `min` counts: the error-only
   * answers (INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN, COOKIE, ...). `errors` covers every type
   * below 16384.
   */
  minWaivedBy: { errors: boolean; notifies: readonly NotifyType[] } | null;
}

// ---- Implementation limits: bounds on repeatable payloads (strongSwan's values) ----
const MAX_NOTIFY = 20;
const MAX_DELETE = 20;
const MAX_VENDOR = 20;
const MAX_CERT = 8;
const MAX_CERTREQ = 20;
const MAX_CP = 4;

const P = PayloadType;
const plain = (type: PayloadType, min: number, max: number): PayloadRule => ({
  type,
  min,
  max,
  encrypted: false,
});
const sealed = (type: PayloadType, min: number, max: number): PayloadRule => ({
  type,
  min,
  max,
  encrypted: true,
});

const INIT_COMMON = [
  plain(P.SA, 1, 1),
  plain(P.KE, 1, 1),
  plain(P.NONCE, 1, 1),
  plain(P.NOTIFY, 0, MAX_NOTIFY),
  plain(P.VENDOR, 0, MAX_VENDOR),
];

// IKE_AUTH minimums are all 0: EAP rounds carry only EAP or AUTH, a second authentication round
// (RFC 4739) repeats IDi, and a failed exchange may answer with notifies alone.
const AUTH_COMMON = [
  sealed(P.AUTH, 0, 1),
  sealed(P.CERT, 0, MAX_CERT),
  sealed(P.SA, 0, 1),
  sealed(P.TSi, 0, 1),
  sealed(P.TSr, 0, 1),
  sealed(P.CP, 0, 1),
  sealed(P.EAP, 0, 1),
  sealed(P.NOTIFY, 0, MAX_NOTIFY),
  sealed(P.VENDOR, 0, MAX_VENDOR),
];

const CHILD_COMMON = [
  sealed(P.SA, 1, 1),
  sealed(P.NONCE, 1, 1),
  sealed(P.KE, 0, 1),
  sealed(P.TSi, 0, 1),
  sealed(P.TSr, 0, 1),
  sealed(P.NOTIFY, 0, MAX_NOTIFY),
  sealed(P.VENDOR, 0, MAX_VENDOR),
];

const INFO_COMMON = [
  sealed(P.NOTIFY, 0, MAX_NOTIFY),
  sealed(P.DELETE, 0, MAX_DELETE),
  sealed(P.CP, 0, MAX_CP),
  sealed(P.VENDOR, 0, MAX_VENDOR),
];

export const MESSAGE_RULES: readonly MessageRule[] = [
  {
    exchange: ExchangeType.IKE_SA_INIT,
    response: false,
    payloads: INIT_COMMON,
    together: [],
    minWaivedBy: null,
  },
  {
    exchange: ExchangeType.IKE_SA_INIT,
    response: true,
    payloads: [...INIT_COMMON, plain(P.CERTREQ, 0, MAX_CERTREQ)],
    together: [],
    minWaivedBy: { errors: true, notifies: [NotifyType.COOKIE, NotifyType.REDIRECT] },
  },
  {
    exchange: ExchangeType.IKE_AUTH,
    response: false,
    payloads: [sealed(P.IDi, 0, 1), sealed(P.IDr, 0, 1), sealed(P.CERTREQ, 0, MAX_CERTREQ), ...AUTH_COMMON],
    together: [[P.SA, P.TSi, P.TSr]],
    minWaivedBy: null,
  },
  {
    exchange: ExchangeType.IKE_AUTH,
    response: true,
    payloads: [sealed(P.IDr, 0, 1), ...AUTH_COMMON],
    together: [[P.SA, P.TSi, P.TSr]],
    minWaivedBy: null,
  },
  {
    exchange: ExchangeType.CREATE_CHILD_SA,
    response: false,
    payloads: CHILD_COMMON,
    together: [[P.TSi, P.TSr]],
    minWaivedBy: null,
  },
  {
    exchange: ExchangeType.CREATE_CHILD_SA,
    response: true,
    payloads: CHILD_COMMON,
    together: [[P.TSi, P.TSr]],
    minWaivedBy: { errors: true, notifies: [] },
  },
  {
    exchange: ExchangeType.INFORMATIONAL,
    response: false,
    payloads: INFO_COMMON,
    together: [],
    minWaivedBy: null,
  },
  {
    exchange: ExchangeType.INFORMATIONAL,
    response: true,
    payloads: INFO_COMMON,
    together: [],
    minWaivedBy: null,
  },
];

/** Payload types RFC 7296 defines: outside the table they are misplaced, not merely unknown. */
const DEFINED = new Set<number>(Object.values(PayloadType).filter((v): v is number => typeof v === 'number'));

const nameOf = (type: number): string => PayloadType[type] ?? `type ${type}`;

export function findMessageRule(exchange: number, isResponse: boolean): MessageRule | undefined {
  return MESSAGE_RULES.find((r) => r.exchange === exchange && r.response === isResponse);
}

/**
 * Null when `payloads` fit the rules, else the reason. Two views, both with the same call:
 * - the outer payloads of a datagram (`encrypted` false); when they contain SK/SKF, only the
 *   plaintext payloads beside it are checked, counts wait for the inner view;
 * - the payloads of a whole message (`encrypted` says whether they came out of SK).
 * Unknown payload types are ignored: the codec already rejected critical ones.
 */
export function checkMessageRules(
  exchange: number,
  isResponse: boolean,
  payloads: Payload[],
  encrypted: boolean,
): string | null {
  const rule = findMessageRule(exchange, isResponse);
  if (!rule) return `no rules for exchange type ${exchange}`;
  const label = `${ExchangeType[exchange]} ${isResponse ? 'response' : 'request'}`;
  const protectedExchange = rule.payloads.some((r) => r.encrypted);
  const skIndex = payloads.findIndex((p) => p.type === P.SK || p.type === P.SKF);

  if (skIndex >= 0) {
    if (encrypted) return `${label}: ${nameOf(payloads[skIndex]!.type)} payload inside an encrypted payload`;
    if (!protectedExchange) return `${label} must not be encrypted`;
    return checkPlacement(rule, label, payloads, false);
  }
  if (protectedExchange && !encrypted) return `${label} must be encrypted`;
  if (!protectedExchange && encrypted) return `${label} must not be encrypted`;
  return checkPlacement(rule, label, payloads, encrypted) ?? checkCounts(rule, label, payloads);
}

function checkPlacement(
  rule: MessageRule,
  label: string,
  payloads: Payload[],
  encrypted: boolean,
): string | null {
  for (const p of payloads) {
    if (p.type === P.SK || p.type === P.SKF || !DEFINED.has(p.type)) continue;
    const r = rule.payloads.find((x) => x.type === p.type);
    if (!r) return `${label}: ${nameOf(p.type)} payload not allowed`;
    if (r.encrypted && !encrypted) return `${label}: ${nameOf(p.type)} payload must be encrypted`;
    if (!r.encrypted && encrypted) return `${label}: ${nameOf(p.type)} payload must not be encrypted`;
  }
  return null;
}

function checkCounts(rule: MessageRule, label: string, payloads: Payload[]): string | null {
  const count = (type: number) => payloads.filter((p) => p.type === type).length;
  const waived = isMinWaived(rule, payloads);
  for (const r of rule.payloads) {
    const n = count(r.type);
    if (n > r.max) return `${label}: ${n} ${nameOf(r.type)} payloads, at most ${r.max} allowed`;
    if (n < r.min && !waived) return `${label}: ${nameOf(r.type)} payload missing`;
  }
  for (const group of rule.together) {
    const present = group.filter((t) => count(t) > 0);
    if (present.length > 0 && present.length < group.length) {
      const missing = group.filter((t) => count(t) === 0).map(nameOf);
      return `${label}: ${present.map(nameOf).join(', ')} without ${missing.join(', ')}`;
    }
  }
  return null;
}

function isMinWaived(rule: MessageRule, payloads: Payload[]): boolean {
  const by = rule.minWaivedBy;
  if (!by) return false;
  return payloads.some(
    (p) =>
      p.type === P.NOTIFY &&
      'notifyType' in p &&
      ((by.errors && p.notifyType < NOTIFY_STATUS_MIN) || by.notifies.includes(p.notifyType)),
  );
}
