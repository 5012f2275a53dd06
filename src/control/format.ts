/**
 * Human-readable rendering of control responses for the `twinsec` CLI. Kept apart from the CLI
 * entry point so it can be unit-tested without spawning a process.
 */
import type { StatusReport } from '../daemon.js';

/** Left-aligned columns separated by two spaces; trailing whitespace trimmed. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

const list = (xs: string[] | undefined): string => (xs && xs.length > 0 ? xs.join(',') : '*');

/** CHILD SA entries per connection in the human `status` unless --all or --limit says otherwise. */
export const DEFAULT_STATUS_LIMIT = 20;

export interface StatusView {
  /** The page that was asked for (StatusOptions): entries beyond `limit` are cut here too. */
  offset?: number;
  limit?: number;
}

export function formatStatus(report: StatusReport, view: StatusView = {}): string {
  const out: string[] = [];
  const names = Object.keys(report.connections).sort();
  if (names.length === 0) out.push('no connections');
  else {
    const rows: string[][] = [['CONNECTION', 'STATE', 'HEALTH', 'RTT', 'IKE', 'LOCAL -> REMOTE']];
    const children: string[][] = [];
    for (const name of names) {
      const c = report.connections[name]!;
      const rtt = c.lastRttMs === null || c.lastRttMs === undefined ? '-' : `${c.lastRttMs.toFixed(2)} ms`;
      rows.push([
        name,
        c.adminDown ? 'down (admin)' : c.state,
        (c.health ?? '-') + (c.resets ? ` (${c.resets} reset${c.resets > 1 ? 's' : ''})` : ''),
        rtt,
        `v${c.version}`,
        `${c.local} -> ${c.remote}` +
          (c.interface
            ? ` via ${c.interface.name} ${c.interface.address} (${c.interface.up ? 'up' : 'no carrier'})`
            : ''),
      ]);
    }
    out.push(...table(rows));
    // A hub connection (remote %any) holds one IKE SA per site: its counts by state, and a page of
    // its CHILD SAs below with a hint how to see the others, rather than thousands of lines.
    const summaries: string[] = [];
    const more: string[] = [];
    const offset = view.offset ?? 0;
    for (const name of names) {
      const c = report.connections[name]!;
      const shown = view.limit === undefined ? c.children : c.children.slice(0, view.limit);
      const total = c.childrenTotal ?? c.children.length;
      const k = c.ikeSas;
      const ikeTotal = k ? k.established + k.connecting + k.deleting : 0;
      if (k && (ikeTotal > 1 || total > shown.length)) {
        summaries.push(
          `${name}: ${ikeTotal} IKE SAs (${k.established} established, ${k.connecting} connecting, ${k.deleting} deleting), ${total} CHILD SAs`,
        );
      }
      if (total > shown.length) {
        const range = shown.length > 0 ? `${offset + 1}-${offset + shown.length}` : 'none';
        const next = offset + shown.length;
        more.push(
          next < total
            ? `${name}: CHILD SAs ${range} of ${total} shown; next: twinsec status --connection ${name} --offset ${next} --limit 100 (or --all)`
            : `${name}: CHILD SAs ${range} of ${total} shown (or --all)`,
        );
      }
    }
    if (summaries.length > 0) out.push('', ...summaries);
    for (const name of names) {
      const c = report.connections[name]!;
      const shown = view.limit === undefined ? c.children : c.children.slice(0, view.limit);
      for (const ch of shown) {
        const algs = [ch.encr, ch.integ].filter((a) => a).join('/');
        const ts =
          ch.tsLocal?.length || ch.tsRemote?.length ? `${list(ch.tsLocal)} <-> ${list(ch.tsRemote)}` : '';
        children.push([
          name,
          ch.spiIn,
          ch.spiOut,
          algs || '-',
          ch.encapsulation ?? '-',
          `${ch.bytesIn}/${ch.bytesOut}`,
          `${ch.packetsIn}/${ch.packetsOut}`,
          ts,
          ch.peer ?? '',
        ]);
      }
    }
    if (children.length > 0) {
      out.push('');
      out.push(
        ...table([
          [
            'CHILD SA OF',
            'SPI IN',
            'SPI OUT',
            'ALGORITHMS',
            'ENCAP',
            'BYTES IN/OUT',
            'PACKETS IN/OUT',
            'SELECTORS',
            'PEER',
          ],
          ...children,
        ]),
      );
    }
    if (more.length > 0) out.push('', ...more);
  }
  out.push('');
  out.push(formatRoutes(report).trimEnd());
  const nonzero = (d: Record<string, number> | undefined): string =>
    Object.entries(d ?? {})
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k}=${n}`)
      .join(' ');
  const esp = nonzero(report.drops?.esp);
  const ike = nonzero(report.drops?.ike);
  if (esp || ike) {
    out.push('');
    out.push(`dropped: ESP ${esp || 'none'}; IKE ${ike || 'none'}`);
  }
  const control = nonzero(report.control);
  if (control) out.push(`control packets ahead of bulk: ${control}`);
  const lag = report.eventLoop;
  if (lag) {
    out.push(
      `event loop lag: p99 ${lag.lagP99Ms.toFixed(1)} ms, max ${lag.lagMaxMs.toFixed(1)} ms (last ${Math.round(lag.windowSeconds)} s)`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** The routes table alone (`twinsec routes`). */
export function formatRoutes(report: StatusReport): string {
  const out: string[] = [];
  if (report.routes.length === 0) out.push('no routes');
  else {
    const rows = report.routes.map((r) => [
      r.destination,
      r.revoked
        ? '(withdrawn: no next hop healthy, onAllDown revoke)'
        : (r.active.length > 0 ? r.active.join(', ') : '(none)') +
          (r.fallback ? ' (no next hop healthy, kept: onAllDown reserve)' : ''),
      String(r.switches ?? 0),
    ]);
    out.push(...table([['ROUTE', 'ACTIVE VIA', 'SWITCHES'], ...rows]));
  }
  return `${out.join('\n')}\n`;
}
