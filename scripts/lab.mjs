#!/usr/bin/env node
/**
 * `npm run lab`: builds twinsec on first use (npm ci: the addon and the TypeScript), checks the
 * few system tools the lab needs, then runs the dual-tunnel failover lab (test/lab/ha-demo.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const demo = join(root, 'dist', 'test', 'lab', 'ha-demo.js');
const addon = join(root, 'build', 'Release', 'twinsec_native.node');

if (process.getuid?.() !== 0) {
  console.error('npm run lab needs root (network namespaces, TUN devices): sudo npm run lab');
  process.exit(2);
}
const missing = ['ip', 'iptables', 'ping'].filter(
  (t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0,
);
if (missing.length) {
  console.error(`missing tools: ${missing.join(', ')}; install them with`);
  console.error('  apt-get install -y iproute2 iptables iputils-ping');
  process.exit(2);
}
if (!existsSync(demo) || !existsSync(addon)) {
  console.log('first run: building twinsec (npm ci) ...');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const r = spawnSync(process.execPath, [demo, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
