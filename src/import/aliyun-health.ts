/**
 * The download's liveness and transport settings, shared by both imports (single tunnel,
 * aliyun.ts; dual tunnel with BGP, aliyun-bgp.ts):
 * - the health check, `HealthCheckConfig` as CreateVpnConnection takes it
 *   (`{"enable":"true","dip":...,"sip":...,"interval":"3","retry":"3","Policy":"revoke_route"}`,
 *   an object or that object as a JSON string, as the API passes it) or `VcoHealthCheck` as
 *   DescribeVpnConnection returns it (the same keys capitalised, plus `Status`). Keys are matched
 *   case-insensitively; values may be text, numbers or booleans;
 * - `EnableDpd` (Alibaba's default: true) -> `dpd`;
 * - `EnableNatTraversal` (Alibaba's default: true) -> `encapsulation: esp` when false.
 * Pure; issues are "path: message" through the Reader, and none of these fields is secret.
 */
import { isIP } from 'node:net';
import type { Cidr } from '../config/schema.js';
import { contains, isObj, type Obj, type Reader, show, typeOf } from './aliyun-download.js';

/**
 * Alibaba's health check defaults when the check is enabled without them (CreateVpnConnection
 * HealthCheckConfig: interval 3 s, retry 3, Policy revoke_route).
 */
const ALIYUN_HEALTH_INTERVAL = 3;
const ALIYUN_HEALTH_RETRY = 3;
/** twinsec's range for healthCheck.interval and .retries (src/config/schema.ts). */
const MIN_INTERVAL = 0.01;
const MAX_INTERVAL = 3600;
const MAX_RETRIES = 100;
/** Written out explicitly so the operator sees them: twinsec's own DPD defaults (seconds). */
export const DPD = { delay: 10, timeout: 20 } as const;

const POLICIES: Readonly<Record<string, 'revoke' | 'reserve'>> = {
  revoke_route: 'revoke',
  reserve_route: 'reserve',
};

/** A health check setting as read; `at` is its path (for messages about it). */
export interface HealthRead {
  at: string;
  enabled: boolean;
  /**
   * sip and dip; undefined when not given (the BGP import fills in the inside addresses), null
   * when given but invalid (already reported).
   */
  source: string | null | undefined;
  destination: string | null | undefined;
  /** Their paths, as written (or in the holder's spelling when absent). */
  sipAt: string;
  dipAt: string;
  interval: number;
  retries: number;
  /** What Policy asks for once every next hop is down (routes[].onAllDown). */
  onAllDown: 'revoke' | 'reserve';
  /** Policy was written in the download (not Alibaba's default), at `policyAt`. */
  policyGiven: boolean;
  policyAt: string;
}

/** true/false as a boolean or text (any case); undefined when absent or empty, null when invalid. */
function bool(r: Reader, v: unknown, at: string): boolean | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  const t = typeof v === 'string' ? v.trim().toLowerCase() : v;
  if (t === true || t === 'true') return true;
  if (t === false || t === 'false') return false;
  r.issue(at, `unknown value ${typeof v === 'string' ? show(v) : String(v)} (use true or false)`);
  return null;
}

/** A number as a number or text; undefined when absent or empty, null when invalid (reported). */
function num(r: Reader, v: unknown, at: string): number | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' && /^\s*\d{1,6}(\.\d{1,6})?\s*$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    r.issue(at, typeof v === 'string' ? `${show(v)} is not a number` : `expected a number, got ${typeOf(v)}`);
    return null;
  }
  return n;
}

/** A probe address (sip/dip): an IPv4 or IPv6 address; undefined when absent, null when invalid. */
function ip(r: Reader, v: unknown, at: string): string | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') {
    r.issue(at, `expected a string, got ${typeOf(v)}`);
    return null;
  }
  const t = v.trim();
  if (isIP(t) === 0 || t.includes('%')) {
    r.issue(at, `${show(v)} is not an IP address`);
    return null;
  }
  return t;
}

/** The holder's key spelt `name` in any case (the API's field names vary in case between calls). */
function keyOf(obj: Obj, name: string): string | undefined {
  const want = name.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === want && obj[k] !== undefined && obj[k] !== null);
}

