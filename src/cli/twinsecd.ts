#!/usr/bin/env node
/**
 * twinsecd: the gateway daemon, run in the foreground (systemd/docker supervise it).
 *   twinsecd --config FILE          run
 *   twinsecd --check --config FILE  validate and exit
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { configWarnings } from '../config/warnings.js';
import { statusOptions } from '../control/protocol.js';
import { startControlServer } from '../control/server.js';
import { ConfigError } from '../errors.js';
import { attachEventLogging, createLogger, type Logger } from '../log.js';

// No pooled small Buffers: node hands allocations under 4 KiB out of shared 8 KiB slabs, and one
// long-lived slice (an SA's SPI, key, nonce or cached response) keeps its whole slab alive. With
// thousands of IKE SAs that was ~4.6 KB of dead slab per SA, more than the SA itself.
Buffer.poolSize = 0;

const USAGE = `usage: twinsecd --config FILE [--check]

  -c, --config FILE  configuration file (YAML)
      --check        validate the configuration and exit (0 if valid)
  -h, --help         show this help
  -V, --version      show the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`twinsecd: ${message}\n`);
  process.exit(code);
}

function parseCli(): { config: string; check: boolean } {
  try {
    const { values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    if (values.version) {
      process.stdout.write(`twinsecd ${version()}\n`);
      process.exit(0);
    }
    if (!values.config) fail(`--config FILE is required\n${USAGE}`, 2);
    return { config: values.config, check: values.check === true };
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
}

function readConfig(path: string): Config {
  try {
    return loadConfig(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      const issues = err.issues;
      const n = issues.length;
      process.stderr.write(`twinsecd: ${path}: ${n} problem${n === 1 ? '' : 's'}\n${issues.join('\n')}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function run(config: Config, configPath: string): Promise<void> {
  const log = createLogger(config.log.level);
  const fatal = (err: unknown, what: string): never => {
    log.fatal({ err }, `${what}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  };
  process.on('uncaughtException', (err) => fatal(err, 'uncaught exception'));
  process.on('unhandledRejection', (err) => fatal(err, 'unhandled rejection'));

  // Loaded lazily so `--check` never pulls in the data plane (which may need the native addon).
  const { Daemon } = await import('../daemon.js');
  const daemon = new Daemon(config);
  attachEventLogging(daemon.bus, log);

  // Metrics listen on the bus before anything is negotiated: a tunnel that comes up in the first
  // milliseconds is counted too.
  let metricsSrv: { close(): Promise<void> } | undefined;
  if (config.metrics) {
    try {
      const { startMetrics } = await import('../metrics/server.js');
      metricsSrv = await startMetrics({
        listen: config.metrics.listen,
        bus: daemon.bus,
        snapshot: () => daemon.status(),
        routes: () => daemon.config.routes,
        version: (name) => daemon.config.connections[name]?.version,
      });
    } catch (err) {
      return fatal(err, 'cannot start the metrics server');
    }
  }
  try {
    await daemon.start();
  } catch (err) {
    await metricsSrv?.close().catch(() => {});
    fatal(err, 'cannot start');
  }
  let control: Awaited<ReturnType<typeof startControlServer>>;
  try {
    control = await startControlServer(
      config.control.socket,
      {
        status: (args) => daemon.status(statusOptions(args)),
        up: (args) => daemon.up(connectionArg(args)),
        down: (args) => daemon.down(connectionArg(args)),
        reload: () => reload(),
      },
      { onError: (err) => log.warn({ err }, `control socket: ${err.message}`) },
    );
  } catch (err) {
    await metricsSrv?.close().catch(() => {});
    await daemon.stop().catch(() => {});
    return fatal(err, 'cannot open control socket');
  }
  const n = Object.keys(config.connections).length;
  log.info(`twinsecd ${version()} started from ${configPath}: ${n} connections, control ${control.path}`);

  // Re-reads the file; a bad file is refused as a whole and the running configuration stays.
  async function reload(): Promise<unknown> {
    const next = loadConfig(configPath);
    const res = await daemon.reload(next);
    log.info(
      { event: 'reload', ...res },
      `reloaded ${configPath}: added [${res.added}], changed [${res.changed}], removed [${res.removed}], unchanged [${res.unchanged}]`,
    );
    return res;
  }

  installSignals(
    log,
    async () => {
      await control.close();
      await metricsSrv?.close();
      await daemon.stop();
    },
    () =>
      reload().catch((err: unknown) =>
        log.error({ err }, `SIGHUP reload failed: ${err instanceof Error ? err.message : String(err)}`),
      ),
  );
}

function connectionArg(args: unknown): string {
  const name = (args as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string' || !name) throw new Error('expected { name: "<connection>" }');
  return name;
}

function installSignals(log: Logger, shutdown: () => Promise<void>, reload: () => void): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting without a clean shutdown`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal}: shutting down`);
    shutdown().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, `shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading the configuration');
    reload();
  });
}

async function main(): Promise<void> {
  const args = parseCli();
  const config = readConfig(args.config);
  for (const w of configWarnings(config)) process.stderr.write(`warning: ${w}\n`);
  if (args.check) {
    const routes = config.routes.length;
    const revoke = config.routes.filter((r) => r.onAllDown === 'revoke').length;
    const checks = Object.values(config.connections).filter((c) => c.healthCheck);
    const resetting = checks.filter((c) => c.healthCheck!.resetAfter > 0).length;
    process.stdout.write(
      `configuration OK: ${Object.keys(config.connections).length} connections, ${routes} routes` +
        (revoke ? ` (${revoke} withdrawn while every next hop is down)` : '') +
        (checks.length
          ? `, ${checks.length} health checks (${resetting} resetting the SA when failing)`
          : '') +
        '\n',
    );
    return;
  }
  await run(config, args.config);
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
