/**
 * strongSwan algorithm keywords for IKEv1 (the v1 counterpart of names.ts): keyword -> phase-1
 * attribute value or ESP transform/attribute value for parsing, and values -> keyword for status.
 */

import { EspTransformId, Phase1Encr, Phase1Hash, Phase2AuthAlg } from '../wire/v1/constants.js';
import { V1_GROUPS, v1EspInteg } from './v1-algs.js';

export interface V1EncrToken {
  /** Phase-1 encryption value and key length (bits, 0 for 3DES); null when not for phase 1. */
  ike: { id: number; keyLen: number } | null;
  /** ESP transform ID and key length. */
  esp: { id: number; keyLen: number };
  aead: boolean;
}

export type V1Token =
  | ({ k: 'encr' } & V1EncrToken)
  | { k: 'integ'; hash: number; esp: number }
  | { k: 'group'; id: number }
  | { k: 'ignore' };

function buildTokens(): Map<string, V1Token> {
  const m = new Map<string, V1Token>();
  const aes = (bits: number): V1Token => ({
    k: 'encr',
    ike: { id: Phase1Encr.AES_CBC, keyLen: bits },
    esp: { id: EspTransformId.ESP_AES_CBC, keyLen: bits },
    aead: false,
  });
  m.set('aes', aes(128));
  for (const bits of [128, 192, 256]) {
    m.set(`aes${bits}`, aes(bits));
    // RFC 4106 is ESP only: IKEv1 phase 1 has no AEAD ciphers.
    const gcm: V1Token = {
      k: 'encr',
      ike: null,
      esp: { id: EspTransformId.ESP_AES_GCM_16, keyLen: bits },
      aead: true,
    };
    for (const suffix of ['gcm16', 'gcm128', 'gcm']) m.set(`aes${bits}${suffix}`, gcm);
  }
  const des3 = {
    ike: { id: Phase1Encr.TRIPLE_DES_CBC, keyLen: 0 },
    esp: { id: EspTransformId.ESP_3DES, keyLen: 0 },
  };
  m.set('3des', { k: 'encr', ...des3, aead: false });
  const integ: [string[], number, number][] = [
    // MD5: the phase-1 hash, and HMAC-MD5-96 for ESP (RFC 2403) for legacy peers, though RFC 8221
    // §6 says MUST NOT for ESP: twinsec never proposes it unless configured.
    [['md5'], Phase1Hash.MD5, Phase2AuthAlg.HMAC_MD5],
    [['sha', 'sha1'], Phase1Hash.SHA, Phase2AuthAlg.HMAC_SHA],
    [['sha256', 'sha2_256'], Phase1Hash.SHA2_256, Phase2AuthAlg.HMAC_SHA2_256],
    [['sha384', 'sha2_384'], Phase1Hash.SHA2_384, Phase2AuthAlg.HMAC_SHA2_384],
    [['sha512', 'sha2_512'], Phase1Hash.SHA2_512, Phase2AuthAlg.HMAC_SHA2_512],
  ];
  for (const [names, hash, esp] of integ) for (const n of names) m.set(n, { k: 'integ', hash, esp });
  // modp768 (RFC 2409 §6.1) included, for legacy peers that offer nothing stronger; configWarnings()
  // warns about it.
  for (const [id, name] of V1_GROUPS) m.set(name, { k: 'group', id });
  for (const n of ['none', 'modpnone']) m.set(n, { k: 'group', id: 0 });
  // IKEv1's prf is the HMAC of the negotiated hash (RFC 2409 §4): PRF keywords have nothing to set.
  for (const n of ['prfmd5', 'prfsha1', 'prfsha256', 'prfsha384', 'prfsha512', 'noesn']) {
    m.set(n, { k: 'ignore' });
  }
  return m;
}

/** Keyword (lower case) -> meaning. */
export const V1_TOKENS: ReadonlyMap<string, V1Token> = buildTokens();

/** Keywords strongSwan knows that twinsec refuses, with the reason (no secrets, just the cause). */
export const V1_REFUSED: ReadonlyMap<string, string> = new Map([
  ['des', 'DES is refused: its 56-bit key is too weak; use aes or 3des'],
  ['esn', 'extended sequence numbers are not supported with IKEv1'],
]);

const HASH_NAMES: Record<number, string> = {
  [Phase1Hash.MD5]: 'md5',
  [Phase1Hash.SHA]: 'sha1',
  [Phase1Hash.SHA2_256]: 'sha256',
  [Phase1Hash.SHA2_384]: 'sha384',
  [Phase1Hash.SHA2_512]: 'sha512',
};

export const v1GroupName = (g: number): string => V1_GROUPS.get(g) ?? `group_${g}`;
export const v1HashName = (h: number): string => HASH_NAMES[h] ?? `hash_${h}`;

/** Phase-1 cipher keyword: aes128, 3des, or a placeholder such as encr_1. */
export function v1EncrName(id: number, keyLen: number): string {
  if (id === Phase1Encr.AES_CBC) return `aes${keyLen}`;
  return id === Phase1Encr.TRIPLE_DES_CBC ? '3des' : `encr_${id}`;
}

/** ESP cipher keyword as the data plane names it (aes128, aes256gcm16), 3des, or esp_N. */
export function v1EspEncrName(transformId: number, keyLen: number): string {
  switch (transformId) {
    case EspTransformId.ESP_AES_CBC:
      return `aes${keyLen}`;
    case EspTransformId.ESP_AES_GCM_16:
      return `aes${keyLen}gcm16`;
    case EspTransformId.ESP_3DES:
      return '3des';
    default:
      return `esp_${transformId}`;
  }
}

/** ESP integrity keyword (sha1, sha256, ...), or auth_N for values twinsec does not implement. */
export function v1EspIntegName(auth: number): string {
  try {
    return v1EspInteg(auth).name;
  } catch {
    return `auth_${auth}`;
  }
}
