/**
 * Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18), both roles, and simultaneous
 * IKE SA rekeys (§2.8.1). The new IKE SA takes the CHILD_SAs over, so the later DELETE of the old
 * one removes no CHILD_SA.
 */
import { IkeError } from '../../../errors.js';
import { newIkeSpi } from '../../core/ike-sa.js';
import { dhGenerate } from '../../crypto/dh.js';
import { encrAlg } from '../../crypto/encr.js';
import { integAlg } from '../../crypto/integ.js';
import { deriveIkeKeysRekey } from '../../crypto/keys.js';
import { prfAlg } from '../../crypto/prf.js';
import { SkProtector } from '../../crypto/sk.js';
import {
  type Chosen,
  checkChosenInOffer,
  chosenToWire,
  type ProposalSpec,
  parseProposals,
  toWireProposal,
  wireToChosen,
} from '../../proposal.js';
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/constants.js';
import type { Payload, SaPayload } from '../../wire/types.js';
import { peerRefused, refuse } from '../errors.js';
import { IkeSaV2 } from '../ike-sa.js';
import { nonceTooShort } from '../nonce.js';
import { findKe, findNonce, firstError, notifies, notify } from '../payload-find.js';
import type { OpenedMessage } from '../protect.js';
import { AGAIN, type Answer, runTask, type Task, type V2Services } from '../task.js';
import { firstGroup, groupData, lowestNonce, selectWithKe } from './child-rekey.js';
import { NONCE_LENGTH } from './ike-init.js';
import { ikeDeleteTask } from './informational.js';

/** Builds the new IKE SA from a CREATE_CHILD_SA that rekeyed `old` (§2.18). */
function rekeyedSa(
  old: IkeSaV2,
  initiator: boolean,
  spiI: Buffer,
  spiR: Buffer,
  chosen: Chosen,
  nonces: { ni: Buffer; nr: Buffer },
  secret: Buffer,
  offer: ProposalSpec[],
): IkeSaV2 {
  const fresh = new IkeSaV2(old.ctx, {
    initiator,
    conn: old.conn,
    local: old.local,
    remote: old.remote,
    spiI,
  });
  fresh.spiR = spiR;
  fresh.ikeOffer = offer;
  fresh.dhGroup = chosen.dh ?? 0;
  fresh.ni = nonces.ni;
  fresh.nr = nonces.nr;
  fresh.chosen = chosen;
  fresh.nat = { ...old.nat };
  // The rekeyed SA serves the same authenticated peer (§2.18: no new authentication).
  fresh.peerIdentity = old.peerIdentity;
  fresh.psk = old.psk;
  const prf = prfAlg(chosen.prf!);
  const encr = encrAlg(chosen.encr.id, chosen.encr.keyLen);
  const integ = chosen.integ ? integAlg(chosen.integ) : null;
  // SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the new SA's PRF (§2.18).
  const keys = deriveIkeKeysRekey(prf, encr, integ, old.keys!.skD, secret, nonces.ni, nonces.nr, spiI, spiR);
  // g^ir (new) and SKEYSEED are needed for nothing else (§2.18): wiped (security issue #11).
  secret.fill(0);
  keys.skeyseed.fill(0);
  fresh.prf = prf;
  fresh.keys = keys;
  const i = new SkProtector(encr, integ, keys.skEi, integ ? keys.skAi : null);
  const r = new SkProtector(encr, integ, keys.skEr, integ ? keys.skAr : null);
  fresh.skOut = initiator ? i : r;
  fresh.skIn = initiator ? r : i;
  return fresh;
}

/** The old IKE SA hands its children to the new one and waits for its DELETE. */
function handOver(core: V2Services, old: IkeSaV2, fresh: IkeSaV2): void {
  old.moveChildrenTo(fresh);
  fresh.begin(`rekeying IKE SA #${old.serial}`);
  fresh.transition('established', `rekeyed IKE SA #${old.serial}`);
  core.adoptRekeyed(old, fresh);
  old.transition('deleting', `rekeyed to IKE SA #${fresh.serial}`);
}

/* ---------------------------------------------------------------- initiator */

