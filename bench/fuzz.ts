/**
 * Long fuzz runs (`npm run fuzz`; a script, not a test): every decoder target of
 * test/fuzz/targets.ts and the daemon's message handling (test/fuzz/manager.ts, IKEv1 and IKEv2),
 * each with N mutated inputs from the strongSwan captures, reporting inputs per second and the
 * outcome. Exits 1 on the first contract breach, printing the input (add it to the tests).
 *
 *   node dist/bench/fuzz.js [--n 10000000] [--seed 1] [--only ikev2-decode,manager-v1]
 */
import { parseArgs } from 'node:util';
import { fuzzManager } from '../test/fuzz/manager.js';
import { FuzzFailure, fuzz, TARGETS } from '../test/fuzz/targets.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '10000000' },
    seed: { type: 'string', default: '1' },
    only: { type: 'string' },
  },
});
const n = Number(values.n);
const seed = Number(values.seed);
const all = [...Object.keys(TARGETS), 'manager-v1', 'manager-v2'];
const chosen = values.only ? values.only.split(',') : all;

let failed = false;
for (const name of chosen) {
  const t0 = process.hrtime.bigint();
  try {
    let line: string;
    if (name.startsWith('manager-')) {
      const o = await fuzzManager(name === 'manager-v1' ? 1 : 2, n, seed);
      line = `internal errors ${o.internal}, SAs kept ${o.kept}, drops ${JSON.stringify(o.drops)}`;
      if (o.internal > 0 || !o.kept) {
        failed = true;
        line += `\n  ${o.samples.join('\n  ')}`;
      }
    } else {
      const o = fuzz(name, n, seed);
      line = `decoded ${o.decoded}, refused ${o.refused}, crashes 0`;
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`${name}: ${n} inputs in ${s.toFixed(1)} s (${Math.round(n / s)}/s): ${line}`);
  } catch (err) {
    failed = true;
    console.log(
      err instanceof FuzzFailure ? `${name}: FAILED ${err.message}` : `${name}: ERROR ${String(err)}`,
    );
  }
}
process.exit(failed ? 1 : 0);
