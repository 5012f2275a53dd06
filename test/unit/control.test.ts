import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { call, request } from '../../src/control/client.js';
import { formatStatus } from '../../src/control/format.js';
import {
  ControlError,
  ControlUnreachableError,
  LineSplitter,
  parseRequest,
  statusOptions,
} from '../../src/control/protocol.js';
import { type ControlHandlers, startControlServer } from '../../src/control/server.js';
import type { StatusReport } from '../../src/daemon.js';

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
          spiIn: '0xc0ffee01',
          spiOut: '0xdeadbeef',
          bytesIn: 1024,
          bytesOut: 2048,
          packetsIn: 10,
          packetsOut: 20,
          encr: 'aes256gcm16',
          integ: null,
          encapsulation: 'udp',
          tsLocal: ['198.18.1.0/24'],
          tsRemote: ['198.19.1.0/24'],
        },
      ],
    },
    t2: {
      state: 'down',
      version: 1,
      local: '192.0.2.1',
      remote: '203.0.113.2',
      adminDown: true,
      health: 'down',
      lastRttMs: null,
      children: [],
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

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-ctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const handlers: ControlHandlers = {
  status: () => REPORT,
  echo: (args) => args,
  boom: () => {
    throw new Error('handler failed');
  },
  slow: async () => {
    await new Promise((r) => setTimeout(r, 30));
    return 'slow';
  },
};

/** Sends raw bytes and collects `n` response lines. */
function raw(path: string, data: string, n: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(data));
    s.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n').filter(Boolean);
      if (lines.length >= n) {
        s.destroy();
        resolve(lines.map((l) => JSON.parse(l)));
      }
    });
    s.on('error', reject);
    s.on('close', () =>
      resolve(
        buf
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      ),
    );
  });
}

t.test('status round trip over a real unix socket; 0700 dir, 0600 socket', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'run', 'twinsec', 'control.sock');
  const server = await startControlServer(path, handlers);
  t.teardown(() => server.close());
  t.ok(lstatSync(path).isSocket());
  t.equal(lstatSync(path).mode & 0o777, 0o600, 'socket is 0600');
  t.equal(statSync(join(dir, 'run', 'twinsec')).mode & 0o777, 0o700, 'created parent is 0700');

  t.same(await call(path, 'status'), REPORT);
  t.same(await call(path, 'echo', { a: [1, 2] }), { a: [1, 2] });
  t.same(await request(path, 'status'), { id: 1, ok: true, result: REPORT });
  await t.rejects(call(path, 'boom'), new ControlError('handler failed'));
  await t.rejects(call(path, 'nope'), { message: "unknown command 'nope'" });
  await t.rejects(call(path, 'toString'), { message: "unknown command 'toString'" }, 'no prototype lookups');
});

t.test('malformed requests get an error response and the server keeps serving', async (t) => {
  const path = join(tempDir(t), 'c.sock');
  const server = await startControlServer(path, handlers);
  t.teardown(() => server.close());

  const res = await raw(
    path,
    'not json\n[1,2]\n{"id":5}\n{"id":{},"cmd":"status"}\n\n{"id":"x","cmd":"echo","args":7}\n{"cmd":"status"}\n',
    6,
  );
  t.same(res[0], { ok: false, error: 'malformed request: not JSON' });
  t.same(res[1], { ok: false, error: 'malformed request: expected a JSON object' });
  t.same(res[2], { id: 5, ok: false, error: 'malformed request: cmd must be a non-empty string' });
  t.same(res[3], { ok: false, error: 'malformed request: id must be a string or number' });
  t.same(res[4], { id: 'x', ok: true, result: 7 });
  t.same(res[5], { ok: true, result: REPORT });

  const long = await raw(path, 'x'.repeat(70 * 1024), 1);
  t.match(long[0], { ok: false, error: /line longer than/ });
  t.same(await call(path, 'status'), REPORT, 'still serving');
});

t.test('pipelined requests are answered in order', async (t) => {
  const path = join(tempDir(t), 'c.sock');
  const server = await startControlServer(path, handlers);
  t.teardown(() => server.close());
  const res = await raw(path, '{"id":1,"cmd":"slow"}\n{"id":2,"cmd":"echo","args":"fast"}\n', 2);
  t.same(res, [
    { id: 1, ok: true, result: 'slow' },
    { id: 2, ok: true, result: 'fast' },
  ]);
});

t.test('socket file lifecycle: stale removed, live refused, removed on close', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'c.sock');

  // A SIGKILLed process leaves its socket file behind: exactly the stale case.
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
  ]);
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.ok(existsSync(path), 'stale socket left behind');

  const server = await startControlServer(path, handlers);
  t.same(await call(path, 'status'), REPORT, 'took over the stale path');
  await t.rejects(startControlServer(path, handlers), { code: 'ERR_CONTROL', message: /in use/ });
  t.same(await call(path, 'status'), REPORT, 'first server unaffected');
  await server.close();
  t.notOk(existsSync(path), 'removed on close');
  await server.close(); // idempotent

  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'data');
  await t.rejects(startControlServer(file, handlers), { message: /is not a socket/ });
  t.ok(existsSync(file), 'a regular file is never deleted');
});

