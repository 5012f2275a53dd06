/**
 * Publishing routes in the operating system's table: a published destination points at the TUN
 * device, so the kernel hands matching packets to the ESP engine. Removing the TUN on shutdown
 * removes these routes with it.
 */
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import { TwinsecError } from '../errors.js';
import type { TwinsecEvents } from '../events.js';

const run = promisify(execFile);

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 5000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new TwinsecError('ERR_ROUTE', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export async function publishRoute(destination: string, tun: string): Promise<void> {
  const family = isIPv6(destination.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'route', 'replace', destination, 'dev', tun, 'proto', 'static']);
}

/** `ip route del` failures that mean the route is not in the table (nothing left to withdraw). */
const ALREADY_ABSENT = /No such process|FIB table does not exist|Cannot find device/;

/**
 * Removes a published route; a route already absent (or its TUN gone) counts as removed. Any other
 * failure (no permission, `ip` timing out) is thrown, so the caller neither reports the route
 * withdrawn nor forgets it is still in the table.
 */
export async function withdrawRoute(destination: string, tun: string): Promise<void> {
  const family = isIPv6(destination.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'route', 'del', destination, 'dev', tun]).catch((err: Error) => {
    if (!ALREADY_ABSENT.test(err.message)) throw err;
  });
}

/** The inside address of a route-based connection's interface (`address/prefix`). */
export async function addInterfaceAddress(address: string, dev: string): Promise<void> {
  const family = isIPv6(address.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'addr', 'replace', address, 'dev', dev]);
}

/** One change of the table or its failure, as the `route-publish` event carries it. */
type PublishReport = TwinsecEvents['route-publish'];

export interface RouteOps {
  publish(destination: string, tun: string): Promise<void>;
  withdraw(destination: string, tun: string): Promise<void>;
}

/** How long a failed publish or withdraw waits before it is tried again (ms). */
export const RETRY_MS = 5000;

/**
 * The published routes of one daemon in the OS table, kept to what the HA layer wants: a route
 * withdrawn by `onAllDown: revoke` goes, and comes back when a next hop is usable. Changes to one
 * destination run in order and only the latest wish counts (a flap during a slow `ip` call ends in
 * the state asked for last). Each change, or its failure, is reported; a failed change is tried
 * again every RETRY_MS while it is still wanted (an `ip` that failed once, e.g. under memory
 * pressure, must not leave a usable route out of the table until the next failover).
 */
export class PublishedRoutes {
  readonly #tun: string;
  readonly #retries = new Map<string, NodeJS.Timeout>();
  #closed = false;
  readonly #report: (e: PublishReport) => void;
  /** Wanted state by destination; `#applied` what the table has (as far as we know). */
  readonly #wanted = new Map<string, boolean>();
  readonly #applied = new Map<string, boolean>();
  readonly #busy = new Map<string, Promise<void>>();
  readonly #ops: RouteOps;
  readonly #retryMs: number;

  constructor(
    tun: string,
    report: (e: PublishReport) => void,
    /** The table's operations (tests inject their own). */
    ops: RouteOps = { publish: publishRoute, withdraw: withdrawRoute },
    retryMs = RETRY_MS,
  ) {
    this.#tun = tun;
    this.#report = report;
    this.#ops = ops;
    this.#retryMs = retryMs;
  }

  /** Records a route published (or not) outside this class, e.g. at start. */
  known(destination: string, published: boolean): void {
    this.#applied.set(destination, published);
    this.#wanted.set(destination, published);
  }

  isPublished(destination: string): boolean {
    return this.#applied.get(destination) ?? false;
  }

  /** Every destination ever asked for. */
  destinations(): string[] {
    return [...this.#wanted.keys()];
  }

  /** Asks for the route to be in the table (true) or not; resolves once the table agrees. */
  set(destination: string, published: boolean): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#wanted.set(destination, published);
    const running = this.#busy.get(destination);
    if (running) return running;
    const run = (async () => {
      for (;;) {
        const want = this.#wanted.get(destination)!;
        // Never published by us: not in the table (the TUN is ours, and new).
        if ((this.#applied.get(destination) ?? false) === want) break;
        try {
          if (want) await this.#ops.publish(destination, this.#tun);
          else await this.#ops.withdraw(destination, this.#tun);
          this.#applied.set(destination, want);
          this.#report({ destination, published: want, ok: true });
        } catch (err) {
          this.#report({ destination, published: want, ok: false, detail: (err as Error).message });
          this.#retryLater(destination);
          break;
        }
      }
    })().finally(() => this.#busy.delete(destination));
    this.#busy.set(destination, run);
    return run;
  }

  #retryLater(destination: string): void {
    if (this.#closed || this.#retries.has(destination)) return;
    const t = setTimeout(() => {
      this.#retries.delete(destination);
      if (!this.#closed) void this.set(destination, this.#wanted.get(destination)!);
    }, this.#retryMs);
    t.unref();
    this.#retries.set(destination, t);
  }

  /** Every change asked for so far, done. */
  async settled(): Promise<void> {
    await Promise.all([...this.#busy.values()]);
  }

  /** No more changes or retries (shutdown: the TUN and its routes go next); waits for those running. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#retries.values()) clearTimeout(t);
    this.#retries.clear();
    await this.settled();
  }
}
