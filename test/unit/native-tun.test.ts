/**
 * The native addon's TUN device: opened inside a fresh network namespace (needs root), seen UP with its
 * MTU by `ip link`, gone after closeTun. Argument and errno errors surface as JS exceptions.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { closeTun, loadNative, openTun } from '../../src/dataplane/native.js';
import { Lab, labUnavailable } from '../lab/netns.js';

const NATIVE_JS = fileURLToPath(new URL('../../src/dataplane/native.js', import.meta.url));

t.test('addon loads and exposes openTun/closeTun', async (t) => {
  const addon = loadNative();
  t.type(addon.openTun, 'function');
  t.type(addon.closeTun, 'function');
});

t.test('errors are JS exceptions with errno text', async (t) => {
  t.throws(() => openTun('x'.repeat(20), 1400), /openTun.*File name too long/, 'name longer than IFNAMSIZ');
  t.throws(() => openTun('tswbad', 10), /Invalid argument/, 'MTU below 68');
  t.throws(() => closeTun(-1), /closeTun: Bad file descriptor/, 'closeTun(-1)');
  t.throws(() => (openTun as unknown as (a: number) => void)(42), TypeError, 'wrong argument types');
});

const skip = labUnavailable();
t.test('openTun in a fresh namespace: UP with MTU, gone after closeTun', { skip }, async (t) => {
  const lab = new Lab(t);
  const ns = await lab.addNamespace('tun');
  const name = `tswt${process.pid.toString(36)}`.slice(0, 15);
  const mtu = 1380;

  // A child process inside the namespace owns the TUN; it obeys one command per stdin line.
  const script = `
    import { openTun, closeTun } from ${JSON.stringify(NATIVE_JS)};
    import { createInterface } from 'node:readline';
    const h = openTun(${JSON.stringify(name)}, ${mtu});
    console.log(JSON.stringify(h));
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === 'close') { closeTun(h.fd); console.log('closed'); }
      if (line === 'exit') process.exit(0);
    }`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`helper exited early: ${stderr}`);
    return r.value;
  };

  const handle = JSON.parse(await next()) as { fd: number; name: string };
  t.equal(handle.name, name, 'kernel used the requested name');
  t.ok(Number.isInteger(handle.fd) && handle.fd > 2, `fd is a descriptor (${handle.fd})`);

  const shown = await lab.exec(ns, 'ip', ['-o', 'link', 'show', 'dev', name]);
  t.match(shown.stdout, new RegExp(`\\b${name}: <[^>]*\\bUP\\b`), 'link is UP');
  t.match(shown.stdout, new RegExp(`\\bmtu ${mtu}\\b`), `MTU ${mtu}`);
  const detail = await lab.exec(ns, 'ip', ['-d', '-o', 'link', 'show', 'dev', name]);
  t.match(detail.stdout, /\btun type tun\b/, 'it is a TUN (not TAP) device');
  t.match(detail.stdout, /\bpi off\b/, 'no packet-information header (IFF_NO_PI)');

  child.stdin.write('close\n');
  t.equal(await next(), 'closed', 'closeTun returned');
  const after = await lab.exec(ns, 'ip', ['link', 'show', 'dev', name], { check: false });
  t.not(after.code, 0, 'device is gone after closeTun');

  child.stdin.write('exit\n');
  const [code] = await once(child, 'exit');
  t.equal(code, 0, 'helper exited cleanly');
});
