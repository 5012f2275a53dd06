/**
 * CREATE_CHILD_SA (RFC 7296 §1.3): rekeying a CHILD_SA (§1.3.3, §2.8) and the IKE SA itself
 * (§1.3.2, §2.18), both as responder and as initiator. A CREATE_CHILD_SA that asks for an
 * additional CHILD_SA is still answered NO_ADDITIONAL_SAS.
 *
 * Make-before-break: the new CHILD_SA pair is installed before the response leaves, the old one
 * stays until the rekey initiator DELETEs it (info.ts). A rekeyed IKE SA takes the children over,
 * so the later DELETE of the old IKE SA removes no CHILD_SA.
 */
import { randomBytes } from 'node:crypto';
import type { ChildSaSpec } from '../../dataplane/types.js';
import { type DhKeyPair, dhGenerate } from '../crypto/dh.js';
import { encrAlg } from '../crypto/encr.js';
import { integAlg } from '../crypto/integ.js';
import { deriveIkeKeysRekey } from '../crypto/keys.js';
import { prfAlg } from '../crypto/prf.js';
import { SkProtector } from '../crypto/sk.js';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  type ProposalSpec,
  parseProposals,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../proposal.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import { tsToString } from '../wire/ts.js';
import type { KePayload, NotifyPayload, Payload, SaPayload } from '../wire/types.js';
import { type ChildKeying, espOffer, installChild, narrow, newSpi, spiBuffer, withinOffer } from './child.js';
import { type ChildSa, IkeSa } from './ike-sa.js';
import { InitFailure } from './init.js';
import { findKe, findNonce, findSa, findTs, firstError, notifies, notify } from './payload-find.js';

const NONCE_LENGTH = 32;

export interface RekeyHooks {
  install(spec: ChildSaSpec): void;
  removeChild(sa: IkeSa, spiIn: number, reason: string): void;
  /** A rekeyed IKE SA exists with the children moved over: file it under its SPI. */
  adoptIke(old: IkeSa, fresh: IkeSa): void;
  /** Forget an IKE SA (the old one after our DELETE of it was answered). */
  destroy(sa: IkeSa, reason: string): void;
}

export interface CreateChildAnswer {
  payloads: Payload[];
  /** Runs right after the response went out. */
  after: () => void;
}

const nothing = (): void => {};
const answer = (payloads: Payload[], after = nothing): CreateChildAnswer => ({ payloads, after });

function groupData(group: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(group);
  return b;
}

/** The first real DH group of an offer (0 = none: no PFS). */
function firstGroup(offer: ProposalSpec[]): number {
  for (const p of offer) for (const g of p.dh) if (g !== 0) return g;
  return 0;
}

/**
 * Selection with a KE payload (§1.3): prefer proposals that work with the group the peer already
 * sent; the caller answers INVALID_KE_PAYLOAD when the selected group differs from it.
 */
function selectWithKe(
  offer: ProposalSpec[],
  saP: SaPayload,
  protocolId: number,
  ke: KePayload | undefined,
): Chosen | null {
  if (ke) {
    const withKe = offer.filter((p) => p.dh.includes(ke.group)).map((p) => ({ ...p, dh: [ke.group] }));
    const c = selectProposal(withKe, saP.proposals, protocolId);
    if (c) return c;
  }
  return selectProposal(offer, saP.proposals, protocolId);
}

/* ---------------------------------------------------------------- responder */

/** Answers a CREATE_CHILD_SA request on an established IKE SA. */
export function processCreateChildRequest(sa: IkeSa, hooks: RekeyHooks, ps: Payload[]): CreateChildAnswer {
  const saP = findSa(ps);
  if (saP?.proposals.some((p) => p.protocolId === ProtocolId.IKE)) return respondIkeRekey(sa, hooks, ps, saP);
  const rekey = notifies(ps, NotifyType.REKEY_SA)[0];
  if (!rekey) return answer([notify(NotifyType.NO_ADDITIONAL_SAS)]);
  return respondChildRekey(sa, hooks, ps, rekey);
}

