#!/usr/bin/env node
/**
 * TEST-ONLY daemon entry: twinsecd (the real Daemon: native ESP engine, TUN, control socket
 * answering `status`, twinsecd's event logging) that also answers SIGUSR2 with a full garbage
 * collection and a `{"event":"memory", heapUsed, rss, ...}` log line: what the daemon retains, for
 * the flood tests' leak checks. SIGTERM/SIGINT stop it cleanly (exit 0).
 *
 *   node dist/test/lab/any-peer-daemon.js --config FILE
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
    },
    strict: true,
  });
  if (!values.config) {
    process.stderr.write('usage: any-peer-daemon --config FILE\n');
    process.exit(2);
  }
  const config = loadConfig(values.config);
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
  log.info('any-peer-daemon started (TEST ONLY: twinsecd with a memory report on SIGUSR2)');
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
