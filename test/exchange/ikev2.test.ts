/**
 * IKEv2 exchanges between two in-process daemons over a fake network. Each test names the
 * exchanges it expects on the wire, in order.
 */
import t, { type Test } from 'tap';
import type { ChildSaSpec } from '../../src/dataplane/types.js';
import { A, B, conn, internal, mirror, pair, state, until } from './pair.js';

const INIT_REQ = `IKE_SA_INIT request ${A} -> ${B}`;
const INIT_RESP = `IKE_SA_INIT response ${B} -> ${A}`;
const AUTH_REQ = `IKE_AUTH request ${A} -> ${B}`;
const AUTH_RESP = `IKE_AUTH response ${B} -> ${A}`;

function mirrored(t: Test, x: ChildSaSpec, y: ChildSaSpec): void {
  t.equal(x.spiIn, y.spiOut, 'SPIs mirror');
  t.equal(x.spiOut, y.spiIn, 'SPIs mirror');
  t.same(x.encrKeyOut, y.encrKeyIn, 'encryption keys mirror');
  t.same(x.encrKeyIn, y.encrKeyOut, 'encryption keys mirror');
  t.notSame(x.encrKeyIn, x.encrKeyOut, 'the two directions use different keys');
  t.same(x.integKeyOut, y.integKeyIn, 'integrity keys mirror');
  t.equal(x.encr, y.encr);
  t.equal(x.integ, y.integ);
}

const suites = [
  { ike: 'aes256gcm16-prfsha256-x25519', esp: 'aes256gcm16', encr: 'aes256gcm16', integ: null },
  { ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256', encr: 'aes128', integ: 'sha256' },
  { ike: 'aes256-sha384-ecp384', esp: 'aes256-sha512', encr: 'aes256', integ: 'sha512' },
  { ike: 'aes192-sha1-ecp256', esp: 'aes192-sha1', encr: 'aes192', integ: 'sha1' },
  { ike: 'aes128gcm16-prfsha512-modp3072', esp: 'aes128gcm16', encr: 'aes128gcm16', integ: null },
  // A PFS group in the ESP proposal applies to rekeys; IKE_AUTH negotiates without it.
  { ike: 'aes256gcm16-prfsha384-ecp256', esp: 'aes256gcm16-x25519', encr: 'aes256gcm16', integ: null },
  { ike: 'aes256-sha512-modp4096', esp: 'aes256-sha384-modp2048', encr: 'aes256', integ: 'sha384' },
  // Legacy peers: group 1 (RFC 2409 §6.1) for the IKE SA, HMAC-MD5-96 (RFC 2403) for ESP.
  { ike: 'aes128-sha1-modp768', esp: 'aes128-md5-modp768', encr: 'aes128', integ: 'md5' },
];

for (const s of suites) {
  t.test(`IKE_SA_INIT + IKE_AUTH establish ${s.ike} / ${s.esp}`, async (t) => {
    const c = conn('t1', {
      ike: { proposals: [s.ike], lifetime: 3600 },
      esp: { proposals: [s.esp], lifetime: 600 },
    });
    const p = await pair([c], [mirror(c)]);
    t.teardown(p.stop);
    await until(
      () => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established' && p.b.dp.sas.size === 1,
    );
    t.same(p.net.steps(), [INIT_REQ, INIT_RESP, AUTH_REQ, AUTH_RESP]);
    const [x] = [...p.a.dp.sas.values()];
    const [y] = [...p.b.dp.sas.values()];
    mirrored(t, x!, y!);
    t.equal(x!.encr, s.encr);
    t.equal(x!.integ, s.integ);
    t.same(x!.tsLocal, ['198.18.1.0/24']);
    t.same(y!.tsLocal, ['198.19.1.0/24']);
    t.equal(x!.encapsulation, 'esp', 'no NAT: raw ESP');
    const st = p.a.daemon.status().connections.t1!;
    t.equal(st.children[0]!.spiIn, x!.spiIn.toString(16).padStart(8, '0'));
  });
}

t.test('INVALID_KE_PAYLOAD: the initiator retries with the group the responder asks for', async (t) => {
  const c = conn('t1', { ike: { proposals: ['aes256gcm16-prfsha256-x25519-ecp256'], lifetime: 3600 } });
  const p = await pair(
    [c],
    [mirror(c, { ike: { proposals: ['aes256gcm16-prfsha256-ecp256'], lifetime: 3600 } })],
  );
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  t.same(p.net.steps(), [INIT_REQ, INIT_RESP, INIT_REQ, INIT_RESP, AUTH_REQ, AUTH_RESP]);
  t.equal(p.a.failures.length, 0);
});

t.test('a wrong PSK fails cleanly on both sides and the initiator retries with backoff', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c, { psk: Buffer.from('another secret') })]);
  t.teardown(p.stop);
  await until(() => p.a.failures.length >= 2 && p.b.failures.length >= 2);
  t.equal(p.a.failures[0]!.reason, 'auth_failed');
  t.equal(p.b.failures[0]!.reason, 'auth_failed');
  t.equal(p.a.dp.sas.size, 0);
  t.equal(p.b.dp.sas.size, 0);
  t.not(state(p.b, 't1'), 'established');
  const all = JSON.stringify([p.a.failures, p.b.failures, p.a.events, p.b.events]);
  t.notMatch(all, /correct horse|another secret/, 'no secret in any event');
});

