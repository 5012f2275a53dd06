/**
 * IKE_AUTH with pre-shared keys (RFC 7296 §1.2, §2.15) carrying the first CHILD_SA (§1.3, via
 * child-create.ts). The AUTH payload signs our IKE_SA_INIT message, the peer's nonce and
 * prf(SK_p, ID).
 */
import { timingSafeEqual } from 'node:crypto';
import { IkeError } from '../../../errors.js';
import { peerIdentityKey } from '../../core/ike-sa.js';
import { pskAuth } from '../../crypto/keys.js';
import {
  type Identity,
  identityBody,
  identityMatches,
  identityToString,
  malformedIdentity,
  parseIdentity,
} from '../../identity.js';
import {
  checkChosenInOffer,
  chosenToString,
  chosenToWire,
  parseProposals,
  wireToChosen,
} from '../../proposal.js';
import { AuthMethod, ExchangeType, NotifyType, PayloadType, ProtocolId } from '../../wire/constants.js';
import type { Payload } from '../../wire/types.js';
import { notifyReason, peerRefused, refuse } from '../errors.js';
import type { IkeSaV2 } from '../ike-sa.js';
import { findAuth, findId, findSa, findTs, firstError, notifies, notify } from '../payload-find.js';
import type { OpenedMessage } from '../protect.js';
import type { Task, V2Services } from '../task.js';
import {
  childRequestPayloads,
  childSpi,
  espOffer,
  installChild,
  MAX_SELECTORS,
  type NewChild,
  narrow,
  selectEsp,
  spiBuffer,
  withinOffer,
} from './child-create.js';

function authData(sa: IkeSaV2, psk: Buffer, ours: boolean, id: Identity): Buffer {
  // Initiator signs (IKE_SA_INIT request | Nr | prf(SK_pi, IDi)); responder (response | Ni | prf(SK_pr, IDr)).
  const signerIsInitiator = ours === sa.initiator;
  const message = signerIsInitiator ? sa.initRequest : sa.initResponse;
  const nonce = signerIsInitiator ? sa.nr : sa.ni;
  const skP = signerIsInitiator ? sa.keys!.skPi : sa.keys!.skPr;
  return pskAuth(sa.prf!, psk, message, nonce, skP, identityBody(id));
}

function verifyAuth(sa: IkeSaV2, psk: Buffer | undefined, id: Identity, data: Buffer): boolean {
  if (!psk) return false;
  const expect = authData(sa, psk, false, id);
  return expect.length === data.length && timingSafeEqual(expect, data);
}

const idPayload = (type: PayloadType.IDi | PayloadType.IDr, id: Identity): Payload => ({
  type,
  idType: id.type,
  data: id.data,
});

/* ---------------------------------------------------------------- initiator */

export class IkeAuthTask implements Task<void> {
  readonly name = 'ike-auth';
  readonly exchange = ExchangeType.IKE_AUTH;
  readonly #sa: IkeSaV2;
  readonly #core: V2Services;
  readonly #spiIn: number;

  constructor(core: V2Services, sa: IkeSaV2) {
    this.#core = core;
    this.#sa = sa;
    this.#spiIn = childSpi(sa);
  }

