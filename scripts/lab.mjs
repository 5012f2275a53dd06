#!/usr/bin/env node
/**
 * `npm run lab`: checks the system tools the lab needs and, as root on Debian/Ubuntu, installs the
 * missing ones with apt-get (scripts/setup-tools.mjs); builds twinsec on first use (npm ci: the addon
 * and the TypeScript), then runs the dual-tunnel failover lab (test/lab/ha-demo.ts) with this script's
 * arguments (`npm run lab -- --carrier --svg FILE`: see ha-demo.ts), or with `--bgp` the same topology
 * with route-based tunnels, BGP and BFD through FRR (test/lab/bgp-demo.ts, `--svg FILE` too).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BGP_LAB_TOOLS,
  BUILD_TOOLS,
  ensureTools,
  installCommand,
  LAB_TOOLS,
  missingTools,
  packagesOf,
} from './setup-tools.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bgp = process.argv.includes('--bgp');
const demo = join(root, 'dist', 'test', 'lab', bgp ? 'bgp-demo.js' : 'ha-demo.js');
const addon = join(root, 'build', 'Release', 'twinsec_native.node');

const needsBuild = !existsSync(demo) || !existsSync(addon);
const tools = [...LAB_TOOLS, ...(bgp ? BGP_LAB_TOOLS : []), ...(needsBuild ? BUILD_TOOLS : [])];

if (process.getuid?.() !== 0) {
  console.error('npm run lab needs root (network namespaces, TUN devices): sudo npm run lab');
  const missing = missingTools(tools);
  if (missing.length > 0) {
    const pkgs = packagesOf(missing);
    console.error(`  as root it also installs what is missing (${missing.map((t) => t.tool).join(', ')}),`);
    console.error(`  or install that yourself first:  ${installCommand(pkgs, { sudo: true })}`);
  }
  process.exit(2);
}
if (!ensureTools(tools)) process.exit(2);
if (needsBuild) {
  console.log('first run: building twinsec (npm ci) ...');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const args = process.argv.slice(2).filter((a) => a !== '--bgp');
const r = spawnSync(process.execPath, [demo, ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