/**
 * `holder.HealthCheckConfig` (or `VcoHealthCheck`) read and checked; undefined when absent or not
 * an object (an issue then). A bad value is an issue and read as Alibaba's default, so the callers'
 * checks still run and every problem is reported at once. Absent `enable` means enabled when dip
 * or sip is given (the object is there to set up a check), else disabled.
 */
export function readHealthCheck(r: Reader, holder: Obj, base: string[]): HealthRead | undefined {
  const key = keyOf(holder, 'HealthCheckConfig') ?? keyOf(holder, 'VcoHealthCheck');
  if (key === undefined) return undefined;
  const at = r.path(...base, key);
  let v = holder[key];
  if (typeof v === 'string') {
    if (v.trim() === '') return undefined;
    try {
      v = JSON.parse(v);
    } catch {
      r.issue(at, 'not valid JSON (expected an object, or an object as a JSON string)');
      return undefined;
    }
  }
  if (!isObj(v)) {
    r.issue(at, `expected an object, got ${typeOf(v)}`);
    return undefined;
  }
  const hc = v;
  // An absent key is named as its holder spells keys: DescribeVpnConnection's are capitalised.
  const capital = key.toLowerCase() === 'vcohealthcheck';
  const field = (name: string): { value: unknown; at: string } => {
    const k = keyOf(hc, name);
    if (k !== undefined) return { value: hc[k], at: `${at}.${k}` };
    return { value: undefined, at: `${at}.${capital ? name[0]!.toUpperCase() + name.slice(1) : name}` };
  };
  const sipF = field('sip');
  const dipF = field('dip');
  const source = ip(r, sipF.value, sipF.at);
  const destination = ip(r, dipF.value, dipF.at);
  const enableF = field('enable');
  const enable = bool(r, enableF.value, enableF.at);
  const enabled = enable ?? (sipF.value !== undefined || dipF.value !== undefined);

  const intervalF = field('interval');
  let interval = num(r, intervalF.value, intervalF.at) ?? ALIYUN_HEALTH_INTERVAL;
  if (interval < MIN_INTERVAL || interval > MAX_INTERVAL) {
    r.issue(
      intervalF.at,
      `${interval} is out of range (twinsec accepts ${MIN_INTERVAL}..${MAX_INTERVAL} seconds; Alibaba 1..60)`,
    );
    interval = ALIYUN_HEALTH_INTERVAL;
  }
  const retryF = field('retry');
  let retries = num(r, retryF.value, retryF.at) ?? ALIYUN_HEALTH_RETRY;
  if (!Number.isInteger(retries) || retries < 1 || retries > MAX_RETRIES) {
    r.issue(retryF.at, `${retries} is not an integer in 1..${MAX_RETRIES}`);
    retries = ALIYUN_HEALTH_RETRY;
  }
  const policyF = field('Policy');
  let onAllDown: 'revoke' | 'reserve' = 'revoke';
  let policyGiven = false;
  if (policyF.value !== undefined && policyF.value !== '') {
    const p = typeof policyF.value === 'string' ? policyF.value.trim().toLowerCase() : undefined;
    if (p !== undefined && Object.hasOwn(POLICIES, p)) {
      onAllDown = POLICIES[p]!;
      policyGiven = true;
    } else {
      const shown = typeof policyF.value === 'string' ? show(policyF.value) : typeOf(policyF.value);
      r.issue(policyF.at, `unknown value ${shown} (use revoke_route or reserve_route)`);
    }
  }
  if (source && destination && isIP(source) !== isIP(destination)) {
    r.issue(dipF.at, `IPv${isIP(destination)} address but sip is IPv${isIP(source)}`);
  }
  return {
    at,
    enabled,
    source,
    destination,
    sipAt: sipF.at,
    dipAt: dipF.at,
    interval,
    retries,
    onAllDown,
    policyGiven,
    policyAt: policyF.at,
  };
}

/**
 * The single-tunnel import's health check: sip and dip are required once enabled; probes from
 * outside the selectors are not carried by the tunnel, so addresses outside LocalSubnet /
 * RemoteSubnet are flagged.
 */
