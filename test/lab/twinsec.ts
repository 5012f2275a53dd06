/**
 * twinsecd inside a lab namespace: writes its YAML config into a temp dir (control socket in that dir,
 * a unique TUN name), starts `node dist/src/cli/twinsecd.js --config FILE` in the namespace with its log
 * captured to a file, and queries it through `twinsec --socket S status --json`.
 *
 * Paths are resolved relative to this compiled file (dist/test/lab/twinsec.js -> dist/src/cli/…).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { type Lab, type LabProcess, run, WaitAbort, waitFor } from './netns.js';

export const TWINSECD = fileURLToPath(new URL('../../src/cli/twinsecd.js', import.meta.url));
export const TWINSEC_CLI = fileURLToPath(new URL('../../src/cli/twinsec.js', import.meta.url));

/** A connection as written in twinsec's YAML (the README's contract). */
export interface TwinsecConnYaml {
  version: 1 | 2;
  local: string;
  remote: string;
  localId?: string;
  remoteId?: string;
  psk: string;
  ike: { proposals: string[]; lifetime?: number | string };
  esp: { proposals: string[]; lifetime?: number | string };
  localSubnets: string[];
  remoteSubnets: string[];
  start: 'initiate' | 'listen';
  encapsulation?: 'auto' | 'udp' | 'esp';
  [extra: string]: unknown;
}

export interface TwinsecConfigYaml {
  tun?: { name?: string; mtu?: number };
  control?: { socket?: string };
  log?: { level?: string };
  connections: Record<string, TwinsecConnYaml>;
  routes?: unknown[];
  [extra: string]: unknown;
}

export interface TwinsecChildStatus {
  /** 8 lowercase hex digits. */
  spiIn: string;
  spiOut: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn?: number;
  packetsOut?: number;
  encr?: string;
  integ?: string | null;
  [extra: string]: unknown;
}

export interface TwinsecConnStatus {
  state: 'established' | 'connecting' | 'down' | string;
  children: TwinsecChildStatus[];
  [extra: string]: unknown;
}

export interface TwinsecStatus {
  connections: Record<string, TwinsecConnStatus>;
  routes: unknown[];
}

/** One JSON log line of twinsecd (pino): `event`, `connection` etc. as the daemon logs them. */
export interface TwinsecLogEvent {
  /** The line's time (ms since the epoch). */
  at: number;
  msg: string;
  event?: string;
  connection?: string;
  [field: string]: unknown;
}

export interface StartTwinsecOptions {
  /** Extra environment for the daemon. */
  env?: NodeJS.ProcessEnv;
  /** Wait for the control socket to appear (default true). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /**
   * Run this script instead of twinsecd (same `--config FILE` argument, plus `args`), e.g. the test-only
   * keylog-daemon entry. It must serve the control socket like twinsecd.
   */
  daemon?: { script: string; args?: string[] };
}

export class Twinsec {
  readonly lab: Lab;
  readonly ns: string;
  readonly dir: string;
  readonly configFile: string;
  readonly socket: string;
  readonly tunName: string;
  readonly proc: LabProcess;
  readonly config: TwinsecConfigYaml;

  constructor(
    lab: Lab,
    ns: string,
    dir: string,
    configFile: string,
    config: TwinsecConfigYaml,
    proc: LabProcess,
  ) {
    this.lab = lab;
    this.ns = ns;
    this.dir = dir;
    this.configFile = configFile;
    this.config = config;
    this.socket = config.control!.socket!;
    this.tunName = config.tun!.name!;
    this.proc = proc;
  }

  /** The daemon's log (stdout + stderr) so far. */
  log(): string {
    return this.proc.log();
  }

