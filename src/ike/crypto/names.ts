/**
 * strongSwan algorithm keywords (swanctl.conf `proposals` / `esp_proposals`) for the algorithms
 * twinsec implements, in both directions: keyword -> transform for parsing, transform -> canonical
 * keyword for logs and status output.
 */
import { DH_ID, ENCR_ID, ESN_ID, INTEG_ID, PRF_ID, XFORM } from './ids.js';

export interface AlgToken {
  type: number;
  id: number;
  /** Key length in bits for encryption algorithms, 0 otherwise. */
  keyLen: number;
}

const tok = (type: number, id: number, keyLen = 0): AlgToken => Object.freeze({ type, id, keyLen });

function buildTokens(): Map<string, AlgToken> {
  const m = new Map<string, AlgToken>();
  m.set('aes', tok(XFORM.ENCR, ENCR_ID.AES_CBC, 128));
  for (const bits of [128, 192, 256]) {
    m.set(`aes${bits}`, tok(XFORM.ENCR, ENCR_ID.AES_CBC, bits));
    // strongSwan accepts the ICV length in bytes (16) or bits (128), or none (16 implied).
    for (const suffix of ['gcm16', 'gcm128', 'gcm']) {
      m.set(`aes${bits}${suffix}`, tok(XFORM.ENCR, ENCR_ID.AES_GCM_16, bits));
    }
  }
  const integ: [string[], number][] = [
    [['sha', 'sha1'], INTEG_ID.HMAC_SHA1_96],
    [['sha256', 'sha2_256'], INTEG_ID.HMAC_SHA2_256_128],
    [['sha384', 'sha2_384'], INTEG_ID.HMAC_SHA2_384_192],
    [['sha512', 'sha2_512'], INTEG_ID.HMAC_SHA2_512_256],
    [['md5'], INTEG_ID.HMAC_MD5_96],
  ];
  for (const [names, id] of integ) for (const n of names) m.set(n, tok(XFORM.INTEG, id));
  const prfs: [string, number][] = [
    ['prfmd5', PRF_ID.HMAC_MD5],
    ['prfsha1', PRF_ID.HMAC_SHA1],
    ['prfsha256', PRF_ID.HMAC_SHA2_256],
    ['prfsha384', PRF_ID.HMAC_SHA2_384],
    ['prfsha512', PRF_ID.HMAC_SHA2_512],
  ];
  for (const [n, id] of prfs) m.set(n, tok(XFORM.PRF, id));
  const dh: [string, number][] = [
    ['none', DH_ID.NONE],
    ['modpnone', DH_ID.NONE],
    ['modp1024', DH_ID.MODP1024],
    ['modp1536', DH_ID.MODP1536],
    ['modp2048', DH_ID.MODP2048],
    ['modp3072', DH_ID.MODP3072],
    ['modp4096', DH_ID.MODP4096],
    ['modp2048s256', DH_ID.MODP2048S256],
    ['ecp256', DH_ID.ECP256],
    ['ecp384', DH_ID.ECP384],
    ['x25519', DH_ID.CURVE25519],
    ['curve25519', DH_ID.CURVE25519],
  ];
  for (const [n, id] of dh) m.set(n, tok(XFORM.DH, id));
  m.set('esn', tok(XFORM.ESN, ESN_ID.YES));
  m.set('noesn', tok(XFORM.ESN, ESN_ID.NO));
  return m;
}

/** Keyword (lower case) -> transform. */
export const ALG_TOKENS: ReadonlyMap<string, AlgToken> = buildTokens();

