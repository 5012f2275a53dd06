#!/usr/bin/env node
/**
 * TEST-ONLY daemon entry: twinsecd whose connections named by `--any` answer any peer address
 * (`remote: %any`), as a gateway many branch sites dial into.
 *
 *   node dist/test/lab/any-peer-daemon.js --config FILE --any NAME [--any NAME...]
 *
 * The IKE core admits a configured remote of `%any` (or a subnet) when it picks responder
 * candidates (src/ike/core/connections.ts), but the YAML schema takes only an IP address for
 * `remote`, so twinsecd cannot be configured that way today. This entry loads the file like
 * twinsecd (the named connections carry a placeholder address there and must be `start: listen`),
 * sets their `remote` to `%any`, and runs the real Daemon (native ESP engine, TUN, control socket
 * answering `status`) with twinsecd's event logging. SIGTERM/SIGINT stop it cleanly (exit 0).
 * SIGUSR2 runs a full garbage collection and logs `{"event":"memory", heapUsed, rss, ...}`: what
 * the daemon retains, for leak checks.
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../../src/config/load.js';
import { startControlServer } from '../../src/control/server.js';
import { Daemon } from '../../src/daemon.js';
import { attachEventLogging, createLogger } from '../../src/log.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      any: { type: 'string', multiple: true },
    },
    strict: true,
  });
  if (!values.config || !values.any?.length) {
    process.stderr.write('usage: any-peer-daemon --config FILE --any NAME [--any NAME...]\n');
    process.exit(2);
  }
  const config = loadConfig(values.config);
  for (const name of values.any) {
    const c = config.connections[name];
    if (c?.start !== 'listen') throw new Error(`--any ${name}: no such connection with start: listen`);
    c.remote = '%any';
  }
  const log = createLogger(config.log.level);
  const daemon = new Daemon(config);
  attachEventLogging(daemon.bus, log);
  await daemon.start();
  const control = await startControlServer(config.control.socket, { status: () => daemon.status() });
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  process.on('SIGUSR2', () => {
    gc();
    log.info({ event: 'memory', ...process.memoryUsage() }, 'memory after a full GC');
  });
  log.info(`any-peer-daemon started (TEST ONLY: ${values.any.join(', ')} answer any peer address)`);
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    control
      .close()
      .then(() => daemon.stop())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `any-peer-daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
