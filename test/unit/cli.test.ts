import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startControlServer } from '../../src/control/server.js';
import type { StatusReport } from '../../src/daemon.js';
import { Lab, labUnavailable } from '../lab/netns.js';

// Compiled to dist/test/unit; the CLIs are in dist/src/cli, fixtures in the source tree.
const TWINSECD = fileURLToPath(new URL('../../src/cli/twinsecd.js', import.meta.url));
const TWINSEC = fileURLToPath(new URL('../../src/cli/twinsec.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a CLI asynchronously (an in-test control server must keep answering meanwhile). */
function run(script: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const REPORT: StatusReport = {
  connections: {
    t1: {
      state: 'established',
      version: 2,
      local: '192.0.2.1',
      remote: '203.0.113.1',
      adminDown: false,
      health: 'up',
      lastRttMs: 0.25,
      children: [
        {
          spiIn: 'c0ffee01',
          spiOut: 'deadbeef',
          bytesIn: 1,
          bytesOut: 2,
          packetsIn: 3,
          packetsOut: 4,
          encr: 'aes256gcm16',
          integ: null,
          encapsulation: 'esp',
          tsLocal: ['198.18.1.0/24'],
          tsRemote: ['198.19.1.0/24'],
        },
      ],
    },
  },
  routes: [
    {
      destination: '198.19.1.0/24',
      active: ['t1'],
      fallback: false,
      onAllDown: 'reserve',
      revoked: false,
      switches: 0,
    },
  ],
  drops: { esp: { replay: 2 }, ike: {} },
};

t.test('twinsecd --check accepts a valid file', async (t) => {
  const r = await run(TWINSECD, ['--check', '--config', join(FIXTURES, 'good.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'configuration OK: 1 connections, 1 routes\n');
  const m = await run(TWINSECD, ['--check', '-c', join(FIXTURES, 'minimal.yaml')]);
  t.equal(m.code, 0, m.stderr);
  t.equal(m.stdout, 'configuration OK: 1 connections, 0 routes\n');
});

t.test('twinsecd --check lists every problem, one per line', async (t) => {
  const file = join(FIXTURES, 'bad.yaml');
  const r = await run(TWINSECD, ['--check', '--config', file]);
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  t.equal(lines[0], `twinsecd: ${file}: 7 problems`);
  t.same(lines.slice(1).sort(), [
    'connections.t1.foo: unknown field',
    'connections.t1.local: invalid IP address',
    "connections.t1.localSubnets[0]: host bits set in '198.18.1.1/24'",
    'connections.t1.psk: required (psk or pskFile, or top-level secrets)',
    'connections.t1.version: must be one of 1, 2',
    "routes[0].via[0].connection: unknown connection 't9'",
    'tun.mtu: must be >= 576',
  ]);
});

t.test('twinsecd usage errors', async (t) => {
  const missing = await run(TWINSECD, ['--check', '--config', '/nonexistent.yaml']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, '/nonexistent.yaml: cannot read (no such file)');
  const noConfig = await run(TWINSECD, ['--check']);
  t.equal(noConfig.code, 2);
  t.match(noConfig.stderr, '--config FILE is required');
  const unknown = await run(TWINSECD, ['--bogus']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /Unknown option '--bogus'/);
  const help = await run(TWINSECD, ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: twinsecd/);
  const version = await run(TWINSECD, ['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout, /^twinsecd \d+\.\d+\.\d+\n$/);
});

t.test('twinsec status against a control server', async (t) => {
  const sock = join(tempDir(t), 'control.sock');
  const server = await startControlServer(sock, { status: () => REPORT });
  t.teardown(() => server.close());

  const json = await run(TWINSEC, ['--socket', sock, 'status', '--json']);
  t.equal(json.code, 0, json.stderr);
  t.equal(json.stdout, `${JSON.stringify(REPORT)}\n`);
  t.same(JSON.parse(json.stdout), REPORT);

  const table = await run(TWINSEC, ['status', '--socket', sock]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /^t1\s+established\s+up\s+0\.25 ms\s+v2\s+192\.0\.2\.1 -> 203\.0\.113\.1$/m);
  t.match(table.stdout, /^t1\s+c0ffee01\s+deadbeef\s+aes256gcm16\s+esp\s+1\/2\s+3\/4\s+/m);
  t.match(table.stdout, /^198\.19\.1\.0\/24\s+t1\s+0$/m);
});

t.test('twinsec errors', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'absent.sock');
  const r = await run(TWINSEC, ['--socket', sock, 'status']);
  t.equal(r.code, 1);
  t.equal(r.stderr, `twinsec: cannot reach twinsecd at ${sock}: no such socket\n`);

  const failing = join(dir, 'failing.sock');
  const server = await startControlServer(failing, {
    status: () => {
      throw new Error('status unavailable');
    },
  });
  t.teardown(() => server.close());
  const f = await run(TWINSEC, ['-s', failing, 'status']);
  t.equal(f.code, 1);
  t.equal(f.stderr, 'twinsec: status unavailable\n');

  t.equal((await run(TWINSEC, ['--socket', sock])).code, 2, 'missing command');
  t.equal((await run(TWINSEC, ['--socket', sock, 'frobnicate'])).code, 2, 'unknown command');
  t.match((await run(TWINSEC, ['--help'])).stdout, /status/);
});

// The daemon creates a real TUN device and ESP sockets: it runs as root in a fresh network namespace.
const daemonSkip = labUnavailable();
t.test(
  'twinsecd runs, serves status and stops on SIGTERM',
  { skip: daemonSkip ? `the daemon needs a network namespace with a TUN device: ${daemonSkip}` : false },
  async (t) => {
    const lab = new Lab(t);
    const ns = await lab.addNamespace('cli');
    const dir = tempDir(t);
    const sock = join(dir, 'run', 'control.sock');
    const cfg = join(dir, 'twinsec.yaml');
    const tun = `tsw${randomBytes(4).toString('hex')}`;
    // Loopback addresses in the namespace and unprivileged ports: no real peer needed.
    const base = 20000 + (process.pid % 20000);
    writeFileSync(
      cfg,
      `tun: { name: ${tun} }
control: { socket: ${sock} }
ports: { ike: ${base}, natt: ${base + 1} }
log: { level: debug }
connections:
  t1:
    local: 127.0.0.1
    remote: 127.0.0.2
    psk: "daemon-test-secret"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
    start: listen
`,
    );
    // `ip netns exec` execs: the child's pid is the daemon's own.
    const child: ChildProcess = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, TWINSECD, '--config', cfg],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const tunExists = async () =>
      (await lab.exec(ns, 'ip', ['link', 'show', 'dev', tun], { check: false })).code === 0;

    const deadline = Date.now() + 10_000;
    while (!existsSync(sock) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.ok(existsSync(sock), 'control socket appears', { stderr });
    if (!existsSync(sock)) return;
    t.ok(await tunExists(), `TUN device ${tun} exists while the daemon runs`);

    const status = await run(TWINSEC, ['--socket', sock, 'status', '--json']);
    t.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as StatusReport;
    t.equal(report.connections.t1?.local, '127.0.0.1');
    t.same(report.routes, []);

    child.kill('SIGTERM');
    t.equal(await exited, 0, 'clean exit on SIGTERM');
    t.notOk(existsSync(sock), 'socket removed on shutdown');
    t.notOk(await tunExists(), `TUN device ${tun} removed on shutdown`);
    t.notMatch(stderr, 'daemon-test-secret', 'PSK never logged');
    // Not a TTY: JSON lines.
    const lines = stderr.trim().split('\n');
    t.ok(
      lines.every((l) => l.startsWith('{')),
      'JSON log lines',
    );
    t.ok(lines.some((l) => /"msg":"twinsecd [^"]* started/.test(l)));
  },
);

t.test('twinsec status pages: --limit, --offset, --connection, --all reach the daemon', async (t) => {
  const sock = join(tempDir(t), 'control.sock');
  const asked: unknown[] = [];
  const server = await startControlServer(sock, {
    status: (args) => {
      asked.push(args ?? null);
      return REPORT;
    },
  });
  t.teardown(() => server.close());
  const ok = async (args: string[]) => {
    const r = await run(TWINSEC, ['-s', sock, 'status', ...args]);
    t.equal(r.code, 0, r.stderr);
    return r;
  };
  await ok(['--json']);
  await ok([]);
  await ok(['--all']);
  await ok(['--connection', 't1', '--limit', '100', '--offset', '200']);
  await ok(['--json', '--limit', '5']);
  t.same(asked, [null, { limit: 20 }, null, { connection: 't1', limit: 100, offset: 200 }, { limit: 5 }]);
  const bad = async (args: string[], message: RegExp) => {
    const r = await run(TWINSEC, ['-s', sock, ...args]);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message);
  };
  await bad(['status', '--limit', 'ten'], /--limit needs a non-negative integer/);
  await bad(['status', '--all', '--limit', '3'], /--all and --limit exclude each other/);
  await bad(['routes', '--limit', '3'], /--limit is only valid with status/);
});
