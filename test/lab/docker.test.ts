/**
 * The docker-compose lab (docker/docker-compose.yml) end to end: twinsec with two links and two
 * strongSwan peers, Prometheus scraping twinsec. Opt-in (TWINSEC_DOCKER_LAB=1) because it needs
 * dockerd, docker-compose and debootstrap, which CI does not install, and a cold build takes ~5 min;
 * with the images built once (docker/build-local.sh), a run takes about 40 s.
 *
 * Checks, all from outside the daemon: `twinsec status --json` in the container (both connections
 * established and healthy, route on t1), `swanctl --list-sas` in each peer (CHILD_SA INSTALLED), a
 * ping from twinsec's LAN address to the peers' LAN across the tunnel, and Prometheus's own query API
 * (twinsec_connection_up is 1 for t1 and t2, so it scraped twinsec). Always ends with `down -v`.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { waitFor } from './netns.js';

const run = promisify(execFile);
// dist/test/lab -> repository root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DOCKER = join(ROOT, 'docker');
// Its own project name, so a lab someone brought up by hand is left alone.
const COMPOSE = ['-p', 'twinsec-docker-test', '-f', join(DOCKER, 'docker-compose.yml')];

async function compose(...args: string[]): Promise<string> {
  const { stdout } = await run('docker-compose', [...COMPOSE, ...args], {
    cwd: DOCKER,
    timeout: 600_000,
    maxBuffer: 16 << 20,
  });
  return stdout;
}

interface Status {
  connections: Record<string, { state: string; health: string }>;
  routes: { destination: string; active: string[] }[];
}

async function status(): Promise<Status> {
  return JSON.parse(await compose('exec', '-T', 'twinsec', 'twinsec', 'status', '--json')) as Status;
}

async function promQuery(
  query: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as {
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  return body.data.result;
}

if (process.env.TWINSEC_DOCKER_LAB !== '1') {
  t.plan(
    0,
    'set TWINSEC_DOCKER_LAB=1 to run (needs dockerd, docker-compose, debootstrap; README "Docker lab")',
  );
} else {
  // The whole file, not just the subtest: a cold build alone can take several minutes.
  t.setTimeout(900_000);
  t.test(
    'docker lab: two tunnels up, ping across, Prometheus scraped twinsec',
    { timeout: 900_000 },
    async (t) => {
      // Reuses the base images and Docker's layer cache: quick after the first time.
      await run(join(DOCKER, 'build-local.sh'), [], { cwd: DOCKER, timeout: 900_000, maxBuffer: 64 << 20 });
      t.teardown(() => compose('down', '-v', '--remove-orphans').then(() => {}));
      await compose('up', '-d');

      const st = await waitFor(
        async () => {
          const s = await status();
          const ok = ['t1', 't2'].every(
            (c) => s.connections[c]?.state === 'established' && s.connections[c]?.health === 'up',
          );
          return ok ? s : undefined;
        },
        60_000,
        { intervalMs: 1000, what: 't1 and t2 established and healthy' },
      );
      t.same(st.routes[0]?.active, ['t1'], 'route 198.19.0.0/24 active via t1 (weight 100)');

      for (const peer of ['peer1', 'peer2']) {
        const sas = await compose('exec', '-T', peer, 'swanctl', '--list-sas');
        t.match(sas, /ESTABLISHED, IKEv2/, `${peer}: IKE_SA established`);
        t.match(sas, /INSTALLED, TUNNEL-in-UDP/, `${peer}: CHILD_SA installed`);
      }

      const ping = await compose(
        'exec',
        '-T',
        'twinsec',
        'ping',
        '-c',
        '3',
        '-W',
        '2',
        '-I',
        '198.18.0.1',
        '198.19.0.1',
      );
      t.match(ping, / 0% packet loss/, 'ping 198.18.0.1 -> 198.19.0.1 across the tunnel');

      // Prometheus scrapes every 5 s; allow a few rounds for its first one.
      const up = await waitFor(
        async () => {
          const r = await promQuery('twinsec_connection_up').catch(() => []);
          return r.length === 2 ? r : undefined;
        },
        60_000,
        { intervalMs: 2000, what: 'Prometheus has twinsec_connection_up for t1 and t2' },
      );
      t.same(
        up.map((s) => [s.metric.connection, s.value[1]]).sort(),
        [
          ['t1', '1'],
          ['t2', '1'],
        ],
        'Prometheus: twinsec_connection_up{connection=t1,t2} = 1',
      );
    },
  );
}
