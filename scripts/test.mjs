#!/usr/bin/env node
/**
 * twinsec's test runner (`npm test`).
 *
 *   1. tsc -p tsconfig.json          type-check and emit dist/ (one check point)
 *   2. biome check src test bench scripts                     (one check point)
 *   3. clang-format --dry-run --Werror native/*.cc native/*.h (one check point)
 *   4. tap over dist/test/{unit,exchange}/**\/*.test.js (parallel), then
 *      dist/test/{interop,lab}/**\/*.test.js with --jobs=1 (network namespaces; need root + strongSwan)
 *
 * Options:
 *   --only unit,exchange   restrict the tap suites (folders under test/); checks always run
 *   --no-checks            skip steps 1–3 (still compiles with tsc so dist/ is fresh)
 *
 * Ends with the line `N passed, N failed` (tap's test points plus the checks) and exits non-zero when
 * anything failed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'node_modules', '.bin');
const SUITES = ['unit', 'exchange', 'interop', 'lab'];
const SERIAL = new Set(['interop', 'lab']);
const TAP_TIMEOUT_S = 600;

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

/** Runs a command with output streamed through; resolves with its exit code and (if asked) its stdout. */
function run(cmd, args, { capture = false } = {}) {
  return new Promise((resolve) => {
    console.log(`\n$ ${[cmd, ...args].map((a) => relative(ROOT, a) || a).join(' ')}`);
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let out = '';
    if (capture) {
      child.stdout.on('data', (d) => {
        out += d;
        process.stdout.write(d);
      });
    }
    child.on('error', (e) => {
      console.error(`${cmd}: ${e.message}`);
      resolve({ code: 127, out });
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), out }));
  });
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
  }

  // 4. tap.
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const parallel = [];
  const serial = [];
  for (const suite of opts.only) {
    const files = testFiles(suite);
    if (SERIAL.has(suite)) {
      if (!isRoot) {
        console.log(
          `\n# SKIP ${suite}: needs root (network namespaces) and strongSwan; ${files.length} file(s) not run`,
        );
        continue;
      }
      serial.push(...files);
    } else {
      parallel.push(...files);
    }
  }
  const tapArgs = ['--disable-coverage', '--reporter=tap', `--timeout=${TAP_TIMEOUT_S}`];
  for (const [files, extra] of [
    [parallel, []],
    [serial, ['--jobs=1']],
  ]) {
    if (files.length === 0) continue;
    const r = await run(join(BIN, 'tap'), [...tapArgs, ...extra, ...files], { capture: true });
    const c = tapCounts(r.out);
    passed += c.pass;
    failed += c.fail;
    skipped += c.skip + c.todo;
    if (c.fail > 0) failures.push(`${c.fail} tap test point(s)`);
    if (!c.found || (r.code !== 0 && c.fail === 0)) {
      failed++;
      failures.push(`tap exited ${r.code}${c.found ? '' : ' without a summary'}`);
    }
  }
  if (parallel.length + serial.length === 0) console.log('\n# no test files found under dist/test');

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
