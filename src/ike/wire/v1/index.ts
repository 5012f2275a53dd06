/** The ISAKMP (IKEv1) wire codec in one import. */
export * from './attributes.js';
export * from './constants.js';
export {
  decodeMessageV1,
  decodePayloadsV1,
  encodeMessageV1,
  isEncryptedV1,
  rawPayloadsV1,
} from './message.js';
export { encodeGenericHeaderV1, encodePayloadsV1 } from './payloads.js';
export type * from './types.js';
