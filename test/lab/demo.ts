/**
 * The lab demo (`node dist/test/lab/demo.js [--hold]`, needs root and strongSwan): a twinsec gateway and a
 * strongSwan peer in two fresh network namespaces, twinsec initiates an IKEv2 tunnel, then both sides'
 * views are printed (twinsec status and swanctl --list-sas). Everything is removed at the end; with
 * --hold it stays up until Ctrl-C (the namespaces are printed so you can `ip netns exec` into them).
 *
 *   [gw] wan0 192.0.2.1/24 <-veth-> wan0 192.0.2.2/24 [peer]
 *   LAN 198.18.1.0/24 (lo 198.18.1.1)          LAN 198.19.1.0/24 (lo 198.19.1.1)
 */
import { Lab, labUnavailable } from './netns.js';
import { charonUnavailable, startCharon } from './strongswan.js';
import { startTwinsec, twinsecUnavailable } from './twinsec.js';

const PSK = 'twinsec-lab-demo-psk';

async function main(): Promise<number> {
  const hold = process.argv.includes('--hold');
  const why = labUnavailable() ?? charonUnavailable() ?? twinsecUnavailable();
  if (why) {
    console.error(`lab: ${why}`);
    return 2;
  }
  Lab.sweepStale();
  const lab = new Lab();
  try {
    const gw = await lab.addNamespace('gw');
    const peer = await lab.addNamespace('peer');
    await lab.link(
      { ns: gw, ifname: 'wan0', address: '192.0.2.1/24' },
      { ns: peer, ifname: 'wan0', address: '192.0.2.2/24' },
    );
    await lab.loopbackAddresses(gw, '198.18.1.1/32');
    await lab.loopbackAddresses(peer, '198.19.1.1/32');
    console.log(`namespaces: ${gw} (twinsec) <-> ${peer} (strongSwan)`);

    const charon = await startCharon(lab, peer, {
      dir: lab.tempDir('charon'),
      conns: [
        {
          name: 'twinsec',
          version: 2,
          local: '192.0.2.2',
          remote: '192.0.2.1',
          localId: 'peer.example.net',
          remoteId: 'gw.example.net',
          psk: PSK,
          ikeProposals: ['aes256gcm16-prfsha256-x25519'],
          espProposals: ['aes256gcm16'],
          localTs: ['198.19.1.0/24'],
          remoteTs: ['198.18.1.0/24'],
          startAction: 'none',
        },
      ],
    });
    const twinsec = await startTwinsec(lab, gw, {
      connections: {
        peer: {
          version: 2,
          local: '192.0.2.1',
          remote: '192.0.2.2',
          localId: 'gw.example.net',
          remoteId: 'peer.example.net',
          psk: PSK,
          ike: { proposals: ['aes256gcm16-prfsha256-x25519'], lifetime: 3600 },
          esp: { proposals: ['aes256gcm16'], lifetime: 1200 },
          localSubnets: ['198.18.1.0/24'],
          remoteSubnets: ['198.19.1.0/24'],
          start: 'initiate',
          encapsulation: 'auto',
        },
      },
      routes: [],
    });
    console.log('twinsecd started; waiting for the tunnel...');
    try {
      await twinsec.waitForState('peer', 'established', 15_000);
      await charon.waitFor(() => charon.established('twinsec'), 5000, 'strongSwan IKE_SA ESTABLISHED');
    } catch (e) {
      console.error(`lab: ${(e as Error).message}`);
      console.error(`--- twinsecd log ---\n${twinsec.log()}\n--- charon log ---\n${charon.log()}`);
      return 1;
    }

    console.log('\n$ twinsec status');
    const st = await twinsec.cli(['status'], { check: false });
    process.stdout.write(st.stdout + st.stderr);
    console.log('\n$ swanctl --list-sas   (strongSwan side)');
    const sas = await charon.swanctl(['--list-sas']);
    process.stdout.write(sas.stdout);

    if (hold) {
      console.log(`\nholding; control socket ${twinsec.socket}; Ctrl-C to tear down`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    return 0;
  } finally {
    await lab.cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  },
);
