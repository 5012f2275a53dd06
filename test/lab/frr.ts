/**
 * FRR (zebra, bfdd, bgpd; staticd when asked) inside a lab namespace, every path private, as
 * /work/shared/LAB-NOTES.md describes: one directory per instance, owned by frr:frr, holding frr.conf,
 * the pid files, the vty sockets and zserv.api; each daemon started with
 * `ip netns exec NS /usr/lib/frr/DAEMON -d -u frr -g frr -f DIR/frr.conf -i DIR/DAEMON.pid
 * --vty_socket DIR -z DIR/zserv.api` (bgpd also `-p 179`), queried with `vtysh --vty_socket DIR`.
 *
 * Nothing of FRR runs in the root namespace: the daemons are started through `ip netns exec` and
 * stopped by their pid files (`stop()`, registered with the test's teardown, so it also runs when a
 * test fails); the Lab's cleanup ends whatever is left in its namespaces anyway.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Lab, type Teardownable, WaitAbort, waitFor } from './netns.js';

export const FRR_LIB = '/usr/lib/frr';
export const VTYSH = '/usr/bin/vtysh';

export type FrrDaemon = 'zebra' | 'staticd' | 'bfdd' | 'bgpd';

/** True when CI is set (and not 0/false/no), as scripts/test.mjs decides. */
export function ciMode(): boolean {
  return !!process.env.CI && !/^(0|false|no)$/i.test(process.env.CI);
}

/** Why FRR cannot be used here (not installed, no frr user), or undefined. */
export function frrMissing(): string | undefined {
  for (const d of ['zebra', 'bfdd', 'bgpd'] as const) {
    if (!existsSync(join(FRR_LIB, d))) return `FRR not installed (${join(FRR_LIB, d)}): apt-get install frr`;
  }
  if (!existsSync(VTYSH)) return `vtysh not installed (${VTYSH})`;
  if (frrUser() === undefined) return 'no frr user (Debian creates it when installing the frr package)';
  return undefined;
}

/**
 * The reason to skip an FRR test, or undefined. Outside CI a missing FRR skips; under CI it does not
 * (CI installs frr, .ci/run): the test then runs and fails with the reason, instead of a skip that
 * would hide a broken installation.
 */
export function frrUnavailable(): string | undefined {
  return ciMode() ? undefined : frrMissing();
}

