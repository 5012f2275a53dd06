/**
 * Configuration pieces for IKEv1: `mode` (main/aggressive) belongs to IKEv1 only, and IKEv1
 * connections sharing an identity pair are warned about (an IKEv1 peer's INITIAL-CONTACT for one
 * tunnel deletes the other's SAs).
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';
import { ConfigError } from '../../src/errors.js';
import { config, conn } from '../exchange/pair.js';

const CONN = `
    local: 192.0.2.1
    remote: 203.0.113.1
    psk: "s3cret-psk"
    localSubnets: [198.18.1.0/24]
    remoteSubnets: [198.19.1.0/24]`;

function issuesOf(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

t.test('mode with IKEv2 is refused, naming the field and the fix', async (t) => {
  const issues = issuesOf(`connections:\n  t1:${CONN}\n    mode: main\n`);
  t.same(issues, [
    'connections.t1.mode: IKEv2 has no main or aggressive mode (RFC 7296); remove mode or set version: 1',
  ]);
  t.match(
    issuesOf(`connections:\n  t1:${CONN}\n    mode: quick\n`),
    [/^connections\.t1\.mode: /],
    'an unknown mode',
  );
  const c = parseConfig(`connections:\n  t1:${CONN}\n`).connections.t1!;
  t.equal(c.mode, undefined, 'IKEv2 connections carry no mode');
});

t.test('IKEv1 connections sharing an identity pair are warned about; IKEv2 ones are not', async (t) => {
  const v1 = (name: string, over = {}) => conn(name, { version: 1, mode: 'main', ...over });
  t.same(configWarnings(config([conn('a'), conn('b')])), [], 'IKEv2 copes: no warning');
  t.same(configWarnings(config([v1('a'), v1('b', { local: '192.0.2.9', localId: '192.0.2.1' })])).length, 1);
  t.match(
    configWarnings(config([v1('a'), v1('b', { local: '192.0.2.9', localId: '192.0.2.1' })]))[0],
    /connections\.a, connections\.b/,
  );
  t.same(configWarnings(config([v1('a'), v1('b', { localId: 'gw2.example.net' })])), [], 'own IDs: fine');
  t.same(configWarnings(config([v1('a'), conn('b')])), [], 'one IKEv1 and one IKEv2');
});

t.test('an IKEv1 connection with several subnets is warned about: one pair per IPsec SA', async (t) => {
  const v1 = (name: string, over = {}) => conn(name, { version: 1, mode: 'main', ...over });
  const two = { localSubnets: ['198.18.1.0/24', '198.18.2.0/24'] };
  t.same(configWarnings(config([v1('a')])), [], 'one subnet each way: fine');
  t.same(configWarnings(config([conn('a', two)])), [], 'IKEv2 carries them all in one CHILD_SA');
  t.same(configWarnings(config([v1('a', two)])), [
    'connections.a: IKEv1 negotiates one subnet pair per IPsec SA; only 198.18.1.0/24 <-> 198.19.1.0/24 is used (one connection per subnet pair, or IKEv2)',
  ]);
});
