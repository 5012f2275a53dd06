/**
 * IKE_AUTH with pre-shared keys (RFC 7296 §1.2, §2.15) carrying the first CHILD_SA (§1.3 via
 * child.ts). The AUTH payload signs our IKE_SA_INIT message, the peer's nonce and prf(SK_p, ID).
 */
import { timingSafeEqual } from 'node:crypto';
import type { ConnectionConfig } from '../../config/types.js';
import type { ChildSaSpec } from '../../dataplane/types.js';
import { pskAuth } from '../crypto/keys.js';
import {
  type Identity,
  identityBody,
  identityMatches,
  identityToString,
  parseIdentity,
} from '../identity.js';
import { checkChosenInOffer, chosenToWire, wireToChosen } from '../proposal.js';
import { AuthMethod, ExchangeType, NotifyType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { Payload } from '../wire/types.js';
import {
  childRequestPayloads,
  espOffer,
  installChild,
  narrow,
  newSpi,
  selectEsp,
  spiBuffer,
  withinOffer,
} from './child.js';
import type { IkeSa } from './ike-sa.js';
import { InitFailure } from './init.js';
import { findAuth, findId, findSa, findTs, firstError, notifies, notify } from './payload-find.js';

export interface AuthHooks {
  install(spec: ChildSaSpec): void;
  /** Whether to send INITIAL_CONTACT: only when we hold no other IKE SA for this identity pair. */
  initialContact(sa: IkeSa): boolean;
  /** The peer sent INITIAL_CONTACT: drop our older SAs with it. */
  peerInitialContact(sa: IkeSa): void;
}

function authData(sa: IkeSa, conn: ConnectionConfig, ours: boolean, id: Identity): Buffer {
  // Initiator signs (IKE_SA_INIT request | Nr | prf(SK_pi, IDi)); responder (response | Ni | prf(SK_pr, IDr)).
  const signerIsInitiator = ours === sa.initiator;
  const message = signerIsInitiator ? sa.initRequest : sa.initResponse;
  const nonce = signerIsInitiator ? sa.nr : sa.ni;
  const skP = signerIsInitiator ? sa.keys!.skPi : sa.keys!.skPr;
  return pskAuth(sa.prf!, conn.psk, message, nonce, skP, identityBody(id));
}

function verifyAuth(sa: IkeSa, conn: ConnectionConfig, id: Identity, data: Buffer): boolean {
  const expect = authData(sa, conn, false, id);
  return expect.length === data.length && timingSafeEqual(expect, data);
}

const idPayload = (type: PayloadType.IDi | PayloadType.IDr, id: Identity): Payload => ({
  type,
  idType: id.type,
  data: id.data,
});

/* ---------------------------------------------------------------- initiator */

export function sendAuthRequest(sa: IkeSa, hooks: AuthHooks, onDone: (err?: InitFailure) => void): void {
  const idI = parseIdentity(sa.conn.localId);
  const idR = parseIdentity(sa.conn.remoteId);
  const spiIn = newSpi();
  const payloads: Payload[] = [idPayload(PayloadType.IDi, idI)];
  if (hooks.initialContact(sa)) payloads.push(notify(NotifyType.INITIAL_CONTACT));
  if (idR.type !== 0) payloads.push(idPayload(PayloadType.IDr, idR));
  payloads.push({ type: PayloadType.AUTH, method: AuthMethod.PSK, data: authData(sa, sa.conn, true, idI) });
  payloads.push(...childRequestPayloads(sa, spiIn));
  sa.request(
    ExchangeType.IKE_AUTH,
    payloads,
    (m) => {
      try {
        processAuthResponse(sa, hooks, m.payloads, spiIn);
        onDone();
      } catch (err) {
        onDone(
          err instanceof InitFailure ? err : new InitFailure('invalid_response', (err as Error).message),
        );
      }
    },
    () => onDone(new InitFailure('timeout', 'no response to IKE_AUTH')),
  );
}

function processAuthResponse(sa: IkeSa, hooks: AuthHooks, ps: Payload[], spiIn: number): void {
  const idP = findId(ps, PayloadType.IDr);
  const auth = findAuth(ps);
  if (!idP || !auth) {
    const err = firstError(ps);
    const name = err ? (NotifyType[err.notifyType] ?? String(err.notifyType)) : 'no IDr/AUTH';
    throw new InitFailure(
      name === 'AUTHENTICATION_FAILED' ? 'auth_failed' : name.toLowerCase(),
      `peer answered IKE_AUTH with ${name}`,
    );
  }
  const id: Identity = { type: idP.idType, data: idP.data };
  const want = parseIdentity(sa.conn.remoteId);
  if (!identityMatches(want, id)) {
    throw new InitFailure(
      'auth_failed',
      `peer identity '${identityToString(id)}' does not match remoteId '${sa.conn.remoteId}'`,
    );
  }
  if (auth.method !== AuthMethod.PSK || !verifyAuth(sa, sa.conn, id, auth.data)) {
    throw new InitFailure(
      'auth_failed',
      `AUTH payload of '${identityToString(id)}' does not verify with our PSK`,
    );
  }
  sa.transition('established', `authenticated '${identityToString(id)}' with PSK`);
  const childErr = firstError(ps);
  if (childErr) {
    const name = NotifyType[childErr.notifyType] ?? String(childErr.notifyType);
    throw new InitFailure(name.toLowerCase(), `IKE SA up, but the peer refused the CHILD_SA: ${name}`);
  }
  const saP = findSa(ps);
  const tsi = findTs(ps, PayloadType.TSi);
  const tsr = findTs(ps, PayloadType.TSr);
  if (!saP || !tsi || !tsr || saP.proposals.length !== 1)
    throw new InitFailure('invalid_syntax', 'IKE_AUTH response lacks SA/TSi/TSr');
  const chosen = wireToChosen(saP.proposals[0]!);
  if (chosen.spi.length !== 4 || !checkChosenInOffer(chosen, espOffer(sa), { ignoreDh: true })) {
    throw new InitFailure('no_proposal_chosen', 'responder chose an ESP proposal we did not offer');
  }
  if (
    !withinOffer(tsi.selectors, sa.conn.localSubnets) ||
    !withinOffer(tsr.selectors, sa.conn.remoteSubnets)
  ) {
    throw new InitFailure('ts_unacceptable', 'responder returned traffic selectors wider than ours');
  }
  installChild(sa, hooks.install, {
    spiIn,
    spiOut: chosen.spi.readUInt32BE(0),
    chosen,
    tsLocal: tsi.selectors,
    tsRemote: tsr.selectors,
  });
}

/* ---------------------------------------------------------------- responder */

export type AuthAnswer =
  | { ok: true; payloads: Payload[]; after: () => void }
  | { ok: false; payloads: Payload[]; reason: string; detail: string };

export function processAuthRequest(sa: IkeSa, hooks: AuthHooks, ps: Payload[]): AuthAnswer {
  const idP = findId(ps, PayloadType.IDi);
  const auth = findAuth(ps);
  if (!idP || !auth) {
    return {
      ok: false,
      reason: 'invalid_syntax',
      detail: 'IKE_AUTH without IDi or AUTH',
      payloads: [notify(NotifyType.INVALID_SYNTAX)],
    };
  }
  const idI: Identity = { type: idP.idType, data: idP.data };
  const idRp = findId(ps, PayloadType.IDr);
  const idR: Identity | undefined = idRp ? { type: idRp.idType, data: idRp.data } : undefined;
  // Pick the connection by identities among those that matched the addresses (§2.15 lets a
  // responder choose its credentials from IDi and the optional IDr); several connections between
  // the same gateways and identities are told apart by their traffic selectors, as strongSwan does.
  const byId = sa.candidates.filter(
    (c) =>
      identityMatches(parseIdentity(c.remoteId), idI) &&
      (!idR || identityMatches(parseIdentity(c.localId), idR)),
  );
  const tsi = findTs(ps, PayloadType.TSi)?.selectors ?? [];
  const tsr = findTs(ps, PayloadType.TSr)?.selectors ?? [];
  const conn =
    byId.find((c) => narrow(tsi, c.remoteSubnets).length > 0 && narrow(tsr, c.localSubnets).length > 0) ??
    byId[0];
  const failed = (detail: string): AuthAnswer => ({
    ok: false,
    reason: 'auth_failed',
    detail,
    payloads: [notify(NotifyType.AUTHENTICATION_FAILED)],
  });
  if (!conn) return failed(`no connection for peer identity '${identityToString(idI)}'`);
  sa.conn = conn;
  if (auth.method !== AuthMethod.PSK || !verifyAuth(sa, conn, idI, auth.data)) {
    return failed(`AUTH payload of '${identityToString(idI)}' does not verify with our PSK`);
  }
  const ourId = parseIdentity(conn.localId);
  const out: Payload[] = [
    idPayload(PayloadType.IDr, ourId),
    { type: PayloadType.AUTH, method: AuthMethod.PSK, data: authData(sa, conn, true, ourId) },
  ];
  const wantsIc = notifies(ps, NotifyType.INITIAL_CONTACT).length > 0;
  const child = respondChild(sa, ps);
  out.push(...child.payloads);
  return {
    ok: true,
    payloads: out,
    after: () => {
      sa.transition('established', `authenticated '${identityToString(idI)}' with PSK`);
      if (wantsIc) hooks.peerInitialContact(sa);
      if (child.install) installChild(sa, hooks.install, child.install);
    },
  };
}

function respondChild(
  sa: IkeSa,
  ps: Payload[],
): { payloads: Payload[]; install?: Parameters<typeof installChild>[2] } {
  const saP = findSa(ps);
  const tsi = findTs(ps, PayloadType.TSi);
  const tsr = findTs(ps, PayloadType.TSr);
  if (!saP || !tsi || !tsr) return { payloads: [] }; // childless IKE SA (RFC 6023)
  const chosen = selectEsp(sa, saP);
  if (chosen?.spi.length !== 4) {
    sa.env.bus.emit('ike-failure', {
      connection: sa.name,
      reason: 'no_proposal_chosen',
      detail: 'no acceptable ESP proposal in IKE_AUTH',
    });
    return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
  }
  // TSi describes the initiator's side, i.e. our remote subnets.
  const remote = narrow(tsi.selectors, sa.conn.remoteSubnets);
  const local = narrow(tsr.selectors, sa.conn.localSubnets);
  if (!remote.length || !local.length) {
    sa.env.bus.emit('ike-failure', {
      connection: sa.name,
      reason: 'ts_unacceptable',
      detail: 'traffic selectors do not match localSubnets/remoteSubnets',
    });
    return { payloads: [notify(NotifyType.TS_UNACCEPTABLE)] };
  }
  const spiIn = newSpi();
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
