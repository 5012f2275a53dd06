/**
 * A hostile IKEv2 initiator for the lab (security issue #11, load item (b)), run with node inside
 * the attacker's namespace:
 *
 *   node dist/test/lab/hostile-initiator.js --local A --remote B --remote-id ID --psk WRONG
 *        [--parallel N] [--seconds S] [--selectors 255]
 *
 * It is twinsec's own IKEv2 initiator (src/ike/v2, the in-memory data plane, real UDP sockets on
 * A:500/4500) with N connections to B from the one real address A, each with a wrong PSK and
 * retried at once after each failure: every attempt is a fresh IKE_SA_INIT (completed, with the
 * COOKIE round trip when the responder asks for one) and then an IKE_AUTH sealed with the right SK
 * keys but carrying an AUTH made with the wrong PSK and TSi/TSr of `selectors` selectors each
 * (IkeAuthTask.prototype.build patched, as in test/exchange/auth-security.test.ts).
 *
 * Prints one JSON line when done: attempts (IKE_SA_INIT started), how each attempt ended by reason,
 * the COOKIE challenges answered, seconds.
 */
import { parseArgs } from 'node:util';
import type { Config, ConnectionConfig } from '../../src/config/types.js';
import { Daemon } from '../../src/daemon.js';
import { MemoryDataPlane } from '../../src/dataplane/memory.js';
import { IkeAuthTask } from '../../src/ike/v2/tasks/ike-auth.js';
import { PayloadType } from '../../src/ike/wire/constants.js';
import { cidrToTs } from '../../src/ike/wire/ts.js';
import type { Payload, TrafficSelector, TsPayload } from '../../src/ike/wire/types.js';

const { values } = parseArgs({
  options: {
    local: { type: 'string' },
    remote: { type: 'string' },
    'remote-id': { type: 'string' },
    'local-id': { type: 'string', default: 'hostile.example.net' },
    psk: { type: 'string', default: 'not-the-psk' },
    parallel: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '10' },
    selectors: { type: 'string', default: '255' },
  },
});
if (!values.local || !values.remote || !values['remote-id']) {
  process.stderr.write(
    'usage: hostile-initiator --local A --remote B --remote-id ID [--psk P] [--parallel N] [--seconds S]\n',
  );
  process.exit(2);
}
const parallel = Number(values.parallel);
const seconds = Number(values.seconds);
const count = Number(values.selectors);

const many = (first: number): TrafficSelector[] =>
  Array.from({ length: count }, (_, i) => cidrToTs(`${first}.${i}.0.0/16`));
const tsI = many(10);
const tsR = many(100);
const build = IkeAuthTask.prototype.build;
IkeAuthTask.prototype.build = function (this: IkeAuthTask): Payload[] {
  return build.call(this).map((p) => {
    if (p.type === PayloadType.TSi) return { ...(p as TsPayload), selectors: tsI };
    if (p.type === PayloadType.TSr) return { ...(p as TsPayload), selectors: tsR };
    return p;
  });
};

const conn = (i: number): ConnectionConfig => ({
  name: `h${i}`,
  version: 2,
  local: values.local!,
  remote: values.remote!,
  localId: values['local-id']!,
  remoteId: values['remote-id']!,
  psk: Buffer.from(values.psk!),
  ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 },
  esp: { proposals: ['aes256gcm16'], lifetime: 1800 },
  localSubnets: ['10.0.0.0/8'],
  remoteSubnets: ['100.0.0.0/8'],
  start: 'initiate',
  encapsulation: 'auto',
});
const config: Config = {
  tun: { name: 'unused', mtu: 1400 },
  control: { socket: '/nonexistent' },
  ports: { ike: 500, natt: 4500 },
  qos: { priority: 7, dscp: 48, answerEcho: false },
  log: { level: 'error' },
  connections: Object.fromEntries(Array.from({ length: parallel }, (_, i) => [`h${i}`, conn(i)])),
  routes: [],
};

const daemon = new Daemon(config, {
  dataplane: new MemoryDataPlane(),
  // Again at once after each failure (the responder's answer is the failure); quick retransmits.
  retry: { base: 1, max: 2 },
  timing: { retransmitBase: 250, retransmitTries: 4 },
});
let attempts = 0;
let cookies = 0;
const ended: Record<string, number> = {};
daemon.bus.on('ike-state', (e) => {
  if (e.to === 'connecting') attempts++;
});
daemon.bus.on('ike-failure', (e) => {
  ended[e.reason] = (ended[e.reason] ?? 0) + 1;
});
daemon.bus.on('ike-debug', (e) => {
  if (/asked for a cookie/.test(e.message)) cookies++;
});
const t0 = performance.now();
await daemon.start();
await new Promise((r) => setTimeout(r, seconds * 1000));
const elapsed = (performance.now() - t0) / 1000;
process.stdout.write(`${JSON.stringify({ attempts, ended, cookies, seconds: elapsed })}\n`);
// No DELETE to send (nothing was established) and no need to wait for anything: leave now.
process.exit(0);
