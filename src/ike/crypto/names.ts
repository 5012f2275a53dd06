/**
 * strongSwan algorithm keywords (swanctl.conf `proposals` / `esp_proposals`) for the algorithms
 * twinsec implements, in both directions: keyword -> transform for parsing, transform -> canonical
 * keyword for logs and status output.
 */
import { DhId, EncrId, EsnId, IntegId, PrfId, TransformType } from '../wire/constants.js';

export interface AlgToken {
  type: number;
  id: number;
  /** Key length in bits for encryption algorithms, 0 otherwise. */
  keyLen: number;
}

const tok = (type: number, id: number, keyLen = 0): AlgToken => Object.freeze({ type, id, keyLen });

function buildTokens(): Map<string, AlgToken> {
  const m = new Map<string, AlgToken>();
  m.set('aes', tok(TransformType.ENCR, EncrId.AES_CBC, 128));
  for (const bits of [128, 192, 256]) {
    m.set(`aes${bits}`, tok(TransformType.ENCR, EncrId.AES_CBC, bits));
    // strongSwan accepts the ICV length in bytes (16) or bits (128), or none (16 implied).
    for (const suffix of ['gcm16', 'gcm128', 'gcm']) {
      m.set(`aes${bits}${suffix}`, tok(TransformType.ENCR, EncrId.AES_GCM_16, bits));
    }
  }
  // ENCR_3DES (RFC 7296 §3.3.2, RFC 2451): a fixed 192-bit key, so no Key Length attribute
  // (RFC 7296 §3.3.5) and keyLen 0 here. ESP only (proposal.ts refuses it for the IKE SA).
  m.set('3des', tok(TransformType.ENCR, EncrId.DES3));
  const integ: [string[], number][] = [
    [['sha', 'sha1'], IntegId.HMAC_SHA1_96],
    [['sha256', 'sha2_256'], IntegId.HMAC_SHA2_256_128],
    [['sha384', 'sha2_384'], IntegId.HMAC_SHA2_384_192],
    [['sha512', 'sha2_512'], IntegId.HMAC_SHA2_512_256],
    [['md5'], IntegId.HMAC_MD5_96],
  ];
  for (const [names, id] of integ) for (const n of names) m.set(n, tok(TransformType.INTEG, id));
  const prfs: [string, number][] = [
    ['prfmd5', PrfId.HMAC_MD5],
    ['prfsha1', PrfId.HMAC_SHA1],
    ['prfsha256', PrfId.HMAC_SHA2_256],
    ['prfsha384', PrfId.HMAC_SHA2_384],
    ['prfsha512', PrfId.HMAC_SHA2_512],
  ];
  for (const [n, id] of prfs) m.set(n, tok(TransformType.PRF, id));
  const dh: [string, number][] = [
    ['none', DhId.NONE],
    ['modpnone', DhId.NONE],
    // Group 1, 768-bit (RFC 2409 §6.1): for legacy peers only; configWarnings() warns about it.
    ['modp768', DhId.MODP768],
    ['modp1024', DhId.MODP1024],
    ['modp1536', DhId.MODP1536],
    ['modp2048', DhId.MODP2048],
    ['modp3072', DhId.MODP3072],
    ['modp4096', DhId.MODP4096],
    ['modp2048s256', DhId.MODP2048S256],
    ['ecp256', DhId.ECP256],
    ['ecp384', DhId.ECP384],
    ['x25519', DhId.CURVE25519],
    ['curve25519', DhId.CURVE25519],
  ];
  for (const [n, id] of dh) m.set(n, tok(TransformType.DH, id));
  m.set('esn', tok(TransformType.ESN, EsnId.YES));
  m.set('noesn', tok(TransformType.ESN, EsnId.NO));
  return m;
}

/** Keyword (lower case) -> transform. */
export const ALG_TOKENS: ReadonlyMap<string, AlgToken> = buildTokens();

