/**
 * The FRR configuration snippet (frr.conf text) for the on-premises side of an Alibaba Cloud
 * dual-tunnel IPsec-VPN connection with BGP, as `twinsec import-aliyun --frr FILE` writes it.
 * twinsec does not speak BGP: it brings up the two route-based connections (devices tw-t1 and
 * tw-t2 with the inside addresses); FRR's bgpd peers with the cloud over them, bfdd watches the
 * sessions, and zebra installs the learned routes into the kernel, through the devices.
 *
 * What the snippet does, and why:
 *   - `router bgp ASN` with one eBGP neighbour per tunnel: the cloud's inside address, remote-as
 *     the cloud side's ASN (Alibaba's default 45104). Directly connected over the /30, so no
 *     multihop; when twinsec drops a device's carrier (connection unusable or health check failed),
 *     zebra withdraws the connected route and bgpd resets the session at once (eBGP fast
 *     external failover, on by default), without waiting for the hold timer.
 *   - Tunnel 1 preferred, both directions: inbound, routes learned over tunnel 1 get
 *     local-preference 200, those over tunnel 2 100 (the default), so on-premises traffic leaves
 *     through tw-t1 while its session is up; outbound, tunnel 2 announces our prefixes with our
 *     ASN prepended twice, so a cloud router choosing by BGP best path (shortest AS path) sends the
 *     return traffic through tunnel 1 too.
 *   - Explicit route-maps in and out on every neighbour: FRR's `bgp ebgp-requires-policy` (on by
 *     default since FRR 7.4) drops everything on an eBGP session without them. The outbound maps
 *     only let the prefixes of `network` through (prefix-list), so routes learned from the cloud
 *     over one tunnel are never announced back over the other.
 *   - `network` statements announce the on-premises prefixes. FRR's default `bgp network
 *     import-check` announces a prefix only while it is in the routing table (e.g. the connected
 *     LAN), which keeps a dead LAN from attracting traffic.
 *   - BFD on both neighbours, profile 300 ms x 3: those are FRR's own defaults (bfdd
 *     receive/transmit-interval 300 ms, detect-multiplier 3), so a failure is seen in about 0.9 s
 *     instead of the BGP hold time (FRR's default 180 s; a session uses the lower of both sides').
 *     Shorter intervals are not used on purpose: twinsec sends BFD out of the tunnel marked as
 *     control traffic, but before that it waits in the tunnel device's queue with the bulk (no
 *     priority queue, README "Saturated links"), so on a saturated link a tighter detection could
 *     fail over a healthy tunnel.
 *     twinsec's own health check (marked, 1 s x 3) drops the device's carrier as the slower,
 *     saturation-proof path. bgpd acts on a BFD session going down after it was up; check
 *     `show bfd peers` once the tunnels are up: a cloud side that does not answer BFD leaves the
 *     sessions to the carrier and the hold timer.
 *
 * FRR reads a configuration file line by line and stops at `exit` on the top level, so blocks are
 * closed with `!` only (a comment; the next command that does not belong to the block returns to
 * the configuration node by itself). `exit-address-family` closes the address family inside
 * `router bgp`, as FRR's own `show running-config` writes it.
 */

/** One tunnel of the plan: twinsec's side (connection, device, inside address) and the cloud's. */
export interface BgpTunnel {
  /** twinsec connection name (t1, t2). */
  connection: string;
  /** The connection's tunnel device (interface.name). */
  interfaceName: string;
  /** Alibaba's tunnel ID, for comments only. */
  tunnelId?: string;
  /** The on-premises inside address (interface.address without the prefix length). */
  address: string;
  prefix: number;
  /** The cloud's inside address: the BGP neighbour. */
  cloudAddress: string;
  cloudAsn: number;
}

export interface BgpPlan {
  /** The on-premises ASN (`router bgp`). */
  asn: number;
  /** IPv4 prefixes to announce (`network`), canonical text. */
  networks: string[];
  /** Tunnel 1 (preferred) first, then tunnel 2 (standby). */
  tunnels: BgpTunnel[];
}

/** bfdd profile of both neighbours: FRR's defaults written out (see above for why not faster). */
export const BFD_PROFILE = { name: 'twinsec', detectMultiplier: 3, receiveMs: 300, transmitMs: 300 };
/** local-preference of routes learned over tunnel 1 (tunnel 2 keeps FRR's default, 100). */
export const PREFERRED_LOCAL_PREF = 200;
export const STANDBY_LOCAL_PREF = 100;
/** How many times tunnel 2 prepends our ASN to what it announces. */
export const STANDBY_PREPEND = 2;
const PREFIX_LIST = 'TWINSEC-ONPREM';