const INTEG_NAMES = new Map<number, string>([
  [INTEG_ID.NONE, 'none'],
  [INTEG_ID.HMAC_MD5_96, 'md5'],
  [INTEG_ID.HMAC_SHA1_96, 'sha1'],
  [INTEG_ID.HMAC_SHA2_256_128, 'sha256'],
  [INTEG_ID.HMAC_SHA2_384_192, 'sha384'],
  [INTEG_ID.HMAC_SHA2_512_256, 'sha512'],
]);
const PRF_NAMES = new Map<number, string>([
  [PRF_ID.HMAC_MD5, 'prfmd5'],
  [PRF_ID.HMAC_SHA1, 'prfsha1'],
  [PRF_ID.HMAC_SHA2_256, 'prfsha256'],
  [PRF_ID.HMAC_SHA2_384, 'prfsha384'],
  [PRF_ID.HMAC_SHA2_512, 'prfsha512'],
]);
const DH_NAMES = new Map<number, string>([
  [DH_ID.NONE, 'none'],
  [DH_ID.MODP1024, 'modp1024'],
  [DH_ID.MODP1536, 'modp1536'],
  [DH_ID.MODP2048, 'modp2048'],
  [DH_ID.MODP3072, 'modp3072'],
  [DH_ID.MODP4096, 'modp4096'],
  [DH_ID.MODP2048S256, 'modp2048s256'],
  [DH_ID.ECP256, 'ecp256'],
  [DH_ID.ECP384, 'ecp384'],
  [DH_ID.CURVE25519, 'x25519'],
]);

/**
 * The strongSwan keyword for a transform (e.g. aes256gcm16, aes128, sha256, prfsha256, x25519,
 * modp2048, esn). Transforms without a keyword get a stable placeholder such as `encr_23_256`
 * (type name, ID, key length) so logs still identify them.
 */
export function algName(type: number, id: number, keyLen?: number): string {
  switch (type) {
    case XFORM.ENCR:
      if (id === ENCR_ID.AES_CBC && keyLen) return `aes${keyLen}`;
      if (id === ENCR_ID.AES_GCM_16 && keyLen) return `aes${keyLen}gcm16`;
      return keyLen ? `encr_${id}_${keyLen}` : `encr_${id}`;
    case XFORM.PRF:
      return PRF_NAMES.get(id) ?? `prf_${id}`;
    case XFORM.INTEG:
      return INTEG_NAMES.get(id) ?? `integ_${id}`;
    case XFORM.DH:
      return DH_NAMES.get(id) ?? `ke_${id}`;
    case XFORM.ESN:
      return id === ESN_ID.YES ? 'esn' : id === ESN_ID.NO ? 'noesn' : `esn_${id}`;
    default:
      return `transform_${type}_${id}`;
  }
}

/** strongSwan's integ_prf_map: the PRF implied by an integrity algorithm in IKE proposals. */
export const INTEG_TO_PRF: ReadonlyMap<number, number> = new Map<number, number>([
  [INTEG_ID.HMAC_MD5_96, PRF_ID.HMAC_MD5],
  [INTEG_ID.HMAC_SHA1_96, PRF_ID.HMAC_SHA1],
  [INTEG_ID.HMAC_SHA2_256_128, PRF_ID.HMAC_SHA2_256],
  [INTEG_ID.HMAC_SHA2_384_192, PRF_ID.HMAC_SHA2_384],
  [INTEG_ID.HMAC_SHA2_512_256, PRF_ID.HMAC_SHA2_512],
]);

/** The `default` keyword's PRFs, DH groups and integrity algorithms, limited to what twinsec implements. */
export const DEFAULT_PRFS: readonly number[] = [
  PRF_ID.HMAC_SHA2_256,
  PRF_ID.HMAC_SHA2_384,
  PRF_ID.HMAC_SHA2_512,
  PRF_ID.HMAC_SHA1,
];
export const DEFAULT_DH: readonly number[] = [
  DH_ID.ECP256,
  DH_ID.ECP384,
  DH_ID.CURVE25519,
  DH_ID.MODP3072,
  DH_ID.MODP4096,
  DH_ID.MODP2048,
];
export const DEFAULT_INTEG: readonly number[] = [
  INTEG_ID.HMAC_SHA2_256_128,
  INTEG_ID.HMAC_SHA2_384_192,
  INTEG_ID.HMAC_SHA2_512_256,
  INTEG_ID.HMAC_SHA1_96,
];
