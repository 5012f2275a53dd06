/**
 * IKE identities (RFC 7296 §3.5) in strongSwan's textual syntax:
 *   192.0.2.1 / 2001:db8::1  -> ID_IPV4_ADDR / ID_IPV6_ADDR
 *   gw.example.net / @gw.example.net -> ID_FQDN ('@' forces FQDN)
 *   user@example.net         -> ID_RFC822_ADDR (USER_FQDN)
 *   @#0a0b0c                 -> ID_KEY_ID (hex)
 *   %any                     -> matches every identity (only as a remote ID)
 *   *.sites.example.net, *@example.net -> as a remote ID, matches every FQDN / RFC822 identity
 *                               ending in what follows the '*' (strongSwan's wildcard identities),
 *                               for a gateway many sites dial into
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TwinsecError } from '../errors.js';
import { formatAddress, parseAddress } from './wire/ts.js';

export const ID_IPV4_ADDR = 1;
export const ID_FQDN = 2;
export const ID_RFC822_ADDR = 3;
export const ID_IPV6_ADDR = 5;
export const ID_KEY_ID = 11;

export interface Identity {
  type: number;
  data: Buffer;
}

export const ANY_ID: Identity = { type: 0, data: Buffer.alloc(0) };

export function parseIdentity(text: string): Identity {
  if (text === '%any' || text === '') return ANY_ID;
  if (isIPv4(text)) return { type: ID_IPV4_ADDR, data: parseAddress(text) };
  if (isIPv6(text)) return { type: ID_IPV6_ADDR, data: parseAddress(text) };
  if (text.startsWith('@#')) {
    const hex = text.slice(2).replace(/:/g, '');
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new TwinsecError('ERR_IDENTITY', `invalid key ID '${text}'`);
    return { type: ID_KEY_ID, data: Buffer.from(hex, 'hex') };
  }
  if (text.startsWith('@')) return { type: ID_FQDN, data: Buffer.from(text.slice(1), 'utf8') };
  if (text.includes('@')) return { type: ID_RFC822_ADDR, data: Buffer.from(text, 'utf8') };
  return { type: ID_FQDN, data: Buffer.from(text, 'utf8') };
}

/**
 * Why a received identity is malformed, or null (RFC 7296 §3.5): an address of the wrong length,
 * an empty name or key ID, or the reserved type 0. Checked before the identity is used or printed
 * (formatAddress throws on a bad length), so such an IKE_AUTH is refused, not dropped half-way.
 */
export function malformedIdentity(id: Identity): string | null {
  if (id.type === 0) return 'ID type 0 is reserved';
  if (id.type === ID_IPV4_ADDR && id.data.length !== 4) return `ID_IPV4_ADDR of ${id.data.length} bytes`;
  if (id.type === ID_IPV6_ADDR && id.data.length !== 16) return `ID_IPV6_ADDR of ${id.data.length} bytes`;
  if (id.data.length === 0) return `empty identity of type ${id.type}`;
  return null;
}

export function identityToString(id: Identity): string {
  switch (id.type) {
    case 0:
      return '%any';
    case ID_IPV4_ADDR:
    case ID_IPV6_ADDR:
      return formatAddress(id.data);
    case ID_FQDN:
    case ID_RFC822_ADDR:
      // Printable only: identities reach logs, so control characters are escaped.
      return id.data.toString('utf8').replace(/[^\x20-\x7e]/g, '?');
    case ID_KEY_ID:
      return `@#${id.data.toString('hex')}`;
    default:
      return `(id type ${id.type}) ${id.data.toString('hex')}`;
  }
}

/** A configured FQDN or RFC822 identity with a leading '*': a pattern, not one identity. */
export function isWildcard(id: Identity): boolean {
  return (id.type === ID_FQDN || id.type === ID_RFC822_ADDR) && id.data[0] === 0x2a; // '*'
}

/**
 * Does a received identity satisfy a configured one? FQDN and RFC822 comparison is
 * case-insensitive; a configured '*.example.net' / '*@example.net' matches any non-empty name
 * before the suffix (a received identity is never a pattern: its '*' is just a character).
 */
export function identityMatches(configured: Identity, received: Identity): boolean {
  if (configured.type === 0) return true;
  if (configured.type !== received.type) return false;
  if (configured.type === ID_FQDN || configured.type === ID_RFC822_ADDR) {
    const want = configured.data.toString('utf8').toLowerCase();
    const got = received.data.toString('utf8').toLowerCase();
    if (!isWildcard(configured)) return want === got;
    const suffix = want.slice(1);
    return got.length > suffix.length && got.endsWith(suffix);
  }
  return configured.data.equals(received.data);
}

/** The ID payload body (type, 3 reserved bytes, data) that AUTH covers (RFC 7296 §2.15). */
export function identityBody(id: Identity): Buffer {
  const head = Buffer.alloc(4);
  head[0] = id.type;
  return Buffer.concat([head, id.data]);
}
