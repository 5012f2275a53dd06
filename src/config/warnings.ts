/**
 * Things a valid configuration may still get wrong, said at `--check` and at start-up. They do not
 * stop the daemon: the operator may mean them.
 */
import type { Config } from './types.js';

export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  // An IKEv1 peer honours INITIAL-CONTACT by deleting every SA of the identity pair (strongSwan
  // does), so two IKEv1 tunnels sharing local and remote IDs tear each other down on every
  // (re)connect. IKEv2 twinsec copes (only the first tunnel sends it), IKEv1 peers do not.
  const byPair = new Map<string, string[]>();
  for (const c of Object.values(config.connections)) {
    if (c.version !== 1) continue;
    const key = `${c.localId}\u0000${c.remoteId}`;
    byPair.set(key, [...(byPair.get(key) ?? []), c.name]);
  }
  for (const names of byPair.values()) {
    if (names.length < 2) continue;
    const first = config.connections[names[0]!]!;
    out.push(
      `connections.${names.join(', connections.')}: IKEv1 connections share the identity pair ` +
        `${first.localId} / ${first.remoteId}; the peer's INITIAL-CONTACT for one deletes the others' SAs ` +
        '(give each tunnel its own localId)',
    );
  }
  // IKEv1 quick mode carries one client ID each way (RFC 2409 §5.5): one subnet pair per IPsec SA.
  // Like strongSwan, twinsec negotiates the first pair only; the others would silently get nothing.
  for (const c of Object.values(config.connections)) {
    if (c.version !== 1 || (c.localSubnets.length < 2 && c.remoteSubnets.length < 2)) continue;
    out.push(
      `connections.${c.name}: IKEv1 negotiates one subnet pair per IPsec SA; only ` +
        `${c.localSubnets[0]} <-> ${c.remoteSubnets[0]} is used (one connection per subnet pair, or IKEv2)`,
    );
  }
  // Group 1 (MODP-768, RFC 2409 §6.1) is accepted for legacy peers, but a 768-bit discrete log is
  // within reach of academic computation (RFC 8247 §2.4: MUST NOT) and it protects every key
  // derived from it: say so, per proposal, so the operator moves the peer on when it can.
  for (const c of Object.values(config.connections)) {
    for (const kind of ['ike', 'esp'] as const) {
      c[kind].proposals.forEach((text, i) => {
        if (
          !text
            .toLowerCase()
            .split('-')
            .some((w) => w.trim() === 'modp768')
        )
          return;
        out.push(
          `connections.${c.name}.${kind}.proposals[${i}]: modp768 is weak (768-bit); ` +
            'use modp2048 or stronger when the peer allows',
        );
      });
    }
  }
  // A pre-shared key is the whole secret of the tunnel: any local user who can read the file can
  // impersonate either gateway. Like sshd with private keys, insist on owner-only (0600/0400).
  for (const c of Object.values(config.connections)) {
    const f = c.pskFile;
    if (!f || (f.mode & 0o077) === 0) continue;
    const who = f.mode & 0o007 ? 'world' : 'group';
    out.push(
      `connections.${c.name}.pskFile: '${f.path}' is ${who}-readable or writable (mode ` +
        `${(f.mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 it`,
    );
  }
  // A withdrawn route leaves the engine; unpublished, the OS still routes its traffic into the TUN,
  // where nothing carries it any more: dropped (no_route), unless a shorter routes[] entry does.
  config.routes.forEach((r, i) => {
    if (r.onAllDown !== 'revoke' || r.publish) return;
    out.push(
      `routes[${i}].onAllDown: revoke without publish: while ${r.destination} is withdrawn, what the ` +
        `host routes into ${config.tun.name} for it is dropped (publish: true lets the OS table fall back to another path)`,
    );
  });
  // A reset of a listening connection deletes its SAs and waits: only the peer can negotiate again.
  for (const c of Object.values(config.connections)) {
    if (c.start !== 'listen' || !c.healthCheck || c.healthCheck.resetAfter === 0) continue;
    out.push(
      `connections.${c.name}.healthCheck.resetAfter: with start: listen a reset only deletes the SAs; ` +
        'the peer must negotiate again (start: initiate renegotiates itself, resetAfter: 0 never resets)',
    );
  }
  return out;
}
