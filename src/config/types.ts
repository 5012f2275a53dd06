/**
 * The resolved configuration the daemon runs on (after validation and defaults; `pskFile` already read).
 * The YAML schema lives in schema.ts and produces exactly this shape.
 */

export interface IkeParams {
  /** Proposals in strongSwan syntax, e.g. 'aes256gcm16-prfsha256-x25519'. */
  proposals: string[];
  /** Seconds: the hard limit. */
  lifetime: number;
  /** Seconds: when twinsec starts a rekey (minus up to 10% jitter); default 80-90% of lifetime. */
  rekeyTime?: number;
}

/** CHILD_SA parameters: an IKE SA's, plus volume limits. */
export interface EspParams extends IkeParams {
  /**
   * Packets per direction of a pair (strongSwan's life_packets): rekeyed at 90 %, no more traffic
   * at the limit. Absent: none (without ESN the 32-bit sequence space still limits it, RFC 4303 §3.3.3).
   */
  lifePackets?: number;
  /** Inner bytes per direction of a pair (life_bytes): rekeyed at 90 %, no more traffic at the limit. */
  lifeBytes?: number;
}

export interface ConnectionConfig {
  name: string;
  version: 1 | 2;
  /** IKEv1 only: the phase 1 exchange (main by default); absent for IKEv2. */
  mode?: 'main' | 'aggressive';
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  /**
   * Never log, print or export this. Empty: the key comes from `Config.secrets` by the peer's
   * identity (IKEv2 only).
   */
  psk: Buffer;
  /** Where `psk` was read from (pskFile, resolved) and that file's mode bits when it was read. */
  pskFile?: { path: string; mode: number };
  ike: IkeParams;
  esp: EspParams;
  localSubnets: string[];
  remoteSubnets: string[];
  start: 'initiate' | 'listen';
  encapsulation: 'auto' | 'udp' | 'esp';
  /**
   * Dead peer detection (seconds): an empty INFORMATIONAL after `delay` without anything received
   * from the peer; no answer within `timeout` and the peer's SAs are dropped locally. Absent: no DPD.
   */
  dpd?: { delay: number; timeout: number };
  /**
   * Derived, not configured: a connection many sites dial into (`remote` %any or a subnet), with no
   * health check, interface or route naming it. Each site's CHILD_SAs route its own traffic
   * selectors in the data plane (site-routes.ts), so traffic reaches every site, not only one.
   */
  perSite?: true;
  /** Absent: the connection's health follows its SA state. */
  healthCheck?: HealthCheckConfig;
  /**
   * Route-based: the connection's own TUN device and its inside address (with prefix). Absent:
   * policy-based, through the shared TUN and the `routes` table.
   */
  interface?: { name: string; address: string; mtu: number };
}

export interface HealthCheckConfig {
  source: string;
  destination: string;
  /** Seconds between probes. */
  interval: number;
  /** Consecutive lost probes that mark the connection down. */
  retries: number;
  /** Seconds of failed checks on an established SA before the SA is renegotiated; 0: never. */
  resetAfter: number;
}

export interface RouteConfig {
  destination: string;
  via: { connection: string; weight: number }[];
  publish: boolean;
  /** Seconds a recovered higher-weight next hop must stay healthy before it takes traffic back. */
  holdDown: number;
  /** No next hop usable: keep the route on the highest weight (reserve) or withdraw it (revoke). */
  onAllDown: 'reserve' | 'revoke';
}

export interface LimitsConfig {
  halfOpen: number;
  halfOpenPerPeer: number;
  ikeSas: number;
  ikeSasPerPeer: number;
  childrenPerIke: number;
  cookieThreshold: number;
  cookieThresholdPerPeer: number;
  /** Seconds. */
  halfOpenTimeout: number;
  /** IKEv1 responder SAs whose peer has not echoed our cookie yet, in total / per source address. */
  v1Unproven: number;
  v1UnprovenPerPeer: number;
}

export interface Config {
  tun: { name: string; mtu: number };
  control: { socket: string };
  /** UDP ports for IKE; 500/4500 unless a lab needs otherwise. */
  ports: { ike: number; natt: number };
  /** Priority (SO_PRIORITY) and outer DSCP of IKE, health probes and their echo replies. */
  qos: { priority: number; dscp: number; answerEcho: boolean };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
  /**
   * Pre-shared keys by peer identity (an exact identity, or a wildcard like '*.sites.example.net'),
   * for connections without a `psk` of their own: many sites, one connection, a key each. Never
   * log, print or export the keys.
   */
  secrets?: { id: string; psk: Buffer }[];
  /** Bounds on peer-held state (schema.ts says what each is); absent: the built-in defaults. */
  limits?: LimitsConfig;
  connections: Record<string, ConnectionConfig>;
  routes: RouteConfig[];
  /** Prometheus metrics over HTTP (`GET /metrics` on `listen`); absent: no metrics server. */
  metrics?: { listen: { host: string; port: number } };
}