export function singleTunnelHealth(
  r: Reader,
  hc: HealthRead,
  localSubnets: Cidr[],
  remoteSubnets: Cidr[],
): { source: string; destination: string; interval: number; retries: number } | undefined {
  if (!hc.enabled) {
    r.warnings.push(`${hc.at}: health check disabled; failover follows the SA state only`);
    return undefined;
  }
  if (hc.source === undefined) r.issue(hc.sipAt, 'required when the health check is enabled');
  if (hc.destination === undefined) r.issue(hc.dipAt, 'required when the health check is enabled');
  if (!hc.source || !hc.destination) return undefined;
  const outside = (addr: string, subnets: Cidr[], at: string, field: string, side: string) => {
    if (subnets.some((c) => contains(c, addr))) return;
    r.warnings.push(
      `${at}: ${addr} is not in ${field}: probes ${side} an address outside the tunnel's ` +
        'selectors are not carried by the tunnel, so the check would fail',
    );
  };
  outside(hc.source, localSubnets, hc.sipAt, 'LocalSubnet', 'from');
  outside(hc.destination, remoteSubnets, hc.dipAt, 'RemoteSubnet', 'to');
  return { source: hc.source, destination: hc.destination, interval: hc.interval, retries: hc.retries };
}

/**
 * The BGP import's default health check of each tunnel: twinsec's defaults (1 s x 3, `healthCheck`
 * in the schema), written out so the operator sees them. Its probes are marked control traffic
 * (security issue #11), so a saturated link does not fail them; a lost tunnel drops carrier after
 * 3-4 s (README table), and zebra withdraws the routes through the device at once. BFD (frr.ts) is
 * the faster path.
 */
const BGP_HEALTH_INTERVAL = 1;
const BGP_HEALTH_RETRIES = 3;

/**
 * One tunnel of the BGP import: `hc` is the tunnel's HealthCheckConfig, else the root's, else
 * undefined (then the default check of the cloud's inside address). sip/dip default to the inside
 * addresses. There are no `routes` to carry Policy: a tunnel whose check fails loses carrier and
 * FRR's routes through it go, which is revoke_route; reserve_route cannot be honoured.
 */
export function bgpTunnelHealth(
  r: Reader,
  hc: HealthRead | undefined,
  onPrem: string,
  cloud: string,
): { source: string; destination: string; interval: number; retries: number } | undefined {
  if (!hc)
    return { source: onPrem, destination: cloud, interval: BGP_HEALTH_INTERVAL, retries: BGP_HEALTH_RETRIES };
  if (!hc.enabled) {
    r.warnings.push(`${hc.at}: health check disabled; a tunnel device's carrier follows its SA state only`);
    return undefined;
  }
  if (hc.policyGiven && hc.onAllDown === 'reserve') {
    r.warnings.push(
      `${hc.policyAt}: reserve_route cannot apply: a tunnel whose check fails loses carrier, so the ` +
        'routes through it are always withdrawn (revoke_route)',
    );
  }
  for (const [at, addr] of [
    [hc.sipAt, hc.source],
    [hc.dipAt, hc.destination],
  ] as const) {
    if (typeof addr === 'string' && isIP(addr) !== 4) {
      r.warnings.push(
        `${at}: ${addr} is not IPv4: the tunnels' selectors are 0.0.0.0/0, so the probes are not carried`,
      );
    }
  }
  return {
    source: hc.source ?? onPrem,
    destination: hc.destination ?? cloud,
    interval: hc.interval,
    retries: hc.retries,
  };
}

/**
 * `EnableDpd` and `EnableNatTraversal` of one tunnel (the download's root, or a TunnelConfig with
 * the root as fallback); both default to Alibaba's `true`. NAT traversal off: raw ESP only.
 */
export function readTransport(
  r: Reader,
  holders: { obj: Obj; base: string[] }[],
): { dpd?: { delay: number; timeout: number }; encapsulation?: 'esp' } {
  const flag = (name: string): { value: boolean; at: string } => {
    for (const h of holders) {
      const k = keyOf(h.obj, name);
      if (k === undefined) continue;
      const at = r.path(...h.base, k);
      return { value: bool(r, h.obj[k], at) ?? true, at };
    }
    return { value: true, at: r.path(name) };
  };
  const dpd = flag('EnableDpd');
  const nat = flag('EnableNatTraversal');
  if (!nat.value) {
    r.warnings.push(
      `${nat.at}: NAT traversal is off: twinsec sends raw ESP (IP protocol 50, encapsulation: esp), ` +
        'which every firewall and NAT on the path must pass',
    );
  }
  return {
    ...(dpd.value ? { dpd: { ...DPD } } : {}),
    ...(nat.value ? {} : { encapsulation: 'esp' as const }),
  };
}