class IkeRekeyTask implements Task<IkeSaV2> {
  readonly name = 'ike-rekey';
  readonly exchange = ExchangeType.CREATE_CHILD_SA;
  readonly #core: V2Services;
  readonly #sa: IkeSaV2;
  readonly #offer: ProposalSpec[];
  #group: number;
  #retried = false;
  #spiI: Buffer = Buffer.alloc(0);
  #ni: Buffer = Buffer.alloc(0);
  #dh: ReturnType<typeof dhGenerate> | undefined;

  constructor(core: V2Services, sa: IkeSaV2) {
    this.#core = core;
    this.#sa = sa;
    this.#offer = parseProposals(sa.conn.ike.proposals, 'ike');
    this.#group = sa.chosen?.dh ?? firstGroup(this.#offer);
  }

  build(): Payload[] {
    const sa = this.#sa;
    this.#spiI = newIkeSpi(sa.ctx);
    this.#ni = sa.ctx.random.bytes(NONCE_LENGTH);
    this.#dh = dhGenerate(this.#group);
    sa.ikeRekey.ours = { ni: this.#ni };
    return [
      {
        type: PayloadType.SA,
        proposals: this.#offer.map((p, i) => toWireProposal(p, i + 1, ProtocolId.IKE, this.#spiI)),
      },
      { type: PayloadType.NONCE, data: this.#ni },
      { type: PayloadType.KE, group: this.#group, data: this.#dh.publicKey },
    ];
  }

  process(m: OpenedMessage): IkeSaV2 | typeof AGAIN {
    const sa = this.#sa;
    const ps = m.payloads;
    const invalidKe = notifies(ps, NotifyType.INVALID_KE_PAYLOAD)[0];
    if (invalidKe && !this.#retried) {
      const want = invalidKe.data.length >= 2 ? invalidKe.data.readUInt16BE(0) : 0;
      if (want && want !== this.#group && this.#offer.some((p) => p.dh.includes(want))) {
        sa.debug(`peer wants DH group ${want} for the IKE SA rekey, retrying`);
        this.#group = want;
        this.#retried = true;
        return AGAIN;
      }
    }
    const err = firstError(ps);
    if (err) throw peerRefused(err, 'peer refused the IKE SA rekey:');
    const saP = ps.find((p): p is SaPayload => p.type === PayloadType.SA);
    const nonce = findNonce(ps);
    const ke = findKe(ps);
    if (!saP || !nonce || !ke || saP.proposals.length !== 1)
      throw new IkeError('invalid_syntax', 'IKE SA rekey response lacks SA/Nr/KE');
    const chosen = wireToChosen(saP.proposals[0]!);
    if (chosen.spi.length !== 8 || !checkChosenInOffer(chosen, this.#offer))
      throw new IkeError('no_proposal_chosen', 'responder chose an IKE proposal we did not offer');
    if (chosen.dh !== this.#group || ke.group !== this.#group)
      throw new IkeError(
        'invalid_ke_payload',
        `responder KE group ${ke.group} does not match ${this.#group}`,
      );
    const short = nonceTooShort(nonce.data, prfAlg(chosen.prf!));
    if (short) throw new IkeError('invalid_syntax', `IKE SA rekey response: ${short}`);
    const secret = this.#dh!.computeSecret(ke.data);
    const nonces = { ni: this.#ni, nr: nonce.data };
    const fresh = rekeyedSa(
      sa,
      true,
      this.#spiI,
      Buffer.from(chosen.spi),
      chosen,
      nonces,
      secret,
      this.#offer,
    );
    handOver(this.#core, sa, fresh);
    sa.ikeRekey.ours = { ni: this.#ni, nr: Buffer.from(nonce.data), fresh };
    resolveIkeCollision(this.#core, sa);
    return fresh;
  }
}

/** The CREATE_CHILD_SA exchange alone, without the DELETE of the old SA (tests, security issue #11). */
export function ikeRekeyTask(core: V2Services, sa: IkeSaV2): Task<IkeSaV2> {
  return new IkeRekeyTask(core, sa);
}

/**
 * Rekeys the IKE SA: the new SA takes the children over, then the old one is DELETEd. One
 * INVALID_KE_PAYLOAD retry. Resolves with the new IKE SA once it took over.
 */
export async function rekeyIke(core: V2Services, sa: IkeSaV2): Promise<IkeSaV2> {
  const fresh = await runTask(sa, new IkeRekeyTask(core, sa));
  const gone = (): void => core.destroy(sa, 'rekeyed');
  runTask(sa, ikeDeleteTask()).then(gone, gone);
  return fresh;
}

/* ---------------------------------------------------------------- responder */

export function respondIkeRekey(core: V2Services, sa: IkeSaV2, ps: Payload[], saP: SaPayload): Answer {
  const ke = findKe(ps);
  const nonce = findNonce(ps);
  if (!ke || !nonce) return { payloads: [notify(NotifyType.INVALID_SYNTAX)] };
  const offer = parseProposals(sa.conn.ike.proposals, 'ike');
  const chosen = selectWithKe(offer, saP, ProtocolId.IKE, ke);
  if (chosen?.spi.length !== 8) {
    return refuse(sa, 'no_proposal_chosen', 'no acceptable IKE proposal in IKE SA rekey');
  }
  if (chosen.dh !== ke.group)
    return { payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, groupData(chosen.dh ?? 0))] };
  const short = nonceTooShort(nonce.data, prfAlg(chosen.prf!));
  if (short) return refuse(sa, 'invalid_syntax', `IKE SA rekey: ${short}`);
  // The new IKE SA exists alongside the old one until the peer DELETEs that: a peer that rekeys
  // without deleting would add an SA per request, so rekeys count against the SA limits (issue #11).
  // NO_ADDITIONAL_SAS: "unwilling to accept any more Child SAs" (RFC 7296 §3.10.1; an IKE SA rekey is
  // a CREATE_CHILD_SA too, §1.3.2).
  const limit = core.table.overLimitRekey(sa.remote.address);
  if (limit) return refuse(sa, 'no_additional_sas', `IKE SA rekey refused: ${limit}`);
  const dh = dhGenerate(ke.group);
  const secret = dh.computeSecret(ke.data);
  const nr = sa.ctx.random.bytes(NONCE_LENGTH);
  const spiR = newIkeSpi(sa.ctx);
  const nonces = { ni: nonce.data, nr };
  const fresh = rekeyedSa(sa, false, Buffer.from(chosen.spi), spiR, chosen, nonces, secret, offer);
  return {
    payloads: [
      { type: PayloadType.SA, proposals: [chosenToWire(chosen, ProtocolId.IKE, spiR)] },
      { type: PayloadType.NONCE, data: nr },
      { type: PayloadType.KE, group: ke.group, data: dh.publicKey },
    ],
    after: () => {
      handOver(core, sa, fresh);
      sa.ikeRekey.theirs = { ni: Buffer.from(nonce.data), nr, fresh };
      resolveIkeCollision(core, sa);
    },
  };
}

/**
 * Simultaneous IKE SA rekey (RFC 7296 §2.8.1): two new IKE SAs exist; the one created with the
 * lowest of the four nonces is deleted by its initiator, and the CHILD_SAs move to the survivor
 * on both sides (each side handed them to whichever new SA came first). The old IKE SA is deleted
 * as usual by each rekey initiator.
 */
function resolveIkeCollision(core: V2Services, old: IkeSaV2): void {
  const c = old.ikeRekey;
  const ours = c.ours;
  const theirs = c.theirs;
  if (c.done || !ours?.nr || !ours.fresh || !theirs?.nr || !theirs.fresh) return;
  c.done = true;
  const oursLoses = lowestNonce([ours.ni, ours.nr, theirs.ni, theirs.nr]) < 2;
  const loser = oursLoses ? ours.fresh : theirs.fresh;
  const winner = oursLoses ? theirs.fresh : ours.fresh;
  loser.moveChildrenTo(winner);
  for (const ch of winner.children) core.table.setChildOwner(ch.spiIn, winner);
  old.debug(
    `IKE SA rekey collision: keeping IKE SA #${winner.serial}, ${oursLoses ? 'deleting' : 'the peer deletes'} #${loser.serial}`,
  );
  if (!oursLoses) return;
  loser.transition('deleting', `rekey collision, IKE SA #${winner.serial} survives`);
  const gone = (): void => core.destroy(loser, 'rekey collision');
  runTask(loser, ikeDeleteTask()).then(gone, gone);
}
