/**
 * The data plane's name for a CHILD_SA's outbound choice. A connection to one peer has one: its
 * name. A hub connection (ConnectionConfig.perSite) has one per site, named by the site's remote
 * traffic selectors, and those selectors become routes to it: traffic for site N's LAN leaves on
 * site N's SA, as with strongSwan's per-CHILD_SA policies. A rekey of the site's CHILD_SA (same
 * selectors) replaces the pair within the same choice (RFC 7296 §2.8); two sites claiming the
 * same selectors share one, the newest pair carrying the traffic, like overlapping policies.
 */
import type { ConnectionConfig } from '../../config/types.js';

export function dataplaneName(
  conn: ConnectionConfig,
  tsRemote: readonly string[],
): { connection: string; selectorRoutes?: true } {
  if (!conn.perSite) return { connection: conn.name };
  return { connection: `${conn.name}|${tsRemote.join(',')}`, selectorRoutes: true };
}
