/**
 * The TypeScript face of the native addon (build/Release/twinsec_native.node, built by node-gyp):
 * the loader, and NativeDataPlane, which maps the IKE side's SAs and routes onto the ESP engine.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CreateEngine, EngineOptions, EngineSa, NativeEngine } from './engine-api.js';
import type { ChildSaSpec, DataPlane, Endpoint, ForwardingEntry, SaCounters } from './types.js';

export interface TunHandle {
  /** Non-blocking, close-on-exec file descriptor of the TUN queue. */
  fd: number;
  /** Interface name the kernel gave (equals the requested one unless that was empty). */
  name: string;
}

export interface NativeAddon {
  /** Creates an IFF_TUN|IFF_NO_PI device, sets its MTU and brings it up; throws with errno text. */
  openTun(name: string, mtu: number): TunHandle;
  closeTun(fd: number): void;
  createEngine: CreateEngine;
}

const ADDON = join('build', 'Release', 'twinsec_native.node');

/** The package root: the nearest ancestor of this file holding package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('twinsec: cannot find package root for the native addon');
    dir = up;
  }
}

let cached: NativeAddon | undefined;

/** Loads the addon once; throws a clear error when it was not built (`npm ci` / `node-gyp rebuild`). */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = join(packageRoot(), ADDON);
  if (!existsSync(path))
    throw new Error(`twinsec: native addon missing at ${path}; run "npx node-gyp rebuild"`);
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}

export function openTun(name: string, mtu: number): TunHandle {
  return loadNative().openTun(name, mtu);
}

export function closeTun(fd: number): void {
  loadNative().closeTun(fd);
}

/**
 * The one place a ChildSaSpec becomes an EngineSa: the same fields (selectorRoutes, activate and limits
 * among them, passed through as given), endpoints flattened.
 */
function toEngineSa(sa: ChildSaSpec): EngineSa {
  const { local, remote, ...rest } = sa;
  return {
    ...rest,
    selectorRoutes: sa.selectorRoutes ?? false,
    local: local.address,
    localPort: local.port,
    remote: remote.address,
    remotePort: remote.port,
  };
}

type PeerMovedHandler = (spiIn: number, from: Endpoint) => void;
type SaLimitHandler = (spiIn: number, hard: boolean) => void;

/** The ESP data plane in native threads: packets never reach JavaScript. */
export class NativeDataPlane implements DataPlane {
  readonly engine: NativeEngine;
  #closed = false;
  #onPeerMoved: PeerMovedHandler | undefined;
  #onSaLimit: SaLimitHandler | undefined;

  /**
   * `opts.onPeerMoved` is called as the engine reports; a handler registered later with
   * onPeerMoved() (the daemon builds the data plane before the IKE side) is told as well.
   */
  constructor(opts: EngineOptions) {
    const given = opts.onPeerMoved;
    const givenLimit = opts.onSaLimit;
    this.engine = loadNative().createEngine({
      ...opts,
      onPeerMoved: (spiIn, address, port) => {
        given?.(spiIn, address, port);
        this.#onPeerMoved?.(spiIn, { address, port });
      },
      onSaLimit: (spiIn, hard) => {
        givenLimit?.(spiIn, hard);
        this.#onSaLimit?.(spiIn, hard);
      },
    });
  }

  installSa(sa: ChildSaSpec): void {
    this.engine.installSa(toEngineSa(sa));
  }

  updateSa(spiIn: number, local: Endpoint, remote: Endpoint): boolean {
    return this.engine.updateSa(spiIn, local.address, local.port, remote.address, remote.port);
  }

  /** Replaces any handler registered before. */
  onPeerMoved(handler: PeerMovedHandler): void {
    this.#onPeerMoved = handler;
  }

  /** Replaces any handler registered before (`opts.onSaLimit` is told as well). */
  onSaLimit(handler: SaLimitHandler): void {
    this.#onSaLimit = handler;
  }

  removeSa(spiIn: number): void {
    this.engine.removeSa(spiIn);
  }

  counters(spiIn: number): SaCounters | undefined {
    return this.engine.counters(spiIn);
  }

  setRoutes(routes: ForwardingEntry[]): void {
    this.engine.setRoutes(routes);
  }

  drops(): Record<string, number> {
    return this.engine.drops();
  }

  controlCounters(): Record<string, number> {
    return this.engine.controlCounters();
  }

  injectProbe(connection: string, packet: Buffer): boolean {
    return this.engine.injectProbe(connection, packet);
  }

  watchProbe(icmpId: number, on: boolean): void {
    this.engine.watchProbe(icmpId, on);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.engine.close();
  }
}
