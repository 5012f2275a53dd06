/**
 * The dual-tunnel download with BGP (TunnelsConfig and BgpConfigs, project issue #12) -> two
 * route-based connections, t1 and t2, each with its own tunnel device and inside address, plus the
 * plan for the FRR snippet (frr.ts) that routes over them. aliyun.ts dispatches here when the
 * download has TunnelsConfig and BgpConfigs entries. The per-tunnel IkeConfig/IpsecConfig are read
 * with the same helpers as the single-tunnel import (aliyun-download.ts).
 */
import { isIP } from 'node:net';
import { type Cidr, canonicalCidr, parseCidr } from '../config/schema.js';
import { parseAddress } from '../ike/wire/ts.js';
import {
  type AliyunImportOptions,
  type ImportedConfig,
  type ImportedConnection,
  selfCheck,
} from './aliyun-config.js';
import {
  contains,
  ImportError,
  isObj,
  type Obj,
  type Reader,
  readSa,
  saConnection,
  show,
  typeOf,
} from './aliyun-download.js';
import { bgpTunnelHealth, readHealthCheck, readTransport } from './aliyun-health.js';
import type { BgpPlan } from './frr.js';

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

/** Does BgpConfigs hold at least one entry (`{"BgpConfig": [...]}` as the API returns it, or a list)? */
export function hasBgpConfigs(v: unknown): boolean {
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
 * address (or as HealthCheckConfig says), DPD and encapsulation per tunnel (EnableDpd,
 * EnableNatTraversal), and the plan for the FRR snippet. Tunnel 1 (preferred) is the first TunnelConfig entry,
 * as the download lists them.
 */
export function aliyunBgpToConfig(
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

  const rootHc = readHealthCheck(r, root, []);
  const read = pairs.map(({ t, b }) => {
    const local = r.address(t.item, 'Local', r.path(...t.base, 'Local'));
    const remote = r.address(t.item, 'Remote', r.path(...t.base, 'Remote'));
    if (local && remote && isIP(local) !== isIP(remote))
      r.issue(r.path(...t.base, 'Remote'), `IPv${isIP(remote)} address but Local is IPv${isIP(local)}`);
    const sa = readSa(r, t.item, t.base);
    const bgp = b ? readTunnelBgp(r, b.item, b.base) : undefined;
    // Per tunnel, the root's as fallback (tunnel-level wins).
    const hc = readHealthCheck(r, t.item, t.base) ?? rootHc;
    const transport = readTransport(r, [
      { obj: t.item, base: t.base },
      { obj: root, base: [] },
    ]);
    return { t, local, remote, sa, bgp, hc, transport };
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
    const health = bgpTunnelHealth(r, x.hc, bgp.onPrem, bgp.cloud);
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
      ...x.transport,
      ...(health ? { healthCheck: health } : {}),
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
  // Root-level settings warn once, not once per tunnel.
  return { config, warnings: [...new Set(r.warnings)], bgp: plan };
}