t.test('no common proposal: NO_PROPOSAL_CHOSEN, nothing left behind', async (t) => {
  const c = conn('t1', { start: 'initiate' });
  const p = await pair([c], [mirror(c, { ike: { proposals: ['aes128-sha1-modp2048'], lifetime: 3600 } })]);
  t.teardown(p.stop);
  await until(() => p.a.failures.length >= 1 && p.b.failures.length >= 1);
  t.equal(p.a.failures[0]!.reason, 'no_proposal_chosen');
  t.equal(p.b.daemon.ike!.sasOf('t1').length, 0, 'responder keeps no state');
});

t.test('FQDN identities; a mismatching remoteId fails authentication', async (t) => {
  const c = conn('t1', { localId: 'gw1.example.net', remoteId: 'gw2.example.net' });
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  const c2 = conn('t2', { localId: 'gw1.example.net', remoteId: 'other.example.net' });
  const q = await pair([c2], [mirror(c2, { localId: 'gw2.example.net' })]);
  t.teardown(q.stop);
  await until(() => q.a.failures.length >= 1);
  t.equal(q.a.failures[0]!.reason, 'auth_failed');
});

t.test('USER_FQDN and KEY_ID identities', async (t) => {
  const c = conn('t1', { localId: 'ops@example.net', remoteId: '@#0a0b0c0d' });
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  t.pass('established');
});

t.test('the responder narrows traffic selectors to its configuration', async (t) => {
  const c = conn('t1', { localSubnets: ['198.18.0.0/16'], remoteSubnets: ['198.19.0.0/16'] });
  const p = await pair(
    [c],
    [mirror(c, { localSubnets: ['198.19.1.0/24'], remoteSubnets: ['198.18.1.0/24', '198.18.2.0/24'] })],
  );
  t.teardown(p.stop);
  await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
  const [x] = [...p.a.dp.sas.values()];
  t.same(x!.tsLocal, ['198.18.1.0/24', '198.18.2.0/24']);
  t.same(x!.tsRemote, ['198.19.1.0/24']);
});

t.test('disjoint traffic selectors: TS_UNACCEPTABLE, no CHILD_SA', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c, { remoteSubnets: ['198.18.99.0/24'] })]);
  t.teardown(p.stop);
  await until(() => p.a.failures.some((f) => f.reason === 'ts_unacceptable'));
  t.equal(p.b.dp.sas.size, 0);
});

t.test('a lost IKE_AUTH response: the request is retransmitted and answered from the cache', async (t) => {
  const c = conn('t1');
  let dropped = 0;
  const p = await pair([c], [mirror(c)]);
  p.net.drop = (s) => s.exchange === 35 && s.response && dropped++ === 0;
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established');
  const steps = p.net.steps();
  t.same(steps, [INIT_REQ, INIT_RESP, AUTH_REQ, AUTH_RESP, AUTH_REQ, AUTH_RESP]);
  const responses = p.net.log.filter((s) => s.exchange === 35 && s.response);
  t.same(responses[0]!.data, responses[1]!.data, 'the cached response is resent byte for byte');
  t.equal(p.b.dp.sas.size, 1, 'the responder processed the request once');
});

