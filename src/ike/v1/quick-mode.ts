/**
 * Quick mode (RFC 2409 §5.5), both roles: one IPsec SA pair per exchange, with PFS when the ESP
 * proposal names a group (KE in quick mode), client IDs as traffic selectors (narrowed by the
 * responder to its configuration), and make-before-break when it rekeys an existing pair.
 *
 *   I1 *HASH(1) SA Ni [KE] IDci IDcr   -> R1 *HASH(2) SA Nr [KE] IDci IDcr   -> I2 *HASH(3)
 *
 * The responder installs its pair only on HASH(3), the initiator when it sends HASH(3).
 */
import { timingSafeEqual } from 'node:crypto';
import type { ChildSaSpec } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import type { ChildSa } from '../core/child-sa.js';
import type { CoreServices } from '../core/protocol.js';
import { spiHex } from '../core/view.js';
import { type DhKeyPair, dhGenerate } from '../crypto/dh.js';
import { v1QmHash1, v1QmHash2, v1QmHash3 } from '../crypto/v1-keys.js';
import { childSpi, narrow, spiBuffer } from '../v2/tasks/child-create.js';
import { cidrToTs, tsToString } from '../wire/ts.js';
import type { TrafficSelector } from '../wire/types.js';
import {
  attributeNumber,
  decodeAttributes,
  encodeAttributes,
  numberAttribute,
} from '../wire/v1/attributes.js';
import {
  ExchangeTypeV1,
  LifeType,
  NotifyTypeV1,
  PayloadTypeV1,
  Phase2Attr,
  ProtocolIdV1,
} from '../wire/v1/constants.js';
import { encodePayloadsV1 } from '../wire/v1/payloads.js';
import type {
  DataPayloadV1,
  IdPayloadV1,
  NotifyPayloadV1,
  PayloadV1,
  SaPayloadV1,
} from '../wire/v1/types.js';
import { idToSelector, selectorToId } from './ids.js';
import type { IkeSaV1, V1Child } from './ike-sa.js';
import { deleteEsp, sendInformational, siblings } from './informational.js';
import { checkP2, type P2Choice, p2Offer, p2SaPayload, selectP2 } from './p2-proposal.js';
import type { V1Proposal } from './proposal.js';
import type { InV1 } from './protocol.js';
import { install, installEarly, udp } from './qm-install.js';

const QM = ExchangeTypeV1.QUICK;
const NONCE_LENGTH = 32;
/** Replaced pairs of one selector pair awaiting the peer's DELETE before its quick modes are refused. */
const MAX_REPLACED = 4;
/** The peer's quick modes answered but not finished (HASH(3) not yet in) at one time, per SA. */
const MAX_PENDING = 4;

export interface QmState {
  initiator: boolean;
  spiIn: number;
  niB: Buffer;
  nrB?: Buffer;
  dh?: DhKeyPair;
  gqmxy?: Buffer;
  choice?: P2Choice;
  /** The initiator's offer (the answer must be one of its transforms). */
  offer?: V1Proposal[];
  peerSpi?: Buffer;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  /** The pair this exchange replaces (a rekey), installed make-before-break. */
  replaces?: ChildSa<V1Child>;
  /** Keep sending on the current pair until the peer uses the new one (rekey, re-authentication). */
  deferOutbound?: boolean;
  /** The responder put the pair into the data plane before HASH(3) (qm-install.ts). */
  early?: ChildSaSpec;
  /** Takes that pair out again if the exchange or its ISAKMP SA ends before HASH(3). */
  undo?: () => void;
  done?: (err?: IkeError) => void;
}

/** HASH payload first, then `rest`, hashed as on the wire (§5.5: the generic headers included). */
function hashed(rest: PayloadV1[], hash: (restBytes: Buffer) => Buffer): PayloadV1[] {
  return [{ type: PayloadTypeV1.HASH, data: hash(encodePayloadsV1(rest).bytes) } as PayloadV1, ...rest];
}

