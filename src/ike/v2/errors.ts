/**
 * IKEv2's side of the one error model: IkeError reasons to the notify that answers them
 * (RFC 7296 §3.10.1), and an error notify from the peer to the IkeError it means for us.
 */
import { IkeError } from '../../errors.js';
import { NotifyType } from '../wire/constants.js';
import type { NotifyPayload } from '../wire/types.js';
import type { IkeSaV2 } from './ike-sa.js';
import { notify } from './payload-find.js';

const NOTIFY_FOR: Record<string, NotifyType> = {
  invalid_syntax: NotifyType.INVALID_SYNTAX,
  auth_failed: NotifyType.AUTHENTICATION_FAILED,
  no_proposal_chosen: NotifyType.NO_PROPOSAL_CHOSEN,
  ts_unacceptable: NotifyType.TS_UNACCEPTABLE,
  invalid_ke_payload: NotifyType.INVALID_KE_PAYLOAD,
  temporary_failure: NotifyType.TEMPORARY_FAILURE,
  child_sa_not_found: NotifyType.CHILD_SA_NOT_FOUND,
  no_additional_sas: NotifyType.NO_ADDITIONAL_SAS,
  unsupported_critical_payload: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
};

/** The notify that answers a request which failed with `reason`. */
export function notifyFor(reason: string, data?: Buffer): NotifyPayload {
  return notify(NOTIFY_FOR[reason] ?? NotifyType.INVALID_SYNTAX, data);
}

/**
 * The reason token of a peer's error notify: AUTHENTICATION_FAILED is 'auth_failed', the types we
 * know their name, any other number 'other'. The token becomes a metrics label, and the number is
 * the peer's (unauthenticated in IKE_SA_INIT) choice: a label per number would let a peer create
 * up to 16,384 series (§3.10.1 error types). The message still names the number.
 */
export function notifyReason(n: NotifyPayload): string {
  if (n.notifyType === NotifyType.AUTHENTICATION_FAILED) return 'auth_failed';
  return NotifyType[n.notifyType]?.toLowerCase() ?? 'other';
}

/** The peer answered `what` with an error notify. */
export function peerRefused(n: NotifyPayload, what: string): IkeError {
  const name = NotifyType[n.notifyType] ?? `notify ${n.notifyType}`;
  return new IkeError(notifyReason(n), `${what} ${name}`);
}

/**
 * A request we refuse with an error notify (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, ...): reported as
 * a failure of the connection, answered with the notify for `reason`.
 */
export function refuse(sa: IkeSaV2, reason: string, detail: string): { payloads: NotifyPayload[] } {
  sa.ctx.bus.emit('ike-failure', { connection: sa.name, reason, detail });
  return { payloads: [notifyFor(reason)] };
}
