/**
 * INFORMATIONAL exchanges (RFC 7296 §1.4, §1.5): DELETE of the IKE SA or of CHILD_SAs and the empty
 * liveness check (§2.4, dead peer detection), initiator tasks and the responder half. DELETE
 * payloads are built here and nowhere else.
 */
import type { Endpoint } from '../../../dataplane/types.js';
import { ExchangeType, PayloadType, ProtocolId } from '../../wire/constants.js';
import type { DeletePayload, Payload } from '../../wire/types.js';
import type { IkeSaV2 } from '../ike-sa.js';
import { deletes } from '../payload-find.js';
import type { Answer, Task, V2Services } from '../task.js';
import { spiBuffer } from './child-create.js';

/** DELETE of the IKE SA (§3.11: no SPI), or of ESP SAs by our inbound SPIs. */
export function deletePayload(spisIn?: number[]): DeletePayload {
  if (!spisIn) return { type: PayloadType.DELETE, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] };
  return { type: PayloadType.DELETE, protocolId: ProtocolId.ESP, spiSize: 4, spis: spisIn.map(spiBuffer) };
}

/** An INFORMATIONAL request whose answer carries nothing we need: DELETE, liveness. */
export class InformationalTask implements Task<void> {
  readonly exchange = ExchangeType.INFORMATIONAL;
  readonly name: string;
  readonly to?: Endpoint;
  readonly #payloads: Payload[];

  constructor(name: string, payloads: Payload[], to?: Endpoint) {
    this.name = name;
    this.#payloads = payloads;
    this.to = to;
  }

  build(): Payload[] {
    return this.#payloads;
  }

  process(): void {}
}

export const ikeDeleteTask = (): InformationalTask => new InformationalTask('ike-delete', [deletePayload()]);
export const childDeleteTask = (spisIn: number[]): InformationalTask =>
  new InformationalTask('child-delete', [deletePayload(spisIn)]);
/** Empty INFORMATIONAL: proves the peer still holds the IKE SA (§1.4, §2.4). */
export const livenessTask = (to?: Endpoint): InformationalTask => new InformationalTask('ike-dpd', [], to);

/** Answers an INFORMATIONAL request; `after` runs once the response has been sent. */
export function respondInformational(core: V2Services, sa: IkeSaV2, ps: Payload[]): Answer {
  const dels = deletes(ps);
  if (dels.some((d) => d.protocolId === ProtocolId.IKE)) {
    // §1.4.1: answer with an empty INFORMATIONAL, then the IKE SA and its children are gone.
    return { payloads: [], after: () => core.destroy(sa, 'deleted by peer') };
  }
  const gone: number[] = [];
  for (const d of dels.filter((x) => x.protocolId === ProtocolId.ESP && x.spiSize === 4)) {
    for (const spi of d.spis) {
      // The peer names its own inbound SPI, which is our outbound one.
      const child = sa.childByOut(spi.readUInt32BE(0));
      if (child) gone.push(child.spiIn);
    }
  }
  return {
    payloads: gone.length ? [deletePayload(gone)] : [],
    after: () => {
      for (const spi of gone) core.removeChild(sa, spi, 'deleted by peer');
    },
  };
}
