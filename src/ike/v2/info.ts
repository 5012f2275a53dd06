/**
 * INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5): DELETE of the IKE SA or of CHILD_SAs, empty
 * liveness checks, and notifies. CREATE_CHILD_SA (rekeying) lives in rekey.ts.
 */
import { ExchangeType, PayloadType, ProtocolId } from '../wire/constants.js';
import type { DeletePayload, Payload } from '../wire/types.js';
import { spiBuffer } from './child.js';
import type { IkeSa } from './ike-sa.js';
import { deletes } from './payload-find.js';

export interface InfoHooks {
  removeChild(sa: IkeSa, spiIn: number, reason: string): void;
  /** The IKE SA is gone: tear down its children and forget it. */
  destroy(sa: IkeSa, reason: string): void;
}

/** Answers an INFORMATIONAL request; returns what to do once the response has been sent. */
export function processInfoRequest(
  sa: IkeSa,
  hooks: InfoHooks,
  ps: Payload[],
): { payloads: Payload[]; after: () => void } {
  const dels = deletes(ps);
  if (dels.some((d) => d.protocolId === ProtocolId.IKE)) {
    // §1.4.1: answer with an empty INFORMATIONAL, then the IKE SA and its children are gone.
    return { payloads: [], after: () => hooks.destroy(sa, 'deleted by peer') };
  }
  const ours: Buffer[] = [];
  const gone: number[] = [];
  for (const d of dels.filter((x) => x.protocolId === ProtocolId.ESP && x.spiSize === 4)) {
    for (const spi of d.spis) {
      // The peer names its own inbound SPI, which is our outbound one.
      const child = sa.children.find((c) => c.spiOut === spi.readUInt32BE(0));
      if (!child) continue;
      ours.push(spiBuffer(child.spiIn));
      gone.push(child.spiIn);
    }
  }
  const payloads: Payload[] = ours.length
    ? [
        {
          type: PayloadType.DELETE,
          protocolId: ProtocolId.ESP,
          spiSize: 4,
          spis: ours,
        } satisfies DeletePayload,
      ]
    : [];
  return {
    payloads,
    after: () => {
      for (const spi of gone) hooks.removeChild(sa, spi, 'deleted by peer');
    },
  };
}

/** Sends DELETE for the whole IKE SA; `done` runs on the answer or after the retransmissions. */
export function sendIkeDelete(sa: IkeSa, done: () => void): void {
  sa.request(
    ExchangeType.INFORMATIONAL,
    [{ type: PayloadType.DELETE, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
    done,
    done,
  );
}

/** Empty INFORMATIONAL: proves the peer still holds the IKE SA (§1.4, dead peer detection). */
export function sendLiveness(sa: IkeSa, alive: () => void, dead: () => void): void {
  sa.request(ExchangeType.INFORMATIONAL, [], alive, dead);
}
