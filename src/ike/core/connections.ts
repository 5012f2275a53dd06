/**
 * The configured connections as the IKE core sees them: which exist (per protocol version), which
 * an operator took down, and the re-initiation backoff after a failure. Reload computes what
 * changed; the core acts on it.
 */
import type { Config, ConnectionConfig } from '../../config/types.js';
import {
  ID_FQDN,
  ID_RFC822_ADDR,
  type Identity,
  identityMatches,
  isWildcard,
  parseIdentity,
} from '../identity.js';
import { cidrToTs, parseAddress } from '../wire/ts.js';
import { backoff, type Clock, type Random, type TimerHandle } from './clock.js';

export interface ReloadResult {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
}

/** Keys by peer identity (Config.secrets), exact identities before wildcards, longer before shorter. */
interface Secret {
  id: Identity;
  psk: Buffer;
}

/**
 * The `secrets` entries, for pskFor: exact identities in a map (a hub has one per site, thousands,
 * and looks one up per authentication), the rest (wildcards) in the order they are tried.
 */
interface Secrets {
  exact: Map<string, Buffer>;
  rest: Secret[];
}

/** The key an exact identity is found under: identityMatches compares names case-insensitively. */
function exactKey(id: Identity): string {
  const named = id.type === ID_FQDN || id.type === ID_RFC822_ADDR;
  return `${id.type}:${named ? id.data.toString('utf8').toLowerCase() : id.data.toString('hex')}`;
}

function secretsOf(config: Config): Secrets {
  const all = (config.secrets ?? []).map((e) => ({ id: parseIdentity(e.id), psk: e.psk }));
  // The most specific entry wins: an exact identity, then the wildcard with the longest suffix.
  all.sort(
    (a, b) => Number(isWildcard(a.id)) - Number(isWildcard(b.id)) || b.id.data.length - a.id.data.length,
  );
  const out: Secrets = { exact: new Map(), rest: [] };
  for (const e of all) {
    if (e.id.type === 0 || isWildcard(e.id)) out.rest.push(e);
    else if (!out.exact.has(exactKey(e.id))) out.exact.set(exactKey(e.id), e.psk);
  }
  return out;
}

export class ConnectionSet {
  #conns: Map<string, ConnectionConfig>;
  #secrets: Secrets;
  /** Connections an operator took down: no initiation, no retries, peers' attempts refused. */
  readonly #adminDown = new Set<string>();
  readonly #retries = new Map<string, { timer?: TimerHandle; attempt: number }>();
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #retryCfg: { base: number; max: number };

  constructor(config: Config, clock: Clock, random: Random, retry: { base: number; max: number }) {
    this.#conns = byName(config);
    this.#secrets = secretsOf(config);
    this.#clock = clock;
    this.#random = random;
    this.#retryCfg = retry;
  }

  get(name: string): ConnectionConfig | undefined {
    return this.#conns.get(name);
  }