/** Checks the message's HASH; only then does its last block become the exchange's next IV. */
function verify(sa: IkeSaV1, m: InV1, expect: (restBytes: Buffer) => Buffer): void {
  const [first, ...rest] = m.raw;
  if (first?.type !== PayloadTypeV1.HASH)
    throw new IkeError('invalid_hash_information', 'quick mode message does not start with HASH');
  const got = first.body;
  const want = expect(Buffer.concat(rest.map((r) => r.raw)));
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new IkeError('invalid_hash_information', 'quick mode HASH does not verify');
  sa.protector!.confirm(m.header.messageId);
  m.authentic();
}

function idPayload(ts: TrafficSelector): PayloadV1 {
  const id = selectorToId(ts);
  if (!id) throw new IkeError('ts_unacceptable', `selector ${tsToString(ts)} has no IKEv1 ID form`);
  return { type: PayloadTypeV1.ID, ...id } as PayloadV1;
}

function need<T extends PayloadV1>(ps: PayloadV1[], type: number): T {
  const p = ps.find((x) => x.type === type) as T | undefined;
  if (!p)
    throw new IkeError('invalid_syntax', `quick mode message without ${PayloadTypeV1[type] ?? type} payload`);
  return p;
}

/** RFC 2407 §4.6.3.1: we keep the SA shorter than the peer offered; the attributes say how long. */
function responderLifetime(spiIn: number, seconds: number): PayloadV1 {
  const data = encodeAttributes('RESPONDER-LIFETIME', [
    { type: Phase2Attr.SA_LIFE_TYPE, value: LifeType.SECONDS },
    numberAttribute(Phase2Attr.SA_LIFE_DURATION, seconds),
  ]);
  return {
    type: PayloadTypeV1.N,
    doi: 1,
    protocolId: ProtocolIdV1.IPSEC_ESP,
    spi: spiBuffer(spiIn),
    notifyType: NotifyTypeV1.RESPONDER_LIFETIME,
    data,
  } as PayloadV1;
}

/**
 * The initiator honours a RESPONDER-LIFETIME (RFC 2407 §4.6.3.1: the responder keeps the SA for
 * less than offered). Its attributes are type/duration pairs; a kilobyte limit is not a time and
 * is left to the data plane, so only the seconds count. Malformed attributes are an error.
 */
function takeResponderLifetime(m: InV1, life: number): number {
  for (const p of m.payloads) {
    const n = p as NotifyPayloadV1;
    if (p.type !== PayloadTypeV1.N || n.notifyType !== NotifyTypeV1.RESPONDER_LIFETIME) continue;
    let type = 0;
    for (const a of decodeAttributes('RESPONDER-LIFETIME', n.data)) {
      if (a.type === Phase2Attr.SA_LIFE_TYPE) type = attributeNumber(a);
      else if (a.type === Phase2Attr.SA_LIFE_DURATION && type === LifeType.SECONDS) {
        const seconds = attributeNumber(a);
        if (seconds > 0) life = Math.min(life, seconds);
      }
    }
  }
  return life;
}

function parseGroup(offer: V1Proposal[]): number {
  for (const p of offer)
    for (const t of p.transforms)
      for (const a of t.attrs) if (a.type === Phase2Attr.GROUP_DESCRIPTION) return Number(a.value);
  return 0;
}

function randomMid(sa: IkeSaV1): number {
  for (;;) {
    const mid = sa.ctx.random.bytes(4).readUInt32BE(0);
    if (mid !== 0 && !sa.quickModes.has(mid)) return mid;
  }
}

/* ---------------------------------------------------------------- initiator */