t.test('client reports an unreachable daemon clearly', async (t) => {
  const path = join(tempDir(t), 'absent.sock');
  const err = await request(path, 'status').catch((e: unknown) => e);
  t.type(err, ControlUnreachableError);
  t.equal((err as Error).message, `cannot reach twinsecd at ${path}: no such socket`);
});

t.test('protocol helpers', async (t) => {
  t.same(parseRequest('{"id":1,"cmd":"status"}'), { cmd: 'status', id: 1 });
  t.same(parseRequest('{"cmd":"up","args":{"name":"t1"}}'), { cmd: 'up', args: { name: 't1' } });
  t.same(parseRequest('{"id":1,"cmd":""}'), {
    id: 1,
    error: 'malformed request: cmd must be a non-empty string',
  });
  const ls = new LineSplitter(8);
  t.same(ls.push('ab'), []);
  t.same(ls.push('c\r\nde\n\nf'), ['abc', 'de']);
  t.throws(() => ls.push('123456789'), { message: /longer than 8/ });
});

t.test('formatStatus renders connections, children and routes', async (t) => {
  const text = formatStatus(REPORT);
  t.match(text, /^CONNECTION\s+STATE\s+HEALTH\s+RTT\s+IKE\s+LOCAL -> REMOTE$/m);
  t.match(text, /^t1\s+established\s+up\s+0\.25 ms\s+v2\s+192\.0\.2\.1 -> 203\.0\.113\.1$/m);
  t.match(text, /^t2\s+down \(admin\)\s+down\s+-\s+v1\s+192\.0\.2\.1 -> 203\.0\.113\.2$/m);
  t.match(
    text,
    /^t1\s+0xc0ffee01\s+0xdeadbeef\s+aes256gcm16\s+udp\s+1024\/2048\s+10\/20\s+198\.18\.1\.0\/24 <-> 198\.19\.1\.0\/24$/m,
  );
  t.match(text, /^198\.19\.1\.0\/24\s+t1\s+0$/m);
  t.match(text, /^dropped: ESP replay=2; IKE none$/m);
  t.match(
    formatStatus({ connections: {}, routes: [], drops: { esp: {}, ike: {} } }),
    /no connections\n\nno routes/,
  );
});

t.test('formatStatus summarises a hub connection and pages its CHILD SAs', async (t) => {
  const child = REPORT.connections.t1!.children[0]!;
  const hub: StatusReport = {
    connections: {
      sites: {
        ...REPORT.connections.t1!,
        remote: '%any',
        ikeSas: { established: 9998, connecting: 2, deleting: 0 },
        childrenTotal: 9998,
        children: Array.from({ length: 25 }, (_, i) => ({ ...child, peer: `100.64.0.${i}:4500` })),
      },
    },
    routes: [],
    drops: { esp: {}, ike: {} },
    eventLoop: { lagP50Ms: 0.1, lagP99Ms: 2.5, lagMaxMs: 12, windowSeconds: 10 },
  };
  const text = formatStatus(hub, { limit: 20 });
  t.match(
    text,
    /^sites: 10000 IKE SAs \(9998 established, 2 connecting, 0 deleting\), 9998 CHILD SAs$/m,
    'counts by state',
  );
  t.equal(text.match(/^sites\s+0xc0ffee01/gm)?.length, 20, 'at most the limit of entries');
  t.match(text, /^sites\s+0xc0ffee01\s.*\s100\.64\.0\.0:4500$/m, 'each with its peer');
  t.match(
    text,
    /^sites: CHILD SAs 1-20 of 9998 shown; next: twinsec status --connection sites --offset 20 --limit 100 \(or --all\)$/m,
    'how to see more',
  );
  t.match(formatStatus(hub, { offset: 9990, limit: 100 }), /^sites: CHILD SAs 9991-10015 of 9998 shown/m);
  t.match(text, /^event loop lag: p99 2\.5 ms, max 12\.0 ms \(last 10 s\)$/m);
  t.notMatch(formatStatus(REPORT), /IKE SAs|shown/, 'a single tunnel needs no summary');
});

t.test('statusOptions checks the status command arguments', async (t) => {
  t.same(statusOptions(undefined), {});
  t.same(statusOptions({ connection: 'sites', limit: 20, offset: 0 }), {
    connection: 'sites',
    limit: 20,
    offset: 0,
  });
  t.throws(() => statusOptions({ limit: -1 }), /limit must be a non-negative integer/);
  t.throws(() => statusOptions({ offset: 1.5 }), /offset must be a non-negative integer/);
  t.throws(() => statusOptions({ connection: 3 }), /connection must be a string/);
  t.throws(() => statusOptions([1]), /args must be an object/);
});