  /** The daemon's JSON log lines, parsed (`at`: the line's time in ms); other lines are skipped. */
  logEvents(): TwinsecLogEvent[] {
    const out: TwinsecLogEvent[] = [];
    for (const line of this.log().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        out.push({ ...j, at: Date.parse(String(j.time)), msg: String(j.msg ?? '') });
      } catch {
        /* not JSON */
      }
    }
    return out;
  }

  /**
   * IKE SAs of connection `conn` alive now according to the log: `spiI_spiR` of each SA whose last
   * `ike-state` line says 'established' (the status report lists CHILD_SAs, not IKE SAs).
   */
  liveIkeSas(conn: string): string[] {
    const last = new Map<string, TwinsecLogEvent>();
    for (const e of this.logEvents()) {
      if (e.event === 'ike-state' && e.connection === conn && e.spiI) last.set(String(e.spiI), e);
    }
    return [...last.values()]
      .filter((e) => e.to === 'established')
      .map((e) => `${e.spiI}_${e.spiR}`)
      .sort();
  }

  /** Runs the CLI (`twinsec --socket S ...args`) from the root namespace (the socket is a file path). */
  cli(args: string[], opts: { check?: boolean; timeoutMs?: number } = {}) {
    return run(process.execPath, [TWINSEC_CLI, '--socket', this.socket, ...args], {
      check: opts.check,
      timeoutMs: opts.timeoutMs ?? 10_000,
    });
  }

  /** `twinsec status --json`, parsed. */
  async status(): Promise<TwinsecStatus> {
    const r = await this.cli(['status', '--json']);
    try {
      return JSON.parse(r.stdout) as TwinsecStatus;
    } catch {
      throw new Error(`twinsec status --json printed no JSON:\n${r.stdout}${r.stderr}`);
    }
  }

  /** Polls status until connection `conn` is in `state`; returns that connection's status. */
  async waitForState(
    conn: string,
    state: TwinsecConnStatus['state'],
    timeoutMs: number,
  ): Promise<TwinsecConnStatus> {
    let last: unknown;
    try {
      return await waitFor(
        async () => {
          if (!this.proc.running) throw new DaemonExited(this.log());
          const s = await this.status();
          last = s.connections[conn];
          return s.connections[conn]?.state === state ? s.connections[conn] : undefined;
        },
        timeoutMs,
        { what: `twinsec connection ${conn} ${state}`, intervalMs: 200 },
      );
    } catch (e) {
      if (e instanceof DaemonExited) throw e;
      throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last)}`);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs = 5000) {
    return this.proc.stop('SIGTERM', graceMs);
  }
}

class DaemonExited extends WaitAbort {
  constructor(log: string) {
    super(`twinsecd exited:\n${log}`);
  }
}

/** Why twinsec-based tests cannot run (daemon not built yet), or undefined. */
export function twinsecUnavailable(): string | undefined {
  if (!existsSync(TWINSECD)) return `twinsecd not built (${TWINSECD})`;
  if (!existsSync(TWINSEC_CLI)) return `twinsec CLI not built (${TWINSEC_CLI})`;
  return undefined;
}

/**
 * Writes the configuration (YAML text or an object) into a fresh temp dir, forcing the control socket
 * into that dir and a unique TUN name unless the config sets them, and starts twinsecd in `ns`.
 */
export async function startTwinsec(
  lab: Lab,
  ns: string,
  config: string | TwinsecConfigYaml,
  opts: StartTwinsecOptions = {},
): Promise<Twinsec> {
  const dir = lab.tempDir('twinsec');
  const cfg: TwinsecConfigYaml = structuredClone(typeof config === 'string' ? YAML.parse(config) : config);
  cfg.tun = { mtu: 1400, ...cfg.tun, name: cfg.tun?.name ?? `tsw${randomBytes(3).toString('hex')}` };
  cfg.control = { ...cfg.control, socket: cfg.control?.socket ?? join(dir, 'control.sock') };
  cfg.routes ??= [];
  const configFile = join(dir, 'twinsec.yaml');
  writeFileSync(configFile, YAML.stringify(cfg), { mode: 0o600 });

  const script = opts.daemon?.script ?? TWINSECD;
  const proc = lab.spawn(
    ns,
    process.execPath,
    [script, '--config', configFile, ...(opts.daemon?.args ?? [])],
    {
      env: opts.env,
      logFile: join(dir, 'twinsecd.log'),
    },
  );
  const d = new Twinsec(lab, ns, dir, configFile, cfg, proc);
  if (opts.waitReady ?? true) {
    await waitFor(
      () => {
        if (!proc.running) throw new DaemonExited(d.log());
        return existsSync(d.socket);
      },
      opts.readyTimeoutMs ?? 10_000,
      { what: `twinsecd control socket ${d.socket}`, intervalMs: 100 },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n--- twinsecd log ---\n${d.log()}`);
    });
  }
  return d;
}
