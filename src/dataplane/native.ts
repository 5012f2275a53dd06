/**
 * The TypeScript face of the native addon (build/Release/twinsec_native.node, built by node-gyp).
 * This issue exposes only the TUN device; the ESP fast path comes next.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
