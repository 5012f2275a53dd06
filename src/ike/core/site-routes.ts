/**
 * The data plane's name for a CHILD_SA's outbound choice. A connection to one peer has one: its
 * name. A hub connection (ConnectionConfig.perSite) has one per site: named by the site's
 * authenticated identity and its remote traffic selectors, which become routes to it, so traffic
 * for site N's LAN leaves on site N's SA, as with strongSwan's per-CHILD_SA policies. A rekey of
 * the site's CHILD_SA, or a re-authentication of the site (same identity, same selectors),
 * replaces the pair within the same choice (make-before-break, RFC 7296 §2.8). Two sites claiming
 * the same selectors each keep their own; the newest installed carries the traffic for the prefix,
 * like overlapping policies.
 */
import type { ConnectionConfig } from '../../config/types.js';

export function dataplaneName(
  sa: { conn: ConnectionConfig; peerIdentity?: string; remote: { address: string; port: number } },
  tsRemote: readonly string[],
): { connection: string; selectorRoutes?: true } {
  if (!sa.conn.perSite) return { connection: sa.conn.name };
  const peer = sa.peerIdentity ?? `${sa.remote.address}:${sa.remote.port}`;
  return { connection: `${sa.conn.name}|${peer}|${tsRemote.join(',')}`, selectorRoutes: true };
}
