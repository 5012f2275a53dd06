#!/usr/bin/env node
/**
 * twinsec: operator CLI talking to twinsecd over its control socket.
 *   twinsec [--socket PATH] status [--json] [--connection NAME] [--limit N] [--offset N] [--all]
 *   twinsec [--socket PATH] routes [--json] | up NAME | down NAME | reload
 *   twinsec import-aliyun FILE.json [--name NAME]   (offline: prints a config, no daemon needed)
 *   twinsec import-aliyun FILE.json --frr FRR.conf [--asn ASN] [--network CIDR]...   (BGP dual tunnel)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { call } from '../control/client.js';
import { DEFAULT_STATUS_LIMIT, formatRoutes, formatStatus } from '../control/format.js';
import { DEFAULT_SOCKET } from '../control/protocol.js';
import type { StatusReport } from '../daemon.js';

const USAGE = `usage: twinsec [--socket PATH] <command> [--json]
       twinsec [--socket PATH] status [--json] [--connection NAME] [--limit N] [--offset N] [--all]
       twinsec import-aliyun FILE.json [--name NAME]
       twinsec import-aliyun FILE.json --frr FRR.conf [--asn ASN] [--network CIDR]...

commands:
  status           connections, CHILD SAs and routes
  routes           destination routes and the connections carrying them now
  up NAME          initiate connection NAME now (also after 'down')
  down NAME        delete NAME's SAs (the peer is told) and keep it down until 'up'
  reload           re-read the configuration file (as SIGHUP does): unchanged connections stay up
  import-aliyun    print a twinsec config (YAML) for an Alibaba Cloud IPsec connection's
                   downloaded configuration (FILE.json, or - for stdin); see README

options:
  -s, --socket PATH  control socket (default ${DEFAULT_SOCKET})
      --json         print the raw JSON result (status: complete unless paged with the options below)
      --connection NAME  status: only this connection
      --limit N      status: at most N CHILD SAs per connection (default ${DEFAULT_STATUS_LIMIT} in the
                     table; a connection with more shows its IKE SA counts and how to page on)
      --offset N     status: skip the first N CHILD SAs of each connection (newest IKE SA first)
      --all          status: every CHILD SA in the table
      --name NAME    import-aliyun: connection name (default t1)
      --frr FILE     import-aliyun, dual-tunnel BGP download: write the FRR snippet there
      --asn ASN      import-aliyun, BGP: the on-premises ASN (default: the download's PeerAsn)
      --network CIDR import-aliyun, BGP: an on-premises prefix to announce (repeatable or
                     comma-separated; default: the download's LocalSubnet unless 0.0.0.0/0)
  -h, --help         show this help
  -V, --version      show the version
`;

function fail(message: string, code = 1): never {
  process.stderr.write(`twinsec: ${message}\n`);
  process.exit(code);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`twinsec ${version()}\n`);
    return;
  }
  const [cmd, ...rest] = positionals;
  if (!cmd) fail(`missing command\n${USAGE}`, 2);
  if (cmd === 'import-aliyun') {
    if (values.json) fail(`--json is not valid with import-aliyun\n${USAGE}`, 2);
    await importAliyunCommand(rest, values);
    return;
  }
  for (const f of ['name', 'frr', 'asn', 'network'] as const)
    if (values[f] !== undefined) fail(`--${f} is only valid with import-aliyun\n${USAGE}`, 2);
  if (cmd !== 'status')
    for (const f of ['connection', 'limit', 'offset', 'all'] as const)
      if (values[f] !== undefined) fail(`--${f} is only valid with status\n${USAGE}`, 2);
  const takesName = cmd === 'up' || cmd === 'down';
  if (takesName && rest.length !== 1) fail(`${cmd} needs exactly one connection name\n${USAGE}`, 2);
  if (!takesName && rest.length > 0) fail(`unexpected argument '${rest[0]}'\n${USAGE}`, 2);
  const socket = values.socket ?? DEFAULT_SOCKET;

  switch (cmd) {
    case 'status': {
      const count = (f: 'limit' | 'offset'): number | undefined => {
        const v = values[f];
        if (v === undefined) return undefined;
        if (!/^[0-9]+$/.test(v)) fail(`--${f} needs a non-negative integer\n${USAGE}`, 2);
        return Number(v);
      };
      if (values.all && values.limit !== undefined) fail(`--all and --limit exclude each other\n${USAGE}`, 2);
      const offset = count('offset');
      // The JSON (the machine interface) is complete unless a page is asked for; the table shows
      // DEFAULT_STATUS_LIMIT CHILD SAs per connection, so a hub with thousands stays readable.
      const limit = count('limit') ?? (values.json || values.all ? undefined : DEFAULT_STATUS_LIMIT);
      const args = {
        ...(values.connection !== undefined ? { connection: values.connection } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(offset !== undefined ? { offset } : {}),
      };
      const report = (await call(socket, 'status', Object.keys(args).length > 0 ? args : undefined, {
        timeoutMs: 30_000,
      })) as StatusReport;
      process.stdout.write(
        values.json
          ? `${JSON.stringify(report)}\n`
          : formatStatus(report, {
              ...(limit !== undefined ? { limit } : {}),
              ...(offset !== undefined ? { offset } : {}),
            }),
      );
      return;
    }
    case 'routes': {
      const report = (await call(socket, 'status')) as StatusReport;
      process.stdout.write(values.json ? `${JSON.stringify(report.routes)}\n` : formatRoutes(report));
      return;
    }
    case 'up':
    case 'down': {
      await call(socket, cmd, { name: rest[0] });
      process.stdout.write(`${rest[0]}: ${cmd === 'up' ? 'initiating' : 'down (stays down until up)'}\n`);
      return;
    }
    case 'reload': {
      const r = (await call(socket, 'reload')) as Record<
        'added' | 'changed' | 'removed' | 'unchanged',
        string[]
      >;
      const list = (xs: string[]): string => (xs.length ? xs.join(', ') : '-');
      process.stdout.write(
        `reloaded: added ${list(r.added)}; changed ${list(r.changed)}; removed ${list(r.removed)}; unchanged ${list(r.unchanged)}\n`,
      );
      return;
    }
    default:
      fail(`unknown command '${cmd}'\n${USAGE}`, 2);
  }
}

/**
 * `import-aliyun FILE`: YAML on stdout, warnings on stderr (exit 0); problems on stderr (exit 1).
 * Nothing printed on stderr ever contains the PSK (the importer's messages never carry it). A
 * dual-tunnel BGP download needs `--frr FILE` (the FRR snippet is half of the result), which is
 * written before the YAML is printed; any other download refuses --frr.
 */
