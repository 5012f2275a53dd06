/**
 * The daemon's message handling in process as a fuzz target: two daemons (test/exchange/pair.ts)
 * with an established IKE SA and CHILD_SA, then mutated copies of every datagram they exchanged
 * (so cookies and SPIs are real and inputs reach past the SA lookup, into decryption and the
 * exchanges) delivered to either side. The contract: nothing escapes as an exception, no drop is
 * counted as `internal_error` (the core's name for an error that is not ours), and the SAs and
 * their CHILD_SAs are still there at the end.
 */
import type { ConnectionConfig } from '../../src/config/types.js';
import { conn, mirror, pair, type Side, until } from '../exchange/pair.js';
import { mutate, prng } from './targets.js';

export interface ManagerOutcome {
  inputs: number;
  drops: Record<string, number>;
  internal: number;
  /** The first few internal errors, with the input that caused each. */
  samples: string[];
  kept: boolean;
}

function settings(version: 1 | 2): ConnectionConfig {
  return version === 1
    ? conn('t1', {
        version: 1,
        mode: 'main',
        ike: { proposals: ['aes128-sha1-modp1024'], lifetime: 86_400 },
        esp: { proposals: ['aes128-sha1-modp1024'], lifetime: 3600 },
      })
    : conn('t1', { ike: { proposals: ['aes128-sha256-modp2048'], lifetime: 86_400 } });
}

const pairs = (s: Side) => [...s.dp.sas.keys()].sort().join();

async function rekey(s: Side): Promise<void> {
  const view = s.daemon.ike!.sasOf('t1').find((v) => v.phase === 'established')!;
  await new Promise<void>((resolve, reject) => {
    if (!s.daemon.ike!.rekeyChild(view, view.children[0]!.spiIn, (e) => (e ? reject(e) : resolve())))
      reject(new Error('rekey refused'));
  });
}

export async function fuzzManager(version: 1 | 2, n: number, seed: number): Promise<ManagerOutcome> {
  const c = settings(version);
  const p = await pair([c], [mirror(c)]);
  try {
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 5000);
    await rekey(p.a); // a CHILD_SA exchange and an INFORMATIONAL (DELETE) in the log too
    await until(() => p.a.dp.sas.size === 1 && p.b.dp.sas.size === 1, 5000);
    const real = [...p.net.log];
    const before = { a: pairs(p.a), b: pairs(p.b) };
    const owner = (addr: string) => (addr === c.local ? p.a : p.b);
    const samples: string[] = [];
    let input: Buffer = Buffer.alloc(0);
    for (const side of [p.a, p.b])
      side.daemon.bus.on('ike-dropped', (e) => {
        if (e.reason === 'internal_error' && samples.length < 5)
          samples.push(`${e.detail} <- ${input.toString('hex')}`);
      });
    const r = prng(seed);
    for (let i = 0; i < n; i++) {
      const s = real[Math.floor(r() * real.length)]!;
      const other = real[Math.floor(r() * real.length)]!;
      input = mutate(s.data, r, other.data);
      owner(s.to.address).transport.receive({ data: input, local: s.to, remote: s.from });
      if (i % 256 === 255) {
        // Let answers, timers and promise chains run; forget what the daemons sent meanwhile.
        await new Promise((res) => setImmediate(res));
        p.net.log.length = 0;
      }
    }
    await new Promise((res) => setTimeout(res, 100));
    const drops: Record<string, number> = {};
    for (const side of [p.a, p.b])
      for (const [k, v] of Object.entries(side.daemon.status().drops.ike)) drops[k] = (drops[k] ?? 0) + v;
    const established = (s: Side) => s.daemon.ike!.sasOf('t1').some((v) => v.phase === 'established');
    return {
      inputs: n,
      drops,
      internal: drops.internal_error ?? 0,
      samples,
      kept: established(p.a) && established(p.b) && pairs(p.a) === before.a && pairs(p.b) === before.b,
    };
  } finally {
    p.net.drop = () => true;
    await p.stop();
  }
}
