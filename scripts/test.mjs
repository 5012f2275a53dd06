#!/usr/bin/env node
/**
 * twinsec's test runner (`npm test`).
 *
 *   1. tsc -p tsconfig.json          type-check and emit dist/ (one check point)
 *   2. biome check src test bench scripts                     (one check point)
 *   3. clang-format --dry-run --Werror native/*.cc native/*.h (one check point)
 *   4. native/test, standalone against the system libcrypto (libssl-dev) into native/test/build:
 *      esp_test built with g++ -Wall -Wextra -Werror and run           (one check point)
 *      fuzz_decap_driver: FUZZ_RUNS generated inputs, fixed seed, ~1 s (one check point)
 *      (the sanitizer build and the rest of native/test/run.sh are not part of npm test)
 *   5. tap over dist/test/{unit,exchange}/**\/*.test.js (parallel), then
 *      dist/test/{interop,lab}/**\/*.test.js (network namespaces; need root + strongSwan): the PAIRED
 *      ones two at a time, then the rest with --jobs=1
 *
 * Options:
 *   --only unit,exchange   restrict the tap suites (folders under test/); checks always run
 *   --no-checks            skip steps 1–4 (still compiles with tsc so dist/ is fresh)
 *
 * Skips: every skipped test (tap `# SKIP`, and each file of a suite skipped for lack of root) is printed
 * with its reason. Under CI (CI set, and not 0/false/no), a skip fails the run unless test/skips.json
 * lists it with the reason it is accepted; see scripts/tap-skips.mjs for the pattern syntax.
 *
 * Ends with the line `N passed, N failed` (tap's test points plus the checks) and exits non-zero when
 * anything failed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allowFor, loadAllowlist, parseTapSkips, skipName, sourceName } from './tap-skips.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'node_modules', '.bin');
const SUITES = ['unit', 'exchange', 'interop', 'lab'];
const SERIAL = new Set(['interop', 'lab']);
/**
 * Namespace tests that may run two at a time: each asserts protocol states, SPIs and pings with
 * margins of seconds, uses little CPU (a handshake now and then, a few pings a second) and shares
 * nothing with another test but the machine (every namespace, charon and twinsecd is its own). The
 * others stay alone: throughput (iperf), floods, the sub-second failover and carrier timings,
 * capture windows timed to the keep-alive interval (ikev1-nat), no echo lost at 50/s through
 * rekeys (rekey*: a neighbour's CPU bursts cost them an echo), hundreds of tunnels. Pairing these
 * saves about three minutes of CI.
 */
const PAIRED = new Set([
  'interop/aliyun-v1.test.js',
  'interop/cli-ops.test.js',
  'interop/harness-selftest.test.js',
  'interop/ikev1-3des.test.js',
  'interop/ikev1-aggressive.test.js',
  'interop/ikev1-dpd.test.js',
  'interop/ikev1-legacy.test.js',
  'interop/ikev1.test.js',
  'interop/ikev2.test.js',
  'interop/metrics.test.js',
  'interop/nat-rebind.test.js',
  'interop/reset.test.js',
  'interop/restart.test.js',
]);
const TAP_TIMEOUT_S = 600;
const SKIPS_FILE = join('test', 'skips.json');
/** Inputs for the standalone fuzz run: about 1 s. The driver's generator has a fixed seed (reproducible). */
const FUZZ_RUNS = 200_000;
const NATIVE_BUILD_TIMEOUT_S = 300;
const NATIVE_RUN_TIMEOUT_S = 120;

function parseArgs(argv) {
  const opts = { only: SUITES, checks: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only' || a.startsWith('--only=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!v) throw new Error('--only needs a list, e.g. --only unit,exchange');
      opts.only = v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const s of opts.only)
        if (!SUITES.includes(s)) throw new Error(`unknown suite ${s} (${SUITES.join(', ')})`);
    } else if (a === '--no-checks') {
      opts.checks = false;
    } else if (a === '-h' || a === '--help') {
      console.log('usage: node scripts/test.mjs [--only unit,exchange,interop,lab] [--no-checks]');
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  return opts;
}

const show = (cmd, args) => `$ ${[cmd, ...args].map((a) => relative(ROOT, a) || a).join(' ')}`;

/**
 * Runs a command with output streamed through; resolves with its exit code and (if asked) its stdout.
 * `quiet`: nothing is printed, stdout and stderr are collected into `out` instead. `timeoutS`: killed
 * (SIGKILL) after that many seconds, code 124.
 */
