/**
 * Network-namespace lab for interop and lab tests (needs root and iproute2).
 *
 * A Lab owns a set of namespaces named `tsw-<pid36>-<rand>-<label>`, the processes started in them and
 * its temp dirs. `cleanup()` kills every process `ip netns pids` lists in each namespace (SIGTERM, then
 * SIGKILL), deletes the namespaces and removes the temp dirs. It is registered with the test's
 * `t.teardown` (when given) and with process exit / SIGINT / SIGTERM / SIGHUP, so nothing leaks when a
 * test fails or the runner times out. `Lab.sweepStale()` removes namespaces left by dead processes.
 */
import { type ChildProcess, execFile, execFileSync, spawn as spawnChild } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NS_PREFIX = 'tsw-';
/** Linux IFNAMSIZ - 1. */
export const IFNAME_MAX = 15;

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Reject on a non-zero exit (default true). */
  check?: boolean;
  /** Milliseconds before the command is killed (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

export interface SpawnOptions {
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** stdout+stderr go to this file (appended); default: a file in the lab dir named after the command. */
  logFile?: string;
}

export interface LinkEnd {
  ns: string;
  /** Interface name inside `ns` (≤ 15 chars). */
  ifname: string;
  /** CIDR, e.g. '192.0.2.1/24'. */
  address?: string;
}

/** Anything with tap's `teardown(fn)` (kept structural so this file does not depend on tap). */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export class LabProcess {
  readonly child: ChildProcess;
  readonly ns: string;
  readonly logFile: string;
  readonly command: string;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #done = false;

  constructor(child: ChildProcess, ns: string, command: string, logFile: string) {
    this.child = child;
    this.ns = ns;
    this.command = command;
    this.logFile = logFile;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#done = true;
        resolve({ code, signal });
      });
      child.once('error', () => {
        this.#done = true;
        resolve({ code: null, signal: null });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return !this.#done;
  }

  /** The process's log so far ('' when there is none yet). */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
    if (!this.running) return this.exited;
    try {
      this.child.kill(signal);
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    const res = await this.exited;
    clearTimeout(timer);
    return res;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True when `pid` names a live (non-zombie) process. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function killQuiet(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone or not ours */
  }
}

function nsPidsSync(ns: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((p) => p !== process.pid);
  } catch {
    return [];
  }
}