const INTEG_NAMES = new Map<number, string>([
  [IntegId.NONE, 'none'],
  [IntegId.HMAC_MD5_96, 'md5'],
  [IntegId.HMAC_SHA1_96, 'sha1'],
  [IntegId.HMAC_SHA2_256_128, 'sha256'],
  [IntegId.HMAC_SHA2_384_192, 'sha384'],
  [IntegId.HMAC_SHA2_512_256, 'sha512'],
]);
const PRF_NAMES = new Map<number, string>([
  [PrfId.HMAC_MD5, 'prfmd5'],
  [PrfId.HMAC_SHA1, 'prfsha1'],
  [PrfId.HMAC_SHA2_256, 'prfsha256'],
  [PrfId.HMAC_SHA2_384, 'prfsha384'],
  [PrfId.HMAC_SHA2_512, 'prfsha512'],
]);
const DH_NAMES = new Map<number, string>([
  [DhId.NONE, 'none'],
  [DhId.MODP768, 'modp768'],
  [DhId.MODP1024, 'modp1024'],
  [DhId.MODP1536, 'modp1536'],
  [DhId.MODP2048, 'modp2048'],
  [DhId.MODP3072, 'modp3072'],
  [DhId.MODP4096, 'modp4096'],
  [DhId.MODP2048S256, 'modp2048s256'],
  [DhId.ECP256, 'ecp256'],
  [DhId.ECP384, 'ecp384'],
  [DhId.CURVE25519, 'x25519'],
]);

/**
 * The strongSwan keyword for a transform (e.g. aes256gcm16, aes128, sha256, prfsha256, x25519,
 * modp2048, esn). Transforms without a keyword get a stable placeholder such as `encr_23_256`
 * (type name, ID, key length) so logs still identify them.
 */
export function algName(type: number, id: number, keyLen?: number): string {
  switch (type) {
    case TransformType.ENCR:
      if (id === EncrId.AES_CBC && keyLen) return `aes${keyLen}`;
      if (id === EncrId.AES_GCM_16 && keyLen) return `aes${keyLen}gcm16`;
      // The data plane's name for 3DES-CBC; IKEv1's hand-off passes keyLen 192, IKEv2's 0.
      if (id === EncrId.DES3 && (!keyLen || keyLen === 192)) return '3des';
      return keyLen ? `encr_${id}_${keyLen}` : `encr_${id}`;
    case TransformType.PRF:
      return PRF_NAMES.get(id) ?? `prf_${id}`;
    case TransformType.INTEG:
      return INTEG_NAMES.get(id) ?? `integ_${id}`;
    case TransformType.DH:
      return DH_NAMES.get(id) ?? `ke_${id}`;
    case TransformType.ESN:
      return id === EsnId.YES ? 'esn' : id === EsnId.NO ? 'noesn' : `esn_${id}`;
    default:
      return `transform_${type}_${id}`;
  }
}

/** strongSwan's integ_prf_map: the PRF implied by an integrity algorithm in IKE proposals. */
export const INTEG_TO_PRF: ReadonlyMap<number, number> = new Map<number, number>([
  [IntegId.HMAC_MD5_96, PrfId.HMAC_MD5],
  [IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1],
  [IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256],
  [IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384],
  [IntegId.HMAC_SHA2_512_256, PrfId.HMAC_SHA2_512],
]);

/** The `default` keyword's PRFs, DH groups and integrity algorithms, limited to what twinsec implements. */
export const DEFAULT_PRFS: readonly number[] = [
  PrfId.HMAC_SHA2_256,
  PrfId.HMAC_SHA2_384,
  PrfId.HMAC_SHA2_512,
  PrfId.HMAC_SHA1,
];
export const DEFAULT_DH: readonly number[] = [
  DhId.ECP256,
  DhId.ECP384,
  DhId.CURVE25519,
  DhId.MODP3072,
  DhId.MODP4096,
  DhId.MODP2048,
];
export const DEFAULT_INTEG: readonly number[] = [
  IntegId.HMAC_SHA2_256_128,
  IntegId.HMAC_SHA2_384_192,
  IntegId.HMAC_SHA2_512_256,
  IntegId.HMAC_SHA1_96,
];
