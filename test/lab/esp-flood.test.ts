/**
 * A garbage ESP flood against a health-checked pair of tunnels (ha-lab.ts, IKEv2, health checks
 * every 0.1 s x 3): from the internet router, for 10 s each, (a) raw ESP (IP protocol 50) with
 * random SPIs and sequence numbers, (b) ESP-in-UDP to port 4500 (RFC 3948) with random SPIs, and
 * (c) raw ESP carrying the primary tunnel's own inbound SPI with random sequence numbers and a
 * garbage ICV, the costliest kind (it reaches the replay check and the ICV). Two senders per kind.
 *
 * What must hold: no health change and no route switch on either gateway, the LAN-to-LAN pings
 * keep flowing, the engine counts the garbage by reason (unknown SPI, integrity), and the control
 * socket keeps answering status requests at once (median < 30 ms, p95 < 100 ms: the flood never
 * reaches JS).
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { ADDR, haEvents, quickStatus, startHaLab, startPing, waitHaReady, waitLanPing } from './ha-lab.js';
import { Lab, labUnavailable } from './netns.js';
import { twinsecUnavailable } from './twinsec.js';

const FLOOD_S = 10;

/** A sender of one kind of garbage for `seconds`; prints how many datagrams it sent. */
const FLOODER = `
import os, random, socket, struct, sys, time
kind, dst, seconds, spi = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4], 16)
if kind == 'udp':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = 4500
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    port = 0
body = os.urandom(96)
end = time.time() + seconds
n = 0
while time.time() < end:
    for _ in range(256):
        sp = spi if spi else random.getrandbits(32) | 0x100
        s.sendto(struct.pack('!II', sp, random.getrandbits(32) | 1) + body, (dst, port))
        n += 1
print(n)
`;

const skip = labUnavailable() ?? twinsecUnavailable();

t.test(
  'garbage ESP at full speed: no health change, no failover, counted, control answers',
  { skip },
  async (t) => {
    const lab = new Lab(t);
    const h = await startHaLab(lab, {});
    await waitHaReady(h);
    await waitLanPing(h);
    const script = `${lab.tempDir('flood')}/flood.py`;
    writeFileSync(script, FLOODER);
    const st0 = await h.onprem.status();
    const t1 = (st0.connections.t1 as unknown as { children: { spiIn: string }[] }).children[0]!.spiIn;
    const drops0 = (st0 as unknown as { drops: { esp: Record<string, number> } }).drops.esp;
    const ping = startPing(lab, h.ns.onLan, ADDR.cloudLanHost, 20);
    const floodStart = Date.now();
    const slowest: number[] = [];
    const every: number[] = [];
    for (const [kind, spi] of [
      ['raw', '0'],
      ['udp', '0'],
      ['raw', t1],
    ] as const) {
      const since = Date.now();
      const senders = [0, 1].map(() =>
        lab.exec(h.ns.router, 'python3', [script, kind, ADDR.onWan1, String(FLOOD_S), spi], {
          timeoutMs: (FLOOD_S + 20) * 1000,
        }),
      );
      let worst = 0;
      while (Date.now() - since < FLOOD_S * 1000) {
        const t0 = performance.now();
        await quickStatus(h.onprem); // the control socket itself, no CLI process start-up
        worst = Math.max(worst, performance.now() - t0);
        every.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 250));
      }
      const sent = (await Promise.all(senders)).reduce((a, r) => a + Number(r.stdout.trim()), 0);
      slowest.push(worst);
      t.comment(
        `${kind}${spi !== '0' ? ` with t1's SPI ${spi}` : ''}: ${sent} datagrams in ${FLOOD_S} s; slowest status ${worst.toFixed(0)} ms`,
      );
      t.ok(sent > 10_000, `the flood ran (${sent})`);
    }
    const pings = await ping.stop();
    const drops = ((await h.onprem.status()) as unknown as { drops: { esp: Record<string, number> } }).drops
      .esp;
    const grew = (k: string) => (drops[k] ?? 0) - (drops0[k] ?? 0);
    t.comment(
      `on-prem ESP drops during the floods: ${JSON.stringify(Object.fromEntries(Object.keys(drops).map((k) => [k, grew(k)])))}`,
    );
    t.ok(grew('noSa') > 1000, 'unknown SPIs counted');
    t.ok(grew('integrity') + grew('replay') > 1000, "garbage on t1's SPI counted (integrity or replay)");
    const changes = [...haEvents(h.onprem, 'on-prem'), ...haEvents(h.cloud!, 'cloud')].filter(
      (e) => e.at >= floodStart,
    );
    t.same(
      changes.filter((e) => e.event === 'route-switch' || e.to === 'down').map((e) => `${e.side} ${e.msg}`),
      [],
      'no health change and no route switch',
    );
    t.ok(
      pings.received > pings.transmitted * 0.95,
      `LAN pings kept flowing (${pings.received}/${pings.transmitted})`,
    );
    // Two cores, both busy with the senders and the engine: the daemon's JS thread waits for a CPU
    // now and then, so the tail is scheduling; the flood itself never reaches it (median and p95).
    every.sort((a, b) => a - b);
    const p95 = every[Math.floor(every.length * 0.95)]!;
    const median = every[Math.floor(every.length / 2)]!;
    t.ok(
      p95 < 100 && median < 30,
      `status over the control socket: median ${median.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, slowest ${Math.max(...slowest).toFixed(0)} ms (${every.length} requests)`,
    );
  },
);