function listNamespacesSync(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split('\n')
      .map((l) => l.split(' ')[0]!.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Kill everything in `ns` and delete it, synchronously (usable from an exit handler). */
function destroyNamespaceSync(ns: string): void {
  let pids = nsPidsSync(ns);
  for (const p of pids) killQuiet(p, 'SIGTERM');
  for (let i = 0; i < 30 && pids.some(alive); i++) sleepSync(100);
  pids = nsPidsSync(ns).filter(alive);
  for (const p of pids) killQuiet(p, 'SIGKILL');
  for (let i = 0; i < 20 && nsPidsSync(ns).some(alive); i++) sleepSync(50);
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

const liveLabs = new Set<Lab>();
let handlersInstalled = false;

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      for (const lab of liveLabs) lab.cleanupSync();
      process.removeListener(sig, handler);
      // Re-raise: other listeners (tap's signal-exit) then report and exit; with none, the default kills us.
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Why lab tests cannot run here, or undefined when they can (root + iproute2 + /dev/net/tun). */
export function labUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'lab tests need Linux network namespaces';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'lab tests need root (ip netns)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (ip) is not installed';
  }
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  return undefined;
}

export class Lab {
  /** `tsw-<pid36>-<rand>`: every namespace of this lab starts with it. */
  readonly id: string;
  /** Private temp dir for configs, sockets and logs of this lab. */
  readonly dir: string;
  readonly namespaces: string[] = [];
  readonly processes: LabProcess[] = [];
  #tempDirs: string[] = [];
  #closed = false;
  #keepDir: boolean;

  /**
   * @param t  a tap test: cleanup runs in its teardown.
   * @param opts.keepDir keep the temp dir after cleanup (for debugging; also env TWINSEC_LAB_KEEP=1).
   */
  constructor(t?: Teardownable, opts: { keepDir?: boolean } = {}) {
    this.id = `${NS_PREFIX}${process.pid.toString(36)}-${randomBytes(2).toString('hex')}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.id}-`));
    this.#keepDir = opts.keepDir ?? process.env.TWINSEC_LAB_KEEP === '1';
    liveLabs.add(this);
    installProcessHandlers();
    t?.teardown(() => this.cleanup());
  }

  /** Remove namespaces (and their processes) left by earlier labs whose process has died. */
  static sweepStale(): string[] {
    const removed: string[] = [];
    for (const ns of listNamespacesSync()) {
      const m = /^tsw-([0-9a-z]+)-[0-9a-f]+-/.exec(ns);
      if (!m) continue;
      const owner = Number.parseInt(m[1]!, 36);
      if (owner === process.pid || alive(owner)) continue;
      destroyNamespaceSync(ns);
      removed.push(ns);
    }
    return removed;
  }

  /** Creates namespace `<id>-<label>` with `lo` up; returns its full name. */
  async addNamespace(label: string): Promise<string> {
    if (!/^[a-z0-9]+$/i.test(label)) throw new Error(`namespace label must be alphanumeric: ${label}`);
    const ns = `${this.id}-${label}`;
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.exec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A veth pair between two namespaces, each end with an optional address, both up. */
  async link(a: LinkEnd, b: LinkEnd): Promise<void> {
    for (const end of [a, b]) {
      if (end.ifname.length > IFNAME_MAX) throw new Error(`interface name too long: ${end.ifname}`);
    }
    await run('ip', [
      'link',
      'add',
      a.ifname,
      'netns',
      a.ns,
      'type',
      'veth',
      'peer',
      'name',
      b.ifname,
      'netns',
      b.ns,
    ]);
    for (const end of [a, b]) {
      if (end.address) await this.exec(end.ns, 'ip', ['addr', 'add', end.address, 'dev', end.ifname]);
      await this.exec(end.ns, 'ip', ['link', 'set', end.ifname, 'up']);
    }
  }

  /** Adds LAN addresses (CIDR, e.g. '198.18.1.1/32') to `lo` in `ns` (this kernel has no dummy links). */
  async loopbackAddresses(ns: string, ...cidrs: string[]): Promise<void> {
    for (const cidr of cidrs) await this.exec(ns, 'ip', ['addr', 'add', cidr, 'dev', 'lo']);
  }

  /** `sysctl -w key=value` inside `ns`. */
  async sysctl(ns: string, key: string, value: string | number): Promise<void> {
    await this.exec(ns, 'sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Runs `cmd args` inside `ns` and collects its output; rejects on failure unless `check: false`. */
  exec(ns: string, cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** A fresh temp dir inside the lab dir. */
  tempDir(label: string): string {
    const d = mkdtempSync(join(this.dir, `${label}-`));
    this.#tempDirs.push(d);
    return d;
  }

  /**
   * Starts `cmd args` inside `ns` in the background (via `ip netns exec`, which execs: the pid is the
   * program's own). Output goes to `logFile`. Tracked: `cleanup()` ends it.
   */
  spawn(ns: string, cmd: string, args: string[] = [], opts: SpawnOptions = {}): LabProcess {
    if (this.#closed) throw new Error('lab already cleaned up');
    const base = cmd.split('/').pop() ?? 'proc';
    const logFile = opts.logFile ?? join(this.dir, `${ns}-${base}-${this.processes.length}.log`);
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawnChild('ip', ['netns', 'exec', ns, cmd, ...args], {
        env: { ...process.env, ...opts.env },
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const proc = new LabProcess(child, ns, [cmd, ...args].join(' '), logFile);
    this.processes.push(proc);
    return proc;
  }

  /**
   * Starts tcpdump on `ifname` inside `ns`, writing a pcap (`-U`: each packet as it comes) to `file`
   * (default: a file in the lab dir); resolves once tcpdump says it is listening. `filter` is a pcap
   * filter expression ('' for everything). Stop it with `proc.stop('SIGINT')` before reading the file.
   */
  async capture(
    ns: string,
    ifname: string,
    filter = '',
    opts: { file?: string; snaplen?: number } = {},
  ): Promise<{ proc: LabProcess; file: string }> {
    const file = opts.file ?? join(this.dir, `${ns}-${ifname}-${this.processes.length}.pcap`);
    const args = ['-i', ifname, '-n', '-U', '-s', String(opts.snaplen ?? 256), '-w', file];
    if (filter) args.push(filter);
    const proc = this.spawn(ns, 'tcpdump', args);
    await waitFor(
      () => {
        if (!proc.running) throw new WaitAbort(`tcpdump exited in ${ns}:\n${proc.log()}`);
        return proc.log().includes('listening on');
      },
      5000,
      { what: `tcpdump listening on ${ns}/${ifname}`, intervalMs: 50 },
    );
    return { proc, file };
  }

  /** Pids of every process inside `ns`. */
  async pids(ns: string): Promise<number[]> {
    const r = await run('ip', ['netns', 'pids', ns], { check: false });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Ends all processes, deletes the namespaces and temp dirs. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.#closed && this.namespaces.length === 0) return;
    this.#closed = true;
    // SIGTERM everything at once (tracked processes and whatever else is inside the namespaces), give it
    // a grace period, then SIGKILL what is left; node reaps the tracked ones.
    const everything = async () => {
      const pids = new Set<number>();
      for (const p of this.processes) if (p.running && p.pid) pids.add(p.pid);
      for (const ns of this.namespaces) for (const p of await this.pids(ns)) pids.add(p);
      return [...pids].filter(alive);
    };
    for (const p of await everything()) killQuiet(p, 'SIGTERM');
    for (let i = 0; i < 30 && (await everything()).length > 0; i++) await sleep(100);
    for (const p of await everything()) killQuiet(p, 'SIGKILL');
    for (let i = 0; i < 40 && (await everything()).length > 0; i++) await sleep(50);
    await Promise.all(this.processes.map((p) => p.stop('SIGKILL', 1000)));
    while (this.namespaces.length > 0) {
      await run('ip', ['netns', 'del', this.namespaces[0]!], { check: false });
      this.namespaces.shift();
    }
    this.#removeDirs();
    liveLabs.delete(this);
  }

  /** Synchronous variant for exit/signal handlers. */
  cleanupSync(): void {
    // Also runs when an async cleanup() was interrupted (by a signal): whatever namespaces remain go.
    this.#closed = true;
    for (const p of this.processes) if (p.running && p.pid) killQuiet(p.pid, 'SIGTERM');
    while (this.namespaces.length > 0) destroyNamespaceSync(this.namespaces.shift()!);
    this.#removeDirs();
    liveLabs.delete(this);
  }

  #removeDirs(): void {
    if (this.#keepDir) return;
    for (const d of [...this.#tempDirs, this.dir]) rmSync(d, { recursive: true, force: true });
  }
}

/** Runs a command (no shell) and collects output; rejects with stderr in the message unless check=false. */
export function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const check = opts.check ?? true;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const res = { code, stdout: String(stdout), stderr: String(stderr) };
        if (err && check) {
          const why = err.killed ? `killed (timeout ${opts.timeoutMs ?? 30_000} ms)` : `exit ${code}`;
          reject(new Error(`${cmd} ${args.join(' ')}: ${why}\n${res.stderr}${res.stdout}`.trimEnd()));
        } else {
          resolve(res);
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Thrown from a `waitFor` predicate to stop waiting at once (e.g. the daemon being waited on died). */
export class WaitAbort extends Error {}

/** Polls `predicate` every `intervalMs` until it returns a truthy value (returned) or `timeoutMs` passes. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      if (e instanceof WaitAbort) throw e;
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const tail = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}${tail}`);
    }
    await sleep(opts.intervalMs ?? 200);
  }
}