/** Negotiates one IPsec SA pair; resolves once it is installed. */
export function quickModeInitiate(
  core: CoreServices,
  sa: IkeSaV1,
  replaces?: ChildSa<V1Child>,
  deferOutbound = replaces !== undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const mid = randomMid(sa);
    const st: QmState = {
      initiator: true,
      spiIn: childSpi(sa),
      niB: sa.ctx.random.bytes(NONCE_LENGTH),
      tsLocal: replaces ? replaces.proto.tsLocal : [cidrToTs(sa.conn.localSubnets[0]!)],
      tsRemote: replaces ? replaces.proto.tsRemote : [cidrToTs(sa.conn.remoteSubnets[0]!)],
      replaces,
      deferOutbound,
      done: (err) => (err ? reject(err) : resolve()),
    };
    st.offer = p2Offer(sa.conn, spiBuffer(st.spiIn), udp(sa), sa.nattVersion !== 0);
    // PFS: the group our transforms name (RFC 2409 §5.5: one KE per quick mode).
    const group = parseGroup(st.offer);
    if (group) st.dh = dhGenerate(group);
    sa.quickModes.set(mid, st);
    const rest: PayloadV1[] = [p2SaPayload(st.offer), { type: PayloadTypeV1.NONCE, data: st.niB }];
    if (st.dh) rest.push({ type: PayloadTypeV1.KE, data: st.dh.publicKey });
    rest.push(idPayload(st.tsLocal[0]!), idPayload(st.tsRemote[0]!));
    const ps = hashed(rest, (b) => v1QmHash1(sa.prf!, sa.keys!.skeyidA, mid, b));
    sa.send(mid, sa.encode(QM, mid, ps, true), {
      retransmit: true,
      onTimeout: () => finish(sa, mid, new IkeError('timeout', 'no answer to quick mode')),
    });
  });
}

/** How long a finished quick mode's last messages stay to answer repeats (then forgotten). */
const LINGER = 30_000;

function finish(sa: IkeSaV1, mid: number, err?: IkeError): void {
  const st = sa.quickModes.get(mid);
  sa.quickModes.delete(mid);
  if (err) sa.forget(mid);
  else sa.timers.set(LINGER, () => sa.forget(mid));
  st?.done?.(err);
}

/* ---------------------------------------------------------------- both roles */

/** A quick mode message of exchange `mid` (decrypted, not yet authenticated). */
export function quickModeInput(core: CoreServices, sa: IkeSaV1, m: InV1): void {
  const mid = m.header.messageId;
  const st = sa.quickModes.get(mid);
  if (!st && sa.hasExchange(mid)) return afterEnd(core, sa, m);
  if (!st) return respondFirst(core, sa, m);
  if (st.initiator) return initiatorSecond(core, sa, m, st);
  responderThird(core, sa, m, st);
}

/**
 * A message of a quick mode that already ended. A peer that set the commit bit (RFC 2408 §3.1,
 * §4.8) may follow with N(CONNECTED) under the exchange's message ID: we install without waiting
 * for it (as strongSwan does), so it changes nothing and is taken quietly; anything else is dropped.
 */
function afterEnd(core: CoreServices, sa: IkeSaV1, m: InV1): void {
  const connected = m.payloads.some(
    (p) => p.type === PayloadTypeV1.N && (p as NotifyPayloadV1).notifyType === NotifyTypeV1.CONNECTED,
  );
  if (connected) sa.debug(`quick mode ${m.header.messageId}: CONNECTED (commit bit) noted`);
  else core.drop('unexpected', `quick mode message ${m.header.messageId} after the exchange ended`, m.d);
}

function initiatorSecond(core: CoreServices, sa: IkeSaV1, m: InV1, st: QmState): void {
  const mid = m.header.messageId;
  try {
    verify(sa, m, (b) => v1QmHash2(sa.prf!, sa.keys!.skeyidA, mid, st.niB, b));
    sa.settle(mid);
    const { choice, peerSpi } = checkP2(sa.conn, st.offer!, need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA));
    st.choice = { ...choice, life: takeResponderLifetime(m, choice.life) };
    st.peerSpi = peerSpi;
    st.nrB = need<DataPayloadV1>(m.payloads, PayloadTypeV1.NONCE).data;
    if (choice.suite.group) {
      const ke = need<DataPayloadV1>(m.payloads, PayloadTypeV1.KE);
      if (!st.dh || st.dh.group !== choice.suite.group)
        throw new IkeError('invalid_ke_payload', 'quick mode PFS group mismatch');
      st.gqmxy = st.dh.computeSecret(ke.data);
    }
    takeIds(m, st, false);
    sa.send(
      mid,
      sa.encode(
        QM,
        mid,
        [
          {
            type: PayloadTypeV1.HASH,
            data: v1QmHash3(sa.prf!, sa.keys!.skeyidA, mid, st.niB, st.nrB),
          } as PayloadV1,
        ],
        true,
      ),
      { retransmit: false },
    );
    install(core, sa, st);
    finish(sa, mid);
  } catch (err) {
    finish(sa, mid, IkeError.from(err));
  }
}