  all(): ConnectionConfig[] {
    return [...this.#conns.values()];
  }

  /**
   * The key `conn` uses with a peer of identity `peer`: the connection's own, or (a connection
   * without one) the most specific `secrets` entry matching the identity. Undefined: no key, the
   * peer cannot authenticate for this connection.
   */
  pskFor(conn: ConnectionConfig, peer: Identity): Buffer | undefined {
    if (conn.psk.length > 0) return conn.psk;
    if (peer.type === 0) return undefined;
    return (
      this.#secrets.exact.get(exactKey(peer)) ??
      this.#secrets.rest.find((e) => identityMatches(e.id, peer))?.psk
    );
  }

  /**
   * Connections a first message from `remote` to `local` may be for: those whose configured
   * `remote` admits the address (exact first, then %any or a subnet containing it). A connection
   * for another peer address is never a candidate: the identities and PSK pick among candidates,
   * so without this any host knowing a connection's identities and key could bring it up from
   * anywhere (security issue #11; RFC 7296 §2.15 leaves the policy lookup to us, strongSwan
   * matches the configured remote addresses the same way).
   */
  candidates(version: 1 | 2, local: string, remote: string): ConnectionConfig[] {
    const all = this.all().filter((c) => c.version === version && c.local === local && !this.isDown(c.name));
    const exact = all.filter((c) => sameAddress(c.remote, remote));
    return exact.length ? exact : all.filter((c) => remoteAdmits(c.remote, remote));
  }

  isDown(name: string): boolean {
    return this.#adminDown.has(name);
  }

  setDown(name: string, down: boolean): void {
    if (down) this.#adminDown.add(name);
    else this.#adminDown.delete(name);
    this.clearRetry(name);
  }

  /** Re-initiation with backoff (base * 2^attempt, capped, ±10 % jitter); `initiate` runs when due. */
  scheduleRetry(conn: ConnectionConfig, initiate: () => void): number | null {
    if (conn.start !== 'initiate' || this.#conns.get(conn.name) !== conn || this.isDown(conn.name))
      return null;
    const r = this.#retries.get(conn.name) ?? { attempt: 0 };
    if (r.timer) return null;
    const delay = backoff(this.#random, r.attempt, {
      base: this.#retryCfg.base,
      factor: 2,
      max: this.#retryCfg.max,
      jitter: 0.2,
      centred: true,
    });
    r.attempt++;
    r.timer = this.#clock.setTimer(delay, () => {
      r.timer = undefined;
      initiate();
    });
    this.#retries.set(conn.name, r);
    return delay;
  }

  /** A negotiation succeeded: the next failure starts the backoff from the beginning. */
  resetRetry(name: string): void {
    this.clearRetry(name);
  }

  clearRetry(name: string): void {
    this.#clock.clearTimer(this.#retries.get(name)?.timer);
    this.#retries.delete(name);
  }

  clearAllRetries(): void {
    for (const name of [...this.#retries.keys()]) this.clearRetry(name);
  }

  /**
   * Takes a new configuration: unchanged connections keep their object (so SAs keep pointing at
   * it), and the result says what the core must tear down and start.
   */
  reload(config: Config): ReloadResult {
    const next = byName(config);
    const res: ReloadResult = { added: [], changed: [], removed: [], unchanged: [] };
    for (const [name, old] of this.#conns) {
      const c = next.get(name);
      if (!c) res.removed.push(name);
      else if (sameConnection(old, c)) {
        res.unchanged.push(name);
        next.set(name, old);
      } else res.changed.push(name);
    }
    for (const name of next.keys()) if (!this.#conns.has(name)) res.added.push(name);
    for (const name of [...res.removed, ...res.changed]) this.clearRetry(name);
    for (const name of res.removed) this.#adminDown.delete(name);
    this.#conns = next;
    // New keys apply to new negotiations; established SAs keep the key they authenticated with.
    this.#secrets = secretsOf(config);
    return res;
  }
}

function byName(config: Config): Map<string, ConnectionConfig> {
  return new Map(Object.values(config.connections).map((c) => [c.name, c]));
}

/**
 * Same settings (the PSK compared by value: its JSON form is redacted). Where the PSK came from
 * (pskFile: path, mode) is not a setting: a chmod of the file must not renegotiate.
 */
function sameConnection(a: ConnectionConfig, b: ConnectionConfig): boolean {
  const strip = (c: ConnectionConfig) => JSON.stringify({ ...c, psk: 0, pskFile: 0 });
  return a.psk.equals(b.psk) && strip(a) === strip(b);
}

/** Two textual addresses naming the same IP (IPv6 has many spellings). */
function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return parseAddress(a).equals(parseAddress(b));
  } catch {
    return false;
  }
}

/** A configured `remote` other than one address: %any, or a subnet (CIDR) that contains `addr`. */
function remoteAdmits(configured: string, addr: string): boolean {
  if (configured === '%any') return true;
  if (!configured.includes('/')) return false;
  try {
    const net = cidrToTs(configured);
    const a = parseAddress(addr);
    const lo = parseAddress(net.startAddr);
    const hi = parseAddress(net.endAddr);
    return a.length === lo.length && Buffer.compare(lo, a) <= 0 && Buffer.compare(a, hi) <= 0;
  } catch {
    return false;
  }
}
