/**
 * Stateless cookies for the IKEv2 responder (RFC 7296 §2.6). Above a half-open threshold an
 * IKE_SA_INIT without a valid COOKIE is answered with N(COOKIE) only: no SA, no Diffie-Hellman,
 * no table entry. A spoofed source never sees the cookie, so it cannot make us hold state; a real
 * initiator repeats its request with the cookie first and is served.
 *
 *   Cookie = <VersionIDofSecret> | HMAC-SHA256(<secret>, Ni | IPi | SPIi)      (§2.6)
 *
 * The secret changes every `secretLifetime` ms (on the injected clock, checked when a cookie is made
 * or checked, so nothing runs while no one asks); cookies of the previous secret stay valid for
 * `grace` ms after it should have retired (§2.6: "accept cookies computed from the old secret for a
 * short time"). Ni and IPi are length-prefixed so that no two (Ni, IPi) pairs hash the same bytes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock, Random } from '../core/clock.js';
import { parseAddress } from '../wire/ts.js';

const SECRET_LENGTH = 32;
const VERSION_LENGTH = 4;
const MAC_LENGTH = 32;
export const COOKIE_LENGTH = VERSION_LENGTH + MAC_LENGTH;
/** Per-source calm-down buckets (strongSwan's COOKIE_CALMDOWN_BUCKETS): bounded memory under a flood. */
const BUCKETS = 32;

export interface CookieOptions {
  /** Half-open IKE SAs (all peers) from which on cookies are required. */
  threshold: number;
  /** Half-open IKE SAs of one source address from which on that source needs a cookie. */
  thresholdPerPeer: number;
  /** How long one secret makes cookies (ms). */
  secretLifetime: number;
  /** How long after its retirement the previous secret's cookies are still accepted (ms). */
  grace: number;
  /**
   * Once a threshold was reached, cookies stay required this long (ms) even if the count drops
   * (strongSwan's COOKIE_CALMDOWN_DELAY): toggling in and out of cookie mode during an attack makes
   * an initiator's first answer ambiguous (the cookie is part of the AUTH-signed message).
   */
  calmdown: number;
}

interface Secret {
  id: number;
  key: Buffer;
  born: number;
}

export class CookieJar {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #o: CookieOptions;
  #current: Secret;
  #previous: { secret: Secret; acceptUntil: number } | undefined;
  /** When a threshold was last reached: [0] all peers, [1..BUCKETS] per source hash bucket. */
  readonly #lastOver = new Array<number | undefined>(BUCKETS + 1).fill(undefined);

  constructor(clock: Clock, random: Random, o: CookieOptions) {
    this.#clock = clock;
    this.#random = random;
    this.#o = o;
    this.#current = this.#fresh(random.bytes(4).readUInt32BE(0));
  }

  #fresh(id: number): Secret {
    return { id: id >>> 0, key: this.#random.bytes(SECRET_LENGTH), born: this.#clock.now() };
  }

  /** Retires the current secret once its lifetime is over (lazily: nothing runs without a caller). */
  #rotate(now: number): void {
    const c = this.#current;
    if (now - c.born < this.#o.secretLifetime) return;
    // A cookie of the current secret was made before born + lifetime (we rotate before making
    // one), so counting the grace from there bounds every accepted cookie's age by lifetime + grace,
    // however long no one asked.
    const acceptUntil = c.born + this.#o.secretLifetime + this.#o.grace;
    this.#previous = now <= acceptUntil ? { secret: c, acceptUntil } : undefined;
    this.#current = this.#fresh(c.id + 1);
  }

  /** Whether an IKE_SA_INIT from `address` must carry a valid cookie now. */
  required(halfOpen: number, halfOpenOfPeer: number, address: string): boolean {
    const now = this.#clock.now();
    return (
      this.#over(0, halfOpen, this.#o.threshold, now) ||
      this.#over(1 + bucket(address), halfOpenOfPeer, this.#o.thresholdPerPeer, now)
    );
  }

  #over(i: number, count: number, threshold: number, now: number): boolean {
    if (threshold <= 0) return true;
    if (count >= threshold) {
      this.#lastOver[i] = now;
      return true;
    }
    const last = this.#lastOver[i];
    return last !== undefined && now < last + this.#o.calmdown;
  }

  make(ni: Buffer, address: string, spiI: Buffer): Buffer {
    this.#rotate(this.#clock.now());
    return cookieFor(this.#current, ni, address, spiI);
  }

  /** True if `cookie` is one we made (current secret, or the previous one within its grace). */
  verify(cookie: Buffer, ni: Buffer, address: string, spiI: Buffer): boolean {
    const now = this.#clock.now();
    this.#rotate(now);
    if (cookie.length !== COOKIE_LENGTH) return false;
    const id = cookie.readUInt32BE(0);
    let secret: Secret | undefined;
    if (id === this.#current.id) secret = this.#current;
    else if (this.#previous && id === this.#previous.secret.id && now <= this.#previous.acceptUntil)
      secret = this.#previous.secret;
    if (!secret) return false;
    return timingSafeEqual(cookieFor(secret, ni, address, spiI), cookie);
  }
}

function cookieFor(s: Secret, ni: Buffer, address: string, spiI: Buffer): Buffer {
  const ip = addressBytes(address);
  const mac = createHmac('sha256', s.key)
    .update(Buffer.from([ni.length >> 8, ni.length & 0xff]))
    .update(ni)
    .update(Buffer.from([ip.length]))
    .update(ip)
    .update(spiI)
    .digest();
  const version = Buffer.alloc(VERSION_LENGTH);
  version.writeUInt32BE(s.id);
  return Buffer.concat([version, mac]);
}

function addressBytes(address: string): Buffer {
  try {
    return parseAddress(address);
  } catch {
    return Buffer.from(address, 'utf8');
  }
}

function bucket(address: string): number {
  let h = 0;
  for (let i = 0; i < address.length; i++) h = (h * 31 + address.charCodeAt(i)) | 0;
  return (h >>> 0) % BUCKETS;
}
