/**
 * The Alibaba Cloud download's shape and the field readers shared by both imports (single tunnel,
 * aliyun.ts; dual tunnel with BGP, aliyun-bgp.ts): the algorithm tables, ImportError, the JSON
 * parse, the Reader that records "path: message" issues, and the per-tunnel SA fields (IkeConfig
 * and IpsecConfig, readSa/saConnection), which have the same form at the download's root and in
 * each TunnelConfig. Kept apart so each import reads as its own steps over these helpers.
 *
 * Reading of the download (Alibaba's API reference and the dual-tunnel HA guide, step 4): it is
 * written for the customer gateway device, so `Local` is the customer gateway (this machine's public
 * address), `Remote` the VPN gateway, `LocalSubnet` the data-center networks and `RemoteSubnet` the
 * VPC networks; both subnet fields are comma-separated lists. `LocalId`/`RemoteId` follow the same
 * sides. The API wraps the object as `{"RequestId": ..., "VpnConnectionConfig": {...}}`; both forms
 * are accepted. Unknown fields are ignored.
 *
 * No message or warning ever contains the PSK.
 */
import { isIP } from 'node:net';
import { type Cidr, canonicalCidr, parseCidr } from '../config/schema.js';
import { TwinsecError } from '../errors.js';
import { parseIdentity } from '../ike/identity.js';
import { parseAddress } from '../ike/wire/ts.js';
import type { ImportedConnection } from './aliyun-config.js';

/** An Alibaba value twinsec can use (its strongSwan keyword), or `null` for a known value it cannot. */
type Mapping = Readonly<Record<string, string | null>>;

/**
 * IkeEncAlg / IpsecEncAlg -> strongSwan encryption keyword: AES-CBC, or 3DES-CBC (RFC 2451) for
 * ESP in both versions and for the IKE SA with IKEv1 (twinsec's IKEv2 SA is AES only).
 */
export const ALIYUN_ENC: Mapping = {
  aes: 'aes128',
  aes192: 'aes192',
  aes256: 'aes256',
  des: null,
  '3des': '3des',
};

/** IkeAuthAlg -> integrity keyword; the PRF follows from it (md5 -> prfmd5, sha256 -> prfsha256...). */
export const ALIYUN_IKE_AUTH: Mapping = {
  md5: 'md5',
  sha1: 'sha1',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};

/** IpsecAuthAlg -> ESP integrity keyword; md5 is HMAC-MD5-96 (RFC 2403). */
export const ALIYUN_ESP_AUTH: Mapping = {
  md5: 'md5',
  sha1: 'sha1',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};

/**
 * IkePfs / IpsecPfs -> DH group keyword (IpsecPfs `disabled` = no PFS, handled separately). group1
 * is MODP-768 (RFC 2409 §6.1): imported with a warning, as `twinsecd --check` warns about it.
 */
export const ALIYUN_DH: Mapping = {
  group1: 'modp768',
  group2: 'modp1024',
  group5: 'modp1536',
  group14: 'modp2048',
  group24: 'modp2048s256',
};

/** Why a known value is refused, when more than "twinsec does not implement it" helps. */
const UNSUPPORTED_WHY: Readonly<Record<string, string>> = {
  'IkeEncAlg:des': 'single DES: its 56-bit key is too weak',
  'IpsecEncAlg:des': 'single DES: its 56-bit key is too weak',
};

const MIN_LIFETIME = 10;
const MAX_LIFETIME = 31_536_000;

/** The download cannot be imported; `issues` lists every problem as "path: message". */
export class ImportError extends TwinsecError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super('ERR_IMPORT', `cannot import:\n  ${issues.join('\n  ')}`);
    this.issues = issues;
  }
}

/** JSON text -> value. The parser's own message may quote the input (and so the PSK): never pass it on. */
export function parseAliyunJson(text: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    const pos = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
    if (!pos) throw new ImportError(['(file): not valid JSON']);
    const before = text.replace(/^\uFEFF/, '').slice(0, Number(pos[1]));
    const line = before.split('\n').length;
    const col = before.length - before.lastIndexOf('\n');
    throw new ImportError([`(file): not valid JSON (line ${line}, column ${col})`]);
  }
}

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