/** uid and gid of the frr user and group (from the system's databases). */
function frrUser(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(
      execFileSync('id', ['-u', 'frr'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    const gid = Number(
      execFileSync('id', ['-g', 'frr'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** One BGP neighbour in `show bgp summary json` (the fields used here). */
export interface BgpPeerSummary {
  state: string;
  pfxRcd?: number;
  pfxSnt?: number;
  peerUptimeMsec?: number;
  [k: string]: unknown;
}

/** One entry of `show bfd peers json`. */
export interface BfdPeer {
  peer: string;
  status: string;
  interface?: string;
  'receive-interval'?: number;
  'transmit-interval'?: number;
  'detect-multiplier'?: number;
  [k: string]: unknown;
}

/** A route of `ip -j route show` (the fields used here). */
export interface KernelRoute {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  flags?: string[];
  nexthops?: { dev?: string; gateway?: string; flags?: string[] }[];
}

export interface StartFrrOptions {
  /** Daemons to start, in this order (default zebra, bfdd, bgpd; add staticd for `ip route` lines). */
  daemons?: FrrDaemon[];
  /** Stops the instance in this test's teardown (also when the test fails). */
  t?: Teardownable;
  /** Name in messages (default the namespace's label). */
  name?: string;
}

export class Frr {
  readonly lab: Lab;
  readonly ns: string;
  readonly name: string;
  /** The instance's private directory (frr:frr): frr.conf, pid files, vty sockets, zserv.api, logs. */
  readonly dir: string;
  readonly config: string;
  readonly daemons: FrrDaemon[];

  constructor(lab: Lab, ns: string, name: string, dir: string, config: string, daemons: FrrDaemon[]) {
    this.lab = lab;
    this.ns = ns;
    this.name = name;
    this.dir = dir;
    this.config = config;
    this.daemons = daemons;
  }

  /** Writes `config` as DIR/frr.conf and starts the daemons in `ns`; resolves once each answers vtysh. */
  static async start(lab: Lab, ns: string, config: string, opts: StartFrrOptions = {}): Promise<Frr> {
    const missing = frrMissing();
    if (missing) throw new Error(missing);
    const user = frrUser()!;
    const daemons = opts.daemons ?? ['zebra', 'bfdd', 'bgpd'];
    const name = opts.name ?? ns.slice(ns.lastIndexOf('-') + 1);
    // The daemons drop root for the frr user; it must reach its directory, which sits in the lab's temp
    // dir (0700, root): let others traverse that one (not list it: 0711). The twinsec dirs inside it
    // stay 0700, their config files 0600.
    chmodSync(lab.dir, 0o711);
    const dir = lab.tempDir(`frr-${name}`);
    chmodSync(dir, 0o755);
    chownSync(dir, user.uid, user.gid);
    const conf = join(dir, 'frr.conf');
    writeFileSync(conf, config, { mode: 0o640 });
    chownSync(conf, user.uid, user.gid);
    const frr = new Frr(lab, ns, name, dir, config, daemons);
    opts.t?.teardown(() => frr.stop());
    for (const d of daemons) {
      const args = [
        '-d',
        '-u',
        'frr',
        '-g',
        'frr',
        '-f',
        conf,
        '-i',
        join(dir, `${d}.pid`),
        '--vty_socket',
        dir,
        '-z',
        join(dir, 'zserv.api'),
        // Each daemon's own log file (to the second: `log timestamp precision` in frr.conf applies to the
        // log targets frr.conf defines, not to this command-line one; timelines come from ip monitor).
        '--log',
        `file:${join(dir, `${d}.log`)}`,
        ...(d === 'bgpd' ? ['-p', '179'] : []),
      ];
      // -d: the command returns once the daemon has forked; its pid file and vty socket follow.
      await lab.exec(ns, join(FRR_LIB, d), args, { timeoutMs: 15_000 });
      await waitFor(
        async () => {
          const pid = frr.pid(d);
          if (pid !== undefined && !alive(pid)) throw new WaitAbort(`${d} exited:\n${frr.log(d)}`);
          if (!existsSync(join(dir, `${d}.vty`))) return false;
          // The others connect to zebra's zserv.api: wait for it before starting them.
          if (d === 'zebra' && !existsSync(join(dir, 'zserv.api'))) return false;
          return (await frr.vtyshRaw(['-d', d, '-c', 'show version'])).code === 0;
        },
        10_000,
        { what: `${d} in ${ns} answering vtysh`, intervalMs: 100 },
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n--- ${d} log ---\n${frr.log(d)}`);
      });
    }
    return frr;
  }

  /** The pid in DIR/DAEMON.pid, or undefined. */
  pid(daemon: FrrDaemon): number | undefined {
    try {
      const n = Number(readFileSync(join(this.dir, `${daemon}.pid`), 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** A daemon's log (all of them, concatenated, without an argument). */
  log(daemon?: FrrDaemon): string {
    const one = (d: FrrDaemon) => {
      try {
        return readFileSync(join(this.dir, `${d}.log`), 'utf8');
      } catch {
        return '';
      }
    };
    return daemon ? one(daemon) : this.daemons.map((d) => `--- ${d} ---\n${one(d)}`).join('\n');
  }

  vtyshRaw(args: string[]) {
    return this.lab.exec(this.ns, VTYSH, ['--vty_socket', this.dir, ...args], {
      check: false,
      timeoutMs: 10_000,
    });
  }

  /** `vtysh -c CMD` in the namespace; its output (rejects when vtysh fails). */
  async vtysh(cmd: string): Promise<string> {
    const r = await this.vtyshRaw(['-c', cmd]);
    if (r.code !== 0)
      throw new Error(`vtysh -c '${cmd}' in ${this.ns}: exit ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** `vtysh -c CMD` (a `... json` command), parsed. */
  async vtyshJson<T>(cmd: string): Promise<T> {
    const out = await this.vtysh(cmd);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`vtysh -c '${cmd}' in ${this.ns} printed no JSON:\n${out}`);
    }
  }

  /** IPv4 unicast neighbours from `show bgp summary json`, by address. */
  async bgpPeers(): Promise<Record<string, BgpPeerSummary>> {
    const s = await this.vtyshJson<{ ipv4Unicast?: { peers?: Record<string, BgpPeerSummary> } }>(
      'show bgp summary json',
    );
    return s.ipv4Unicast?.peers ?? {};
  }

  /** `show bfd peers json`. */
  bfdPeers(): Promise<BfdPeer[]> {
    return this.vtyshJson<BfdPeer[]>('show bfd peers json');
  }

  /** Waits until every neighbour in `neighbors` is Established; returns the summary. */
  async waitEstablished(neighbors: string[], timeoutMs: number): Promise<Record<string, BgpPeerSummary>> {
    let last: Record<string, BgpPeerSummary> = {};
    try {
      return await waitFor(
        async () => {
          this.#checkRunning();
          last = await this.bgpPeers();
          return neighbors.every((n) => last[n]?.state === 'Established') ? last : undefined;
        },
        timeoutMs,
        { what: `BGP neighbours ${neighbors.join(', ')} Established in ${this.name}`, intervalMs: 200 },
      );
    } catch (e) {
      const states = Object.entries(last).map(([k, v]) => `${k} ${v.state}`);
      throw new Error(`${(e as Error).message}; last: ${states.join(', ') || 'no peers'}`);
    }
  }

  /** Waits until the BFD sessions with every address in `peers` are up; returns `show bfd peers`. */
  async waitBfdUp(peers: string[], timeoutMs: number): Promise<BfdPeer[]> {
    let last: BfdPeer[] = [];
    try {
      return await waitFor(
        async () => {
          this.#checkRunning();
          last = await this.bfdPeers();
          return peers.every((p) => last.find((b) => b.peer === p)?.status === 'up') ? last : undefined;
        },
        timeoutMs,
        { what: `BFD with ${peers.join(', ')} up in ${this.name}`, intervalMs: 200 },
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}; last: ${last.map((b) => `${b.peer} ${b.status}`).join(', ')}`,
      );
    }
  }

  /** Throws (stopping a wait) when one of the daemons has died. */
  #checkRunning(): void {
    for (const d of this.daemons) {
      const pid = this.pid(d);
      if (pid === undefined || !alive(pid))
        throw new WaitAbort(`FRR ${d} in ${this.ns} is not running:\n${this.log(d)}`);
    }
  }

  /** SIGTERM each daemon by its pid file (bgpd first), SIGKILL what is left after 3 s. Idempotent. */
  async stop(): Promise<void> {
    const pids = [...this.daemons]
      .reverse()
      .map((d) => this.pid(d))
      .filter((p): p is number => p !== undefined && alive(p));
    for (const p of pids) killQuiet(p, 'SIGTERM');
    for (let i = 0; i < 30 && pids.some(alive); i++) await sleep(100);
    for (const p of pids.filter(alive)) killQuiet(p, 'SIGKILL');
    for (let i = 0; i < 20 && pids.some(alive); i++) await sleep(50);
  }
}

function killQuiet(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** `ip -j route show PREFIX` in `ns` (main table): the routes for exactly that prefix. */
export async function kernelRoutes(lab: Lab, ns: string, prefix: string): Promise<KernelRoute[]> {
  const r = await lab.exec(ns, 'ip', ['-j', 'route', 'show', 'exact', prefix], { check: false });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return JSON.parse(r.stdout) as KernelRoute[];
}

/** The devices a kernel route sends through (one, or each of a multipath route's next hops). */
export function routeDevs(routes: KernelRoute[]): string[] {
  return routes.flatMap((r) => (r.nexthops ? r.nexthops.map((n) => n.dev ?? '') : [r.dev ?? '']));
}

/** Waits until the kernel routes `prefix` only through `dev` in `ns`; returns the route. */
export async function waitKernelRoute(
  lab: Lab,
  ns: string,
  prefix: string,
  dev: string,
  timeoutMs: number,
): Promise<KernelRoute> {
  let last: KernelRoute[] = [];
  try {
    return await waitFor(
      async () => {
        last = await kernelRoutes(lab, ns, prefix);
        return routeDevs(last).join() === dev ? last[0] : undefined;
      },
      timeoutMs,
      { what: `kernel route ${prefix} dev ${dev} in ${ns}`, intervalMs: 100 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${JSON.stringify(last)}`);
  }
}
