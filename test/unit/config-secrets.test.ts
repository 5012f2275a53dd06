/** `secrets` (keys by peer identity) and wildcard identities in the configuration (issue #13). */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { identityMatches, parseIdentity } from '../../src/ike/identity.js';

const hub = (extra = '', conn = '') => `
connections:
  sites:
    local: 192.0.2.1
    remote: "%any"
    remoteId: "*.sites.example.net"
    start: listen
    localSubnets: [198.18.0.0/16]
    remoteSubnets: [198.19.0.0/16]
${conn}
${extra}`;

function issuesOf(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

t.test('a wildcard connection with keys by identity', async (t) => {
  const c = parseConfig(
    hub(
      'secrets:\n  - { id: site1.sites.example.net, psk: "k1-0123456789" }\n  - { id: "*.sites.example.net", psk: "kk-0123456789" }',
    ),
  );
  t.equal(c.connections.sites!.psk.length, 0, 'no key of its own');
  t.same(
    c.secrets?.map((s) => s.id),
    ['site1.sites.example.net', '*.sites.example.net'],
  );
  t.equal(
    JSON.stringify(c.secrets),
    JSON.stringify(c.secrets?.map((s) => ({ id: s.id, psk: '[redacted]' }))),
    'keys redacted in JSON',
  );
});

t.test('refusals name the field', async (t) => {
  t.ok(issuesOf(hub()).includes('connections.sites.psk: required (psk or pskFile, or top-level secrets)'));
  t.ok(
    issuesOf(hub('secrets:\n  - { id: a.sites.example.net, psk: x }', '    version: 1')).includes(
      'connections.sites.psk: required for IKEv1 (secrets by identity are IKEv2 only)',
    ),
  );
  t.ok(
    issuesOf(hub('secrets:\n  - { id: a.sites.example.net }')).includes(
      'secrets[0].psk: give either psk or pskFile',
    ),
  );
  t.ok(
    issuesOf(hub('secrets:\n  - { id: a.b, psk: x }', '    localId: "*.hub.example.net"')).some((i) =>
      i.includes('a wildcard identity is only valid as remoteId'),
    ),
  );
  t.ok(
    issuesOf(
      hub('secrets:\n  - { id: a.b, psk: x }')
        .replace('start: listen', 'start: initiate')
        .replace('"%any"', '203.0.113.1'),
    ).includes('connections.sites.remoteId: a wildcard identity only answers; set start: listen'),
  );
});

t.test('wildcard identities match names under the suffix only', async (t) => {
  const w = parseIdentity('*.sites.example.net');
  t.ok(identityMatches(w, parseIdentity('site1.sites.example.net')));
  t.ok(identityMatches(w, parseIdentity('A.Sites.Example.NET')), 'case-insensitive');
  t.notOk(identityMatches(w, parseIdentity('.sites.example.net')), 'a name is needed before the suffix');
  t.notOk(identityMatches(w, parseIdentity('sites.example.net')));
  t.notOk(identityMatches(w, parseIdentity('site1.evilsites.example.net')));
  t.notOk(identityMatches(w, parseIdentity('192.0.2.1')), 'another ID type');
  t.notOk(
    identityMatches(parseIdentity('site1.sites.example.net'), parseIdentity('*.sites.example.net')),
    'a received * is a character',
  );
  t.ok(identityMatches(parseIdentity('*@example.net'), parseIdentity('alice@example.net')));
});
