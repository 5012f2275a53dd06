/** Security issue #11 item 10a: a pskFile others can read is warned about (--check, start-up). */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';
import { systemClock, systemRandom } from '../../src/ike/core/clock.js';
import { ConnectionSet } from '../../src/ike/core/connections.js';

const text = (file: string) => `connections:
  t1:
    local: 192.0.2.1
    remote: 203.0.113.1
    pskFile: ${file}
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]
`;

t.test('pskFile mode: owner-only is quiet, group or world access is warned about', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-pskmode-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'peer.key');
  writeFileSync(file, 'a-secret-value\n');
  const warn = (mode: number) => {
    chmodSync(file, mode);
    return configWarnings(parseConfig(text('peer.key'), { baseDir: dir })).filter((w) =>
      w.includes('pskFile'),
    );
  };
  t.same(warn(0o600), [], '0600: no warning');
  t.same(warn(0o400), [], '0400: no warning');
  t.same(warn(0o640), [
    `connections.t1.pskFile: '${file}' is group-readable or writable (mode 0640); chmod 600 it`,
  ]);
  t.same(warn(0o644), [
    `connections.t1.pskFile: '${file}' is world-readable or writable (mode 0644); chmod 600 it`,
  ]);
  const w = warn(0o604).join();
  t.notMatch(w, 'a-secret-value', 'the warning never shows the key');
  t.same(
    configWarnings(parseConfig(text(file).replace(`pskFile: ${file}`, 'psk: inline'), {})),
    [],
    'inline psk: nothing to say',
  );
});

t.test('a chmod of the pskFile alone does not count as a changed connection on reload', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-pskmode-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'peer.key');
  writeFileSync(file, 'a-secret-value\n');
  chmodSync(file, 0o644);
  const before = parseConfig(text('peer.key'), { baseDir: dir });
  chmodSync(file, 0o600);
  const after = parseConfig(text('peer.key'), { baseDir: dir });
  const set = new ConnectionSet(before, systemClock, systemRandom, { base: 1000, max: 1000 });
  t.same(set.reload(after).unchanged, ['t1']);
});