/** A non-secret value for a message: quoted, control characters escaped, long values cut. */
export function show(v: string): string {
  const s = v.length > 40 ? `${v.slice(0, 40)}...` : v;
  return `'${s.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\']/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}'`;
}

/** "a, b or c" */
function orList(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** Reads one download field; records "required"/wrong-type issues. */
export class Reader {
  readonly issues: string[] = [];
  readonly warnings: string[] = [];
  constructor(private readonly prefix: string) {}

  path(...parts: string[]): string {
    return this.prefix + parts.join('.');
  }

  issue(path: string, message: string): void {
    this.issues.push(`${path}: ${message}`);
  }

  /** A required (unless `optional`) string field; undefined when missing or not a string. */
  string(obj: Obj, key: string, at: string, optional = false): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (!optional) this.issue(at, 'required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.issue(at, `expected a string, got ${typeOf(v)}`);
      return undefined;
    }
    return v;
  }

  /** A required object field. */
  object(obj: Obj, key: string, at: string): Obj | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      this.issue(at, 'required');
      return undefined;
    }
    if (!isObj(v)) {
      this.issue(at, `expected an object, got ${typeOf(v)}`);
      return undefined;
    }
    return v;
  }

  /**
   * An algorithm field through a mapping table; null when missing, unknown or unsupported. `also`
   * lists values the caller handles itself (IpsecPfs `disabled`), for the hint.
   */
  alg(obj: Obj, key: string, at: string, table: Mapping, also: string[] = []): string | null {
    const v = this.string(obj, key, at);
    if (v === undefined) return null;
    const value = v.trim().toLowerCase();
    const supported = [...Object.keys(table).filter((k) => table[k] !== null), ...also];
    if (!Object.hasOwn(table, value)) {
      this.issue(at, `unknown value ${show(v)} (use ${orList(supported)})`);
      return null;
    }
    const kw = table[value];
    if (kw === null || kw === undefined) {
      const why = UNSUPPORTED_WHY[`${key}:${value}`];
      this.issue(
        at,
        `${show(v)} is not supported by twinsec (${why ? `${why}; ` : ''}use ${orList(supported)})`,
      );
      return null;
    }
    return kw;
  }

  /** A lifetime in seconds: an integer (or a string of digits) within twinsec's range. */
  lifetime(obj: Obj, key: string, at: string): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      this.issue(at, 'required');
      return undefined;
    }
    const n = typeof v === 'string' && /^\s*\d{1,12}\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      this.issue(at, typeof n === 'number' ? 'must be an integer' : `expected a number, got ${typeOf(v)}`);
      return undefined;
    }
    if (n < MIN_LIFETIME || n > MAX_LIFETIME) {
      this.issue(at, `${n} is out of range (twinsec accepts ${MIN_LIFETIME}..${MAX_LIFETIME} seconds)`);
      return undefined;
    }
    return n;
  }

  /** An IP address field (Local/Remote). */
  address(obj: Obj, key: string, at: string): string | undefined {
    const v = this.string(obj, key, at);
    if (v === undefined) return undefined;
    const t = v.trim();
    if (isIP(t) === 0 || t.includes('%')) {
      this.issue(at, `${show(v)} is not an IP address`);
      return undefined;
    }
    return t;
  }

  /** A comma-separated CIDR list; empty items (a trailing comma) are skipped, duplicates dropped. */
  subnets(obj: Obj, key: string, at: string): Cidr[] | undefined {
    const v = this.string(obj, key, at);
    if (v === undefined) return undefined;
    const out: Cidr[] = [];
    const seen = new Set<string>();
    let ok = true;
    for (const item of v.split(',').map((s) => s.trim())) {
      if (item === '') continue;
      const c = parseCidr(item);
      if (typeof c === 'string') {
        this.issue(at, c.length > 120 ? 'invalid CIDR' : c);
        ok = false;
        continue;
      }
      const key2 = canonicalCidr(c);
      if (seen.has(key2)) {
        this.warnings.push(`${at}: '${item}' listed twice; imported once`);
        continue;
      }
      seen.add(key2);
      out.push(c);
    }
    if (ok && out.length === 0) this.issue(at, 'no subnets (expected a comma-separated list of CIDRs)');
    return ok && out.length > 0 ? out : undefined;
  }

  /** LocalId/RemoteId: optional; empty means "the address", as in Alibaba's console. */
  identity(obj: Obj, key: string, at: string, role: 'local' | 'remote'): string | undefined {
    const v = this.string(obj, key, at, true);
    if (v === undefined || v.trim() === '') return undefined;
    const t = v.trim();
    if (/[\s\p{Cc}]/u.test(t)) this.issue(at, `${show(v)} is not a valid IKE identity (contains whitespace)`);
    else if (t.length > 255) this.issue(at, 'longer than 255 characters');
    else if (t === '%any' && role === 'local') this.issue(at, "'%any' is only valid as RemoteId");
    else {
      try {
        parseIdentity(t);
        return t;
      } catch (err) {
        this.issue(at, err instanceof Error ? err.message : String(err));
      }
    }
    return undefined;
  }
}