function respondChildRekey(
  sa: IkeSa,
  hooks: RekeyHooks,
  ps: Payload[],
  rekey: NotifyPayload,
): CreateChildAnswer {
  const oldSpi = rekey.spi.length === 4 ? rekey.spi.readUInt32BE(0) : -1;
  // The peer names its inbound SPI, which is our outbound one.
  const old = sa.children.find((c) => c.spiOut === oldSpi);
  if (rekey.protocolId !== ProtocolId.ESP || !old) {
    sa.debug(`CHILD_SA rekey for unknown SPI ${rekey.spi.toString('hex')}`);
    return answer([
      notify(NotifyType.CHILD_SA_NOT_FOUND, Buffer.alloc(0), rekey.protocolId, Buffer.from(rekey.spi)),
    ]);
  }
  const saP = findSa(ps);
  const nonce = findNonce(ps);
  const tsi = findTs(ps, PayloadType.TSi);
  const tsr = findTs(ps, PayloadType.TSr);
  if (!saP || !nonce || !tsi || !tsr) return answer([notify(NotifyType.INVALID_SYNTAX)]);
  const ke = findKe(ps);
  const chosen = selectWithKe(espOffer(sa), saP, ProtocolId.ESP, ke);
  if (chosen?.spi.length !== 4) {
    sa.env.bus.emit('ike-failure', {
      connection: sa.name,
      reason: 'no_proposal_chosen',
      detail: 'no acceptable ESP proposal in CHILD_SA rekey',
    });
    return answer([notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
  }
  if (chosen.dh !== null && chosen.dh !== ke?.group) {
    sa.debug(`CHILD_SA rekey: asking for DH group ${chosen.dh} instead of ${ke?.group ?? 'none'}`);
    return answer([notify(NotifyType.INVALID_KE_PAYLOAD, groupData(chosen.dh))]);
  }
  const remote = narrow(tsi.selectors, sa.conn.remoteSubnets);
  const local = narrow(tsr.selectors, sa.conn.localSubnets);
  if (!remote.length || !local.length) return answer([notify(NotifyType.TS_UNACCEPTABLE)]);
  let dh: DhKeyPair | undefined;
  let dhSecret: Buffer | undefined;
  if (chosen.dh !== null && ke) {
    dh = dhGenerate(chosen.dh);
    dhSecret = dh.computeSecret(ke.data);
  }
  const nr = randomBytes(NONCE_LENGTH);
  const spiIn = newSpi();
  // Make-before-break: the new pair is in the data plane before our response leaves.
  installChild(
    sa,
    hooks.install,
    { spiIn, spiOut: chosen.spi.readUInt32BE(0), chosen, tsLocal: local, tsRemote: remote },
    { ni: nonce.data, nr, dhSecret, initiator: false, activate: false },
  );
  old.rekeyed = true;
  old.rekeyTheirs = { ni: Buffer.from(nonce.data), nr, spiIn };
  sa.debug(`rekeyed CHILD_SA ${hex(old.spiIn)}/${hex(old.spiOut)} -> ${hex(spiIn)}/${hex(chosen.spi)}`);
  const out: Payload[] = [
    { type: PayloadType.SA, proposals: [chosenToWire({ ...chosen, spi: spiBuffer(spiIn) }, ProtocolId.ESP)] },
    { type: PayloadType.NONCE, data: nr },
  ];
  if (dh) out.push({ type: PayloadType.KE, group: dh.group, data: dh.publicKey });
  out.push({ type: PayloadType.TSi, selectors: remote }, { type: PayloadType.TSr, selectors: local });
  // Our own rekey of the same CHILD_SA may have completed already (§2.8.1).
  return answer(out, () => resolveCollision(sa, old, hooks));
}

/**
 * Simultaneous CHILD_SA rekey (RFC 7296 §2.8.1): both exchanges created a new pair; the one
 * created with the lowest of the four nonces is deleted by its initiator. Nonces compare as octet
 * strings (memcmp over the common length, then the shorter first, as strongSwan does). Runs once
 * both exchanges are complete on our side; whichever completes second settles it. The old pair is
 * deleted as usual by each rekey initiator.
 */
export function resolveCollision(sa: IkeSa, old: ChildSa, hooks: RekeyHooks): void {
  const ours = old.rekeyOurs;
  const theirs = old.rekeyTheirs;
  if (old.collisionResolved || !ours?.nr || ours.spiIn === undefined) return;
  if (!theirs?.nr || theirs.spiIn === undefined) return;
  old.collisionResolved = true;
  const nonces = [ours.ni, ours.nr, theirs.ni, theirs.nr];
  let lowest = 0;
  for (let i = 1; i < nonces.length; i++) if (Buffer.compare(nonces[i]!, nonces[lowest]!) < 0) lowest = i;
  if (lowest >= 2) {
    sa.debug(
      `CHILD_SA rekey collision on ${hex(old.spiIn)}: the peer's exchange has the lowest nonce, keeping ${hex(ours.spiIn)}`,
    );
    return;
  }
  const redundant = ours.spiIn;
  sa.debug(
    `CHILD_SA rekey collision on ${hex(old.spiIn)}: our exchange has the lowest nonce, deleting ${hex(redundant)}`,
  );
  const gone = (): void => hooks.removeChild(sa, redundant, 'rekey collision');
  sa.request(
    ExchangeType.INFORMATIONAL,
    [{ type: PayloadType.DELETE, protocolId: ProtocolId.ESP, spiSize: 4, spis: [spiBuffer(redundant)] }],
    gone,
    gone,
  );
}

function hex(spi: number | Buffer): string {
  return typeof spi === 'number' ? spi.toString(16).padStart(8, '0') : spi.toString('hex');
}

/** Builds the new IKE SA from a CREATE_CHILD_SA that rekeyed `old` (§2.18). */
function rekeyedSa(
  old: IkeSa,
  initiator: boolean,
  spiI: Buffer,
  spiR: Buffer,
  chosen: Chosen,
  ni: Buffer,
  nr: Buffer,
  secret: Buffer,
  offer: ProposalSpec[],
): IkeSa {
  const fresh = new IkeSa(old.env, {
    initiator,
    conn: old.conn,
    local: old.local,
    remote: old.remote,
    spiI,
  });
  fresh.spiR = spiR;
  fresh.ikeOffer = offer;
  fresh.dhGroup = chosen.dh ?? 0;
  fresh.ni = ni;
  fresh.nr = nr;
  fresh.chosen = chosen;
  fresh.nat = { ...old.nat };
  const prf = prfAlg(chosen.prf!);
  const encr = encrAlg(chosen.encr.id, chosen.encr.keyLen);
  const integ = chosen.integ ? integAlg(chosen.integ) : null;
  // SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the new SA's PRF (§2.18).
  const keys = deriveIkeKeysRekey(prf, encr, integ, old.keys!.skD, secret, ni, nr, spiI, spiR);
  fresh.prf = prf;
  fresh.keys = keys;
  const i = new SkProtector(encr, integ, keys.skEi, integ ? keys.skAi : null);
  const r = new SkProtector(encr, integ, keys.skEr, integ ? keys.skAr : null);
  fresh.skOut = initiator ? i : r;
  fresh.skIn = initiator ? r : i;
  return fresh;
}

/** The old IKE SA hands its children to the new one and waits for its DELETE. */
function handOver(old: IkeSa, fresh: IkeSa, hooks: RekeyHooks): void {
  fresh.children = old.children;
  old.children = [];
  fresh.begin(`rekeying IKE SA #${old.serial}`);
  fresh.transition('established', `rekeyed IKE SA #${old.serial}`);
  hooks.adoptIke(old, fresh);
  old.transition('deleting', `rekeyed to IKE SA #${fresh.serial}`);
}

function respondIkeRekey(sa: IkeSa, hooks: RekeyHooks, ps: Payload[], saP: SaPayload): CreateChildAnswer {
  const ke = findKe(ps);
  const nonce = findNonce(ps);
  if (!ke || !nonce) return answer([notify(NotifyType.INVALID_SYNTAX)]);
  const offer = parseProposals(sa.conn.ike.proposals, 'ike');
  const chosen = selectWithKe(offer, saP, ProtocolId.IKE, ke);
  if (chosen?.spi.length !== 8) {
    sa.env.bus.emit('ike-failure', {
      connection: sa.name,
      reason: 'no_proposal_chosen',
      detail: 'no acceptable IKE proposal in IKE SA rekey',
    });
    return answer([notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
  }
  if (chosen.dh !== ke.group) {
    return answer([notify(NotifyType.INVALID_KE_PAYLOAD, groupData(chosen.dh ?? 0))]);
  }
  const dh = dhGenerate(ke.group);
  const secret = dh.computeSecret(ke.data);
  const nr = randomBytes(NONCE_LENGTH);
  const spiR = randomBytes(8);
  const fresh = rekeyedSa(sa, false, Buffer.from(chosen.spi), spiR, chosen, nonce.data, nr, secret, offer);
  return answer(
    [
      { type: PayloadType.SA, proposals: [chosenToWire(chosen, ProtocolId.IKE, spiR)] },
      { type: PayloadType.NONCE, data: nr },
      { type: PayloadType.KE, group: ke.group, data: dh.publicKey },
    ],
    () => {
      handOver(sa, fresh, hooks);
      const c = ikeCollisions.get(sa) ?? {};
      c.theirs = { ni: Buffer.from(nonce.data), nr, fresh };
      ikeCollisions.set(sa, c);
      resolveIkeCollision(sa, hooks);
    },
  );
}

interface IkeRekeyExchange {
  ni: Buffer;
  nr?: Buffer;
  fresh?: IkeSa;
}

/** Per rekeyed IKE SA: our rekey of it and one the peer started that we answered (§2.8.1). */
const ikeCollisions = new WeakMap<
  IkeSa,
  { ours?: IkeRekeyExchange; theirs?: IkeRekeyExchange; done?: boolean }
>();

/** Index (0-3) of the lowest nonce, compared as octet strings (memcmp, then length). */
function lowestNonce(nonces: Buffer[]): number {
  let lowest = 0;
  for (let i = 1; i < nonces.length; i++) if (Buffer.compare(nonces[i]!, nonces[lowest]!) < 0) lowest = i;
  return lowest;
}

/**
 * Simultaneous IKE SA rekey (RFC 7296 §2.8.1): two new IKE SAs exist; the one created with the
 * lowest of the four nonces is deleted by its initiator, and the CHILD_SAs move to the survivor
 * on both sides (each side handed them to whichever new SA came first). The old IKE SA is deleted
 * as usual by each rekey initiator.
 */
function resolveIkeCollision(old: IkeSa, hooks: RekeyHooks): void {
  const c = ikeCollisions.get(old);
  const ours = c?.ours;
  const theirs = c?.theirs;
  if (!c || c.done || !ours?.nr || !ours.fresh || !theirs?.nr || !theirs.fresh) return;
  c.done = true;
  const oursLoses = lowestNonce([ours.ni, ours.nr, theirs.ni, theirs.nr]) < 2;
  const loser = oursLoses ? ours.fresh : theirs.fresh;
  const winner = oursLoses ? theirs.fresh : ours.fresh;
  winner.children = [...winner.children, ...loser.children];
  loser.children = [];
  old.debug(
    `IKE SA rekey collision: keeping IKE SA #${winner.serial}, ${oursLoses ? 'deleting' : 'the peer deletes'} #${loser.serial}`,
  );
  if (!oursLoses) return;
  loser.transition('deleting', `rekey collision, IKE SA #${winner.serial} survives`);
  const gone = (): void => hooks.destroy(loser, 'rekey collision');
  loser.request(
    ExchangeType.INFORMATIONAL,
    [{ type: PayloadType.DELETE, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
    gone,
    gone,
  );
}

/* ---------------------------------------------------------------- initiator */

/**
 * Rekeys `child` of `sa`: CREATE_CHILD_SA with REKEY_SA (and KE when our ESP proposals carry a DH
 * group), installs the new pair, then DELETEs the old one (§2.8). One INVALID_KE_PAYLOAD retry.
 */
export function rekeyChild(
  sa: IkeSa,
  child: ChildSa,
  hooks: RekeyHooks,
  done: (err?: InitFailure) => void,
  group?: number,
): void {
  const offer = espOffer(sa);
  const g = group ?? firstGroup(offer);
  const spiIn = newSpi();
  const ni = randomBytes(NONCE_LENGTH);
  const dh = g ? dhGenerate(g) : undefined;
  child.rekeyOurs = { ni };
  const known = sa.children.includes(child);
  const payloads: Payload[] = [
    notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, Buffer.from(spiBuffer(child.spiIn))),
    {
      type: PayloadType.SA,
      proposals: offer.map((p, i) => toWireProposal(p, i + 1, ProtocolId.ESP, spiBuffer(spiIn))),
    },
    { type: PayloadType.NONCE, data: ni },
  ];
  if (dh) payloads.push({ type: PayloadType.KE, group: dh.group, data: dh.publicKey });
  payloads.push(
    { type: PayloadType.TSi, selectors: child.tsLocal },
    { type: PayloadType.TSr, selectors: child.tsRemote },
  );
  sa.request(
    ExchangeType.CREATE_CHILD_SA,
    payloads,
    (m) => {
      try {
        const ps = m.payloads;
        const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
        if (invalidKe && group === undefined) {
          const want = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
          if (want && want !== g && offer.some((p) => p.dh.includes(want))) {
            sa.debug(`peer wants DH group ${want} for the CHILD_SA rekey, retrying`);
            return rekeyChild(sa, child, hooks, done, want);
          }
        }
        const err = firstError(ps);
        if (
          err?.notifyType === NotifyType.CHILD_SA_NOT_FOUND &&
          (child.rekeyed || (known && !sa.children.includes(child)))
        ) {
          // The peer rekeyed or deleted it meanwhile (§2.8.1, §1.4.1): nothing left to do.
          sa.debug(`CHILD_SA ${hex(child.spiIn)} is already rekeyed or deleted; dropping our rekey of it`);
          child.rekeyOurs = undefined;
          return done();
        }
        if (err) {
          const name = NotifyType[err.notifyType] ?? String(err.notifyType);
          throw new InitFailure(name.toLowerCase(), `peer refused the CHILD_SA rekey: ${name}`);
        }
        const saP = findSa(ps);
        const nonce = findNonce(ps);
        const tsi = findTs(ps, PayloadType.TSi);
        const tsr = findTs(ps, PayloadType.TSr);
        if (!saP || !nonce || !tsi || !tsr || saP.proposals.length !== 1)
          throw new InitFailure('invalid_syntax', 'CREATE_CHILD_SA response lacks SA/Nr/TSi/TSr');
        const chosen = wireToChosen(saP.proposals[0]!);
        if (chosen.spi.length !== 4 || !checkChosenInOffer(chosen, offer))
          throw new InitFailure('no_proposal_chosen', 'responder chose an ESP proposal we did not offer');
        const ke = findKe(ps);
        let dhSecret: Buffer | undefined;
        if (chosen.dh !== null) {
          if (!dh || !ke || ke.group !== chosen.dh || dh.group !== chosen.dh)
            throw new InitFailure('invalid_ke_payload', 'CHILD_SA rekey response KE does not match');
          dhSecret = dh.computeSecret(ke.data);
        }
        if (
          !withinOffer(tsi.selectors, child.tsLocal.map(tsCidr)) ||
          !withinOffer(tsr.selectors, child.tsRemote.map(tsCidr))
        )
          throw new InitFailure('ts_unacceptable', 'responder widened the traffic selectors');
        const keying: ChildKeying = { ni, nr: nonce.data, dhSecret, initiator: true };
        installChild(
          sa,
          hooks.install,
          {
            spiIn,
            spiOut: chosen.spi.readUInt32BE(0),
            chosen,
            tsLocal: tsi.selectors,
            tsRemote: tsr.selectors,
          },
          keying,
        );
        child.rekeyed = true;
        child.rekeyOurs = { ni, nr: Buffer.from(nonce.data), spiIn };
        sa.debug(`rekeyed CHILD_SA ${hex(child.spiIn)} -> ${hex(spiIn)}, deleting the old one`);
        resolveCollision(sa, child, hooks);
        sa.request(
          ExchangeType.INFORMATIONAL,
          [
            {
              type: PayloadType.DELETE,
              protocolId: ProtocolId.ESP,
              spiSize: 4,
              spis: [spiBuffer(child.spiIn)],
            },
          ],
          () => {
            hooks.removeChild(sa, child.spiIn, 'rekeyed');
            done();
          },
          () => {
            hooks.removeChild(sa, child.spiIn, 'rekeyed');
            done(new InitFailure('timeout', 'no response to the DELETE of the rekeyed CHILD_SA'));
          },
        );
      } catch (err) {
        done(err instanceof InitFailure ? err : new InitFailure('invalid_response', (err as Error).message));
      }
    },
    () => done(new InitFailure('timeout', 'no response to CREATE_CHILD_SA')),
  );
}

/** Our selectors as the CIDR strings withinOffer compares against. */
function tsCidr(ts: Parameters<typeof tsToString>[0]): string {
  return tsToString(ts);
}

/**
 * Rekeys the IKE SA (§1.3.2, §2.18): CREATE_CHILD_SA with our new SPI, Ni and KE; the new SA takes
 * the children over, then the old one is DELETEd. One INVALID_KE_PAYLOAD retry.
 */
export function rekeyIke(
  sa: IkeSa,
  hooks: RekeyHooks,
  done: (err?: InitFailure, fresh?: IkeSa) => void,
  group?: number,
): void {
  const offer = parseProposals(sa.conn.ike.proposals, 'ike');
  const g = group ?? sa.chosen?.dh ?? firstGroup(offer);
  const spiI = randomBytes(8);
  const ni = randomBytes(NONCE_LENGTH);
  const dh = dhGenerate(g);
  const collision = ikeCollisions.get(sa) ?? {};
  collision.ours = { ni };
  ikeCollisions.set(sa, collision);
  sa.request(
    ExchangeType.CREATE_CHILD_SA,
    [
      {
        type: PayloadType.SA,
        proposals: offer.map((p, i) => toWireProposal(p, i + 1, ProtocolId.IKE, spiI)),
      },
      { type: PayloadType.NONCE, data: ni },
      { type: PayloadType.KE, group: g, data: dh.publicKey },
    ],
    (m) => {
      try {
        const ps = m.payloads;
        const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
        if (invalidKe && group === undefined) {
          const want = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
          if (want && want !== g && offer.some((p) => p.dh.includes(want))) {
            sa.debug(`peer wants DH group ${want} for the IKE SA rekey, retrying`);
            return rekeyIke(sa, hooks, done, want);
          }
        }
        const err = firstError(ps);
        if (err) {
          const name = NotifyType[err.notifyType] ?? String(err.notifyType);
          throw new InitFailure(name.toLowerCase(), `peer refused the IKE SA rekey: ${name}`);
        }
        const saP = findSa(ps);
        const nonce = findNonce(ps);
        const ke = findKe(ps);
        if (!saP || !nonce || !ke || saP.proposals.length !== 1)
          throw new InitFailure('invalid_syntax', 'IKE SA rekey response lacks SA/Nr/KE');
        const chosen = wireToChosen(saP.proposals[0]!);
        if (chosen.spi.length !== 8 || !checkChosenInOffer(chosen, offer))
          throw new InitFailure('no_proposal_chosen', 'responder chose an IKE proposal we did not offer');
        if (chosen.dh !== g || ke.group !== g)
          throw new InitFailure('invalid_ke_payload', `responder KE group ${ke.group} does not match ${g}`);
        const secret = dh.computeSecret(ke.data);
        const fresh = rekeyedSa(
          sa,
          true,
          spiI,
          Buffer.from(chosen.spi),
          chosen,
          ni,
          nonce.data,
          secret,
          offer,
        );
        handOver(sa, fresh, hooks);
        collision.ours = { ni, nr: Buffer.from(nonce.data), fresh };
        resolveIkeCollision(sa, hooks);
        sa.request(
          ExchangeType.INFORMATIONAL,
          [{ type: PayloadType.DELETE, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
          () => hooks.destroy(sa, 'rekeyed'),
          () => hooks.destroy(sa, 'rekeyed'),
        );
        done(undefined, fresh);
      } catch (err) {
        done(err instanceof InitFailure ? err : new InitFailure('invalid_response', (err as Error).message));
      }
    },
    () => done(new InitFailure('timeout', 'no response to CREATE_CHILD_SA (IKE rekey)')),
  );
}