  build(): Payload[] {
    const sa = this.#sa;
    const idI = parseIdentity(sa.conn.localId);
    const idR = parseIdentity(sa.conn.remoteId);
    const payloads: Payload[] = [idPayload(PayloadType.IDi, idI)];
    if (this.#core.wantInitialContact(sa)) payloads.push(notify(NotifyType.INITIAL_CONTACT));
    if (idR.type !== 0) payloads.push(idPayload(PayloadType.IDr, idR));
    // An initiator's key: its connection's own, or the secret for the peer identity it expects.
    sa.psk = this.#core.conns.pskFor(sa.conn, idR);
    if (!sa.psk) throw new IkeError('auth_failed', `no pre-shared key for peer '${sa.conn.remoteId}'`);
    payloads.push({ type: PayloadType.AUTH, method: AuthMethod.PSK, data: authData(sa, sa.psk, true, idI) });
    payloads.push(...childRequestPayloads(sa, this.#spiIn));
    return payloads;
  }

  process(m: OpenedMessage): void {
    const sa = this.#sa;
    const ps = m.payloads;
    const idP = findId(ps, PayloadType.IDr);
    const auth = findAuth(ps);
    if (!idP || !auth) {
      const err = firstError(ps);
      if (err) throw peerRefused(err, 'peer answered IKE_AUTH with');
      throw new IkeError('no idr/auth', 'peer answered IKE_AUTH with no IDr/AUTH');
    }
    const id: Identity = { type: idP.idType, data: idP.data };
    const want = parseIdentity(sa.conn.remoteId);
    if (!identityMatches(want, id)) {
      throw new IkeError(
        'auth_failed',
        `peer identity '${identityToString(id)}' does not match remoteId '${sa.conn.remoteId}'`,
      );
    }
    if (auth.method !== AuthMethod.PSK || !verifyAuth(sa, sa.psk, id, auth.data)) {
      throw new IkeError(
        'auth_failed',
        `AUTH payload of '${identityToString(id)}' does not verify with our PSK`,
      );
    }
    sa.peerIdentity = peerIdentityKey(id);
    sa.transition('established', `authenticated '${identityToString(id)}' with PSK`);
    sa.handshakeDone();
    const childErr = firstError(ps);
    if (childErr) {
      const name = NotifyType[childErr.notifyType] ?? String(childErr.notifyType);
      throw new IkeError(notifyReason(childErr), `IKE SA up, but the peer refused the CHILD_SA: ${name}`);
    }
    const saP = findSa(ps);
    const tsi = findTs(ps, PayloadType.TSi);
    const tsr = findTs(ps, PayloadType.TSr);
    if (!saP || !tsi || !tsr || saP.proposals.length !== 1)
      throw new IkeError('invalid_syntax', 'IKE_AUTH response lacks SA/TSi/TSr');
    const chosen = wireToChosen(saP.proposals[0]!);
    if (chosen.spi.length !== 4 || !checkChosenInOffer(chosen, espOffer(sa), { ignoreDh: true })) {
      throw new IkeError('no_proposal_chosen', 'responder chose an ESP proposal we did not offer');
    }
    if (
      !withinOffer(tsi.selectors, sa.conn.localSubnets) ||
      !withinOffer(tsr.selectors, sa.conn.remoteSubnets)
    ) {
      // Wider than asked, or limited to a protocol/ports or not a CIDR block: the data plane could
      // not enforce it as negotiated (§2.9). The IKE SA is deleted and the connection retried
      // with the usual backoff (core.failed), never installed half-way.
      throw new IkeError(
        'ts_unacceptable',
        'responder returned traffic selectors wider than ours or not enforceable (protocol, ports, non-CIDR range)',
      );
    }
    installChild(this.#core, sa, {
      spiIn: this.#spiIn,
      spiOut: chosen.spi.readUInt32BE(0),
      chosen,
      tsLocal: tsi.selectors,
      tsRemote: tsr.selectors,
    });
  }
}

/* ---------------------------------------------------------------- responder */

export type AuthAnswer =
  | { ok: true; payloads: Payload[]; after: () => void }
  | { ok: false; payloads: Payload[]; error: IkeError };

export function respondIkeAuth(core: V2Services, sa: IkeSaV2, ps: Payload[]): AuthAnswer {
  const refuse = (reason: string, detail: string, answer?: NotifyType): AuthAnswer => ({
    ok: false,
    error: new IkeError(reason, detail),
    payloads: [
      notify(
        answer ?? (reason === 'auth_failed' ? NotifyType.AUTHENTICATION_FAILED : NotifyType.INVALID_SYNTAX),
      ),
    ],
  });
  const idP = findId(ps, PayloadType.IDi);
  const auth = findAuth(ps);
  if (!idP || !auth) return refuse('invalid_syntax', 'IKE_AUTH without IDi or AUTH');
  const idI: Identity = { type: idP.idType, data: idP.data };
  const idRp = findId(ps, PayloadType.IDr);
  const idR: Identity | undefined = idRp ? { type: idRp.idType, data: idRp.data } : undefined;
  // A malformed ID ends the half-made SA now (§2.21.2), instead of an exception that drops the
  // message and leaves the SA half-open until it times out (security issue #11).
  const badId = malformedIdentity(idI) ?? (idR ? malformedIdentity(idR) : null);
  if (badId) return refuse('auth_failed', `malformed identity in IKE_AUTH: ${badId}`);
  // Pick the connection by identities among those that matched the addresses (§2.15 lets a
  // responder choose its credentials from IDi and the optional IDr).
  const byId = sa.candidates.filter(
    (c) =>
      identityMatches(parseIdentity(c.remoteId), idI) &&
      (!idR || identityMatches(parseIdentity(c.localId), idR)),
  );
  if (!byId.length)
    return refuse('auth_failed', `no connection for peer identity '${identityToString(idI)}'`);
  // AUTH first (§2.15, §2.21.2): only a peer that proved it holds a connection's PSK gets any
  // further work done, in particular no traffic selector narrowing (security issue #11: up to 255
  // selectors each way, per connection, before authentication). One PRF per distinct candidate.
  if (auth.method !== AuthMethod.PSK)
    return refuse('auth_failed', `AUTH method ${auth.method} of '${identityToString(idI)}' is not PSK`);
  const authed = byId.filter((c) => verifyAuth(sa, core.conns.pskFor(c, idI), idI, auth.data));
  if (!authed.length)
    return refuse('auth_failed', `AUTH payload of '${identityToString(idI)}' does not verify with our PSK`);
  // The IKE SA's algorithms were chosen in IKE_SA_INIT against the first candidate's proposals,
  // before the peer said who it is; the connection it authenticated for must allow them too, or
  // a connection configured for AES-GCM only could run on another connection's weaker suite.
  // §2.21.2: a failure that prevents the IKE SA is answered AUTHENTICATION_FAILED.
  const algOk = authed.filter((c) => checkChosenInOffer(sa.chosen!, parseProposals(c.ike.proposals, 'ike')));
  if (!algOk.length) {
    return refuse(
      'no_proposal_chosen',
      `IKE SA algorithms ${chosenToString(sa.chosen!)} are not allowed by connection '${authed[0]!.name}'`,
      NotifyType.AUTHENTICATION_FAILED,
    );
  }
  // Several connections between the same gateways and identities are told apart by their traffic
  // selectors, as strongSwan does; narrowing is bounded (MAX_SELECTORS), and now authenticated.
  const tsi = findTs(ps, PayloadType.TSi)?.selectors ?? [];
  const tsr = findTs(ps, PayloadType.TSr)?.selectors ?? [];
  const bounded = tsi.length <= MAX_SELECTORS && tsr.length <= MAX_SELECTORS;
  const conn =
    (bounded
      ? algOk.find((c) => narrow(tsi, c.remoteSubnets).length > 0 && narrow(tsr, c.localSubnets).length > 0)
      : undefined) ?? algOk[0]!;
  sa.conn = conn;
  sa.peerIdentity = peerIdentityKey(idI);
  // The key the peer proved: ours is computed with the same one (RFC 7296 §2.15).
  sa.psk = core.conns.pskFor(conn, idI)!;
  const ourId = parseIdentity(conn.localId);
  const out: Payload[] = [
    idPayload(PayloadType.IDr, ourId),
    { type: PayloadType.AUTH, method: AuthMethod.PSK, data: authData(sa, sa.psk, true, ourId) },
  ];
  const wantsIc = notifies(ps, NotifyType.INITIAL_CONTACT).length > 0;
  const child = respondChild(sa, ps);
  out.push(...child.payloads);
  return {
    ok: true,
    payloads: out,
    after: () => {
      sa.transition('established', `authenticated '${identityToString(idI)}' with PSK`);
      if (wantsIc) core.peerInitialContact(sa);
      if (child.install) installChild(core, sa, child.install);
      sa.handshakeDone();
    },
  };
}

function respondChild(sa: IkeSaV2, ps: Payload[]): { payloads: Payload[]; install?: NewChild } {
  const saP = findSa(ps);
  const tsi = findTs(ps, PayloadType.TSi);
  const tsr = findTs(ps, PayloadType.TSr);
  if (!saP || !tsi || !tsr) return { payloads: [] }; // childless IKE SA (RFC 6023)
  const chosen = selectEsp(sa, saP);
  if (chosen?.spi.length !== 4) {
    return refuse(sa, 'no_proposal_chosen', 'no acceptable ESP proposal in IKE_AUTH');
  }
  // §3.13 allows 255 selectors per payload; we narrow at most MAX_SELECTORS (bounded work).
  if (tsi.selectors.length > MAX_SELECTORS || tsr.selectors.length > MAX_SELECTORS) {
    return refuse(sa, 'ts_unacceptable', `more than ${MAX_SELECTORS} traffic selectors offered`);
  }
  // TSi describes the initiator's side, i.e. our remote subnets. What is left after narrowing is
  // only what the data plane enforces (whole protocol, all ports, CIDR blocks): if nothing is,
  // TS_UNACCEPTABLE (§2.9) rather than a CHILD_SA the data plane cannot install as negotiated.
  const remote = narrow(tsi.selectors, sa.conn.remoteSubnets);
  const local = narrow(tsr.selectors, sa.conn.localSubnets);
  if (!remote.length || !local.length) {
    return refuse(
      sa,
      'ts_unacceptable',
      'traffic selectors do not match localSubnets/remoteSubnets (as whole-protocol, all-port CIDR blocks)',
    );
  }
  const spiIn = childSpi(sa);
  return {
    payloads: [
      {
        type: PayloadType.SA,
        proposals: [chosenToWire({ ...chosen, spi: spiBuffer(spiIn) }, ProtocolId.ESP)],
      },
      { type: PayloadType.TSi, selectors: remote },
      { type: PayloadType.TSr, selectors: local },
    ],
    install: { spiIn, spiOut: chosen.spi.readUInt32BE(0), chosen, tsLocal: local, tsRemote: remote },
  };
}
