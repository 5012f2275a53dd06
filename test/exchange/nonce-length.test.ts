/**
 * Security issue #11 item 10c: received nonces must be at least half the PRF's key size and at
 * least 16 bytes (RFC 7296 §2.10). A Random shared by both daemons shortens every 32-byte nonce
 * to 16 bytes on demand: enough for PRF_HMAC_SHA2_256, too short for PRF_HMAC_SHA2_512 (32).
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Random } from '../../src/ike/core/clock.js';
import { conn, mirror, pair, state, until } from './pair.js';

function shortNonces(): Random & { short: boolean } {
  const r = {
    short: true,
    // Nonces are the only 32-byte draws (NONCE_LENGTH); SPIs are 4 or 8 bytes.
    bytes: (n: number): Buffer => randomBytes(r.short && n === 32 ? 16 : n),
    float: () => Math.random(),
  };
  return r;
}

t.test('IKE_SA_INIT: a 16-byte nonce is refused with prfsha512, taken with prfsha256', async (t) => {
  for (const [prf, ok] of [
    ['prfsha512', false],
    ['prfsha256', true],
  ] as const) {
    const c = conn('t1', { ike: { proposals: [`aes256gcm16-${prf}-x25519`], lifetime: 86400 } });
    const p = await pair([c], [mirror(c)], { random: shortNonces() });
    try {
      if (ok) {
        await until(() => state(p.a, 't1') === 'established' && state(p.b, 't1') === 'established');
        t.pass(`${prf}: established with 16-byte nonces`);
      } else {
        await until(() => p.b.failures.length > 0);
        t.equal(p.b.failures[0]!.reason, 'invalid_syntax', `${prf}: the responder refuses the nonce`);
        t.not(state(p.b, 't1'), 'established');
      }
    } finally {
      await p.stop();
    }
  }
});

t.test('CREATE_CHILD_SA: a short nonce in a CHILD_SA rekey is refused', async (t) => {
  const random = shortNonces();
  random.short = false;
  const c = conn('t1', { ike: { proposals: ['aes256gcm16-prfsha512-x25519'], lifetime: 86400 } });
  const p = await pair([c], [mirror(c)], { random });
  t.teardown(p.stop);
  await until(() => state(p.a, 't1') === 'established' && p.b.dp.sas.size === 1 && p.a.dp.sas.size === 1);
  random.short = true;
  const view = p.a.daemon.ike!.sasOf('t1')[0]!;
  const spiIn = [...p.a.dp.sas.keys()][0]!;
  const err = await new Promise<Error | undefined>((resolve) => {
    t.ok(p.a.daemon.ike!.rekeyChild(view, spiIn, resolve), 'rekey started');
  });
  t.ok(err, 'the rekey failed');
  t.ok(
    p.b.failures.some((f) => f.reason === 'invalid_syntax' && /nonce of 16 bytes/.test(f.detail)),
    'the responder refused the short nonce',
  );
  t.equal(p.b.dp.sas.size, 1, 'B installed no new pair');
});
