/**
 * IKEv2 as the core drives it: takes the datagrams of major version 2, opens and checks them,
 * answers requests through the responder halves of the tasks (one exchange type each), completes
 * our own requests, creates responder SAs for IKE_SA_INIT, and runs the initiator tasks for the
 * core's initiate/rekey/delete/liveness.
 */

import { createHash } from 'node:crypto';
import type { ConnectionConfig } from '../../config/types.js';
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import type { ChildSa } from '../core/child-sa.js';
import type { AnySa, CoreServices, IkeProtocol } from '../core/protocol.js';
import { type ProposalSpec, parseProposals } from '../proposal.js';

/**
 * A connection's IKE proposals parsed once, not per IKE_SA_INIT (read-only: selection copies what it
 * changes). Keyed by the configured list, which a reload replaces.
 */
/** What an SA keeps of its IKE_SA_INIT request to recognise a late retransmission (not the bytes). */
function firstDigest(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, 16);
}

const offers = new WeakMap<readonly string[], ProposalSpec[]>();
function ikeOfferOf(proposals: readonly string[]): ProposalSpec[] {
  let o = offers.get(proposals);
  if (!o) {
    o = parseProposals([...proposals], 'ike');
    offers.set(proposals, o);
  }
  return o;
}

import type { Datagram } from '../transport.js';
import { ExchangeType, HeaderFlag, NotifyType, ProtocolId } from '../wire/constants.js';
import { decodeHeader } from '../wire/header.js';
import { decodeMessage, encodeMessage } from '../wire/message.js';
import { UnsupportedCriticalError } from '../wire/payloads.js';
import { checkMessageRules } from '../wire/rules.js';
import type { IkeHeader, Payload } from '../wire/types.js';
import { CookieJar } from './cookie.js';
import { IkeSaV2, protocolContext, type V2Child, type V2Context } from './ike-sa.js';
import { findNonce, findSa, notifies, notify } from './payload-find.js';
import { type OpenedMessage, openMessage, SealedWireError } from './protect.js';
import { type Answer, runTask } from './task.js';
import { rekeyChild, respondChildRekey } from './tasks/child-rekey.js';
import { IkeAuthTask, respondIkeAuth } from './tasks/ike-auth.js';
import { IkeInitTask, preferredGroup, respondIkeInit } from './tasks/ike-init.js';
import { rekeyIke, respondIkeRekey } from './tasks/ike-rekey.js';
import { childDeleteTask, ikeDeleteTask, livenessTask, respondInformational } from './tasks/informational.js';

export class IkeV2 implements IkeProtocol {
  readonly version = 2 as const;
  readonly #core: CoreServices;
  readonly #ctx: V2Context;
  readonly #cookies: CookieJar;

