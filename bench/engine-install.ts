/**
 * Cost of SA changes in the native engine against the number of SAs installed (needs root, for the TUN;
 * a script, not a test):
 *
 *   node dist/bench/engine-install.js [--max 10000] [--step 1000]
 *
 * Runs itself again in a fresh network namespace (`unshare -n`, loopback up), so the engine's TUN device
 * and sockets cannot collide with anything on the host. Four scenarios, each on a fresh engine:
 *
 *   distinct    one SA pair per connection (a gateway with many sites), installed up to --max, then
 *               removed again
 *   one-conn    every pair in one connection (many rekeys / many SAs of one connection)
 *   pending     one pair per connection installed with activate false (make-before-break), then
 *               activateSa on each
 *   selector    one pair per connection with selectorRoutes (a hub: each site's tsRemote /24 becomes a
 *               forwarding entry), then removed
 *
 * For each step of --step SAs the mean time of one engine call (installSa, activateSa, removeSa) on the
 * JavaScript thread is printed in microseconds, with the number of SAs installed at the end of the step.
 * Flat columns mean the cost of a change does not grow with the number of SAs. No packets flow, so this is
 * the control path only; keys are one random buffer shared by every SA and never printed.
 *
 * Measured on a shared 2-core machine (µs per call at 1,000 / 10,000 SAs): before the sharded tables
 * (every change copied and re-resolved the whole table) install distinct 439 / 25,388, remove distinct
 * 160 / 24,697, install one-conn 275 / 18,560, activateSa 74,363 / 36,640 (20,000 SAs), install selector
 * 539 / 16,133; after: 100 / 69, 28 / 31, 49 / 39, 36 / 43, 59 / 75.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { EngineSa, NativeEngine } from '../src/dataplane/engine-api.js';
import { loadNative } from '../src/dataplane/native.js';

const { values } = parseArgs({
  options: {
    max: { type: 'string', default: '10000' },
    step: { type: 'string', default: '1000' },
    inner: { type: 'boolean', default: false },
  },
});
const MAX = Number(values.max);
const STEP = Number(values.step);

if (!values.inner) {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    console.error('engine-install: needs root (TUN device, network namespace)');
    process.exit(1);
  }
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(
    'unshare',
    [
      '-n',
      'sh',
      '-c',
      'ip link set lo up && exec "$0" "$@"',
      process.execPath,
      self,
      '--inner',
      '--max',
      String(MAX),
      '--step',
      String(STEP),
    ],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
}

const LOCAL = '127.0.0.1';
const key = randomBytes(20); // aes128gcm16: 16-byte key + 4-byte salt (RFC 4106)

function engine(): NativeEngine {
  return loadNative().createEngine({
    tunName: 'tswbench',
    mtu: 1400,
    nattPort: 4500,
    localAddresses: [LOCAL],
    onIke: () => {},
    onProbe: () => {},
  });
}

/** SA i: inbound SPI 0x10000 + i; its tsRemote is the /24 10.x.y.0 numbered by i. */
function sa(i: number, connection: string, extra: Partial<EngineSa> = {}): EngineSa {
  return {
    connection,
    spiIn: 0x10000 + i,
    spiOut: 0x20000000 + i,
    encr: 'aes128gcm16',
    integ: null,
    encrKeyIn: key,
    encrKeyOut: key,
    integKeyIn: null,
    integKeyOut: null,
    esn: false,
    encapsulation: 'udp',
    local: LOCAL,
    localPort: 4500,
    remote: '127.0.0.2',
    remotePort: 4500,
    tsLocal: ['192.168.0.0/16'],
    tsRemote: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
    ...extra,
  };
}

/**
 * Runs `op(i)` for i in [0, MAX) and returns the mean µs per call of each step of STEP calls; `pre(i)`, if
 * given, runs before each call, untimed.
 */
function timed(op: (i: number) => void, pre?: (i: number) => void): number[] {
  const means: number[] = [];
  for (let from = 0; from < MAX; from += STEP) {
    let ns = 0n;
    for (let i = from; i < from + STEP; i++) {
      pre?.(i);
      const t0 = process.hrtime.bigint();
      op(i);
      ns += process.hrtime.bigint() - t0;
    }
    means.push(Number(ns) / 1000 / STEP);
  }
  return means;
}

const columns: { name: string; means: number[] }[] = [];

{
  const e = engine();
  columns.push({ name: 'install distinct', means: timed((i) => e.installSa(sa(i, `site${i}`))) });
  // Removed newest first, so that step k removes from the same table sizes step k installed into.
  columns.push({ name: 'remove distinct', means: timed((i) => e.removeSa(0x10000 + MAX - 1 - i)).reverse() });
  e.close();
}
{
  const e = engine();
  columns.push({ name: 'install one-conn', means: timed((i) => e.installSa(sa(i, 'hub'))) });
  columns.push({ name: 'remove one-conn', means: timed((i) => e.removeSa(0x10000 + MAX - 1 - i)).reverse() });
  e.close();
}
{
  const e = engine();
  // The first pair of a connection is used at once anyway (it has no other): each connection gets an
  // activated pair first, untimed, so that the timed one really waits for activateSa. Two pairs per
  // connection: twice the SAs of the row's count.
  columns.push({
    name: 'install pending (x2)',
    means: timed(
      (i) => e.installSa(sa(i, `site${i}`, { activate: false })),
      (i) => e.installSa(sa(MAX + i, `site${i}`)),
    ),
  });
  columns.push({ name: 'activateSa', means: timed((i) => e.activateSa(0x10000 + i)) });
  e.close();
}
{
  const e = engine();
  const selector = { selectorRoutes: true };
  columns.push({ name: 'install selector', means: timed((i) => e.installSa(sa(i, `sites|${i}`, selector))) });
  columns.push({
    name: 'remove selector',
    means: timed((i) => e.removeSa(0x10000 + MAX - 1 - i)).reverse(),
  });
  e.close();
}

const width = Math.max(...columns.map((c) => c.name.length)) + 2;
console.log(`mean µs per call, by SAs installed at the end of each step of ${STEP}`);
console.log(['SAs'.padStart(7), ...columns.map((c) => c.name.padStart(width))].join(''));
for (let k = 0; k < MAX / STEP; k++) {
  const n = String((k + 1) * STEP).padStart(7);
  console.log([n, ...columns.map((c) => c.means[k]!.toFixed(1).padStart(width))].join(''));
}
