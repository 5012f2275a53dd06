import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

// PSK handling: pskFile reading and the guarantee that key material never leaks.

const CONN = `
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]`;

const withConn = (extra = '') => `connections:\n  t1:${CONN}\n${extra}`;

function issuesOf(text: string, baseDir: string): string[] {
  try {
    parseConfig(text, { baseDir });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

t.test('pskFile problems name the file, never the content', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'twinsec-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const text = (file: string) => withConn().replace('psk: "s3cret-psk"', `pskFile: ${file}`);

  t.same(issuesOf(text('missing.key'), dir), [
    `connections.t1.pskFile: cannot read '${join(dir, 'missing.key')}' (no such file)`,
  ]);
  t.same(issuesOf(text(dir), dir), [`connections.t1.pskFile: '${dir}' is not a regular file`]);
  writeFileSync(join(dir, 'empty.key'), '\n');
  t.same(issuesOf(text('empty.key'), dir), [`connections.t1.pskFile: '${join(dir, 'empty.key')}' is empty`]);

  writeFileSync(join(dir, 'locked.key'), 'locked-secret-value');
  chmodSync(join(dir, 'locked.key'), 0o000);
  if (process.getuid?.() === 0) t.comment('running as root: unreadable-file case not testable');
  else {
    const issues = issuesOf(text('locked.key'), dir);
    t.same(issues, [`connections.t1.pskFile: cannot read '${join(dir, 'locked.key')}' (permission denied)`]);
  }

  writeFileSync(join(dir, 'crlf.key'), 'crlf-secret\r\n');
  const c = parseConfig(text('crlf.key'), { baseDir: dir });
  t.equal(c.connections.t1!.psk.toString(), 'crlf-secret');
});

t.test('the PSK never appears in errors, JSON or inspect output', async (t) => {
  const secret = 's3cret-psk';
  const c = parseConfig(withConn());
  t.equal(c.connections.t1!.psk.toString(), secret);
  t.notMatch(JSON.stringify(c), secret);
  t.match(JSON.stringify(c), '"psk":"[redacted]"');
  t.notMatch(inspect(c, { depth: 10 }), secret);
  // The Buffer's bytes must not leak through JSON as a byte array either.
  t.notMatch(JSON.stringify(c), /"data":\[/);

  const badTexts = [
    withConn().replace('"s3cret-psk"', '"s3cret-psk'), // unterminated quote: YAML error on the PSK line
    withConn('    pskFile: /nonexistent'),
    withConn().replace('psk: "s3cret-psk"', 'psk: { s3cret-psk: 1 }'),
    withConn().replace('local: 192.0.2.1', 'local: 192.0.2.999'), // valid PSK next to a bad field
  ];
  for (const text of badTexts) {
    let message = '';
    try {
      parseConfig(text);
    } catch (err) {
      message = `${(err as Error).message}\n${inspect(err)}`;
    }
    t.not(message, '', 'rejected');
    t.notMatch(message, secret, 'no secret in error');
  }
});
