/**
 * A short fuzz run of every target in CI (test/fuzz/: the wire decoders, and the daemon's message
 * handling for IKEv1 and IKEv2 in process); `npm run fuzz` runs millions (bench/fuzz.ts). Fixed
 * seeds: a failure here replays exactly.
 */
import t from 'tap';
import { fuzzManager } from '../fuzz/manager.js';
import { fuzz, TARGETS } from '../fuzz/targets.js';

for (const name of Object.keys(TARGETS)) {
  t.test(`${name}: 30,000 mutated inputs, every one decoded or refused with our error`, async (t) => {
    const o = fuzz(name, 30_000, 20261130);
    t.ok(o.decoded > 0 && o.refused > 0, `decoded ${o.decoded}, refused ${o.refused}`);
  });
}

for (const version of [1, 2] as const) {
  t.test(
    `IKEv${version} message handling: 30,000 mutated datagrams, no internal error, SAs kept`,
    async (t) => {
      const o = await fuzzManager(version, 30_000, 777);
      t.equal(o.internal, 0, `no internal_error drops ${o.samples.join('; ')}`);
      t.ok(o.kept, 'both IKE SAs and their CHILD_SAs are still there');
      t.ok(Object.values(o.drops).reduce((a, b) => a + b, 0) > 20_000, 'the garbage was dropped and counted');
    },
  );
}
