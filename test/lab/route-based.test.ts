/**
 * Route-based connections (issue #12), over IKEv2 and IKEv1: two twinsec gateways, each connection with its own tunnel
 * interface (`interface: { name, address }`, selectors 0.0.0.0/0), beside a policy-based connection
 * in the same daemons.
 *
 *   gwa (192.0.2.1, 198.51.100.1) ======= gwb (192.0.2.2, 198.51.100.2)
 *     rb:  tw-a 169.254.10.1/30  <-> tw-b 169.254.10.2/30, static routes 198.19.1.0/24 <-> 198.18.1.0/24
 *     pb:  policy-based 198.18.2.0/24 <-> 198.19.2.0/24 over the second pair of addresses
 *
 * What must hold: the interfaces exist with their inside addresses and carrier once the connection
 * is usable; pings cross the route-based tunnel (inside addresses, and "LAN" addresses routed into
 * the interface by plain static routes) and the policy-based one; inbound packets of the
 * route-based SA come out of its interface (an iptables counting rule on it, for TCP, which the
 * engine never answers itself);
 * BFD through the tunnel leaves marked CS6 (ESP counted by DSCP at B); a weighted `routes:` entry
 * naming the route-based connection carries its prefix through the shared TUN;
 * a silent cut of the route-based connection's link fails its health check and takes the
 * interface's carrier away (NO-CARRIER, the static route turns linkdown), and repairing the link
 * brings both back.
 */
import t from 'tap';
import { Lab, labUnavailable, waitFor } from './netns.js';
import { startTwinsec, type Twinsec, type TwinsecConfigYaml, twinsecUnavailable } from './twinsec.js';

const skip = labUnavailable() ?? twinsecUnavailable();
const PSK = 'route-based-lab-psk-0123456789';
const PROPOSALS = {
  ike: { proposals: ['aes256gcm16-prfsha256-x25519'] },
  esp: { proposals: ['aes256gcm16'] },
};
/** IKEv1 (the seed's cloud default): main mode, quick mode with 0.0.0.0/0 IDs. */
const PROPOSALS_V1 = {
  ike: { proposals: ['aes128-sha256-modp2048'] },
  esp: { proposals: ['aes256gcm16'] },
};

function config(side: 'a' | 'b', version: 1 | 2): TwinsecConfigYaml {
  const me = side === 'a' ? 1 : 2;
  const peer = side === 'a' ? 2 : 1;
  const inside = (n: number) => `169.254.10.${n}`;
  return {
    log: { level: 'debug' },
    connections: {
      rb: {
        version,
        local: `192.0.2.${me}`,
        remote: `192.0.2.${peer}`,
        localId: `gw${side}.example`,
        remoteId: `gw${side === 'a' ? 'b' : 'a'}.example`,
        psk: PSK,
        ...(version === 1 ? PROPOSALS_V1 : PROPOSALS),
        localSubnets: ['0.0.0.0/0'],
        remoteSubnets: ['0.0.0.0/0'],
        start: side === 'a' ? 'initiate' : 'listen',
        interface: { name: `tw-${side}`, address: `${inside(me)}/30` },
        healthCheck: { source: inside(me), destination: inside(peer), interval: 0.2, retries: 3 },
      },
      pb: {
        version: 2,
        local: `198.51.100.${me}`,
        remote: `198.51.100.${peer}`,
        psk: PSK,
        ...PROPOSALS,
        localSubnets: [side === 'a' ? '198.18.2.0/24' : '198.19.2.0/24'],
        remoteSubnets: [side === 'a' ? '198.19.2.0/24' : '198.18.2.0/24'],
        start: side === 'a' ? 'initiate' : 'listen',
      },
    },
    routes: [
      {
        destination: side === 'a' ? '198.19.2.0/24' : '198.18.2.0/24',
        via: [{ connection: 'pb', weight: 100 }],
        publish: true,
      },
      // A weighted route may name a route-based connection too: published on the shared TUN, the
      // engine picks the connection's SA as for any other.
      ...(side === 'a'
        ? [{ destination: '198.19.3.0/24', via: [{ connection: 'rb', weight: 100 }], publish: true }]
        : []),
    ],
  };
}

interface Link {
  operstate?: string;
  flags?: string[];
  addr_info?: { local: string; prefixlen: number }[];
}

async function link(lab: Lab, ns: string, dev: string): Promise<Link> {
  const out = (await lab.exec(ns, 'ip', ['-j', 'addr', 'show', 'dev', dev])).stdout;
  return (JSON.parse(out) as Link[])[0] ?? {};
}