/** The responder's IDs must lie within ours (it may narrow, RFC 2409 §5.5). */
function takeIds(m: InV1, st: QmState, responder: boolean): void {
  const ids = m.payloads.filter((p) => p.type === PayloadTypeV1.ID) as IdPayloadV1[];
  if (ids.length === 0) return;
  if (ids.length !== 2) throw new IkeError('invalid_id_information', 'quick mode with one client ID');
  const [ci, cr] = ids.map(idToSelector) as [TrafficSelector, TrafficSelector];
  const [mine, theirs] = responder ? [cr, ci] : [ci, cr];
  if (!responder) {
    if (
      narrow([mine], st.tsLocal.map(tsToString)).length !== 1 ||
      narrow([theirs], st.tsRemote.map(tsToString)).length !== 1
    )
      throw new IkeError('ts_unacceptable', 'responder returned client IDs outside ours');
  }
  st.tsLocal = [mine];
  st.tsRemote = [theirs];
}

function respondFirst(core: CoreServices, sa: IkeSaV1, m: InV1): void {
  const mid = m.header.messageId;
  verify(sa, m, (b) => v1QmHash1(sa.prf!, sa.keys!.skeyidA, mid, b));
  // Our answer installs the pair already (make-before-break, qm-install.ts), so quick modes the
  // peer leaves unfinished hold pairs too: a few at a time (a rekey and a collision need two), and
  // they count against the per-SA cap below (security issue #11 item 7). Checked before the DH.
  const pending = [...sa.quickModes.values()].filter((q) => !q.initiator).length;
  if (pending >= MAX_PENDING)
    throw new IkeError('temporary_failure', `quick mode refused: ${pending} of the peer's are unfinished`);
  const st: QmState = {
    initiator: false,
    spiIn: childSpi(sa),
    niB: need<DataPayloadV1>(m.payloads, PayloadTypeV1.NONCE).data,
    tsLocal: [],
    tsRemote: [],
  };
  const { choice, peerSpi, answer } = selectP2(
    sa.conn,
    need<SaPayloadV1>(m.payloads, PayloadTypeV1.SA),
    spiBuffer(st.spiIn),
    udp(sa),
  );
  st.choice = choice;
  st.peerSpi = peerSpi;
  st.nrB = sa.ctx.random.bytes(NONCE_LENGTH);
  const rest: PayloadV1[] = [answer, { type: PayloadTypeV1.NONCE, data: st.nrB }];
  if (choice.suite.group) {
    const ke = need<DataPayloadV1>(m.payloads, PayloadTypeV1.KE);
    st.dh = dhGenerate(choice.suite.group);
    st.gqmxy = st.dh.computeSecret(ke.data);
    rest.push({ type: PayloadTypeV1.KE, data: st.dh.publicKey });
  }
  if (choice.responderLifetime) rest.push(responderLifetime(st.spiIn, choice.life));
  // Without client IDs the selectors are the two gateways (§5.5); we always have subnets.
  const ids = m.payloads.filter((p) => p.type === PayloadTypeV1.ID) as IdPayloadV1[];
  if (ids.length !== 2) throw new IkeError('invalid_id_information', 'quick mode without client IDs');
  const [ci, cr] = ids.map(idToSelector) as [TrafficSelector, TrafficSelector];
  const remote = narrow([ci], sa.conn.remoteSubnets);
  const local = narrow([cr], sa.conn.localSubnets);
  if (remote.length !== 1 || local.length !== 1)
    throw new IkeError('ts_unacceptable', 'client IDs outside localSubnets/remoteSubnets');
  st.tsLocal = local;
  st.tsRemote = remote;
  // The same selectors as a live pair: the peer rekeys it (make-before-break, its DELETE follows).
  // After a re-authentication that pair may still hang off the ISAKMP SA before this one.
  const key = (ts: TrafficSelector[]) => ts.map(tsToString).join();
  const same = [...siblings(core, sa), sa]
    .sort((a, b) => a.serial - b.serial)
    .flatMap((o) => o.children)
    .filter((c) => key(c.proto.tsLocal) === key(local) && key(c.proto.tsRemote) === key(remote));
  // Security issue #11: every quick mode for these selectors leaves the pair it replaces until
  // the peer DELETEs it, and a peer that never does would make us hold pairs without bound. A
  // real peer keeps a few: strongSwan (delete_rekeyed = no) holds a replaced pair for its whole
  // life_time, so with a rekey_time well below it two or three coexist; a peer that restarted
  // (INITIAL-CONTACT, ike-core.ts) never deletes the ones it forgot. Past MAX_REPLACED the oldest
  // is deleted (with a DELETE: it carries nothing any more), so the count stays bounded and a
  // peer that restarts often is never locked out. Beyond the per-SA cap (SaLimits.childrenPerIke)
  // nothing more is taken either.
  evictReplaced(core, sa, same);
  const full = core.table.overChildLimit(sa, pending);
  if (full) throw new IkeError('no_additional_sas', `quick mode refused: ${full}`);
  st.replaces = same.find((c) => c.live);
  rest.push(idPayload(remote[0]!), idPayload(local[0]!));
  sa.quickModes.set(mid, st);
  const ps = hashed(rest, (b) => v1QmHash2(sa.prf!, sa.keys!.skeyidA, mid, st.niB, b));
  sa.send(mid, sa.encode(QM, mid, ps, true), {
    retransmit: true,
    onTimeout: () => {
      st.undo?.();
      finish(sa, mid, new IkeError('timeout', 'no HASH(3) in quick mode'));
    },
  });
  // The pair goes into the data plane now, not on HASH(3): the initiator may send on it as soon as
  // it has our answer (strongSwan installs on it, before HASH(3) leaves, §5.5), and the engine would
  // see that ESP before HASH(3) is processed here. Outbound stays on a current pair until the peer
  // uses the new one (make-before-break); without one the engine uses the new pair at once.
  st.early = installEarly(core, sa, st);
}

function responderThird(core: CoreServices, sa: IkeSaV1, m: InV1, st: QmState): void {
  const mid = m.header.messageId;
  verify(sa, m, () => v1QmHash3(sa.prf!, sa.keys!.skeyidA, mid, st.niB, st.nrB!));
  sa.settle(mid);
  install(core, sa, st);
  finish(sa, mid);
}

/** Deletes the oldest pairs of `same` (oldest first) the peer replaced, past MAX_REPLACED of them. */
function evictReplaced(core: CoreServices, sa: IkeSaV1, same: ChildSa<V1Child>[]): void {
  const replaced = same.filter((c) => c.state === 'rekeyed' && c.proto.successor?.ours === false);
  for (const old of replaced.slice(0, Math.max(0, replaced.length - MAX_REPLACED + 1))) {
    const owner = [sa, ...siblings(core, sa)].find((o) => o.child(old.spiIn) === old);
    if (!owner) continue;
    sa.debug(`${replaced.length} replaced pairs of these selectors: the oldest, ${spiHex(old.spiIn)}, goes`);
    sendInformational(owner, [deleteEsp([old.spiIn])]);
    core.removeChild(owner, old.spiIn, 'replaced pairs of these selectors over the limit');
  }
}