async function importAliyunCommand(
  args: string[],
  values: {
    name?: string | undefined;
    frr?: string | undefined;
    asn?: string | undefined;
    network?: string[] | undefined;
  },
): Promise<void> {
  const { name, frr, asn, network } = values;
  if (args.length === 0) fail(`import-aliyun: missing FILE.json\n${USAGE}`, 2);
  if (args.length > 1) fail(`unexpected argument '${args[1]}'\n${USAGE}`, 2);
  const file = args[0]!;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? 'error');
    fail(`${file}: cannot read (${why})`);
  }
  // Loaded here so `status` does not pull in the config loader.
  const { ImportError, importAliyun } = await import('../import/aliyun.js');
  try {
    const r = importAliyun(text, {
      ...(name !== undefined ? { name } : {}),
      ...(asn !== undefined ? { asn } : {}),
      ...(network !== undefined ? { networks: network } : {}),
    });
    if (r.frr === undefined && frr !== undefined)
      fail(`--frr: ${file} is not a dual-tunnel BGP download (no TunnelsConfig with BgpConfigs)`, 2);
    if (r.frr !== undefined && frr === undefined)
      fail(`${file} is a dual-tunnel BGP download: give --frr FILE for the FRR snippet\n${USAGE}`, 2);
    if (r.frr !== undefined && frr !== undefined) {
      try {
        writeFileSync(frr, r.frr, { mode: 0o644 });
      } catch (err) {
        fail(`--frr ${frr}: cannot write (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    for (const w of r.warnings) process.stderr.write(`twinsec: warning: ${w}\n`);
    process.stdout.write(r.yaml);
  } catch (err) {
    if (!(err instanceof ImportError)) throw err;
    const n = err.issues.length;
    fail(`${file}: ${n} problem${n === 1 ? '' : 's'}\n${err.issues.join('\n')}`);
  }
}

function parse() {
  return parseArgs({
    options: {
      socket: { type: 'string', short: 's' },
      json: { type: 'boolean' },
      connection: { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
      all: { type: 'boolean' },
      name: { type: 'string' },
      frr: { type: 'string' },
      asn: { type: 'string' },
      network: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
    },
    strict: true,
    allowPositionals: true,
  });
}

// Transport errors already read "cannot reach twinsecd at PATH: ..."; daemon errors are passed on.
main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
