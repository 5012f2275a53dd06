#!/usr/bin/env node
/**
 * twinsec: operator CLI talking to twinsecd over its control socket.
 *   twinsec [--socket PATH] status [--json]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { call } from '../control/client.js';
import { formatStatus } from '../control/format.js';
import { DEFAULT_SOCKET } from '../control/protocol.js';
import type { StatusReport } from '../daemon.js';

const USAGE = `usage: twinsec [--socket PATH] <command> [--json]

commands:
  status           connections, CHILD SAs and routes

options:
  -s, --socket PATH  control socket (default ${DEFAULT_SOCKET})
      --json         print the raw JSON result
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
  if (rest.length > 0) fail(`unexpected argument '${rest[0]}'\n${USAGE}`, 2);
  const socket = values.socket ?? DEFAULT_SOCKET;

  switch (cmd) {
    case 'status': {
      const report = (await call(socket, 'status')) as StatusReport;
      process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatStatus(report));
      return;
    }
    default:
      fail(`unknown command '${cmd}'\n${USAGE}`, 2);
  }
}

function parse() {
  return parseArgs({
    options: {
      socket: { type: 'string', short: 's' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
    },
    strict: true,
    allowPositionals: true,
  });
}

// Transport errors already read "cannot reach twinsecd at PATH: ..."; daemon errors are passed on.
main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
