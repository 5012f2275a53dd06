/**
 * strongSwan (charon + swanctl, kernel-libipsec) as a reference peer inside a lab namespace.
 *
 * Each charon gets its own strongswan.conf (STRONGSWAN_CONF), vici socket and log in its own dir, and a
 * private tmpfs /run (for its pid file), so several run on one machine. kernel-libipsec does ESP in
 * userspace over a TUN (ipsec0) and always uses UDP encapsulation (it fakes NAT detection: port 4500).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Lab, type LabProcess, run, WaitAbort, waitFor } from './netns.js';

export const CHARON = '/usr/lib/ipsec/charon';
export const SWANCTL = 'swanctl';

const PLUGINS =
  'random nonce aes sha1 sha2 hmac gcm pem pkcs1 x509 revocation constraints pubkey curve25519 openssl kdf ' +
  'vici kernel-libipsec kernel-netlink socket-default updown';

/** One connection (IKE_SA config) with one CHILD_SA of the same name. */
export interface CharonConn {
  name: string;
  version: 1 | 2;
  local: string;
  remote: string;
  /** Identities; default: the addresses. */
  localId?: string;
  remoteId?: string;
  psk: string;
  /** strongSwan proposal strings, e.g. 'aes256gcm16-prfsha256-x25519'. */
  ikeProposals: string[];
  espProposals: string[];
  localTs: string[];
  remoteTs: string[];
  startAction: 'none' | 'start' | 'trap';
  /** Seconds. */
  rekeyTime?: number;
  childRekeyTime?: number;
  childLifeTime?: number;
  dpdDelay?: number;
  /** IKEv1 aggressive mode. */
  aggressive?: boolean;
  /** Extra `key = value` lines for the connection and child sections (one value per line). */
  extra?: Record<string, string>;
  childExtra?: Record<string, string>;
}

export interface CharonOptions {
  /** Dir for strongswan.conf, swanctl.conf, vici socket and charon.log. */
  dir: string;
  conns: CharonConn[];
  /** Log levels per subsystem (defaults: default 1, ike 2, knl 1). */
  logLevels?: Record<string, number>;
  /** Let charon answer aggressive mode with a PSK (default true; see strongswanConf). */
  aggressivePsk?: boolean;
}

export interface ChildSaInfo {
  name: string;
  state: string;
  mode: string;
  protocol: string;
  encap: boolean;
  /** Lowercase hex, 8 digits. */
  spiIn: string;
  spiOut: string;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  dhGroup?: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  localTs: string[];
  remoteTs: string[];
  raw: Record<string, string | string[]>;
}

export interface IkeSaInfo {
  name: string;
  uniqueId: string;
  version: number;
  state: string;
  localHost: string;
  localPort: number;
  remoteHost: string;
  remotePort: number;
  localId: string;
  remoteId: string;
  initiator: boolean;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  prfAlg?: string;
  dhGroup?: string;
  natRemote: boolean;
  natFake: boolean;
  children: ChildSaInfo[];
  raw: Record<string, string | string[]>;
}

/** swanctl.conf value: quoted when it has characters swanctl would otherwise split on. */
function val(v: string): string {
  return /^[A-Za-z0-9._:/@*%-]+$/.test(v) ? v : JSON.stringify(v);
}

/**
 * strongswan.conf. `aggressivePsk` (default on) sets charon's
 * i_dont_care_about_security_and_use_aggressive_mode_psk: without it charon refuses to answer
 * IKEv1 aggressive mode with a PSK (its aggressive_mode.c), as a production charon should.
 */