/** Does the prefix `c` contain `addr`? */
export function contains(c: Cidr, addr: string): boolean {
  if (isIP(addr) !== c.family) return false;
  const a = parseAddress(addr);
  const n = parseAddress(c.address);
  for (let bit = 0; bit < c.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((a[bit >> 3]! & mask) !== (n[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** Does a JS string survive UTF-8 (no unpaired surrogates)? */
const wellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;

/** IkeConfig and IpsecConfig of one tunnel, read; undefined members were reported as issues. */
export interface SaFields {
  version: 1 | 2 | undefined;
  aggressive: boolean;
  ikeProposal: string | undefined;
  ikeLifetime: number | undefined;
  localId: string | undefined;
  remoteId: string | undefined;
  psk: string | undefined;
  espProposal: string | undefined;
  espLifetime: number | undefined;
}

/**
 * Reads `holder.IkeConfig` and `holder.IpsecConfig` (the download's root, or one TunnelConfig of a
 * dual-tunnel download: the same fields, per tunnel), recording issues under `base`.
 */
export function readSa(r: Reader, holder: Obj, base: string[]): SaFields {
  let version: 1 | 2 | undefined;
  let ikeProposal: string | undefined;
  let ikeLifetime: number | undefined;
  let localId: string | undefined;
  let remoteId: string | undefined;
  let psk: string | undefined;
  let aggressive = false;
  const ike = r.object(holder, 'IkeConfig', r.path(...base, 'IkeConfig'));
  if (ike) {
    const at = (k: string) => r.path(...base, 'IkeConfig', k);
    const v = r.string(ike, 'IkeVersion', at('IkeVersion'));
    if (v !== undefined) {
      const norm = v.trim().toLowerCase();
      if (norm === 'ikev1') version = 1;
      else if (norm === 'ikev2') version = 2;
      else r.issue(at('IkeVersion'), `unknown value ${show(v)} (use ikev1 or ikev2)`);
    }
    const mode = r.string(ike, 'IkeMode', at('IkeMode'), true);
    if (mode !== undefined) {
      const norm = mode.trim().toLowerCase();
      if (norm === 'aggressive') {
        // IKEv2 (RFC 7296) has no phase-1 modes: the field only matters for IKEv1.
        if (version === 2) r.warnings.push(`${at('IkeMode')}: 'aggressive' has no meaning in IKEv2; ignored`);
        else aggressive = true;
      } else if (norm !== 'main' && norm !== '') {
        r.issue(at('IkeMode'), `unknown value ${show(mode)} (use main or aggressive)`);
      }
    }
    const enc = r.alg(ike, 'IkeEncAlg', at('IkeEncAlg'), ALIYUN_ENC);
    const auth = r.alg(ike, 'IkeAuthAlg', at('IkeAuthAlg'), ALIYUN_IKE_AUTH);
    const dh = r.alg(ike, 'IkePfs', at('IkePfs'), ALIYUN_DH);
    if (enc && auth && dh) ikeProposal = `${enc}-${auth}-${dh}`;
    ikeLifetime = r.lifetime(ike, 'IkeLifetime', at('IkeLifetime'));
    localId = r.identity(ike, 'LocalId', at('LocalId'), 'local');
    remoteId = r.identity(ike, 'RemoteId', at('RemoteId'), 'remote');
    const p = ike.Psk;
    if (p === undefined || p === null) r.issue(at('Psk'), 'required');
    else if (typeof p !== 'string') r.issue(at('Psk'), `expected a string, got ${typeOf(p)}`);
    else if (p === '') r.issue(at('Psk'), 'must not be empty');
    else if (!wellFormed(p)) r.issue(at('Psk'), 'contains an unpaired UTF-16 surrogate (not valid text)');
    else psk = p;
  }

  // 3DES protects ESP in both versions and the IKE SA with IKEv1 only: twinsec's IKEv2 SA
  // protection is AES only (a peer that speaks IKEv2 speaks AES, RFC 8247 §2.1).
  if (version === 2 && ikeProposal?.startsWith('3des-')) {
    r.issue(
      r.path(...base, 'IkeConfig', 'IkeEncAlg'),
      "'3des' is not supported by twinsec with IKEv2 (use aes, aes192 or aes256, or IkeVersion ikev1)",
    );
  }

  let espProposal: string | undefined;
  let espLifetime: number | undefined;
  const ipsec = r.object(holder, 'IpsecConfig', r.path(...base, 'IpsecConfig'));
  if (ipsec) {
    const at = (k: string) => r.path(...base, 'IpsecConfig', k);
    const enc = r.alg(ipsec, 'IpsecEncAlg', at('IpsecEncAlg'), ALIYUN_ENC);
    const auth = r.alg(ipsec, 'IpsecAuthAlg', at('IpsecAuthAlg'), ALIYUN_ESP_AUTH);
    // `disabled` = no PFS: the ESP proposal carries no DH group.
    const pfsText = r.string(ipsec, 'IpsecPfs', at('IpsecPfs'));
    const noPfs = pfsText?.trim().toLowerCase() === 'disabled';
    const dh =
      pfsText === undefined || noPfs
        ? null
        : r.alg(ipsec, 'IpsecPfs', at('IpsecPfs'), ALIYUN_DH, ['disabled']);
    if (enc && auth && (noPfs || dh)) espProposal = dh ? `${enc}-${auth}-${dh}` : `${enc}-${auth}`;
    espLifetime = r.lifetime(ipsec, 'IpsecLifetime', at('IpsecLifetime'));
  }
  return { version, aggressive, ikeProposal, ikeLifetime, localId, remoteId, psk, espProposal, espLifetime };
}

/** Weak-group warnings and the connection's IKE/ESP fields, once readSa reported no issue. */
export function saConnection(
  r: Reader,
  sa: SaFields,
  base: string[],
): Pick<ImportedConnection, 'version' | 'mode' | 'localId' | 'remoteId' | 'psk' | 'ike' | 'esp'> {
  // group1 is accepted for legacy gateways, but 768 bits are within reach (RFC 8247 §2.4: MUST NOT).
  const weak = (obj: string, key: string, proposal: string): void => {
    if (!proposal.endsWith('-modp768')) return;
    r.warnings.push(
      `${r.path(...base, obj, key)}: group1 (modp768) is weak (768-bit); use group14 or stronger when the gateway allows`,
    );
  };
  weak('IkeConfig', 'IkePfs', sa.ikeProposal!);
  weak('IpsecConfig', 'IpsecPfs', sa.espProposal!);
  // Every field checked by readSa; the assertions only narrow types.
  return {
    version: sa.version!,
    ...(sa.aggressive && sa.version === 1 ? { mode: 'aggressive' as const } : {}),
    ...(sa.localId !== undefined ? { localId: sa.localId } : {}),
    ...(sa.remoteId !== undefined ? { remoteId: sa.remoteId } : {}),
    psk: sa.psk!,
    ike: { proposals: [sa.ikeProposal!], lifetime: sa.ikeLifetime! },
    esp: { proposals: [sa.espProposal!], lifetime: sa.espLifetime! },
  };
}
