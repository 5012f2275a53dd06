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

export function formatStatus(report: StatusReport): string {
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
        c.health ?? '-',
        rtt,
        `v${c.version}`,
        `${c.local} -> ${c.remote}` +
          (c.interface
            ? ` via ${c.interface.name} ${c.interface.address} (${c.interface.up ? 'up' : 'no carrier'})`
            : ''),
      ]);
    }
    out.push(...table(rows));
    for (const name of names) {
      for (const ch of report.connections[name]!.children) {
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
          ],
          ...children,
        ]),
      );
    }
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
  return `${out.join('\n')}\n`;
}

/** The routes table alone (`twinsec routes`). */
export function formatRoutes(report: StatusReport): string {
  const out: string[] = [];
  if (report.routes.length === 0) out.push('no routes');
  else {
    const rows = report.routes.map((r) => [
      r.destination,
      (r.active.length > 0 ? r.active.join(', ') : '(none)') + (r.fallback ? ' (no next hop healthy)' : ''),
      String(r.switches ?? 0),
    ]);
    out.push(...table([['ROUTE', 'ACTIVE VIA', 'SWITCHES'], ...rows]));
  }
  return `${out.join('\n')}\n`;
}
