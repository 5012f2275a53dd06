#!/usr/bin/env node
/**
 * TEST-ONLY daemon entry: twinsecd with the SA keys written out for tshark. Never ship or run this
 * outside a lab: it writes ESP keys to a file in plain text.
 *
 *   node dist/test/lab/keylog-daemon.js --config FILE --keylog ESP_SA_FILE [--drops FILE]
 *
 * Loads the configuration like twinsecd, runs the real Daemon (native ESP engine, TUN, control socket)
 * with `DaemonOptions.wrapDataPlane`: every `installSa` first appends two records (outbound and inbound)
 * in Wireshark's esp_sa UAT format to ESP_SA_FILE, then goes to the engine. SIGUSR2 writes the data
 * plane's drop counters as JSON to --drops FILE (status --json carries them too). SIGTERM/SIGINT stop
 * the daemon cleanly (exit 0).
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/load.js';
import { startControlServer } from '../../src/control/server.js';
import { Daemon } from '../../src/daemon.js';
import type { ChildSaSpec, DataPlane, Endpoint } from '../../src/dataplane/types.js';
import { attachEventLogging, createLogger } from '../../src/log.js';
import { keysFromSpec, uatRecord } from './keylog.js';

/** Delegates everything to the daemon's data plane; records keys before each install. */
class KeyloggingDataPlane implements DataPlane {
  readonly #inner: DataPlane;
  readonly #file: string;

  constructor(inner: DataPlane, file: string) {
    this.#inner = inner;
    this.#file = file;
  }

  installSa(sa: ChildSaSpec): void {
    const lines = keysFromSpec(sa).map(uatRecord);
    appendFileSync(this.#file, `# ${sa.connection} ${sa.encapsulation}\n${lines.join('\n')}\n`, {
      mode: 0o600,
    });
    this.#inner.installSa(sa);
  }

  removeSa(spiIn: number): void {
    this.#inner.removeSa(spiIn);
  }

  counters(spiIn: number) {
    return this.#inner.counters(spiIn);
  }

  setRoutes(routes: Parameters<DataPlane['setRoutes']>[0]): void {
    this.#inner.setRoutes(routes);
  }

  injectProbe(connection: string, packet: Buffer): boolean {
    return this.#inner.injectProbe(connection, packet);
  }
  watchProbe(icmpId: number, on: boolean): void {
    this.#inner.watchProbe(icmpId, on);
  }
  updateSa(spiIn: number, local: Endpoint, remote: Endpoint): boolean {
    return this.#inner.updateSa(spiIn, local, remote);
  }
  onPeerMoved(handler: (spiIn: number, from: Endpoint) => void): void {
    this.#inner.onPeerMoved(handler);
  }
  onSaLimit(handler: (spiIn: number, hard: boolean) => void): void {
    this.#inner.onSaLimit?.(handler);
  }
  drops(): Record<string, number> {
    return this.#inner.drops();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      keylog: { type: 'string' },
      drops: { type: 'string' },
    },
    strict: true,
  });
  if (!values.config || !values.keylog) {
    process.stderr.write('usage: keylog-daemon --config FILE --keylog ESP_SA_FILE [--drops FILE]\n');
    process.exit(2);
  }
  const config = loadConfig(values.config);
  const log = createLogger(config.log.level);
  let dp: KeyloggingDataPlane | undefined;
  const daemon = new Daemon(config, {
    wrapDataPlane: (inner) => {
      dp = new KeyloggingDataPlane(inner, values.keylog!);
      return dp;
    },
  });
  attachEventLogging(daemon.bus, log);
  writeFileSync(values.keylog, '# esp_sa (Wireshark ESP SA table), written by keylog-daemon\n', {
    mode: 0o600,
  });
  await daemon.start();
  const control = await startControlServer(config.control.socket, { status: () => daemon.status() });
  log.info(`keylog-daemon started (TEST ONLY: ESP keys go to ${values.keylog})`);

  const dropsFile = values.drops;
  process.on('SIGUSR2', () => {
    if (dropsFile && dp) writeFileSync(dropsFile, `${JSON.stringify(dp.drops())}\n`);
  });
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
  process.stderr.write(`keylog-daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
