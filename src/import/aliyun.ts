/**
 * Alibaba Cloud VPN Gateway "download configuration" (console: IPsec Connections > Download
 * Configuration; API: DownloadVpnConnectionConfig) -> a twinsec configuration for the customer
 * gateway side, as YAML text.
 *
 * Reading of the download (Alibaba's API reference and the dual-tunnel HA guide, step 4): it is
 * written for the customer gateway device, so `Local` is the customer gateway (this machine's public
 * address), `Remote` the VPN gateway, `LocalSubnet` the data-center networks and `RemoteSubnet` the
 * VPC networks; both subnet fields are comma-separated lists. `LocalId`/`RemoteId` follow the same
 * sides. The API wraps the object as `{"RequestId": ..., "VpnConnectionConfig": {...}}`; both forms
 * are accepted. Unknown fields are ignored.
 *
 * Everything is pure: no I/O. Problems are collected and reported together as "path: message"
 * (paths are the download's JSON field names). No message, warning or comment ever contains the
 * PSK; the PSK appears once in the output, as a double-quoted YAML string that parses back to the
 * exact same text.
 */
import { isIP } from 'node:net';
import { Document, Scalar } from 'yaml';
import { parseConfig } from '../config/load.js';
import { type Cidr, CONNECTION_NAME, canonicalCidr, parseCidr } from '../config/schema.js';
import { ConfigError, TwinsecError } from '../errors.js';
import { parseIdentity } from '../ike/identity.js';
import { parseProposal } from '../ike/proposal.js';
import { parseV1Proposal } from '../ike/v1/proposal.js';
import { parseAddress } from '../ike/wire/ts.js';

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

export const DEFAULT_CONNECTION_NAME = 't1';
const MIN_LIFETIME = 10;
const MAX_LIFETIME = 31_536_000;

export interface ImportedConnection {
  version: 1 | 2;
  /** IKEv1 only, and only when not the default (main). */
  mode?: 'aggressive';
  local: string;
  remote: string;
  localId?: string;
  remoteId?: string;
  psk: string;
  ike: { proposals: string[]; lifetime: number };
  esp: { proposals: string[]; lifetime: number };
  localSubnets: string[];
  remoteSubnets: string[];
  start: 'initiate';
}

export interface ImportedRoute {
  destination: string;
  via: { connection: string; weight: number }[];
  publish: boolean;
}

/** The generated configuration: only what differs from twinsec's defaults (tun, control... stay implicit). */
export interface ImportedConfig {
  connections: Record<string, ImportedConnection>;
  routes: ImportedRoute[];
}

export interface AliyunImport {
  config: ImportedConfig;
  /** The configuration as YAML, ready for `twinsecd --config`. */
  yaml: string;
  /** Things the operator should know (IKEv1, ignored fields...); never contain the PSK. */
  warnings: string[];
}

export interface AliyunImportOptions {
  /** Connection name in the generated config (default `t1`). */
  name?: string;
}

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

