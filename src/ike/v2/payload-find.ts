/** Small typed lookups over a decoded payload list. */
import { PayloadType } from '../wire/constants.js';
import type {
  AuthPayload,
  DeletePayload,
  IdPayload,
  KePayload,
  NoncePayload,
  NotifyPayload,
  Payload,
  SaPayload,
  TsPayload,
} from '../wire/types.js';

export function findSa(ps: Payload[]): SaPayload | undefined {
  return ps.find((p): p is SaPayload => p.type === PayloadType.SA);
}
export function findKe(ps: Payload[]): KePayload | undefined {
  return ps.find((p): p is KePayload => p.type === PayloadType.KE);
}
export function findNonce(ps: Payload[]): NoncePayload | undefined {
  return ps.find((p): p is NoncePayload => p.type === PayloadType.NONCE);
}
export function findId(ps: Payload[], type: PayloadType.IDi | PayloadType.IDr): IdPayload | undefined {
  return ps.find((p): p is IdPayload => p.type === type);
}
export function findAuth(ps: Payload[]): AuthPayload | undefined {
  return ps.find((p): p is AuthPayload => p.type === PayloadType.AUTH);
}
export function findTs(ps: Payload[], type: PayloadType.TSi | PayloadType.TSr): TsPayload | undefined {
  return ps.find((p): p is TsPayload => p.type === type);
}
export function notifies(ps: Payload[], notifyType?: number): NotifyPayload[] {
  return ps.filter(
    (p): p is NotifyPayload =>
      p.type === PayloadType.NOTIFY &&
      (notifyType === undefined || (p as NotifyPayload).notifyType === notifyType),
  );
}
export function deletes(ps: Payload[]): DeletePayload[] {
  return ps.filter((p): p is DeletePayload => p.type === PayloadType.DELETE);
}
/** Error notifies are types below 16384 (RFC 7296 §3.10.1). */
export function firstError(ps: Payload[]): NotifyPayload | undefined {
  return notifies(ps).find((n) => n.notifyType < 16384);
}
export function notify(
  notifyType: number,
  data: Buffer = Buffer.alloc(0),
  protocolId = 0,
  spi = Buffer.alloc(0),
): NotifyPayload {
  return { type: PayloadType.NOTIFY, protocolId, spi, notifyType, data };
}