t.test('shutdown sends DELETE and the peer removes everything', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  await p.a.daemon.stop();
  await until(() => state(p.b, 't1') === 'down' && p.b.dp.sas.size === 0);
  t.match(p.net.steps().slice(-2), [
    `INFORMATIONAL request ${A} -> ${B}`,
    `INFORMATIONAL response ${B} -> ${A}`,
  ]);
});

t.test('an empty INFORMATIONAL (liveness) is answered', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established' && state(p.a, 't1') === 'established');
  const sa = internal(p.a, 't1');
  const alive = await p.a.daemon.ike!.protocol(sa).liveness(sa);
  t.ok(alive);
  t.equal(state(p.b, 't1'), 'established');
});

t.test('garbage and truncated datagrams are dropped and counted, never fatal', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.b, 't1') === 'established');
  const valid = p.net.log[0]!.data;
  const mgr = p.b.daemon.ike!;
  for (let n = 0; n < valid.length; n += 7) {
    mgr.handle({
      data: valid.subarray(0, n),
      local: { address: B, port: 500 },
      remote: { address: A, port: 500 },
    });
  }
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.from(valid);
    junk[28 + (i % (junk.length - 28))] ^= 1 << (i % 8);
    mgr.handle({ data: junk, local: { address: B, port: 500 }, remote: { address: A, port: 500 } });
  }
  const total = [...mgr.dropped.values()].reduce((x, y) => x + y, 0);
  t.ok(total > 0, `dropped ${total}`);
  t.notOk(mgr.dropped.get('internal_error'), 'no internal errors');
  t.equal(state(p.b, 't1'), 'established', 'the established SA is untouched');
});

t.test(
  'encapsulation: udp fakes NAT detection: both sides float to 4500, ESP-in-UDP, keep-alives',
  async (t) => {
    const c = conn('t1', { encapsulation: 'udp' });
    const p = await pair([c], [mirror(c, { encapsulation: 'auto' })]);
    t.teardown(p.stop);
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1);
    t.same(p.net.steps(), [INIT_REQ, INIT_RESP, AUTH_REQ, AUTH_RESP]);
    const auth = p.net.log.filter((s) => s.exchange === 35);
    t.same(
      auth.map((s) => [s.from.port, s.to.port]),
      [
        [4500, 4500],
        [4500, 4500],
      ],
      'IKE_AUTH on port 4500',
    );
    const [x] = [...p.a.dp.sas.values()];
    const [y] = [...p.b.dp.sas.values()];
    t.equal(x!.encapsulation, 'udp');
    t.equal(y!.encapsulation, 'udp', 'the peer saw the (fake) NAT and chose UDP too');
    t.same(x!.remote, { address: B, port: 4500 });
    t.same(y!.remote, { address: A, port: 4500 });
    await until(() => p.a.transport.keepalives.length >= 2);
    t.same(p.a.transport.keepalives[0], { from: { address: A, port: 4500 }, to: { address: B, port: 4500 } });
    t.equal(p.b.transport.keepalives.length, 0, 'the side not behind a NAT sends none');
  },
);

t.test('an authenticated request that breaks the message rules is answered INVALID_SYNTAX', async (t) => {
  const c = conn('t1');
  const p = await pair([c], [mirror(c)]);
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
  const sa = internal(p.a, 't1');
  // An INFORMATIONAL may not carry a KE payload.
  const { PayloadType } = await import('../../src/ike/wire/constants.js');
  const answer = await sa.request(37, [{ type: PayloadType.KE, group: 31, data: Buffer.alloc(32, 1) }]).then(
    (m) => m.payloads.map((x) => (x as { notifyType?: number }).notifyType ?? -1),
    () => [],
  );
  t.same(answer, [7], 'INVALID_SYNTAX (7)');
  t.equal(p.b.daemon.ike!.dropped.get('invalid_syntax'), 1);
  t.equal(state(p.b, 't1'), 'established');
});
