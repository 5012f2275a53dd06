/**
 * Rekeying a CHILD_SA with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8), both roles, and simultaneous
 * rekeys (§2.8.1). Make-before-break: the new pair is installed before the old one is deleted; the
 * responder's new outbound SA is switched on only once the peer uses it.
 */
import { IkeError } from '../../../errors.js';
import type { ChildSa } from '../../core/child-sa.js';
import { spiHex } from '../../core/view.js';
import { type DhKeyPair, dhGenerate } from '../../crypto/dh.js';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  type ProposalSpec,
  selectProposal,
  toWireProposal,
  wireToChosen,
} from '../../proposal.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/constants.js';
import { tsToString } from '../../wire/ts.js';
import type { KePayload, NotifyPayload, Payload, SaPayload } from '../../wire/types.js';
import { peerRefused, refuse } from '../errors.js';
import type { IkeSaV2, V2Child } from '../ike-sa.js';
import { nonceTooShort } from '../nonce.js';
import { findKe, findNonce, findSa, findTs, firstError, notifies, notify } from '../payload-find.js';
import type { OpenedMessage } from '../protect.js';
import { AGAIN, type Answer, runTask, type Task, type V2Services } from '../task.js';
import { childSpi, espOffer, installChild, narrow, spiBuffer, withinOffer } from './child-create.js';
import { NONCE_LENGTH } from './ike-init.js';
import { childDeleteTask } from './informational.js';

export function groupData(group: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(group);
  return b;
}

/** The first real DH group of an offer (0 = none: no PFS). */
export function firstGroup(offer: ProposalSpec[]): number {
  for (const p of offer) for (const g of p.dh) if (g !== 0) return g;
  return 0;
}

/**
 * Selection with a KE payload (§1.3): prefer proposals that work with the group the peer already
 * sent; the caller answers INVALID_KE_PAYLOAD when the selected group differs from it.
 */
