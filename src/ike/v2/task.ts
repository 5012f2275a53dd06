/**
 * Tasks (strongSwan's libcharon model, `sa/task.h`): each concern of an IKEv2 exchange is a task
 * with a half per role. The initiator half builds a request and processes its response; the
 * responder half processes a request and returns the answer. Initiator tasks are queued per IKE
 * SA by its message layer (window size 1, RFC 7296 §2.3), so `runTask` simply awaits its turn.
 */
import type { Endpoint } from '../../dataplane/types.js';
import { IkeError } from '../../errors.js';
import type { CoreServices } from '../core/protocol.js';
import type { ExchangeType } from '../wire/constants.js';
import type { Payload } from '../wire/types.js';
import type { IkeSaV2 } from './ike-sa.js';
import type { OpenedMessage } from './protect.js';

/** `process` returns this when the task must send its request anew (COOKIE, INVALID_KE_PAYLOAD). */
export const AGAIN: unique symbol = Symbol('again');

export interface Task<R> {
  readonly name: string;
  readonly exchange: ExchangeType;
  /** Destination other than the SA's peer (a liveness check where ESP says the peer moved). */
  readonly to?: Endpoint;
  build(): Payload[];
  /** The request's bytes as first sent (IKE_SA_INIT: the AUTH payloads sign them). */
  sent?(bytes: Buffer): void;
  /**
   * Looks at a response before it is taken: a reason string leaves it ignored (counted as a drop)
   * and the request outstanding, retransmitted as before. For unauthenticated answers (§2.21.1).
   */
  screen?(msg: OpenedMessage): string | undefined;
  /** The request timed out: the error to end with instead of 'timeout', if the task has a better one. */
  timedOut?(): IkeError | undefined;
  /** Throws IkeError when the response ends the task with a failure. */
  process(msg: OpenedMessage): R | typeof AGAIN;
}

/** Runs an initiator task to its end: resolves with its result, rejects with an IkeError. */
export async function runTask<R>(sa: IkeSaV2, task: Task<R>): Promise<R> {
  for (;;) {
    let msg: OpenedMessage;
    try {
      msg = await sa.request(task.exchange, task.build(), {
        sent: (b) => task.sent?.(b),
        to: task.to,
        screen: task.screen ? (m) => task.screen!(m) : undefined,
      });
    } catch (err) {
      const e = IkeError.from(err);
      throw (e.reason === 'timeout' && task.timedOut?.()) || e;
    }
    let r: R | typeof AGAIN;
    try {
      r = task.process(msg);
    } catch (err) {
      throw IkeError.from(err);
    }
    if (r !== AGAIN) return r;
  }
}

/** A responder half's answer: the response's payloads and what to do once it went out. */
export interface Answer {
  payloads: Payload[];
  after?: () => void;
}

/** What tasks need from around them: the core's services. */
export type V2Services = CoreServices;