/** Text that may go into a comment or description: Alibaba IDs are `tun-` + base-36. */
const safeId = (s: string | undefined): string | undefined =>
  s !== undefined && /^[A-Za-z0-9._-]{1,64}$/.test(s) ? s : undefined;

const mapName = (t: BgpTunnel, dir: 'IN' | 'OUT'): string => `TWINSEC-${t.connection.toUpperCase()}-${dir}`;

/** The plan -> frr.conf text (ends with a newline). */
export function frrConfig(plan: BgpPlan): string {
  const [first] = plan.tunnels;
  const lines: string[] = [
    '! FRR configuration for the on-premises side of an Alibaba Cloud dual-tunnel IPsec-VPN',
    '! connection with BGP, generated by `twinsec import-aliyun` together with the twinsec',
    '! configuration that creates the tunnel devices below. Needs bgpd and bfdd enabled in',
    '! /etc/frr/daemons. Check: vtysh -C -f FILE; load: vtysh -f FILE, or merge into',
    '! /etc/frr/frr.conf and restart FRR.',
    '!',
  ];
  for (const t of plan.tunnels) {
    const id = safeId(t.tunnelId);
    lines.push(
      `! ${t.connection}: ${t.interfaceName} ${t.address}/${t.prefix} <-> cloud ${t.cloudAddress} AS ${t.cloudAsn}` +
        `${id ? ` (tunnel ${id})` : ''}${t === first ? ', preferred' : ', standby'}`,
    );
  }
  lines.push(
    '!',
    `! BFD ${BFD_PROFILE.receiveMs} ms x ${BFD_PROFILE.detectMultiplier} (FRR's defaults): a dead tunnel is noticed in about 0.9 s.`,
    "! BFD shares the tunnel device's queue with bulk, so faster timers could fail over a merely",
    "! saturated link; twinsec's health check (marked control traffic) stays the slower path.",
    'bfd',
    ` profile ${BFD_PROFILE.name}`,
    `  detect-multiplier ${BFD_PROFILE.detectMultiplier}`,
    `  receive-interval ${BFD_PROFILE.receiveMs}`,
    `  transmit-interval ${BFD_PROFILE.transmitMs}`,
    ' !',
    '!',
    '! Only our own prefixes go out, over either tunnel.',
  );
  plan.networks.forEach((n, i) => {
    lines.push(`ip prefix-list ${PREFIX_LIST} seq ${(i + 1) * 5} permit ${n}`);
  });
  lines.push('!', '! Tunnel 1 preferred: higher local-preference in, AS path prepended on tunnel 2 out.');
  for (const t of plan.tunnels) {
    lines.push(
      `route-map ${mapName(t, 'IN')} permit 10`,
      ` set local-preference ${t === first ? PREFERRED_LOCAL_PREF : STANDBY_LOCAL_PREF}`,
      '!',
    );
  }
  for (const t of plan.tunnels) {
    lines.push(`route-map ${mapName(t, 'OUT')} permit 10`, ` match ip address prefix-list ${PREFIX_LIST}`);
    if (t !== first) lines.push(` set as-path prepend ${Array(STANDBY_PREPEND).fill(plan.asn).join(' ')}`);
    lines.push('!');
  }
  lines.push(`router bgp ${plan.asn}`);
  for (const t of plan.tunnels) {
    const id = safeId(t.tunnelId);
    lines.push(
      ` neighbor ${t.cloudAddress} remote-as ${t.cloudAsn}`,
      ` neighbor ${t.cloudAddress} description twinsec ${t.connection} ${t.interfaceName}${id ? ` ${id}` : ''}`,
      ` neighbor ${t.cloudAddress} bfd profile ${BFD_PROFILE.name}`,
    );
  }
  lines.push(' !', ' address-family ipv4 unicast');
  for (const n of plan.networks) lines.push(`  network ${n}`);
  for (const t of plan.tunnels) {
    lines.push(
      `  neighbor ${t.cloudAddress} activate`,
      `  neighbor ${t.cloudAddress} route-map ${mapName(t, 'IN')} in`,
      `  neighbor ${t.cloudAddress} route-map ${mapName(t, 'OUT')} out`,
    );
  }
  lines.push(' exit-address-family', '!');
  return `${lines.join('\n')}\n`;
}