const ping = (lab: Lab, ns: string, dst: string, src?: string) =>
  lab.exec(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', ...(src ? ['-I', src] : []), dst], {
    check: false,
  });

const received = (out: string) => Number(/(\d+) received/.exec(out)?.[1] ?? 0);

for (const version of [2, 1] as const)
  t.test(
    `route-based connections (IKEv${version}) beside policy-based ones`,
    { skip, timeout: 90_000 },
    async (t) => {
      const lab = new Lab(t);
      const a = await lab.addNamespace('rba');
      const b = await lab.addNamespace('rbb');
      await lab.link(
        { ns: a, ifname: 'wan1', address: '192.0.2.1/24' },
        { ns: b, ifname: 'wan1', address: '192.0.2.2/24' },
      );
      await lab.link(
        { ns: a, ifname: 'wan2', address: '198.51.100.1/24' },
        { ns: b, ifname: 'wan2', address: '198.51.100.2/24' },
      );
      // "LANs" as loopback addresses: one behind each kind of connection.
      await lab.loopbackAddresses(a, '198.18.1.1/32', '198.18.2.1/32');
      await lab.loopbackAddresses(b, '198.19.1.1/32', '198.19.2.1/32', '198.19.3.1/32');

      const ga = await startTwinsec(lab, a, config('a', version));
      const gb = await startTwinsec(lab, b, config('b', version));
      t.teardown(() => {
        if (t.passing()) return;
        for (const [g, n] of [
          [ga, 'a'],
          [gb, 'b'],
        ] as const)
          t.comment(`--- twinsecd ${n} (tail) ---\n${g.log().split('\n').slice(-25).join('\n')}`);
      });

      // The interfaces exist at once, with their inside address, and no carrier before the tunnel is up.
      const early = await link(lab, a, 'tw-a');
      t.ok(
        early.addr_info?.some((x) => x.local === '169.254.10.1' && x.prefixlen === 30),
        'tw-a carries 169.254.10.1/30',
      );

      const usable = async (g: Twinsec, ns: string, dev: string) =>
        waitFor(
          async () => {
            const s = await g.status();
            const c = s.connections.rb as { health?: string; interface?: { up: boolean } } | undefined;
            const l = await link(lab, ns, dev);
            return c?.health === 'up' && c.interface?.up && !l.flags?.includes('NO-CARRIER') ? l : undefined;
          },
          20_000,
          { what: `${dev} with carrier`, intervalMs: 100 },
        );
      try {
        await usable(ga, a, 'tw-a');
        await usable(gb, b, 'tw-b');
      } catch (err) {
        for (const g of [ga, gb]) t.comment(JSON.stringify(await g.status()));
        throw err;
      }
      await ga.waitForState('pb', 'established', 15_000);
      await gb.waitForState('pb', 'established', 15_000);
      await waitFor(async () => ((await gb.status()).connections.pb?.children.length ?? 0) > 0, 10_000);

      // Static routes into the interfaces, as an operator (or zebra) would add them.
      await lab.exec(a, 'ip', ['route', 'add', '198.19.1.0/24', 'dev', 'tw-a', 'src', '198.18.1.1']);
      await lab.exec(b, 'ip', ['route', 'add', '198.18.1.0/24', 'dev', 'tw-b', 'src', '198.19.1.1']);

      // A counting rule (no target) for TCP that enters B through tw-b from A's routed prefix.
      await lab.exec(b, 'iptables', ['-I', 'INPUT', '-i', 'tw-b', '-s', '198.18.1.1', '-p', 'tcp']);
      t.equal(
        received((await ping(lab, a, '169.254.10.2')).stdout),
        3,
        'inside address across the route-based tunnel',
      );
      t.equal(
        received((await ping(lab, a, '198.19.1.1', '198.18.1.1')).stdout),
        3,
        'a routed prefix across the route-based tunnel',
      );
      // TCP, which the engine never answers itself (it answers echo requests to the host's own
      // addresses): three connection attempts to a closed port, refused by B's kernel through tw-b.
      const tcp = await lab.exec(
        a,
        'bash',
        ['-c', 'for i in 1 2 3; do (exec 3<>/dev/tcp/198.19.1.1/7) 2>&1; done; true'],
        { check: false, timeoutMs: 10_000 },
      );
      t.equal(
        tcp.stdout.match(/connect: Connection refused/g)?.length ?? 0,
        3,
        'B refused three TCP connections (RST came back)',
        { out: tcp.stdout + tcp.stderr },
      );
      const rules = (await lab.exec(b, 'iptables', ['-L', 'INPUT', '-v', '-x', '-n'])).stdout;
      const counted = /^\s*(\d+)\s.*\stw-b\s/m.exec(rules);
      t.ok(Number(counted?.[1] ?? 0) >= 3, 'inbound packets of the route-based SA came out of tw-b', {
        rules,
      });

      // BFD (UDP port 3784) through the tunnel leaves marked CS6, like the health probes; other UDP
      // does not. Counted as ESP with DSCP CS6 arriving at B: the probes (5/s) are in both windows.
      await lab.exec(b, 'iptables', [
        '-I',
        'INPUT',
        '-i',
        'wan1',
        '-p',
        'esp',
        '-m',
        'dscp',
        '--dscp-class',
        'CS6',
      ]);
      const cs6 = async () =>
        Number(
          /^\s*(\d+)\s.*DSCP match 0x30/m.exec(
            (await lab.exec(b, 'iptables', ['-L', 'INPUT', '-v', '-x', '-n'])).stdout,
          )?.[1] ?? -1,
        );
      const burst = async (port: number) => {
        const before = await cs6();
        await lab.exec(a, 'bash', [
          '-c',
          `for i in $(seq 50); do echo bfd > /dev/udp/198.19.1.1/${port}; done`,
        ]);
        return (await cs6()) - before;
      };
      const plain = await burst(9);
      const bfd = await burst(3784);
      t.ok(bfd - plain >= 45, `50 BFD packets left marked CS6 (${bfd} marked vs ${plain} with other UDP)`);
      const control = (await ga.status()) as { control?: Record<string, number> };
      t.ok(
        (control.control?.routing ?? 0) >= 50 &&
          (control.control?.probe ?? 0) > 0 &&
          (control.control?.echoAnswer ?? 0) > 0,
        `status counts the control packets: ${JSON.stringify(control.control)}`,
      );
      t.equal(
        received((await ping(lab, a, '198.19.3.1', '198.18.1.1')).stdout),
        3,
        'a weighted route through the route-based connection (shared TUN, engine route lookup)',
      );
      t.equal(
        received((await ping(lab, a, '198.19.2.1', '198.18.2.1')).stdout),
        3,
        'the policy-based connection in the same daemon still carries its subnets',
      );
      const rbChild = (await ga.status()).connections.rb?.children[0];
      t.same(
        [rbChild?.tsLocal, rbChild?.tsRemote],
        [['0.0.0.0/0'], ['0.0.0.0/0']],
        'the route-based CHILD_SA has 0.0.0.0/0 selectors',
      );

      // A silent cut of link 1 only: the health check fails, the interface loses carrier.
      await lab.exec(b, 'iptables', ['-I', 'INPUT', '-i', 'wan1', '-j', 'DROP']);
      const cutAt = Date.now();
      await waitFor(async () => (await link(lab, a, 'tw-a')).flags?.includes('NO-CARRIER'), 5000, {
        what: 'tw-a without carrier after the cut',
        intervalMs: 50,
      });
      const lostMs = Date.now() - cutAt;
      t.comment(`tw-a lost carrier ${lostMs} ms after the cut (health checks 0.2 s x 3)`);
      const routes = (await lab.exec(a, 'ip', ['route', 'show', '198.19.1.0/24'])).stdout;
      t.match(routes, /linkdown/, 'the static route through tw-a is linkdown');
      const ev = ga.logEvents().find((e) => e.event === 'interface' && e.up === false && e.at >= cutAt - 100);
      t.ok(ev, `logged: ${ev?.msg ?? 'no interface-down line'}`);
      t.equal(
        received((await ping(lab, a, '198.19.2.1', '198.18.2.1')).stdout),
        3,
        'the policy-based connection is untouched by the cut',
      );

      await lab.exec(b, 'iptables', ['-D', 'INPUT', '-i', 'wan1', '-j', 'DROP']);
      await usable(ga, a, 'tw-a');
      t.equal(
        received((await ping(lab, a, '198.19.1.1', '198.18.1.1')).stdout),
        3,
        'carrier back after the repair, traffic crosses again',
      );
      await ga.stop();
      await gb.stop();
      t.notOk(
        (await lab.exec(a, 'ip', ['link', 'show', 'tw-a'], { check: false })).code === 0,
        'tw-a is gone after shutdown',
      );
    },
  );
