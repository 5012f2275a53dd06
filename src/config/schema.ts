/**
 * The YAML configuration schema (zod 4). Structural and per-field checks live here; checks that
 * span fields (psk/pskFile, address families, route references) live in load.ts so that every
 * problem is reported at once even when unrelated fields are broken.
 *
 * Extending: add a field to the relevant strictObject below with a default, then map it in
 * load.ts `resolve()` and in types.ts. Keep fields JSON-Schema representable (no transforms).
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { parseIdentity } from '../ike/identity.js';
import { parseAddress } from '../ike/wire/ts.js';

export const CONNECTION_NAME = /^[A-Za-z0-9_-]{1,32}$/;
/** Linux IFNAMSIZ is 16 including the terminating NUL. */
const TUN_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export const DEFAULT_IKE_PROPOSALS = ['aes256gcm16-prfsha256-x25519', 'aes256-sha256-modp2048'];
export const DEFAULT_ESP_PROPOSALS = ['aes256gcm16', 'aes256-sha256'];

/** A parsed CIDR prefix: `address` is the network address as written (family from isIP). */
export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

/** Parses `addr/prefix`; returns an error message instead of throwing so callers can collect issues. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return `invalid CIDR '${text}' (expected address/prefix)`;
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) return `invalid CIDR '${text}' (bad address)`;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return `invalid CIDR '${text}' (prefix must be 0..${max})`;
  }
  const prefix = Number(prefixText);
  const bytes = parseAddress(address);
  for (let bit = prefix; bit < max; bit++) {
    if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) return `host bits set in '${text}'`;
  }
  return { address, prefix, family: family as 4 | 6 };
}

/** Canonical text of a CIDR, so `2001:db8::/32` and `2001:0db8:0::/32` compare equal. */
export function canonicalCidr(c: Cidr): string {
  const b = parseAddress(c.address);
  if (c.family === 4) return `${b.join('.')}/${c.prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return `${groups.join(':')}/${c.prefix}`;
}

const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'invalid IP address' });

const cidr = z.string().superRefine((s, ctx) => {
  const r = parseCidr(s);
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
});

/** IKE identity in strongSwan syntax (IP, FQDN, user@FQDN, @#hex key ID); the IKE layer parses it. */
function identity(role: 'local' | 'remote') {
  return z
    .string()
    .min(1)
    .max(255)
    .superRefine((s, ctx) => {
      if (/[\s\p{Cc}]/u.test(s))
        ctx.addIssue({ code: 'custom', message: 'identity must not contain whitespace' });
      else if (s === '%any' && role === 'local') {
        ctx.addIssue({ code: 'custom', message: "'%any' is only valid as remoteId" });
      } else if (s.startsWith('*') && role === 'local') {
        ctx.addIssue({ code: 'custom', message: 'a wildcard identity is only valid as remoteId' });
      } else {
        try {
          parseIdentity(s);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
        }
      }
    });
}

/**
 * A proposal string. Its keywords are checked in load.ts (crossCheck) with the parser of the
 * connection's IKE version: IKEv1 and IKEv2 accept different sets (3des for the IKEv1 phase 1,
 * for instance), and a field check here cannot see `version`.
 */
const proposal = z.string();

/** Seconds; 60+ is sane in production, down to 10 is accepted so tests can exercise rekeying. */
const lifetime = (def: number) => z.number().int().min(10).max(31_536_000).default(def);

/**
 * Optional soft limit (strongSwan's rekey_time): when twinsec starts a rekey, minus up to 10%
 * random jitter. Without it twinsec rekeys at a random 80-90% of the lifetime (the hard limit).
 */
const rekeyTime = z.number().int().min(5).max(31_536_000).optional();
const softBeforeHard = (
  p: { lifetime: number; rekeyTime?: number | undefined },
  ctx: z.RefinementCtx,
): void => {
  if (p.rekeyTime !== undefined && p.rekeyTime >= p.lifetime) {
    ctx.addIssue({
      code: 'custom',
      path: ['rekeyTime'],
      message: `must be less than lifetime (${p.lifetime})`,
    });
  }
};

export const ikeParamsSchema = z
  .strictObject({
    proposals: z.array(proposal).min(1).default(DEFAULT_IKE_PROPOSALS),
    lifetime: lifetime(86_400),
    rekeyTime,
  })
  .superRefine(softBeforeHard);

/**
 * Optional volume limit of a CHILD_SA (strongSwan's life_packets / life_bytes): each direction of
 * the pair is rekeyed once 90 % of it went through (RFC 7296 §2.8) and stops at the limit itself.
 * Packets down to 1000 and bytes down to 1 MB, so tests can exercise them. Without ESN the data
 * plane rekeys by 90 % of 2^32 packets and stops before its sequence number wraps, configured or
 * not (RFC 4303 §3.3.3).
 */
const lifePackets = z.number().int().min(1000).max(Number.MAX_SAFE_INTEGER).optional();
const lifeBytes = z.number().int().min(1_000_000).max(Number.MAX_SAFE_INTEGER).optional();

export const espParamsSchema = z
  .strictObject({
    proposals: z.array(proposal).min(1).default(DEFAULT_ESP_PROPOSALS),
    lifetime: lifetime(3600),
    rekeyTime,
    lifePackets,
    lifeBytes,
  })
  .superRefine(softBeforeHard);

/** Health check per connection (the seed's: source IP, destination IP, retry interval, retry count). */
export const healthCheckSchema = z.strictObject({
  source: ipAddress,
  destination: ipAddress,
  /** Seconds between probes; fractions allowed (0.1 = 10 probes/s). */
  interval: z.number().min(0.01).max(3600).default(1),
  /** Consecutive lost probes that mark the connection down. */
  retries: z.number().int().min(1).max(100).default(3),
  /**
   * Seconds the check may fail while the connection's SA is established before twinsec deletes the
   * SA (telling the peer) and negotiates again: a peer that lost its SAs without telling us (a
   * reboot with no DPD, a NAT that forgot the mapping) is otherwise never recovered. Repeated
   * resets back off (src/ha/reset.ts). 0 disables.
   */
  resetAfter: z.number().min(0).max(86_400).default(60),
});

/** Dead peer detection (seconds); bounded so a dead peer is always noticed. */
/** Dead peer detection (seconds): probe after `delay` of silence, peer dead `timeout` later. */
export const dpdSchema = z.strictObject({
  delay: z.number().min(0.01).max(3600).default(10),
  timeout: z.number().min(0.01).max(3600).default(20),
});

/**
 * A route-based connection's own TUN device: what the host routes into it goes into this
 * connection's SA, what its SAs decrypt comes out of it; without carrier while the connection is
 * not usable (no CHILD_SA, or its health check failed), so routing daemons withdraw its routes.
 */
export const interfaceSchema = z.strictObject({
  name: z.string().regex(TUN_NAME, { message: 'must be 1-15 of A-Z a-z 0-9 _ . -' }),
  /**
   * The inside address with its prefix, e.g. 169.254.10.2/30: for Alibaba's BGP tunnels the
   * on-premises PeerBgpIp in TunnelCidr (LocalBgpIp is the cloud's side, see src/import/aliyun-bgp.ts).
   */
  address: z.string().superRefine((s, ctx) => {
    const [ip, len, extra] = s.split('/');
    const family = isIP(ip ?? '');
    const max = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      len === undefined ||
      !/^\d{1,3}$/.test(len) ||
      Number(len) > max
    )
      ctx.addIssue({ code: 'custom', message: "expected 'address/prefix-length', e.g. 169.254.10.2/30" });
  }),
  /** Default: tun.mtu. */
  mtu: z.number().int().min(576).max(9000).optional(),
});

export const connectionSchema = z.strictObject({
  version: z.literal([1, 2]).default(2),
  /** IKEv1 phase 1 exchange (RFC 2409 §5): main (identity protection, the default) or aggressive. */
  mode: z.enum(['main', 'aggressive']).optional(),
  local: ipAddress,
  /**
   * The peer's address; for a connection that only listens also `%any` or a subnet (a gateway many
   * sites dial into: the peer is then chosen by its authenticated identity and key).
   */
  remote: z.string().superRefine((s, ctx) => {
    if (isIP(s) !== 0 || s === '%any') return;
    if (s.includes('/') && typeof parseCidr(s) !== 'string') return;
    ctx.addIssue({
      code: 'custom',
      message: "invalid IP address (or '%any', or a subnet, for start: listen)",
    });
  }),
  localId: identity('local').optional(),
  remoteId: identity('remote').optional(),
  // Exactly one of psk/pskFile is enforced in load.ts (it needs to see both fields together).
  psk: z.string().min(1).optional(),
  pskFile: z.string().min(1).optional(),
  ike: ikeParamsSchema.prefault({}),
  esp: espParamsSchema.prefault({}),
  localSubnets: z.array(cidr).min(1),
  remoteSubnets: z.array(cidr).min(1),
  start: z.enum(['initiate', 'listen']).default('initiate'),
  encapsulation: z.enum(['auto', 'udp', 'esp']).default('auto'),
  healthCheck: healthCheckSchema.optional(),
  dpd: dpdSchema.optional(),
  /** Route-based: the connection's own tunnel interface (absent: policy-based, the shared TUN). */
  interface: interfaceSchema.optional(),
});

export const routeSchema = z.strictObject({
  destination: cidr,
  via: z
    .array(
      z.strictObject({
        connection: z.string().min(1),
        // 100 primary, 0 standby (used only while no higher-weight next hop is up).
        weight: z.number().int().min(0).max(65_535).default(100),
      }),
    )
    .min(1),
  publish: z.boolean().default(false),
  /** Seconds a recovered higher-weight next hop must stay healthy before traffic moves back. */
  holdDown: z.number().min(0).max(3600).default(3),
  /**
   * No next hop usable: `reserve` keeps the route on the highest-weight next hop (traffic resumes
   * the moment it returns); `revoke` withdraws it from the engine and, when published, from the OS
   * table, so another path (a second gateway, a BGP or default route) takes the traffic. It comes
   * back the moment a next hop is usable again. The seed's cloud calls these reserve_route and
   * revoke_route.
   */
  onAllDown: z.enum(['reserve', 'revoke']).default('reserve'),
});

const port = z.number().int().min(1).max(65_535);

/** `host:port` with an IP address (IPv6 in brackets: `[::1]:9469`). */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `127.0.0.1:9469` / `[::1]:9469`; returns an error message instead of throwing. */
export function parseListen(text: string): ListenAddress | string {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) {
    if (!text.startsWith('[') && isIP(text.slice(0, text.lastIndexOf(':'))) === 6)
      return "IPv6 addresses need brackets: '[address]:port'";
    return "expected 'address:port' (IPv6 as '[address]:port')";
  }
  const host = m[1]!;
  const port = Number(m[2]);
  const family = isIP(host);
  if (family === 0 || host.includes('%')) return 'invalid IP address';
  if (family === 4 && text.startsWith('[')) return 'brackets are for IPv6 addresses only';
  if (port < 1 || port > 65_535) return 'port must be 1..65535';
  return { host, port };
}

const listenAddress = z.string().superRefine((s, ctx) => {
  const r = parseListen(s);
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
});

/** Prometheus exposition over HTTP (`GET /metrics`); absent: no metrics server. */
export const metricsSchema = z.strictObject({
  listen: listenAddress,
});

export const configSchema = z.strictObject({
  tun: z
    .strictObject({
      name: z.string().regex(TUN_NAME, { message: 'must be 1-15 of A-Z a-z 0-9 _ . -' }).default('twinsec0'),
      mtu: z.number().int().min(576).max(9000).default(1400),
    })
    .prefault({}),
  control: z
    .strictObject({
      socket: z.string().min(1).default('/run/twinsec/control.sock'),
    })
    .prefault({}),
  ports: z.strictObject({ ike: port.default(500), natt: port.default(4500) }).prefault({}),
  // Control traffic (IKE, health probes, echo replies to a peer's probes) is marked so that a
  // saturated link drops bulk first (security issue #11). priority: the packets' SO_PRIORITY, which
  // the host's qdiscs classify by (7 = TC_PRIO_CONTROL: pfifo_fast's first band; an htb class id
  // major:minor as 0xMMMMmmmm). dscp: the outer IP header's DSCP for routers on the way (48 = CS6,
  // network control, RFC 2474 / RFC 4594). 0 and 0: nothing is marked. answerEcho: the engine
  // answers echo requests through a tunnel to this host's own protected addresses itself (the
  // kernel's answer would queue behind bulk in the TUN device); false leaves them to the kernel
  // (and to its firewall rules, which the engine's answers do not pass through).
  qos: z
    .strictObject({
      priority: z.number().int().min(0).max(0xffffffff).default(7),
      dscp: z.number().int().min(0).max(63).default(48),
      answerEcho: z.boolean().default(true),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
    })
    .prefault({}),
  // Bounds on what peers can make the daemon hold (security issue #11). The defaults suit a gateway
  // with tens of peers; a hub for thousands of sites raises them. halfOpen*: IKE SAs not yet
  // authenticated (beyond them new ones are dropped); ikeSas*: IKE SAs in any state; childrenPerIke:
  // CHILD_SA pairs one IKE SA may hold (NO_ADDITIONAL_SAS beyond); cookieThreshold*: from this many
  // half-open SAs in total / from one address, IKE_SA_INIT needs a COOKIE (RFC 7296 §2.6,
  // strongSwan's cookie_threshold and cookie_threshold_ip; 0: always); halfOpenTimeout: seconds a
  // responder SA may take to authenticate. v1Unproven*: IKEv1 has no stateless COOKIE, so each
  // main/aggressive mode message 1 costs an ISAKMP SA until the peer echoes our responder cookie
  // (RFC 2408 §2.5.3); those unproven SAs are capped in total / per source address, and at a cap
  // the oldest makes room (a spoofed flood displaces its own). They count against these caps only,
  // not halfOpen*. Per source 5 is strongSwan's block_threshold; a hub whose IKEv1 sites share one
  // address (one NAT, a load generator) raises it to the number of sites that may start at once.
  limits: z
    .strictObject({
      halfOpen: z.number().int().min(1).max(1_000_000).default(1024),
      halfOpenPerPeer: z.number().int().min(1).max(1_000_000).default(16),
      ikeSas: z.number().int().min(1).max(10_000_000).default(8192),
      ikeSasPerPeer: z.number().int().min(1).max(10_000_000).default(64),
      childrenPerIke: z.number().int().min(1).max(1024).default(16),
      cookieThreshold: z.number().int().min(0).max(1_000_000).default(30),
      cookieThresholdPerPeer: z.number().int().min(0).max(1_000_000).default(3),
      halfOpenTimeout: z.number().min(1).max(600).default(30),
      v1Unproven: z.number().int().min(1).max(1_000_000).default(4096),
      v1UnprovenPerPeer: z.number().int().min(1).max(1_000_000).default(5),
    })
    .prefault({}),
  connections: z.record(
    z.string().regex(CONNECTION_NAME, { message: 'invalid connection name (use 1-32 of A-Z a-z 0-9 _ -)' }),
    connectionSchema,
  ),
  routes: z.array(routeSchema).default([]),
  // Keys by peer identity for connections that give no psk of their own (IKEv2): a hub's sites
  // each with their own key, one connection for all. `reload` picks up new entries without
  // touching established tunnels.
  secrets: z
    .array(
      z.strictObject({
        id: identity('remote').refine((s) => s !== '%any', {
          message: "a secret needs an identity, not '%any'",
        }),
        psk: z.string().min(1).optional(),
        pskFile: z.string().min(1).optional(),
      }),
    )
    .default([]),
  metrics: metricsSchema.optional(),
});

/** The schema's output before cross-field checks and resolution (psk still text, pskFile unread). */
export type RawConfig = z.output<typeof configSchema>;
export type RawConnection = z.output<typeof connectionSchema>;

/** JSON Schema of the YAML input, for editor completion and validation. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