export function selectWithKe(
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

/** Index (0-3) of the lowest nonce, compared as octet strings (memcmp, then length), as strongSwan does. */
export function lowestNonce(nonces: Buffer[]): number {
  let lowest = 0;
  for (let i = 1; i < nonces.length; i++) if (Buffer.compare(nonces[i]!, nonces[lowest]!) < 0) lowest = i;
  return lowest;
}

/* ---------------------------------------------------------------- initiator */

type Child = ChildSa<V2Child>;

/** CREATE_CHILD_SA with REKEY_SA (and KE when our ESP proposals carry a DH group). */
class ChildRekeyTask implements Task<'done' | 'gone'> {
  readonly name = 'child-rekey';
  readonly exchange = ExchangeType.CREATE_CHILD_SA;
  readonly #core: V2Services;
  readonly #sa: IkeSaV2;
  readonly #child: Child;
  readonly #offer: ProposalSpec[];
  #group: number;
  #retried = false;
  /** The CHILD_SA was this IKE SA's when the rekey began (it may move or go meanwhile). */
  readonly #known: boolean;
  #spiIn = 0;
  #ni: Buffer = Buffer.alloc(0);
  #dh: DhKeyPair | undefined;

  constructor(core: V2Services, sa: IkeSaV2, child: Child) {
    this.#core = core;
    this.#sa = sa;
    this.#child = child;
    this.#offer = espOffer(sa);
    this.#group = firstGroup(this.#offer);
    this.#known = sa.child(child.spiIn) === child;
  }

  build(): Payload[] {
    const sa = this.#sa;
    this.#spiIn = childSpi(sa);
    this.#ni = sa.ctx.random.bytes(NONCE_LENGTH);
    this.#dh = this.#group ? dhGenerate(this.#group) : undefined;
    this.#child.rekeyOurs = { ni: this.#ni };
    const c = this.#child;
    const payloads: Payload[] = [
      notify(NotifyType.REKEY_SA, Buffer.alloc(0), ProtocolId.ESP, Buffer.from(spiBuffer(c.spiIn))),
      {
        type: PayloadType.SA,
        proposals: this.#offer.map((p, i) =>
          toWireProposal(p, i + 1, ProtocolId.ESP, spiBuffer(this.#spiIn)),
        ),
      },
      { type: PayloadType.NONCE, data: this.#ni },
    ];
    if (this.#dh) payloads.push({ type: PayloadType.KE, group: this.#dh.group, data: this.#dh.publicKey });
    payloads.push(
      { type: PayloadType.TSi, selectors: c.proto.tsLocal },
      { type: PayloadType.TSr, selectors: c.proto.tsRemote },
    );
    return payloads;
  }

  process(m: OpenedMessage): 'done' | 'gone' | typeof AGAIN {
    const sa = this.#sa;
    const child = this.#child;
    const ps = m.payloads;
    const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
    if (invalidKe && !this.#retried) {
      const want = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      if (want && want !== this.#group && this.#offer.some((p) => p.dh.includes(want))) {
        sa.debug(`peer wants DH group ${want} for the CHILD_SA rekey, retrying`);
        this.#group = want;
        this.#retried = true;
        return AGAIN;
      }
    }
    const err = firstError(ps);
    const gone =
      child.state === 'rekeyed' ||
      child.state === 'deleted' ||
      (this.#known && sa.child(child.spiIn) !== child);
    if (err?.notifyType === NotifyType.CHILD_SA_NOT_FOUND && gone) {
      // The peer rekeyed or deleted it meanwhile (§2.8.1, §1.4.1): nothing left to do.
      sa.debug(`CHILD_SA ${spiHex(child.spiIn)} is already rekeyed or deleted; dropping our rekey of it`);
      child.rekeyOurs = undefined;
      return 'gone';
    }
    if (err) throw peerRefused(err, 'peer refused the CHILD_SA rekey:');
    const saP = findSa(ps);
    const nonce = findNonce(ps);
    const tsi = findTs(ps, PayloadType.TSi);
    const tsr = findTs(ps, PayloadType.TSr);
    if (!saP || !nonce || !tsi || !tsr || saP.proposals.length !== 1)
      throw new IkeError('invalid_syntax', 'CREATE_CHILD_SA response lacks SA/Nr/TSi/TSr');
    const short = nonceTooShort(nonce.data, sa.prf);
    if (short) throw new IkeError('invalid_syntax', `CHILD_SA rekey response: ${short}`);
    const chosen = wireToChosen(saP.proposals[0]!);
    if (chosen.spi.length !== 4 || !checkChosenInOffer(chosen, this.#offer))
      throw new IkeError('no_proposal_chosen', 'responder chose an ESP proposal we did not offer');
    const ke = findKe(ps);
    let dhSecret: Buffer | undefined;
    if (chosen.dh !== null) {
      const dh = this.#dh;
      if (!dh || !ke || ke.group !== chosen.dh || dh.group !== chosen.dh)
        throw new IkeError('invalid_ke_payload', 'CHILD_SA rekey response KE does not match');
      dhSecret = dh.computeSecret(ke.data);
    }
    if (
      !withinOffer(tsi.selectors, child.proto.tsLocal.map(tsToString)) ||
      !withinOffer(tsr.selectors, child.proto.tsRemote.map(tsToString))
    )
      throw new IkeError('ts_unacceptable', 'responder widened the traffic selectors');
    installChild(
      this.#core,
      sa,
      {
        spiIn: this.#spiIn,
        spiOut: chosen.spi.readUInt32BE(0),
        chosen,
        tsLocal: tsi.selectors,
        tsRemote: tsr.selectors,
      },
      { ni: this.#ni, nr: nonce.data, dhSecret, initiator: true },
    );
    dhSecret?.fill(0); // in KEYMAT now (§2.17); wiped (security issue #11)
    child.transition('rekeyed', 'rekeyed');
    child.rekeyOurs = { ni: this.#ni, nr: Buffer.from(nonce.data), spiIn: this.#spiIn };
    sa.debug(`rekeyed CHILD_SA ${spiHex(child.spiIn)} -> ${spiHex(this.#spiIn)}, deleting the old one`);
    resolveCollision(this.#core, sa, child);
    return 'done';
  }
}

/**
 * The CREATE_CHILD_SA exchange alone, without the DELETE that follows it (tests play a peer that
 * rekeys and never deletes, security issue #11).
 */
export function childRekeyTask(core: V2Services, sa: IkeSaV2, child: Child): Task<'done' | 'gone'> {
  return new ChildRekeyTask(core, sa, child);
}

/**
 * Rekeys `child` of `sa`: the new pair is installed, then the old one DELETEd (§2.8). One
 * INVALID_KE_PAYLOAD retry. Rejects with an IkeError.
 */
export async function rekeyChild(core: V2Services, sa: IkeSaV2, child: Child): Promise<void> {
  child.transition('rekeying', 'soft lifetime or operator');
  let outcome: 'done' | 'gone';
  try {
    outcome = await runTask(sa, new ChildRekeyTask(core, sa, child));
  } catch (err) {
    child.transition('installed', 'rekey failed');
    throw err;
  }
  if (outcome === 'gone') return;
  try {
    await runTask(sa, childDeleteTask([child.spiIn]));
  } catch (err) {
    if (IkeError.from(err).reason === 'sa_gone') return;
    throw new IkeError('timeout', 'no response to the DELETE of the rekeyed CHILD_SA');
  } finally {
    core.removeChild(sa, child.spiIn, 'rekeyed');
  }
}

/* ---------------------------------------------------------------- responder */

/** Answers a CREATE_CHILD_SA that rekeys a CHILD_SA (the REKEY_SA notify names it). */
export function respondChildRekey(
  core: V2Services,
  sa: IkeSaV2,
  ps: Payload[],
  rekey: NotifyPayload,
): Answer {
  const oldSpi = rekey.spi.length === 4 ? rekey.spi.readUInt32BE(0) : -1;
  // The peer names its inbound SPI, which is our outbound one.
  const old = rekey.protocolId === ProtocolId.ESP ? sa.childByOut(oldSpi) : undefined;
  if (!old) {
    sa.debug(`CHILD_SA rekey for unknown SPI ${rekey.spi.toString('hex')}`);
    return {
      payloads: [
        notify(NotifyType.CHILD_SA_NOT_FOUND, Buffer.alloc(0), rekey.protocolId, Buffer.from(rekey.spi)),
      ],
    };
  }
  // The peer rekeyed this pair already and it only waits for the peer's DELETE: a second rekey of
  // it would add a pair per request for ever (security issue #11). RFC 7296 §2.25: a request to
  // rekey a CHILD_SA that is being closed gets TEMPORARY_FAILURE. Our own rekey of it (rekeyOurs)
  // does not count: the peer's rekey of the same pair is then a §2.8.1 collision, answered once.
  if (old.rekeyTheirs || !(old.live || old.state === 'rekeyed')) {
    return refuse(sa, 'temporary_failure', `CHILD_SA ${spiHex(old.spiIn)} was rekeyed already`);
  }
  // Every rekey answered adds a pair until the peer deletes the old one: bounded per IKE SA.
  const full = core.table.overChildLimit(sa);
  if (full) return refuse(sa, 'no_additional_sas', `CHILD_SA rekey refused: ${full}`);
  const saP = findSa(ps);
  const nonce = findNonce(ps);
  const tsi = findTs(ps, PayloadType.TSi);
  const tsr = findTs(ps, PayloadType.TSr);
  if (!saP || !nonce || !tsi || !tsr) return { payloads: [notify(NotifyType.INVALID_SYNTAX)] };
  const short = nonceTooShort(nonce.data, sa.prf);
  if (short) return refuse(sa, 'invalid_syntax', `CHILD_SA rekey: ${short}`);
  const ke = findKe(ps);
  const chosen = selectWithKe(espOffer(sa), saP, ProtocolId.ESP, ke);
  if (chosen?.spi.length !== 4) {
    return refuse(sa, 'no_proposal_chosen', 'no acceptable ESP proposal in CHILD_SA rekey');
  }
  if (chosen.dh !== null && chosen.dh !== ke?.group) {
    sa.debug(`CHILD_SA rekey: asking for DH group ${chosen.dh} instead of ${ke?.group ?? 'none'}`);
    return { payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, groupData(chosen.dh))] };
  }
  const remote = narrow(tsi.selectors, sa.conn.remoteSubnets);
  const local = narrow(tsr.selectors, sa.conn.localSubnets);
  if (!remote.length || !local.length) return { payloads: [notify(NotifyType.TS_UNACCEPTABLE)] };
  let dh: DhKeyPair | undefined;
  let dhSecret: Buffer | undefined;
  if (chosen.dh !== null && ke) {
    dh = dhGenerate(chosen.dh);
    dhSecret = dh.computeSecret(ke.data);
  }
  const nr = sa.ctx.random.bytes(NONCE_LENGTH);
  const spiIn = childSpi(sa);
  // Make-before-break: the new pair is in the data plane before our response leaves.
  installChild(
    core,
    sa,
    { spiIn, spiOut: chosen.spi.readUInt32BE(0), chosen, tsLocal: local, tsRemote: remote },
    { ni: nonce.data, nr, dhSecret, initiator: false, activate: false },
  );
  dhSecret?.fill(0); // in KEYMAT now (§2.17); wiped (security issue #11)
  old.transition('rekeyed', 'rekeyed by the peer');
  old.rekeyTheirs = { ni: Buffer.from(nonce.data), nr, spiIn };
  sa.debug(
    `rekeyed CHILD_SA ${spiHex(old.spiIn)}/${spiHex(old.spiOut)} -> ${spiHex(spiIn)}/${chosen.spi.toString('hex')}`,
  );
  const out: Payload[] = [
    { type: PayloadType.SA, proposals: [chosenToWire({ ...chosen, spi: spiBuffer(spiIn) }, ProtocolId.ESP)] },
    { type: PayloadType.NONCE, data: nr },
  ];
  if (dh) out.push({ type: PayloadType.KE, group: dh.group, data: dh.publicKey });
  out.push({ type: PayloadType.TSi, selectors: remote }, { type: PayloadType.TSr, selectors: local });
  // Our own rekey of the same CHILD_SA may have completed already (§2.8.1).
  return { payloads: out, after: () => resolveCollision(core, sa, old) };
}

/**
 * Simultaneous CHILD_SA rekey (RFC 7296 §2.8.1): both exchanges created a new pair; the one
 * created with the lowest of the four nonces is deleted by its initiator. Runs once both exchanges
 * are complete on our side; whichever completes second settles it. The old pair is deleted as
 * usual by each rekey initiator.
 */
function resolveCollision(core: V2Services, sa: IkeSaV2, old: Child): void {
  const ours = old.rekeyOurs;
  const theirs = old.rekeyTheirs;
  if (old.collisionResolved || !ours?.nr || ours.spiIn === undefined) return;
  if (!theirs?.nr || theirs.spiIn === undefined) return;
  old.collisionResolved = true;
  if (lowestNonce([ours.ni, ours.nr, theirs.ni, theirs.nr]) >= 2) {
    sa.debug(
      `CHILD_SA rekey collision on ${spiHex(old.spiIn)}: the peer's exchange has the lowest nonce, keeping ${spiHex(ours.spiIn)}`,
    );
    return;
  }
  const redundant = ours.spiIn;
  sa.debug(
    `CHILD_SA rekey collision on ${spiHex(old.spiIn)}: our exchange has the lowest nonce, deleting ${spiHex(redundant)}`,
  );
  const gone = (): void => core.removeChild(sa, redundant, 'rekey collision');
  runTask(sa, childDeleteTask([redundant])).then(gone, gone);
}