/** JSON text of a download -> YAML configuration. Throws ImportError listing every problem. */
export function importAliyun(text: string, opts: AliyunImportOptions = {}): AliyunImport {
  const { config, warnings } = aliyunToConfig(parseAliyunJson(text), opts);
  return { config, yaml: configToYaml(config), warnings };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

/** A non-secret value for a message: quoted, control characters escaped, long values cut. */
function show(v: string): string {
  const s = v.length > 40 ? `${v.slice(0, 40)}...` : v;
  return `'${s.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\']/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}'`;
}

/** "a, b or c" */
function orList(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** Reads one download field; records "required"/wrong-type issues. */
class Reader {
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
function contains(c: Cidr, addr: string): boolean {
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

/**
 * Download (parsed JSON) -> configuration object and warnings. Throws ImportError with every
 * problem. The result is checked with twinsec's own loader, so it is what `twinsecd --check`
 * accepts.
 */
export function aliyunToConfig(
  download: unknown,
  opts: AliyunImportOptions = {},
): { config: ImportedConfig; warnings: string[] } {
  const name = opts.name ?? DEFAULT_CONNECTION_NAME;
  if (!CONNECTION_NAME.test(name)) {
    throw new ImportError([`--name: invalid connection name ${show(name)} (use 1-32 of A-Z a-z 0-9 _ -)`]);
  }
  if (!isObj(download)) throw new ImportError([`(root): expected a JSON object, got ${typeOf(download)}`]);
  const wrapped = isObj(download.VpnConnectionConfig);
  const root = wrapped ? (download.VpnConnectionConfig as Obj) : download;
  const r = new Reader(wrapped ? 'VpnConnectionConfig.' : '');

  const tunnels = root.TunnelsConfig;
  if (tunnels !== undefined && tunnels !== null && root.IkeConfig === undefined) {
    throw new ImportError([
      `${r.path('TunnelsConfig')}: dual-tunnel downloads are not supported (import-aliyun reads the ` +
        'single-tunnel fields Local, Remote, LocalSubnet, RemoteSubnet, IkeConfig and IpsecConfig)',
    ]);
  }
  if (tunnels !== undefined && tunnels !== null) {
    r.warnings.push(`${r.path('TunnelsConfig')}: ignored; only the single-tunnel fields are imported`);
  }

  const local = r.address(root, 'Local', r.path('Local'));
  const remote = r.address(root, 'Remote', r.path('Remote'));
  if (local && remote && isIP(local) !== isIP(remote)) {
    r.issue(r.path('Remote'), `IPv${isIP(remote)} address but Local is IPv${isIP(local)}`);
  }
  const localSubnets = r.subnets(root, 'LocalSubnet', r.path('LocalSubnet'));
  const remoteSubnets = r.subnets(root, 'RemoteSubnet', r.path('RemoteSubnet'));

  let version: 1 | 2 | undefined;
  let ikeProposal: string | undefined;
  let ikeLifetime: number | undefined;
  let localId: string | undefined;
  let remoteId: string | undefined;
  let psk: string | undefined;
  let aggressive = false;
  const ike = r.object(root, 'IkeConfig', r.path('IkeConfig'));
  if (ike) {
    const at = (k: string) => r.path('IkeConfig', k);
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
      r.path('IkeConfig', 'IkeEncAlg'),
      "'3des' is not supported by twinsec with IKEv2 (use aes, aes192 or aes256, or IkeVersion ikev1)",
    );
  }

  let espProposal: string | undefined;
  let espLifetime: number | undefined;
  const ipsec = r.object(root, 'IpsecConfig', r.path('IpsecConfig'));
  if (ipsec) {
    const at = (k: string) => r.path('IpsecConfig', k);
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

  if (r.issues.length > 0) throw new ImportError(r.issues);
  // group1 is accepted for legacy gateways, but 768 bits are within reach (RFC 8247 §2.4: MUST NOT).
  const weak = (obj: string, key: string, proposal: string): void => {
    if (!proposal.endsWith('-modp768')) return;
    r.warnings.push(
      `${r.path(obj, key)}: group1 (modp768) is weak (768-bit); use group14 or stronger when the gateway allows`,
    );
  };
  weak('IkeConfig', 'IkePfs', ikeProposal!);
  weak('IpsecConfig', 'IpsecPfs', espProposal!);
  // Every field checked above; the assertions only narrow types.
  const conn: ImportedConnection = {
    version: version!,
    ...(aggressive && version === 1 ? { mode: 'aggressive' as const } : {}),
    local: local!,
    remote: remote!,
    ...(localId !== undefined ? { localId } : {}),
    ...(remoteId !== undefined ? { remoteId } : {}),
    psk: psk!,
    ike: { proposals: [ikeProposal!], lifetime: ikeLifetime! },
    esp: { proposals: [espProposal!], lifetime: espLifetime! },
    localSubnets: localSubnets!.map((c) => `${c.address}/${c.prefix}`),
    remoteSubnets: remoteSubnets!.map((c) => `${c.address}/${c.prefix}`),
    start: 'initiate',
  };
  for (const c of remoteSubnets!) {
    if (contains(c, conn.remote)) {
      r.warnings.push(
        `${r.path('RemoteSubnet')}: ${c.address}/${c.prefix} contains the VPN gateway address ` +
          `(Remote); publishing that route sends IKE/ESP traffic to the gateway into the tunnel: ` +
          'add a more specific host route to the gateway via your uplink',
      );
    }
  }
  const config: ImportedConfig = {
    connections: { [name]: conn },
    routes: conn.remoteSubnets.map((destination) => ({
      destination,
      via: [{ connection: name, weight: 100 }],
      publish: true,
    })),
  };
  selfCheck(config, name);
  return { config, warnings: r.warnings };
}

/**
 * Loads the generated YAML with twinsec's own loader. A failure here is an importer bug; the
 * loader's messages carry no secrets.
 */
function selfCheck(config: ImportedConfig, name: string): void {
  const conn = config.connections[name]!;
  try {
    parseConfig(configToYaml(config), { baseDir: '/' });
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ImportError(err.issues.map((i) => `generated configuration: ${i}`));
    }
    throw err;
  }
  // The proposals were built from the tables; make sure the parser of the connection's version
  // agrees (no silent drift).
  const parse = conn.version === 1 ? parseV1Proposal : parseProposal;
  parse(conn.ike.proposals[0]!, 'ike');
  parse(conn.esp.proposals[0]!, 'esp');
}

/** Configuration object -> YAML text. The PSK is a double-quoted scalar (exact round trip). */
export function configToYaml(config: ImportedConfig): string {
  const doc = new Document(config);
  const lines = [
    ' twinsec configuration generated by `twinsec import-aliyun` from an Alibaba Cloud IPsec',
    ' connection download (customer gateway side). It contains the pre-shared key: keep it',
    ' private (chmod 600). Check it with: twinsecd --check --config FILE',
  ];
  for (const name of Object.keys(config.connections)) {
    const node = doc.getIn(['connections', name, 'psk'], true);
    if (node instanceof Scalar) node.type = Scalar.QUOTE_DOUBLE;
  }
  doc.commentBefore = lines.join('\n');
  return doc.toString({ lineWidth: 0, minContentWidth: 0 });
}
