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
import { type BgpPlan, frrConfig } from './frr.js';

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
  /** BGP dual-tunnel import: probes of the cloud's inside address over the tunnel. */
  healthCheck?: { source: string; destination: string; interval: number; retries: number };
  /** BGP dual-tunnel import: the route-based connection's own device and inside address. */
  interface?: { name: string; address: string };
}

export interface ImportedRoute {
  destination: string;
  via: { connection: string; weight: number }[];
  publish: boolean;
}

/** The generated configuration: only what differs from twinsec's defaults (tun, control... stay implicit). */
export interface ImportedConfig {
  connections: Record<string, ImportedConnection>;
  /** Absent for a BGP dual-tunnel import: there FRR installs the routes (route-based connections). */
  routes?: ImportedRoute[];
}

export interface AliyunImport {
  config: ImportedConfig;
  /** The configuration as YAML, ready for `twinsecd --config`. */
  yaml: string;
  /** Things the operator should know (IKEv1, ignored fields...); never contain the PSK. */
  warnings: string[];
  /** BGP dual-tunnel download only: what the FRR snippet is made of. */
  bgp?: BgpPlan;
  /** BGP dual-tunnel download only: the FRR configuration snippet (frr.conf text) for the on-prem side. */
  frr?: string;
}

export interface AliyunImportOptions {
  /** Connection name in the generated config (default `t1`); not with a BGP dual-tunnel download. */
  name?: string;
  /**
   * BGP dual-tunnel download: the on-premises ASN (`router bgp`), as a number or text (plain, or
   * Alibaba's two-segment `high.low`). Default: the download's PeerAsn; when both are given they
   * must agree.
   */
  asn?: string | number;
  /**
   * BGP dual-tunnel download: the on-premises IPv4 prefixes FRR announces (`network`). Default: the
   * download's LocalSubnet, unless that is 0.0.0.0/0 (route-based downloads usually say that).
   */
  networks?: string[];
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
  const { config, warnings, bgp } = aliyunToConfig(parseAliyunJson(text), opts);
  const out: AliyunImport = { config, yaml: configToYaml(config, bgp !== undefined), warnings };
  if (bgp) {
    out.bgp = bgp;
    out.frr = frrConfig(bgp);
  }
  return out;
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
): { config: ImportedConfig; warnings: string[]; bgp?: BgpPlan } {
  const name = opts.name ?? DEFAULT_CONNECTION_NAME;
  if (!CONNECTION_NAME.test(name)) {
    throw new ImportError([`--name: invalid connection name ${show(name)} (use 1-32 of A-Z a-z 0-9 _ -)`]);
  }
  if (!isObj(download)) throw new ImportError([`(root): expected a JSON object, got ${typeOf(download)}`]);
  const wrapped = isObj(download.VpnConnectionConfig);
  const root = wrapped ? (download.VpnConnectionConfig as Obj) : download;
  const r = new Reader(wrapped ? 'VpnConnectionConfig.' : '');

  const tunnels = root.TunnelsConfig;
  // TunnelsConfig with BgpConfigs entries: the dual-tunnel BGP case (route-based, FRR routes).
  if (tunnels !== undefined && tunnels !== null && hasBgpConfigs(root.BgpConfigs)) {
    return aliyunBgpToConfig(root, r, opts);
  }
  const bgpOnly = [
    ...(opts.asn !== undefined ? ['--asn'] : []),
    ...(opts.networks !== undefined ? ['--network'] : []),
  ];
  if (bgpOnly.length > 0) {
    throw new ImportError(
      bgpOnly.map((f) => `${f}: only used with a dual-tunnel BGP download (TunnelsConfig and BgpConfigs)`),
    );
  }
  if (hasBgpConfigs(root.BgpConfigs)) {
    r.warnings.push(
      `${r.path('BgpConfigs')}: ignored; BGP is imported from dual-tunnel downloads (TunnelsConfig) only`,
    );
  }
  if (tunnels !== undefined && tunnels !== null && root.IkeConfig === undefined) {
    throw new ImportError([
      `${r.path('TunnelsConfig')}: dual-tunnel downloads are supported with BGP only (BgpConfigs), and ` +
        'this one has none; without TunnelsConfig import-aliyun reads the single-tunnel fields Local, ' +
        'Remote, LocalSubnet, RemoteSubnet, IkeConfig and IpsecConfig',
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

  const sa = readSa(r, root, []);

  if (r.issues.length > 0) throw new ImportError(r.issues);
  const { version, mode, localId, remoteId, psk, ike, esp } = saConnection(r, sa, []);
  const conn: ImportedConnection = {
    version,
    ...(mode ? { mode } : {}),
    local: local!,
    remote: remote!,
    ...(localId !== undefined ? { localId } : {}),
    ...(remoteId !== undefined ? { remoteId } : {}),
    psk,
    ike,
    esp,
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
  selfCheck(config);
  return { config, warnings: r.warnings };
}

/**
 * Alibaba's ASN for the cloud side of VPN Gateway BGP when none is configured (its API reference,
 * CreateVpnConnection BgpConfig.LocalAsn: "Default value: 45104").
 */
export const ALIYUN_DEFAULT_ASN = 45104;
/** Tunnel devices of the BGP import: `tw-` + connection name (Linux IFNAMSIZ: 15 characters). */
const INTERFACE_PREFIX = 'tw-';
/** Alibaba: TunnelCidr is a /30 from 169.254.0.0/16 (CreateVpnConnection TunnelBgpConfig.TunnelCidr). */
const TUNNEL_CIDR_PREFIX = 30;
const LINK_LOCAL: Cidr = { address: '169.254.0.0', prefix: 16, family: 4 };
/**
 * Health check of each tunnel: twinsec's defaults (1 s x 3, `healthCheck` in the schema), written
 * out so the operator sees them. Its probes are marked control traffic (security issue #11), so a
 * saturated link does not fail them; a lost tunnel drops carrier after 3-4 s (README table), and
 * zebra withdraws the routes through the device at once. BFD (frr.ts) is the faster path.
 */
const HEALTH_INTERVAL = 1;
const HEALTH_RETRIES = 3;

/** Does BgpConfigs hold at least one entry (`{"BgpConfig": [...]}` as the API returns it, or a list)? */
function hasBgpConfigs(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (!isObj(v)) return v !== undefined && v !== null;
  const inner = v.BgpConfig;
  return Array.isArray(inner) ? inner.length > 0 : inner !== undefined && inner !== null;
}

/**
 * A repeated field: the API's JSON wraps lists as `{"TunnelConfig": [...]}` (the SDK models of
 * DownloadVpnConnectionConfig); a bare list is accepted too. Returns the items with their paths.
 */
function listOf(
  r: Reader,
  root: Obj,
  key: string,
  inner: string,
): { item: Obj; base: string[] }[] | undefined {
  const v = root[key];
  let items: unknown[];
  let base: (i: number) => string[];
  if (Array.isArray(v)) {
    items = v;
    base = (i) => [`${key}[${i}]`];
  } else if (isObj(v) && Array.isArray(v[inner])) {
    items = v[inner] as unknown[];
    base = (i) => [key, `${inner}[${i}]`];
  } else {
    r.issue(r.path(key), `expected {"${inner}": [...]} or a list, got ${typeOf(isObj(v) ? v[inner] : v)}`);
    return undefined;
  }
  const out: { item: Obj; base: string[] }[] = [];
  items.forEach((item, i) => {
    if (isObj(item)) out.push({ item, base: base(i) });
    else r.issue(r.path(...base(i)), `expected an object, got ${typeOf(item)}`);
  });
  return out.length === items.length ? out : undefined;
}

/**
 * An ASN: an integer 1..4294967295 (RFC 6793), as a number or digits, or Alibaba's two-segment
 * notation `high.low` = high x 65536 + low (its API reference for LocalAsn). 0 and 23456
 * (AS_TRANS, RFC 6793 §9) are refused.
 */
export function parseAsn(v: unknown): number | string {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const t = v.trim();
    const dot = /^(\d{1,5})\.(\d{1,5})$/.exec(t);
    if (/^\d{1,10}$/.test(t)) n = Number(t);
    else if (dot && Number(dot[1]) <= 0xffff && Number(dot[2]) <= 0xffff)
      n = Number(dot[1]) * 0x10000 + Number(dot[2]);
    else return `${show(v)} is not an ASN (1..4294967295, or high.low)`;
  } else return `expected an ASN, got ${typeOf(v)}`;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff)
    return `${String(v).trim()} is out of range (1..4294967295)`;
  if (n === 23456) return '23456 is AS_TRANS (RFC 6793), not a usable ASN';
  return n;
}

/** The address `offset` hosts into an IPv4 prefix (for the /30's two host addresses). */
function ipv4At(c: Cidr, offset: number): string {
  const b = parseAddress(c.address);
  const n = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) + offset;
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** One tunnel's BGP settings as read, before the sides are combined. */
interface TunnelBgp {
  base: string[];
  cidr: Cidr;
  cloud: string;
  onPrem: string;
  cloudAsn: number;
  peerAsn: number | undefined;
}

/** EnableBgp: optional, true/false (boolean or text); false is an issue: this import needs BGP. */
function readEnableBgp(r: Reader, b: Obj, at: string): void {
  const v = b.EnableBgp;
  if (v === undefined || v === null || v === '') return;
  const t = typeof v === 'string' ? v.trim().toLowerCase() : v;
  if (t === true || t === 'true') return;
  if (t === false || t === 'false') {
    r.issue(at, 'BGP is disabled for this tunnel (enable BGP on both tunnels, then download again)');
    return;
  }
  r.issue(at, `unknown value ${typeof v === 'string' ? show(v) : String(v)} (use true or false)`);
}

/** An inside address: IPv4, in the tunnel's /30, and one of its two host addresses. */
function insideAddress(r: Reader, v: unknown, at: string, cidr: Cidr | undefined): string | undefined {
  if (typeof v !== 'string') {
    r.issue(at, `expected a string, got ${typeOf(v)}`);
    return undefined;
  }
  const t = v.trim();
  if (isIP(t) !== 4) {
    r.issue(at, `${show(v)} is not an IPv4 address`);
    return undefined;
  }
  if (!cidr) return t;
  if (!contains(cidr, t)) {
    r.issue(at, `${t} is not in TunnelCidr ${cidr.address}/${cidr.prefix}`);
    return undefined;
  }
  if (t === ipv4At(cidr, 0) || t === ipv4At(cidr, 3)) {
    r.issue(at, `${t} is the network or broadcast address of TunnelCidr ${cidr.address}/${cidr.prefix}`);
    return undefined;
  }
  return t;
}

/**
 * One BgpConfig entry. Which side is which: Alibaba's API reference defines these fields on the
 * VPN connection (CreateVpnConnection BgpConfig and TunnelOptionsSpecification.TunnelBgpConfig,
 * DescribeVpnConnection VpnBgpConfig/TunnelBgpConfig): LocalAsn is "the ASN on the Alibaba Cloud
 * side", LocalBgpIp "the BGP IP address on the Alibaba Cloud side", PeerAsn / PeerBgpIp those "on
 * the data center side". The download's BgpConfigs carries the same field names (SDK model
 * DownloadVpnConnectionConfigResponseBody...BgpConfigs.BgpConfig, which documents no sides), so
 * they are read with that meaning: from the on-premises gateway's point of view LocalBgpIp is the
 * REMOTE (cloud) inside address and PeerBgpIp our own. Careful: that is the opposite of the
 * download's Local/Remote/LocalId, which the download names from the customer gateway's side.
 * A /30 has two host addresses, so an absent PeerBgpIp (Alibaba fills it in once BGP has come
 * up) is the one LocalBgpIp does not take.
 */
function readTunnelBgp(r: Reader, b: Obj, base: string[]): TunnelBgp | undefined {
  const at = (k: string) => r.path(...base, k);
  const before = r.issues.length;
  readEnableBgp(r, b, at('EnableBgp'));
  let cidr: Cidr | undefined;
  const cidrText = r.string(b, 'TunnelCidr', at('TunnelCidr'));
  if (cidrText !== undefined) {
    const c = parseCidr(cidrText.trim());
    if (typeof c === 'string') r.issue(at('TunnelCidr'), c.length > 120 ? 'invalid CIDR' : c);
    else if (c.family !== 4 || c.prefix !== TUNNEL_CIDR_PREFIX || !contains(LINK_LOCAL, c.address))
      r.issue(
        at('TunnelCidr'),
        `${cidrText.trim()} is not a /30 within 169.254.0.0/16 (Alibaba's tunnel CIDR)`,
      );
    else cidr = c;
  }
  let cloud: string | undefined;
  if (b.LocalBgpIp === undefined || b.LocalBgpIp === null || b.LocalBgpIp === '')
    r.issue(at('LocalBgpIp'), 'required');
  else cloud = insideAddress(r, b.LocalBgpIp, at('LocalBgpIp'), cidr);
  let onPrem: string | undefined;
  if (b.PeerBgpIp === undefined || b.PeerBgpIp === null || b.PeerBgpIp === '') {
    if (cidr && cloud) {
      onPrem = cloud === ipv4At(cidr, 1) ? ipv4At(cidr, 2) : ipv4At(cidr, 1);
      r.warnings.push(`${at('PeerBgpIp')}: absent; using ${onPrem}, the other host address of TunnelCidr`);
    }
  } else {
    onPrem = insideAddress(r, b.PeerBgpIp, at('PeerBgpIp'), cidr);
    if (onPrem !== undefined && onPrem === cloud) {
      r.issue(at('PeerBgpIp'), `${onPrem} is LocalBgpIp too (the two ends need different addresses)`);
      onPrem = undefined;
    }
  }
  let cloudAsn: number | undefined = ALIYUN_DEFAULT_ASN;
  if (b.LocalAsn === undefined || b.LocalAsn === null || b.LocalAsn === '') {
    r.warnings.push(`${at('LocalAsn')}: absent; using Alibaba's default ${ALIYUN_DEFAULT_ASN}`);
  } else {
    const a = parseAsn(b.LocalAsn);
    if (typeof a === 'string') {
      r.issue(at('LocalAsn'), a);
      cloudAsn = undefined;
    } else cloudAsn = a;
  }
  let peerAsn: number | undefined;
  if (b.PeerAsn !== undefined && b.PeerAsn !== null && b.PeerAsn !== '') {
    const a = parseAsn(b.PeerAsn);
    if (typeof a === 'string') r.issue(at('PeerAsn'), a);
    else peerAsn = a;
  }
  if (r.issues.length > before || !cidr || !cloud || !onPrem || cloudAsn === undefined) return undefined;
  if (peerAsn === ALIYUN_DEFAULT_ASN && cloudAsn !== ALIYUN_DEFAULT_ASN) {
    r.warnings.push(
      `${at('PeerAsn')}: ${peerAsn} is Alibaba's default ASN but LocalAsn is ${cloudAsn}: this import reads ` +
        "LocalAsn/LocalBgpIp as the Alibaba Cloud side (as Alibaba's API reference defines them); check the sides",
    );
  }
  return { base, cidr, cloud, onPrem, cloudAsn, peerAsn };
}

/** The prefixes to announce: --network, else the download's LocalSubnet unless it is 0.0.0.0/0. */
function readNetworks(r: Reader, root: Obj, given: string[] | undefined): string[] | undefined {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (c: Cidr) => {
    const key = canonicalCidr(c);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(key);
    }
  };
  if (given !== undefined) {
    const items = given
      .flatMap((g) => g.split(','))
      .map((g) => g.trim())
      .filter((g) => g !== '');
    if (items.length === 0) r.issue('--network', 'no prefixes given');
    for (const item of items) {
      const c = parseCidr(item);
      if (typeof c === 'string') r.issue('--network', c.length > 120 ? 'invalid CIDR' : c);
      else if (c.family !== 4)
        r.issue('--network', `${item}: IPv6 is not supported (the FRR snippet is IPv4 unicast only)`);
      else add(c);
    }
    return out.length > 0 ? out : undefined;
  }
  const text = root.LocalSubnet;
  const at = r.path('LocalSubnet');
  const why = 'give the on-premises prefixes FRR should announce with --network CIDR';
  if (typeof text !== 'string' || text.trim() === '') {
    r.issue('--network', `required: the download has no LocalSubnet (${why})`);
    return undefined;
  }
  const subnets = r.subnets(root, 'LocalSubnet', at);
  if (!subnets) return undefined;
  if (subnets.some((c) => c.prefix === 0)) {
    r.issue('--network', `required: the download's LocalSubnet is ${text.trim()} (${why})`);
    return undefined;
  }
  for (const c of subnets) {
    if (c.family !== 4) r.issue(at, `${c.address}/${c.prefix}: IPv6 is not supported (give --network)`);
    else add(c);
  }
  return out;
}

/**
 * A dual-tunnel download with BGP -> two route-based connections, t1 (tunnel 1, preferred) and t2,
 * each with its own device (tw-t1, tw-t2) holding the on-premises inside address, selectors
 * 0.0.0.0/0 (which prefixes use a tunnel is FRR's choice), a health check of the cloud's inside
 * address, and the plan for the FRR snippet. Tunnel 1 (preferred) is the first TunnelConfig entry,
 * as the download lists them.
 */
function aliyunBgpToConfig(
  root: Obj,
  r: Reader,
  opts: AliyunImportOptions,
): { config: ImportedConfig; warnings: string[]; bgp: BgpPlan } {
  if (opts.name !== undefined)
    r.issue('--name', 'not used with a dual-tunnel BGP download (its connections are t1 and t2)');
  const tunnels = listOf(r, root, 'TunnelsConfig', 'TunnelConfig');
  const bgps = listOf(r, root, 'BgpConfigs', 'BgpConfig');
  if (tunnels && tunnels.length !== 2)
    r.issue(r.path('TunnelsConfig'), `expected 2 tunnels, got ${tunnels.length}`);
  if (bgps && tunnels && bgps.length !== tunnels.length)
    r.issue(r.path('BgpConfigs'), `expected one entry per tunnel (${tunnels.length}), got ${bgps.length}`);
  let onPremAsn: number | undefined;
  if (opts.asn !== undefined) {
    const a = parseAsn(opts.asn);
    if (typeof a === 'string') r.issue('--asn', a);
    else onPremAsn = a;
  }
  const networks = readNetworks(r, root, opts.networks);
  if (!tunnels || !bgps || tunnels.length !== 2 || bgps.length !== 2) throw new ImportError(r.issues);

  // Pair each tunnel with its BgpConfig by TunnelId; by position when the ids are not all there.
  const id = (o: Obj): string | undefined =>
    typeof o.TunnelId === 'string' && o.TunnelId.trim() !== '' ? o.TunnelId.trim() : undefined;
  const byId = tunnels.every((t) => id(t.item)) && bgps.every((b) => id(b.item));
  if (!byId) {
    r.warnings.push(
      `${r.path('BgpConfigs')}: TunnelId missing; BgpConfigs entries paired with TunnelsConfig entries by position`,
    );
  }
  const pairs = tunnels.map((t, i) => {
    const b = byId ? bgps.find((x) => id(x.item) === id(t.item)) : bgps[i];
    if (!b) r.issue(r.path(...t.base, 'TunnelId'), `no BgpConfigs entry has TunnelId ${show(id(t.item)!)}`);
    return { t, b };
  });

  const read = pairs.map(({ t, b }) => {
    const local = r.address(t.item, 'Local', r.path(...t.base, 'Local'));
    const remote = r.address(t.item, 'Remote', r.path(...t.base, 'Remote'));
    if (local && remote && isIP(local) !== isIP(remote))
      r.issue(r.path(...t.base, 'Remote'), `IPv${isIP(remote)} address but Local is IPv${isIP(local)}`);
    const sa = readSa(r, t.item, t.base);
    const bgp = b ? readTunnelBgp(r, b.item, b.base) : undefined;
    return { t, local, remote, sa, bgp };
  });
  const [one, two] = read as [(typeof read)[0], (typeof read)[0]];
  if (one.local && one.remote && one.local === two.local && one.remote === two.remote) {
    r.issue(
      r.path(...two.t.base, 'Remote'),
      'both tunnels have the same Local and Remote (two tunnels need two gateway addresses)',
    );
  }
  if (one.bgp && two.bgp && canonicalCidr(one.bgp.cidr) === canonicalCidr(two.bgp.cidr)) {
    r.issue(r.path(...two.bgp.base, 'TunnelCidr'), `same TunnelCidr as ${r.path(...one.bgp.base)}`);
  }
  // The on-premises ASN: --asn, else PeerAsn (both tunnels end on the same on-premises router).
  for (const x of [one, two]) {
    const peer = x.bgp?.peerAsn;
    if (peer === undefined) continue;
    if (opts.asn !== undefined) {
      if (onPremAsn !== undefined && peer !== onPremAsn)
        r.issue(r.path(...x.bgp!.base, 'PeerAsn'), `${peer} differs from --asn ${onPremAsn}`);
    } else if (onPremAsn === undefined) onPremAsn = peer;
    else if (peer !== onPremAsn)
      r.issue(r.path(...x.bgp!.base, 'PeerAsn'), `${peer} differs from tunnel 1's PeerAsn ${onPremAsn}`);
  }
  if (opts.asn === undefined && onPremAsn === undefined && one.bgp && two.bgp) {
    r.issue(r.path(...one.bgp.base, 'PeerAsn'), 'absent: give the on-premises ASN with --asn');
  }
  for (const x of [one, two]) {
    if (x.bgp && onPremAsn !== undefined && x.bgp.cloudAsn === onPremAsn) {
      r.issue(
        opts.asn !== undefined ? '--asn' : r.path(...x.bgp.base, 'PeerAsn'),
        `${onPremAsn} is the cloud side's ASN too (LocalAsn): the snippet sets up eBGP, which needs two ASNs`,
      );
    }
  }
  if (r.issues.length > 0) throw new ImportError([...new Set(r.issues)]);

  const plan: BgpPlan = { asn: onPremAsn!, networks: networks!, tunnels: [] };
  const connections: Record<string, ImportedConnection> = {};
  read.forEach((x, i) => {
    const name = `t${i + 1}`;
    const bgp = x.bgp!;
    const ifname = `${INTERFACE_PREFIX}${name}`;
    const { version, mode, localId, remoteId, psk, ike, esp } = saConnection(r, x.sa, x.t.base);
    connections[name] = {
      version,
      ...(mode ? { mode } : {}),
      local: x.local!,
      remote: x.remote!,
      ...(localId !== undefined ? { localId } : {}),
      ...(remoteId !== undefined ? { remoteId } : {}),
      psk,
      ike,
      esp,
      localSubnets: ['0.0.0.0/0'],
      remoteSubnets: ['0.0.0.0/0'],
      start: 'initiate',
      healthCheck: {
        source: bgp.onPrem,
        destination: bgp.cloud,
        interval: HEALTH_INTERVAL,
        retries: HEALTH_RETRIES,
      },
      interface: { name: ifname, address: `${bgp.onPrem}/${bgp.cidr.prefix}` },
    };
    const tunnelId = id(x.t.item);
    plan.tunnels.push({
      connection: name,
      interfaceName: ifname,
      ...(tunnelId !== undefined ? { tunnelId } : {}),
      address: bgp.onPrem,
      prefix: bgp.cidr.prefix,
      cloudAddress: bgp.cloud,
      cloudAsn: bgp.cloudAsn,
    });
  });
  const config: ImportedConfig = { connections };
  selfCheck(config);
  return { config, warnings: r.warnings, bgp: plan };
}

/** IkeConfig and IpsecConfig of one tunnel, read; undefined members were reported as issues. */
interface SaFields {
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
function readSa(r: Reader, holder: Obj, base: string[]): SaFields {
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
function saConnection(
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

/**
 * Loads the generated YAML with twinsec's own loader. A failure here is an importer bug; the
 * loader's messages carry no secrets.
 */
function selfCheck(config: ImportedConfig): void {
  try {
    parseConfig(configToYaml(config), { baseDir: '/' });
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ImportError(err.issues.map((i) => `generated configuration: ${i}`));
    }
    throw err;
  }
  // The proposals were built from the tables; make sure the parser of each connection's version
  // agrees (no silent drift).
  for (const conn of Object.values(config.connections)) {
    const parse = conn.version === 1 ? parseV1Proposal : parseProposal;
    parse(conn.ike.proposals[0]!, 'ike');
    parse(conn.esp.proposals[0]!, 'esp');
  }
}

/** Configuration object -> YAML text. The PSK is a double-quoted scalar (exact round trip). */
export function configToYaml(config: ImportedConfig, bgp = false): string {
  const doc = new Document(config);
  const lines = [
    ' twinsec configuration generated by `twinsec import-aliyun` from an Alibaba Cloud IPsec',
    ' connection download (customer gateway side). It contains the pre-shared key: keep it',
    ' private (chmod 600). Check it with: twinsecd --check --config FILE',
    ...(bgp
      ? [
          ' Route-based: FRR (bgpd, bfdd, zebra) routes over the tunnel devices; load the FRR',
          ' snippet written with --frr (vtysh -f FILE, or merge it into /etc/frr/frr.conf).',
        ]
      : []),
  ];
  for (const name of Object.keys(config.connections)) {
    const node = doc.getIn(['connections', name, 'psk'], true);
    if (node instanceof Scalar) node.type = Scalar.QUOTE_DOUBLE;
  }
  doc.commentBefore = lines.join('\n');
  return doc.toString({ lineWidth: 0, minContentWidth: 0 });
}