export function strongswanConf(opts: {
  dir: string;
  logLevels?: Record<string, number>;
  aggressivePsk?: boolean;
}): string {
  const levels = { default: 1, ike: 2, knl: 1, ...opts.logLevels };
  const agg = opts.aggressivePsk ?? true;
  return [
    'charon {',
    `  load = ${PLUGINS}`,
    '  retransmit_timeout = 1.0',
    '  retransmit_tries = 3',
    `  i_dont_care_about_security_and_use_aggressive_mode_psk = ${agg ? 'yes' : 'no'}`,
    '  install_routes = yes',
    '  plugins {',
    '    vici {',
    `      socket = unix://${join(opts.dir, 'vici')}`,
    '    }',
    '  }',
    '  syslog {',
    '    daemon {',
    '      default = -1',
    '    }',
    '  }',
    '  filelog {',
    '    charon {',
    `      path = ${join(opts.dir, 'charon.log')}`,
    '      time_format = %T',
    '      ike_name = yes',
    '      flush_line = yes',
    '      append = no',
    ...Object.entries(levels).map(([k, v]) => `      ${k} = ${v}`),
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

export function swanctlConf(conns: CharonConn[]): string {
  const out: string[] = ['connections {'];
  for (const c of conns) {
    out.push(`  ${c.name} {`);
    out.push(`    version = ${c.version}`);
    out.push(`    local_addrs = ${c.local}`);
    out.push(`    remote_addrs = ${c.remote}`);
    out.push(`    proposals = ${c.ikeProposals.join(', ')}`);
    if (c.rekeyTime !== undefined) out.push(`    rekey_time = ${c.rekeyTime}s`);
    if (c.dpdDelay !== undefined) out.push(`    dpd_delay = ${c.dpdDelay}s`);
    if (c.aggressive) out.push('    aggressive = yes');
    for (const [k, v] of Object.entries(c.extra ?? {})) out.push(`    ${k} = ${v}`);
    out.push('    local {');
    out.push('      auth = psk');
    out.push(`      id = ${val(c.localId ?? c.local)}`);
    out.push('    }');
    out.push('    remote {');
    out.push('      auth = psk');
    out.push(`      id = ${val(c.remoteId ?? c.remote)}`);
    out.push('    }');
    out.push('    children {');
    out.push(`      ${c.name} {`);
    out.push(`        local_ts = ${c.localTs.join(', ')}`);
    out.push(`        remote_ts = ${c.remoteTs.join(', ')}`);
    out.push(`        esp_proposals = ${c.espProposals.join(', ')}`);
    out.push(`        start_action = ${c.startAction}`);
    if (c.childRekeyTime !== undefined) out.push(`        rekey_time = ${c.childRekeyTime}s`);
    if (c.childLifeTime !== undefined) out.push(`        life_time = ${c.childLifeTime}s`);
    for (const [k, v] of Object.entries(c.childExtra ?? {})) out.push(`        ${k} = ${v}`);
    out.push('      }');
    out.push('    }');
    out.push('  }');
  }
  out.push('}');
  out.push('secrets {');
  for (const c of conns) {
    out.push(`  ike-${c.name} {`);
    out.push(`    id-local = ${val(c.localId ?? c.local)}`);
    out.push(`    id-remote = ${val(c.remoteId ?? c.remote)}`);
    out.push(`    secret = ${JSON.stringify(c.psk)}`);
    out.push('  }');
  }
  out.push('}');
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// swanctl --pretty parsing

type VNode = { [k: string]: string | string[] | VNode };

/** Parses swanctl's `--pretty` output: a sequence of `<event> {` … `}` blocks. */
export function parsePretty(text: string): { event: string; body: VNode }[] {
  const events: { event: string; body: VNode }[] = [];
  const stack: VNode[] = [];
  let list: string[] | null = null;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line) continue;
    if (list) {
      if (line === ']') list = null;
      else list.push(line);
      continue;
    }
    if (line === '}') {
      stack.pop();
      continue;
    }
    const sect = /^(.*\S)\s*\{$/.exec(line);
    if (sect && !line.includes(' = ')) {
      const node: VNode = {};
      if (stack.length === 0) events.push({ event: sect[1]!, body: node });
      else stack[stack.length - 1]![sect[1]!] = node;
      stack.push(node);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (kv && stack.length > 0) {
      const [, key, value] = kv;
      if (value === '[') {
        list = [];
        stack[stack.length - 1]![key!] = list;
      } else {
        stack[stack.length - 1]![key!] = value!;
      }
    }
  }
  return events;
}

function flat(node: VNode): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(node)) if (typeof v === 'string' || Array.isArray(v)) out[k] = v;
  return out;
}

const str = (n: VNode, k: string): string | undefined =>
  typeof n[k] === 'string' ? (n[k] as string) : undefined;
const num = (n: VNode, k: string): number => Number(str(n, k) ?? 0);
const optNum = (n: VNode, k: string): number | undefined => (str(n, k) === undefined ? undefined : num(n, k));
const list = (n: VNode, k: string): string[] => (Array.isArray(n[k]) ? (n[k] as string[]) : []);
const spi = (s: string | undefined): string => (s ?? '').toLowerCase().replace(/^0x/, '').padStart(8, '0');

/** IKE SAs from `swanctl --list-sas --pretty` output. */
export function parseListSas(text: string): IkeSaInfo[] {
  const sas: IkeSaInfo[] = [];
  for (const { event, body } of parsePretty(text)) {
    if (event !== 'list-sa event') continue;
    for (const [name, v] of Object.entries(body)) {
      if (typeof v !== 'object' || Array.isArray(v)) continue;
      const ike = v as VNode;
      const children: ChildSaInfo[] = [];
      const cs = ike['child-sas'];
      if (cs && typeof cs === 'object' && !Array.isArray(cs)) {
        for (const cv of Object.values(cs)) {
          if (typeof cv !== 'object' || Array.isArray(cv)) continue;
          const c = cv as VNode;
          children.push({
            name: str(c, 'name') ?? '',
            state: str(c, 'state') ?? '',
            mode: str(c, 'mode') ?? '',
            protocol: str(c, 'protocol') ?? '',
            encap: str(c, 'encap') === 'yes',
            spiIn: spi(str(c, 'spi-in')),
            spiOut: spi(str(c, 'spi-out')),
            encrAlg: str(c, 'encr-alg'),
            encrKeysize: optNum(c, 'encr-keysize'),
            integAlg: str(c, 'integ-alg'),
            dhGroup: str(c, 'dh-group'),
            bytesIn: num(c, 'bytes-in'),
            bytesOut: num(c, 'bytes-out'),
            packetsIn: num(c, 'packets-in'),
            packetsOut: num(c, 'packets-out'),
            localTs: list(c, 'local-ts'),
            remoteTs: list(c, 'remote-ts'),
            raw: flat(c),
          });
        }
      }
      sas.push({
        name,
        uniqueId: str(ike, 'uniqueid') ?? '',
        version: num(ike, 'version'),
        state: str(ike, 'state') ?? '',
        localHost: str(ike, 'local-host') ?? '',
        localPort: num(ike, 'local-port'),
        remoteHost: str(ike, 'remote-host') ?? '',
        remotePort: num(ike, 'remote-port'),
        localId: str(ike, 'local-id') ?? '',
        remoteId: str(ike, 'remote-id') ?? '',
        initiator: str(ike, 'initiator') === 'yes',
        encrAlg: str(ike, 'encr-alg'),
        encrKeysize: optNum(ike, 'encr-keysize'),
        integAlg: str(ike, 'integ-alg'),
        prfAlg: str(ike, 'prf-alg'),
        dhGroup: str(ike, 'dh-group'),
        natRemote: str(ike, 'nat-remote') === 'yes',
        natFake: str(ike, 'nat-fake') === 'yes',
        children,
        raw: flat(ike),
      });
    }
  }
  return sas;
}

// ---------------------------------------------------------------------------------------------------------

export class Charon {
  readonly lab: Lab;
  readonly ns: string;
  readonly dir: string;
  readonly uri: string;
  readonly logFile: string;
  readonly proc: LabProcess;
  readonly conns: CharonConn[];

  constructor(lab: Lab, ns: string, dir: string, proc: LabProcess, conns: CharonConn[]) {
    this.lab = lab;
    this.ns = ns;
    this.dir = dir;
    this.uri = `unix://${join(dir, 'vici')}`;
    this.logFile = join(dir, 'charon.log');
    this.proc = proc;
    this.conns = conns;
  }

  /** Runs swanctl against this charon (from the root namespace: the vici socket is a file path). */
  swanctl(args: string[], opts: { check?: boolean; timeoutMs?: number } = {}) {
    return run(SWANCTL, [...args, '--uri', this.uri], opts);
  }

  /** `swanctl --initiate --child NAME`; resolves with its output (check=false: failure is returned). */
  initiate(child: string, opts: { check?: boolean; timeoutSec?: number } = {}) {
    const timeoutSec = opts.timeoutSec ?? 10;
    return this.swanctl(['--initiate', '--child', child, '--timeout', String(timeoutSec)], {
      check: opts.check ?? true,
      timeoutMs: (timeoutSec + 5) * 1000,
    });
  }

  /** `swanctl --terminate --ike NAME`. */
  terminate(ike: string, opts: { check?: boolean } = {}) {
    return this.swanctl(['--terminate', '--ike', ike, '--timeout', '5'], { check: opts.check ?? true });
  }

  async listSas(): Promise<IkeSaInfo[]> {
    const r = await this.swanctl(['--list-sas', '--pretty']);
    return parseListSas(r.stdout);
  }

  /** The first IKE SA in state ESTABLISHED (of connection `name` if given) with an INSTALLED child. */
  async established(name?: string): Promise<IkeSaInfo | undefined> {
    const sas = await this.listSas();
    return sas.find(
      (s) =>
        (name === undefined || s.name === name) &&
        s.state === 'ESTABLISHED' &&
        s.children.some((c) => c.state === 'INSTALLED'),
    );
  }

  waitFor<T>(predicate: () => T | Promise<T>, timeoutMs: number, what?: string) {
    return waitFor(predicate, timeoutMs, { what });
  }

  /** waits until the charon log matches `re`; returns the match. */
  waitForLog(re: RegExp, timeoutMs: number) {
    return waitFor(() => this.log().match(re), timeoutMs, { what: `charon log ${re}` });
  }

  /** charon's log (filelog, ike=2 knl=1). */
  log(): string {
    return this.proc.log() === '' ? readLog(this.logFile) : `${readLog(this.logFile)}\n${this.proc.log()}`;
  }

  stop() {
    return this.proc.stop('SIGTERM', 5000);
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The IKE SAs charon lists for connection `name`, once they are down to one (a peer's INITIAL_CONTACT
 * or DELETE takes it a moment), or whatever it lists after `timeoutMs`: the caller asserts.
 */
export async function settleToOneIkeSa(charon: Charon, name: string, timeoutMs = 3000): Promise<IkeSaInfo[]> {
  let sas: IkeSaInfo[] = [];
  await waitFor(
    async () => {
      sas = (await charon.listSas()).filter((s) => s.name === name);
      return sas.length === 1;
    },
    timeoutMs,
    { what: 'strongSwan down to one IKE SA', intervalMs: 200 },
  ).catch(() => {});
  return sas;
}

/**
 * Writes strongswan.conf + swanctl.conf into `opts.dir`, starts charon inside `ns` with a private /run,
 * waits for its vici socket and loads the configuration.
 */
export async function startCharon(lab: Lab, ns: string, opts: CharonOptions): Promise<Charon> {
  const { dir, conns } = opts;
  const conf = join(dir, 'strongswan.conf');
  const swconf = join(dir, 'swanctl.conf');
  writeFileSync(conf, strongswanConf({ dir, logLevels: opts.logLevels, aggressivePsk: opts.aggressivePsk }));
  writeFileSync(swconf, swanctlConf(conns), { mode: 0o600 });
  const proc = lab.spawn(ns, 'unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /run && exec ${CHARON}`], {
    env: { STRONGSWAN_CONF: conf },
    logFile: join(dir, 'charon.stderr'),
  });
  const charon = new Charon(lab, ns, dir, proc, conns);
  try {
    await waitFor(
      async () => {
        if (!proc.running) throw new WaitAbort(`charon exited early:\n${charon.log()}`);
        const r = await charon.swanctl(['--stats'], { check: false, timeoutMs: 5000 });
        return r.code === 0;
      },
      15_000,
      { what: `charon vici socket in ${ns}`, intervalMs: 100 },
    );
  } catch (e) {
    if (e instanceof WaitAbort) throw e;
    throw new Error(`${(e as Error).message}\n--- charon log ---\n${charon.log()}`);
  }
  await charon.swanctl(['--load-all', '--file', swconf]);
  return charon;
}

/** Why charon-based tests cannot run here, or undefined when they can. */
export function charonUnavailable(): string | undefined {
  if (!existsSync(CHARON)) return `strongSwan charon not installed (${CHARON})`;
  if (!existsSync('/usr/sbin/swanctl') && !existsSync('/usr/bin/swanctl')) return 'swanctl not installed';
  return undefined;
}