  constructor(core: CoreServices) {
    this.#core = core;
    this.#ctx = protocolContext(core);
    const t = core.timing;
    this.#cookies = new CookieJar(core.clock, core.random, {
      threshold: t.cookieThreshold,
      thresholdPerPeer: t.cookieThresholdPerPeer,
      secretLifetime: t.cookieSecretLifetime,
      grace: t.cookieSecretGrace,
      calmdown: t.cookieCalmdown,
    });
  }

  /* ------------------------------------------------------------ initiator */

  initiate(conn: ConnectionConfig): void {
    const core = this.#core;
    const sa = new IkeSaV2(this.#ctx, {
      initiator: true,
      conn,
      local: { address: conn.local, port: core.ports.ike },
      remote: { address: conn.remote, port: core.ports.ike },
    });
    sa.ikeOffer = parseProposals(conn.ike.proposals, 'ike');
    sa.dhGroup = preferredGroup(sa.ikeOffer);
    core.table.add(sa);
    sa.begin(`initiating to ${conn.remote}`);
    void (async () => {
      try {
        await runTask(sa, new IkeInitTask(sa));
        sa.transition('auth', 'IKE_SA_INIT done');
        await runTask(sa, new IkeAuthTask(core, sa));
      } catch (err) {
        const e = IkeError.from(err);
        if (sa.phase !== 'dead') core.failed(sa, e.reason, e.message);
        return;
      }
      core.established(sa);
    })();
  }

  rekeyIke(sa: AnySa): Promise<AnySa> {
    return rekeyIke(this.#core, sa as IkeSaV2);
  }

  rekeyChild(sa: AnySa, child: ChildSa<unknown>): Promise<void> {
    return rekeyChild(this.#core, sa as IkeSaV2, child as ChildSa<V2Child>);
  }

  async deleteIke(sa: AnySa): Promise<void> {
    await runTask(sa as IkeSaV2, ikeDeleteTask()).catch(() => {});
  }

  async deleteChildren(sa: AnySa, spisIn: number[]): Promise<void> {
    await runTask(sa as IkeSaV2, childDeleteTask(spisIn)).catch(() => {});
  }

  async liveness(sa: AnySa, to?: Endpoint): Promise<boolean> {
    return runTask(sa as IkeSaV2, livenessTask(to)).then(
      () => true,
      () => false,
    );
  }

  busy(sa: AnySa): boolean {
    return (sa as IkeSaV2).busy;
  }

  /* ------------------------------------------------------------ dispatch */

  handle(d: Datagram): void {
    const core = this.#core;
    const header = decodeHeader(d.data);
    const isResponse = (header.flags & HeaderFlag.RESPONSE) !== 0;
    const fromInitiator = (header.flags & HeaderFlag.INITIATOR) !== 0;
    if (header.exchange === ExchangeType.IKE_SA_INIT && !isResponse) return this.#initRequest(d, header);
    const ourSpi = fromInitiator ? header.spiR : header.spiI;
    const found = core.table.get(ourSpi);
    if (!(found instanceof IkeSaV2) || found.initiator === fromInitiator)
      return core.drop('unknown_spi', `no IKE SA ${ourSpi.toString('hex')}`, d);
    const sa = found;
    if (sa.spiR.some((b) => b !== 0) && !sa.spiR.equals(header.spiR))
      return core.drop('unknown_spi', 'responder SPI mismatch', d);
    let msg: OpenedMessage;
    if (header.exchange === ExchangeType.IKE_SA_INIT) {
      msg = { header, payloads: decodeMessage(d.data).payloads };
    } else {
      if (!sa.skIn)
        return core.drop(
          'unexpected',
          `${ExchangeType[header.exchange] ?? header.exchange} before keys exist`,
          d,
        );
      try {
        msg = openMessage(d.data, sa.skIn);
        sa.lastReceived = core.clock.now();
      } catch (err) {
        if (err instanceof UnsupportedCriticalError && !isResponse)
          return this.#unsupportedCritical(sa, header, d, err);
        if (err instanceof SealedWireError && !isResponse && header.exchange === ExchangeType.IKE_AUTH)
          return this.#malformedAuth(sa, header, d, err);
        throw err;
      }
    }
    const bad = checkMessageRules(
      header.exchange,
      isResponse,
      msg.payloads,
      header.exchange !== ExchangeType.IKE_SA_INIT,
    );
    if (bad) {
      // §3.10.1: an authenticated request that breaks the message rules is answered INVALID_SYNTAX;
      // during IKE_AUTH that also ends the half-made IKE SA.
      if (!isResponse && sa.skIn && sa.admitRequest(header) === 'new') {
        sa.respond(header.exchange, header.messageId, [notify(NotifyType.INVALID_SYNTAX)]);
        if (header.exchange === ExchangeType.IKE_AUTH) core.destroy(sa, 'invalid_syntax');
      }
      return core.drop('invalid_syntax', bad, d);
    }
    sa.lastInbound = d.data;
    if (isResponse) {
      const took = sa.takeResponse(header, msg);
      if (took === 'unexpected') return core.drop('unexpected_response', `message ID ${header.messageId}`, d);
      if (took !== 'taken') return core.drop('ignored_response', took.ignored, d);
      if (sa.skIn) core.peerSeen(sa, d);
      return;
    }
    const admit = sa.admitRequest(header);
    if (admit === 'invalid') return core.drop('invalid_message_id', `message ID ${header.messageId}`, d);
    if (admit === 'retransmit') return;
    // A valid, authenticated request: follow the peer's address and port (NAT-T floating, §2.23).
    core.peerSeen(sa, d);
    this.#request(sa, header, msg.payloads, d);
  }

  /**
   * RFC 7296 §2.5: an authenticated request with an unknown payload marked critical is answered
   * UNSUPPORTED_CRITICAL_PAYLOAD carrying the payload's type, and otherwise not processed.
   */
  #unsupportedCritical(sa: IkeSaV2, header: IkeHeader, d: Datagram, err: UnsupportedCriticalError): void {
    if (sa.admitRequest(header) === 'new') {
      sa.respond(header.exchange, header.messageId, [
        notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([err.payloadType & 0xff])),
      ]);
      if (header.exchange === ExchangeType.IKE_AUTH) this.#core.destroy(sa, 'unsupported_critical_payload');
    }
    this.#core.drop('unsupported_critical', err.message, d);
  }

  /**
   * An IKE_AUTH request that decrypted but does not decode (e.g. an ID payload shorter than its
   * header): answered AUTHENTICATION_FAILED and the half-made SA ends now (RFC 7296 §2.21.2), so it
   * is not left half-open until the timeout (security issue #11).
   */
  #malformedAuth(sa: IkeSaV2, header: IkeHeader, d: Datagram, err: SealedWireError): void {
    const core = this.#core;
    if (!sa.initiator && sa.phase === 'auth' && sa.admitRequest(header) === 'new') {
      sa.respond(header.exchange, header.messageId, [notify(NotifyType.AUTHENTICATION_FAILED)]);
      core.bus.emit('ike-failure', {
        connection: sa.name,
        reason: 'auth_failed',
        detail: `malformed IKE_AUTH request: ${err.message}`,
      });
      core.destroy(sa, 'auth_failed');
    }
    core.drop('malformed', err.message, d);
  }

  /** One responder half per exchange type. */
  #request(sa: IkeSaV2, header: IkeHeader, ps: Payload[], d: Datagram): void {
    const core = this.#core;
    let ans: Answer;
    switch (header.exchange) {
      case ExchangeType.IKE_AUTH: {
        if (sa.initiator || sa.phase !== 'auth') return core.drop('unexpected', 'IKE_AUTH in wrong state', d);
        const auth = respondIkeAuth(core, sa, ps);
        sa.respond(header.exchange, header.messageId, auth.payloads);
        if (!auth.ok) {
          core.bus.emit('ike-failure', {
            connection: sa.name,
            reason: auth.error.reason,
            detail: auth.error.message,
          });
          core.destroy(sa, auth.error.reason);
          return;
        }
        auth.after();
        core.established(sa);
        return;
      }
      case ExchangeType.INFORMATIONAL:
        ans = respondInformational(core, sa, ps);
        break;
      case ExchangeType.CREATE_CHILD_SA:
        ans = this.#createChild(sa, ps);
        break;
      default:
        return core.drop('unexpected', `exchange ${header.exchange}`, d);
    }
    sa.respond(header.exchange, header.messageId, ans.payloads);
    ans.after?.();
  }

  /** CREATE_CHILD_SA: an IKE SA rekey, a CHILD_SA rekey, or (refused) an additional CHILD_SA. */
  #createChild(sa: IkeSaV2, ps: Payload[]): Answer {
    // §2.25: an IKE SA being deleted (or rekeyed away) takes no new work.
    if (sa.phase !== 'established') return { payloads: [notify(NotifyType.TEMPORARY_FAILURE)] };
    const saP = findSa(ps);
    if (saP?.proposals.some((p) => p.protocolId === ProtocolId.IKE))
      return respondIkeRekey(this.#core, sa, ps, saP);
    const rekey = notifies(ps, NotifyType.REKEY_SA)[0];
    if (!rekey) return { payloads: [notify(NotifyType.NO_ADDITIONAL_SAS)] };
    return respondChildRekey(this.#core, sa, ps, rekey);
  }

  /** Stateless answer (§2.6 spirit): nothing is kept for a refused IKE_SA_INIT. */
  #refuseInit(d: Datagram, header: IkeHeader, payloads: Payload[]): void {
    const reply = encodeMessage({
      header: {
        spiI: header.spiI,
        spiR: Buffer.alloc(8),
        version: 0x20,
        exchange: ExchangeType.IKE_SA_INIT,
        flags: HeaderFlag.RESPONSE,
        messageId: 0,
      },
      payloads,
    });
    this.#core.transport.send(d.local, d.remote, reply);
  }

  /**
   * RFC 7296 §2.6: under load (CookieJar.required) an IKE_SA_INIT must start with a COOKIE we
   * made for its Ni, source address and SPIi; one without gets N(COOKIE) only, and we keep nothing
   * (no SA, no Diffie-Hellman, no table entry). Returns true when the request may go on.
   */
  #cookieOk(d: Datagram, header: IkeHeader, payloads: Payload[]): boolean {
    const core = this.#core;
    const address = d.remote.address;
    if (!this.#cookies.required(core.table.halfOpenCount, core.table.halfOpenOf(address), address))
      return true;
    const nonce = findNonce(payloads);
    if (!nonce) {
      core.drop('invalid_syntax', 'IKE_SA_INIT without Nonce', d);
      return false;
    }
    // §2.6: the cookie is the first payload of the repeated request; anywhere else it is not one.
    const cookie = notifies(payloads.slice(0, 1), NotifyType.COOKIE)[0]?.data;
    if (cookie && this.#cookies.verify(cookie, nonce.data, address, header.spiI)) return true;
    this.#refuseInit(d, header, [
      notify(NotifyType.COOKIE, this.#cookies.make(nonce.data, address, header.spiI)),
    ]);
    core.drop(cookie ? 'invalid_cookie' : 'cookie_required', `IKE_SA_INIT from ${address}`, d);
    return false;
  }

  #initRequest(d: Datagram, header: IkeHeader): void {
    const core = this.#core;
    const key = `${header.spiI.toString('hex')}|${d.remote.address}`;
    const known = core.table.halfOpen(key);
    if (known instanceof IkeSaV2) {
      if (known.admitRequest(header) !== 'retransmit')
        core.drop('unexpected', 'IKE_SA_INIT for a known SA', d);
      return;
    }
    // A retransmission of an IKE_SA_INIT whose SA has authenticated since (it was read late, e.g.
    // after the IKE_AUTH that came on port 4500): the same bytes are not a new negotiation. Without
    // this each such copy made a second half-open SA (DH, a half-open slot) that timed out 30 s later.
    const answered = core.table.answeredFirst(key);
    if (answered instanceof IkeSaV2 && answered.initRequestDigest?.equals(firstDigest(d.data)))
      return core.drop('unexpected', 'retransmitted IKE_SA_INIT of an authenticated SA', d);
    if (header.messageId !== 0 || header.spiR.some((b) => b !== 0))
      return core.drop('invalid_syntax', 'bad IKE_SA_INIT header', d);
    let payloads: Payload[];
    try {
      payloads = decodeMessage(d.data).payloads;
    } catch (err) {
      if (!(err instanceof UnsupportedCriticalError)) throw err;
      // §2.5: unencrypted in IKE_SA_INIT, answered without keeping any state.
      this.#refuseInit(d, header, [
        notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([err.payloadType & 0xff])),
      ]);
      return core.drop('unsupported_critical', err.message, d);
    }
    const bad = checkMessageRules(ExchangeType.IKE_SA_INIT, false, payloads, false);
    if (bad) return core.drop('invalid_syntax', bad, d);
    if (!this.#cookieOk(d, header, payloads)) return;
    const limit = core.table.overLimit(d.remote.address);
    if (limit) return core.drop('limit', limit, d);
    const candidates = core.conns.candidates(2, d.local.address, d.remote.address);
    if (!candidates.length)
      return core.drop('no_connection', `no connection for ${d.remote.address} -> ${d.local.address}`, d);
    const sa = new IkeSaV2(this.#ctx, {
      initiator: false,
      conn: candidates[0]!,
      candidates,
      local: d.local,
      remote: d.remote,
      spiI: Buffer.from(header.spiI),
    });
    // IKE_SA_INIT comes before the peer says who it is (§1.2, §2.15): offer what any candidate
    // connection allows, the first one's proposals first. IKE_AUTH checks the choice against the
    // connection the peer authenticates for and refuses it if that one does not allow it.
    sa.ikeOffer = candidates.flatMap((c) => ikeOfferOf(c.ike.proposals));
    sa.initRequest = d.data;
    sa.initRequestDigest = firstDigest(d.data);
    const ans = respondIkeInit(sa, payloads);
    if (ans.kind === 'reject') {
      this.#refuseInit(d, header, ans.payloads);
      if (ans.reason !== 'invalid_ke_payload') {
        core.bus.emit('ike-failure', {
          connection: sa.name,
          reason: ans.reason,
          detail: `refused IKE_SA_INIT from ${d.remote.address}`,
        });
      } else {
        core.bus.emit('ike-debug', {
          connection: sa.name,
          message: `asked ${d.remote.address} for another DH group`,
        });
      }
      return;
    }
    core.table.add(sa);
    core.table.addHalfOpen(key, sa);
    sa.begin(`IKE_SA_INIT from ${d.remote.address}`);
    sa.initResponse = sa.respond(ExchangeType.IKE_SA_INIT, 0, ans.payloads);
    ans.armKeys();
    sa.transition('auth', 'IKE_SA_INIT answered');
    sa.timers.set(core.timing.halfOpenTimeout, () => {
      if (sa.phase === 'auth') core.destroy(sa, 'half-open timeout');
    });
  }
}
