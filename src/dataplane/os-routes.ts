/**
 * Publishing routes in the operating system's table: a published destination points at the TUN
 * device, so the kernel hands matching packets to the ESP engine. Removing the TUN on shutdown
 * removes these routes with it.
 */
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import { TwinsecError } from '../errors.js';

const run = promisify(execFile);

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 5000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new TwinsecError('ERR_ROUTE', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export async function publishRoute(destination: string, tun: string): Promise<void> {
  const family = isIPv6(destination.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'route', 'replace', destination, 'dev', tun, 'proto', 'static']);
}

export async function withdrawRoute(destination: string, tun: string): Promise<void> {
  const family = isIPv6(destination.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'route', 'del', destination, 'dev', tun]).catch(() => {});
}

/** The inside address of a route-based connection's interface (`address/prefix`). */
export async function addInterfaceAddress(address: string, dev: string): Promise<void> {
  const family = isIPv6(address.split('/')[0]!) ? '-6' : '-4';
  await ip([family, 'addr', 'replace', address, 'dev', dev]);
}