function run(cmd, args, { capture = false, quiet = false, timeoutS = 0 } = {}) {
  return new Promise((resolve) => {
    if (!quiet) console.log(`\n${show(cmd, args)}`);
    const pipe = capture || quiet ? 'pipe' : 'inherit';
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', pipe, quiet ? 'pipe' : 'inherit'] });
    let out = '';
    let timedOut = false;
    let spawnFailed = false;
    const timer =
      timeoutS > 0
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, timeoutS * 1000)
        : undefined;
    child.stdout?.on('data', (d) => {
      out += d;
      if (!quiet) process.stdout.write(d);
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    child.on('error', (e) => {
      spawnFailed = true;
      out += `${cmd}: ${e.message}\n`;
      if (!quiet) console.error(`${cmd}: ${e.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        out += `${cmd}: timed out after ${timeoutS} s\n`;
        if (!quiet) console.error(`${cmd}: timed out after ${timeoutS} s`);
        resolve({ code: 124, out });
      } else if (spawnFailed) {
        resolve({ code: 127, out });
      } else {
        resolve({ code: code ?? (signal ? 128 : 127), out });
      }
    });
  });
}

/** Hints for a native build that failed for lack of a tool or library. */
function buildHint(out) {
  if (/openssl\/\S+: No such file|cannot find -lcrypto/.test(out))
    return 'OpenSSL headers/library missing: apt-get install -y libssl-dev';
  if (/g\+\+: (?:not found|No such file)|make: g\+\+: /.test(out))
    return 'g++ missing: apt-get install -y g++';
  if (/^make: .*(?:ENOENT|not found)/m.test(out)) return 'make missing: apt-get install -y make';
  return '';
}

/**
 * Step 4: native/test's esp_test and a short fuzz run, one check point each. Both binaries are built at
 * once (two independent g++ runs; make skips them when up to date), their output shown per step.
 */
async function nativeChecks(check) {
  const dir = join('native', 'test');
  if (!existsSync(join(ROOT, dir, 'Makefile'))) return;
  const steps = [
    {
      target: 'esp_test',
      args: [],
      name: 'native/test esp_test (g++ -Wall -Wextra -Werror, system libcrypto)',
    },
    {
      target: 'fuzz_decap_driver',
      args: ['-n', String(FUZZ_RUNS)],
      name: `native/test fuzz_decap_driver -n ${FUZZ_RUNS} (fixed seed)`,
    },
  ];
  const started = Date.now();
  const makeArgs = (target) => ['-s', '-C', dir, 'OUT=build', `build/${target}`];
  const builds = await Promise.all(
    steps.map((s) => run('make', makeArgs(s.target), { quiet: true, timeoutS: NATIVE_BUILD_TIMEOUT_S })),
  );
  for (const [i, s] of steps.entries()) {
    const b = builds[i];
    console.log(`\n${show('make', makeArgs(s.target))}`);
    if (b.out) process.stdout.write(b.out);
    if (b.code !== 0) {
      const hint = buildHint(b.out);
      console.log(`# building ${s.target} failed (exit ${b.code})${hint ? `: ${hint}` : ''}`);
      check(s.name, false);
      continue;
    }
    const r = await run(join(ROOT, dir, 'build', s.target), s.args, { timeoutS: NATIVE_RUN_TIMEOUT_S });
    check(s.name, r.code === 0);
  }
  console.log(`# native/test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const ciMode = () => !!process.env.CI && !/^(0|false|no)$/i.test(process.env.CI);

/**
 * Prints each skip with its reason; under CI, an unlisted skip is a failed check point. Returns the
 * number of failures.
 */
function reportSkips(skips, ci) {
  const allow = loadAllowlist(join(ROOT, SKIPS_FILE));
  let failures = 0;
  console.log('');
  if (allow.error) {
    console.log(`not ok - ${SKIPS_FILE}: ${allow.error}`);
    failures++;
  }
  if (skips.length === 0) return failures;
  console.log(`# ${skips.length} skipped (${ci ? `CI: each must be listed in ${SKIPS_FILE}` : 'not CI'}):`);
  const used = new Set();
  for (const s of skips) {
    const entry = allowFor(s, allow.entries);
    const what = `${skipName(s)}: ${s.reason || '(no reason given)'}`;
    if (entry) {
      used.add(entry[0]);
      console.log(`# SKIP ${what}\n#   allowed by ${SKIPS_FILE} "${entry[0]}": ${entry[1]}`);
    } else if (ci) {
      console.log(`not ok - skipped, not listed in ${SKIPS_FILE}: ${what}`);
      failures++;
    } else {
      console.log(`# SKIP ${what}\n#   not listed in ${SKIPS_FILE}: would fail under CI=true`);
    }
  }
  for (const [pattern] of allow.entries)
    if (!used.has(pattern)) console.log(`# ${SKIPS_FILE} "${pattern}" matched no skip in this run`);
  return failures;
}

/** dist/test/<suite>/**\/*.test.js whose test/<suite>/**\/*.test.ts source still exists (no stale output). */
function testFiles(suite) {
  const files = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.test.js')) {
        const src = join(ROOT, relative(join(ROOT, 'dist'), p)).replace(/\.js$/, '.ts');
        if (existsSync(src)) files.push(relative(ROOT, p));
      }
    }
  };
  walk(join(ROOT, 'dist', 'test', suite));
  return files.sort();
}

/** Reads tap's closing summary `# { total: N, pass: N, fail: N, skip: N, todo: N }`. */
function tapCounts(out) {
  const lines = out.split('\n').filter((l) => /^# \{.*total:/.test(l));
  const last = lines.at(-1) ?? '';
  const get = (k) => Number(new RegExp(`\\b${k}: (\\d+)`).exec(last)?.[1] ?? 0);
  return {
    found: last !== '',
    total: get('total'),
    pass: get('pass'),
    fail: get('fail'),
    skip: get('skip'),
    todo: get('todo'),
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failures = [];
  const check = (name, ok) => {
    if (ok) passed++;
    else {
      failed++;
      failures.push(name);
    }
    console.log(`${ok ? 'ok' : 'not ok'} - ${name}`);
  };

  // 1. Type-check + emit (tsc still emits on type errors, so the tests below run either way).
  const tsc = await run(join(BIN, 'tsc'), ['-p', 'tsconfig.json']);
  if (opts.checks) check('tsc -p tsconfig.json', tsc.code === 0);

  if (opts.checks) {
    // 2. Lint + format of TS/JS.
    const dirs = ['src', 'test', 'bench', 'scripts'].filter((d) => existsSync(join(ROOT, d)));
    const biome = await run(join(BIN, 'biome'), ['check', ...dirs]);
    check(`biome check ${dirs.join(' ')}`, biome.code === 0);

    // 3. Format of the native sources.
    const nativeDir = join(ROOT, 'native');
    const natives = existsSync(nativeDir)
      ? readdirSync(nativeDir)
          .filter((f) => /\.(cc|h)$/.test(f))
          .map((f) => join('native', f))
      : [];
    if (natives.length > 0) {
      const cf = await run('clang-format', ['--dry-run', '--Werror', ...natives]);
      check('clang-format --dry-run --Werror native/*.cc native/*.h', cf.code === 0);
    }

    // 4. The native ESP code's own tests and a short fuzz run.
    await nativeChecks(check);
  }

  // 5. tap.
  const ci = ciMode();
  const skips = [];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const parallel = [];
  const paired = [];
  const serial = [];
  for (const suite of opts.only) {
    const files = testFiles(suite);
    if (SERIAL.has(suite)) {
      if (!isRoot) {
        const reason = 'needs root (network namespaces) and strongSwan';
        console.log(`\n# SKIP ${suite}: ${reason}; ${files.length} file(s) not run`);
        for (const f of files)
          skips.push({ file: sourceName(f), path: [], reason: `suite ${suite} ${reason}` });
        continue;
      }
      for (const f of files) {
        const name = relative(join(ROOT, 'dist', 'test'), f);
        (PAIRED.has(name) ? paired : serial).push(f);
      }
    } else {
      parallel.push(...files);
    }
  }
  const tapArgs = ['--disable-coverage', '--reporter=tap', `--timeout=${TAP_TIMEOUT_S}`];
  for (const [files, extra] of [
    [parallel, []],
    [paired, ['--jobs=2']],
    [serial, ['--jobs=1']],
  ]) {
    if (files.length === 0) continue;
    const r = await run(join(BIN, 'tap'), [...tapArgs, ...extra, ...files], { capture: true });
    const c = tapCounts(r.out);
    const found = parseTapSkips(r.out);
    skips.push(...found);
    if (c.found && found.length !== c.skip) {
      // A skip the parser could not attribute must not slip through under CI.
      console.log(`# tap counted ${c.skip} skip(s), ${found.length} found in its output`);
      if (ci && found.length < c.skip) {
        failed++;
        failures.push(`${c.skip - found.length} skip(s) not attributed to a test`);
      }
    }
    passed += c.pass;
    failed += c.fail;
    skipped += c.skip + c.todo;
    if (c.fail > 0) failures.push(`${c.fail} tap test point(s)`);
    if (!c.found || (r.code !== 0 && c.fail === 0)) {
      failed++;
      failures.push(`tap exited ${r.code}${c.found ? '' : ' without a summary'}`);
    }
  }
  if (parallel.length + paired.length + serial.length === 0)
    console.log('\n# no test files found under dist/test');

  const skipFailures = reportSkips(skips, ci);
  if (skipFailures > 0) {
    failed += skipFailures;
    failures.push(`${skipFailures} skip(s) not allowed under CI (${SKIPS_FILE})`);
  }

  console.log('');
  if (failures.length > 0) console.log(`# failed: ${failures.join('; ')}`);
  if (skipped > 0) console.log(`# skipped/todo: ${skipped}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((e) => {
  // stdout only, so the message stays before the closing line.
  console.log(e instanceof Error ? e.message : e);
  console.log('0 passed, 1 failed');
  process.exitCode = 2;
});
