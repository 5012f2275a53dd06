/**
 * The health-check policies in the configuration (routes[].onAllDown, healthCheck.resetAfter): what
 * `--check` warns about, and its summary line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';

const conn = (name: string, local: string, extra = '') => `
  ${name}:
    local: ${local}
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
    healthCheck: { source: 198.18.1.1, destination: 198.19.1.1 }${extra}`;

const yaml = (route: string, extra = '') =>
  `connections:${conn('t1', '192.0.2.1', extra)}${conn('t2', '198.51.100.1')}
routes:
  - destination: 198.19.1.0/24
    via: [ { connection: t1, weight: 100 }, { connection: t2, weight: 0 } ]
${route}`;

t.test('revoke without publish and resets of a listening connection are warned about', async (t) => {
  t.same(
    configWarnings(parseConfig(yaml('    publish: true\n    onAllDown: revoke\n'))),
    [],
    'published revoke',
  );
  t.same(configWarnings(parseConfig(yaml(''))), [], 'defaults: reserve, initiating connections');
  t.same(configWarnings(parseConfig(yaml('    onAllDown: revoke\n'))), [
    'routes[0].onAllDown: revoke without publish: while 198.19.1.0/24 is withdrawn, what the host routes ' +
      'into twinsec0 for it is dropped (publish: true lets the OS table fall back to another path)',
  ]);
  t.match(configWarnings(parseConfig(yaml('', '\n    start: listen'))), [
    /^connections\.t1\.healthCheck\.resetAfter: with start: listen a reset only deletes the SAs/,
  ]);
  t.same(
    configWarnings(
      parseConfig(
        yaml('', '\n    start: listen').replace(
          'destination: 198.19.1.1 }\n    start: listen',
          'destination: 198.19.1.1, resetAfter: 0 }\n    start: listen',
        ),
      ),
    ),
    [],
    'resetAfter 0 on a listening connection: nothing to warn about',
  );
});

t.test('twinsecd --check summarises the policies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, yaml('    publish: true\n    onAllDown: revoke\n'));
  const cli = join(import.meta.dirname, '../../src/cli/twinsecd.js');
  const r = spawnSync(process.execPath, [cli, '--check', '--config', file], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout,
    'configuration OK: 2 connections, 1 routes (1 withdrawn while every next hop is down), 2 health checks (2 resetting the SA when failing)\n',
  );
  writeFileSync(file, yaml('    onAllDown: sometimes\n'));
  const bad = spawnSync(process.execPath, [cli, '--check', '--config', file], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.match(bad.stderr, /routes\[0\]\.onAllDown: must be one of reserve, revoke$/m);
});
