/**
 * YAML text -> validated, defaulted Config. Every problem is collected and reported together as
 * "path: message" so an operator fixes a file in one pass. Messages never echo values of secret
 * fields: issue text is built from field paths and types, not from zod's raw input.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { inspect } from 'node:util';
import { LineCounter, parseDocument } from 'yaml';
import type { core } from 'zod';
import { ConfigError } from '../errors.js';
import { parseProposal } from '../ike/proposal.js';
import { parseV1Proposal } from '../ike/v1/proposal.js';
import {
  canonicalCidr,
  configSchema,
  type ListenAddress,
  parseCidr,
  parseListen,
  type RawConfig,
} from './schema.js';
import type { Config, ConnectionConfig } from './types.js';

export interface ParseOptions {
  /** Directory that relative pskFile and control.socket paths resolve against (default: cwd). */
  baseDir?: string;
}

/** Longest unix socket path Linux accepts (sun_path is 108 bytes including NUL). */
const MAX_SOCKET_PATH = 107;
/** A PSK file larger than this is almost certainly the wrong file. */
const MAX_PSK_FILE = 4096;

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${path}: cannot read (${errnoText(err)})`]);
  }
  return parseConfig(text, { baseDir: dirname(resolvePath(path)) });
}

export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  const baseDir = opts.baseDir ?? process.cwd();
  const issues: string[] = [];
  const raw = parseYaml(text, issues);
  if (issues.length > 0) throw new ConfigError(issues);

  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) for (const issue of result.error.issues) issues.push(...formatIssue(issue));
  const psks = crossCheck(raw, baseDir, issues);
  if (issues.length > 0 || !result.success) throw new ConfigError([...new Set(issues)]);
  return resolveConfig(result.data, psks, baseDir);
}

function parseYaml(text: string, issues: string[]): unknown {
  const lineCounter = new LineCounter();
  // prettyErrors off: pretty errors quote the offending source line, which may hold a PSK.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    issues.push(`yaml: line ${line}, column ${col}: ${e.message}`);
  }
  if (issues.length > 0) return undefined;
  try {
    return doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // e.g. an unresolved alias; yaml's message names the alias, not field values.
    issues.push(`yaml: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/** Renders a path like `connections.t1.ike.proposals[0]`; odd keys are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(String(seg))) out += out ? `.${String(seg)}` : String(seg);
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(root)';
}

const TYPE_NAMES: Record<string, string> = { object: 'a mapping', record: 'a mapping', array: 'a list' };

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

/** One zod issue -> one or more "path: message" lines; never includes the offending value. */
function formatIssue(issue: core.$ZodIssue): string[] {
  const path = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown field`);
    case 'invalid_type': {
      if (issue.input === undefined) return [`${path}: required`];
      if (issue.expected === 'int' && typeof issue.input === 'number') return [`${path}: must be an integer`];
      const expected =
        issue.expected === 'int' ? 'an integer' : (TYPE_NAMES[issue.expected] ?? issue.expected);
      return [`${path}: expected ${expected}, got ${typeOf(issue.input)}`];
    }
    case 'too_small': {
      const n = String(issue.minimum);
      if (issue.origin === 'array') return [`${path}: must have at least ${n} item${n === '1' ? '' : 's'}`];
      if (issue.origin === 'string')
        return [`${path}: must not be ${n === '1' ? 'empty' : `shorter than ${n}`}`];
      return [`${path}: must be >= ${n}`];
    }
    case 'too_big':
      if (issue.origin === 'string') return [`${path}: must be at most ${String(issue.maximum)} characters`];
      if (issue.origin === 'array') return [`${path}: must have at most ${String(issue.maximum)} items`];
      return [`${path}: must be <= ${String(issue.maximum)}`];
    case 'invalid_value':
      return [`${path}: must be one of ${issue.values.map(String).join(', ')}`];
    case 'invalid_key':
      return [`${path}: ${issue.issues[0]?.message ?? 'invalid key'}`];
    default:
      // custom/invalid_format carry our own messages (see schema.ts).
      return [`${path}: ${issue.message}`];
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks spanning several fields, run on the raw document (not the zod output) so they are
 * reported even when zod found unrelated problems. Returns PSKs read from pskFile by connection.
 */
function crossCheck(raw: unknown, baseDir: string, issues: string[]): Map<string, PskFromFile> {
  const psks = new Map<string, PskFromFile>();
  if (!isObj(raw)) return psks;
  const conns = isObj(raw.connections) ? raw.connections : {};
  for (const [name, c] of Object.entries(conns)) {
    if (!isObj(c)) continue;
    const p = formatPath(['connections', name]);
    const hasSecrets = Array.isArray(raw.secrets) && raw.secrets.length > 0;
    if (c.psk === undefined && c.pskFile === undefined) {
      // Keys by identity need the identity before the key: IKEv2 (IDi comes with AUTH). IKEv1 main
      // mode derives its keys from the PSK before the identities are exchanged (RFC 2409 §5.4).
      if (!hasSecrets) issues.push(`${p}.psk: required (psk or pskFile, or top-level secrets)`);
      else if (c.version === 1)
        issues.push(`${p}.psk: required for IKEv1 (secrets by identity are IKEv2 only)`);
    }
    if (typeof c.remoteId === 'string' && c.remoteId.startsWith('*') && c.start !== 'listen')
      issues.push(`${p}.remoteId: a wildcard identity only answers; set start: listen`);
    else if (c.psk !== undefined && c.pskFile !== undefined) {
      issues.push(`${p}.psk: give either psk or pskFile, not both`);
    } else if (typeof c.pskFile === 'string' && c.pskFile !== '') {
      const psk = readPskFile(resolvePath(baseDir, c.pskFile), `${p}.pskFile`, issues);
      if (psk) psks.set(name, psk);
    }
    if ((c.mode === 'main' || c.mode === 'aggressive') && (c.version === undefined || c.version === 2)) {
      issues.push(
        `${p}.mode: IKEv2 has no main or aggressive mode (RFC 7296); remove mode or set version: 1`,
      );
    }
    checkProposals(c, p, issues);
    if (c.mode === 'aggressive' && c.version === 1) aggressiveGroups(c, p, issues);
    if (typeof c.remote === 'string' && isIP(c.remote) === 0 && c.start !== 'listen')
      issues.push(
        `${p}.start: a connection whose remote is '%any' or a subnet cannot initiate; set start: listen`,
      );
    if (typeof c.local === 'string' && typeof c.remote === 'string') {
      const lf = isIP(c.local);
      const rf = isIP(c.remote);
      if (lf && rf && lf !== rf) issues.push(`${p}.remote: IPv${rf} address but local is IPv${lf}`);
    }
  }

  const secrets = Array.isArray(raw.secrets) ? raw.secrets : [];
  secrets.forEach((e: unknown, i: number) => {
    if (!isObj(e)) return;
    const p = `secrets[${i}]`;
    if ((e.psk === undefined) === (e.pskFile === undefined))
      issues.push(`${p}.psk: give either psk or pskFile`);
    else if (typeof e.pskFile === 'string' && e.pskFile !== '') {
      const psk = readPskFile(resolvePath(baseDir, e.pskFile), `${p}.pskFile`, issues);
      if (psk) psks.set(`\u0000${p}`, psk);
    }
  });
  checkInterfaces(raw, conns, issues);

  const routes = Array.isArray(raw.routes) ? raw.routes : [];
  const seen = new Map<string, number>();
  routes.forEach((r, i) => {
    if (!isObj(r)) return;
    if (typeof r.destination === 'string') {
      const c = parseCidr(r.destination);
      if (typeof c !== 'string') {
        const key = canonicalCidr(c);
        const first = seen.get(key);
        if (first !== undefined) issues.push(`routes[${i}].destination: duplicate of routes[${first}]`);
        else seen.set(key, i);
      }
    }
    const via = Array.isArray(r.via) ? r.via : [];
    const used = new Set<string>();
    via.forEach((v, j) => {
      if (!isObj(v) || typeof v.connection !== 'string' || v.connection === '') return;
      const at = `routes[${i}].via[${j}].connection`;
      if (!Object.hasOwn(conns, v.connection)) issues.push(`${at}: unknown connection '${v.connection}'`);
      else if (used.has(v.connection)) issues.push(`${at}: connection '${v.connection}' listed twice`);
      used.add(v.connection);
    });
  });

  const limits = isObj(raw.limits) ? raw.limits : {};
  for (const [per, total] of [
    ['halfOpenPerPeer', 'halfOpen'],
    ['ikeSasPerPeer', 'ikeSas'],
    ['v1UnprovenPerPeer', 'v1Unproven'],
  ] as const) {
    const a = limits[per];
    const b = limits[total];
    if (typeof a === 'number' && typeof b === 'number' && a > b)
      issues.push(`limits.${per}: ${a} is more than limits.${total} (${b})`);
  }

  const ports = isObj(raw.ports) ? raw.ports : {};
  if ((ports.ike ?? 500) === (ports.natt ?? 4500)) issues.push('ports.natt: must differ from ports.ike');

  const control = isObj(raw.control) ? raw.control : {};
  if (typeof control.socket === 'string' && control.socket !== '') {
    const len = Buffer.byteLength(resolvePath(baseDir, control.socket));
    if (len > MAX_SOCKET_PATH)
      issues.push(`control.socket: path too long (${len} bytes, max ${MAX_SOCKET_PATH})`);
  }
  return psks;
}

/** Route-based interfaces: names unique, none the shared TUN's. */
function checkInterfaces(raw: Obj, conns: Obj, issues: string[]): void {
  const tun = isObj(raw.tun) && typeof raw.tun.name === 'string' ? raw.tun.name : 'twinsec0';
  const names = new Map<string, string>();
  for (const [name, c] of Object.entries(conns)) {
    if (!isObj(c) || !isObj(c.interface) || typeof c.interface.name !== 'string') continue;
    const at = `${formatPath(['connections', name])}.interface.name`;
    const n = c.interface.name;
    if (n === tun) issues.push(`${at}: '${n}' is the shared TUN device (tun.name)`);
    else if (names.has(n)) issues.push(`${at}: '${n}' is also connection '${names.get(n)}'s interface`);
    else names.set(n, name);
  }
}

/**
 * Each configured proposal through the parser of the connection's IKE version (absent: 2; an
 * invalid version is zod's to report, and then proposals are not checked): IKEv1 takes 3des in
 * both phases, IKEv2 for ESP only, and both refuse des naming the field.
 */
function checkProposals(c: Obj, p: string, issues: string[]): void {
  const version = c.version ?? 2;
  if (version !== 1 && version !== 2) return;
  for (const kind of ['ike', 'esp'] as const) {
    const params = c[kind];
    const list = isObj(params) && Array.isArray(params.proposals) ? params.proposals : [];
    list.forEach((text: unknown, i: number) => {
      if (typeof text !== 'string') return;
      try {
        if (version === 1) parseV1Proposal(text, kind);
        else parseProposal(text, kind);
      } catch (err) {
        issues.push(`${p}.${kind}.proposals[${i}]: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }
}

/**
 * Aggressive mode carries KE in its first message (RFC 2409 §5.4), so it can propose one DH group
 * only: the first proposal's first group. Every proposal must use exactly that group, or the
 * responder could pick a transform whose group our KE does not match. Unparsable proposals are
 * reported by the schema.
 */
function aggressiveGroups(c: Obj, p: string, issues: string[]): void {
  const ike = isObj(c.ike) ? c.ike : {};
  if (!Array.isArray(ike.proposals)) {
    issues.push(
      `${p}.ike.proposals: required with aggressive mode (the defaults offer several DH groups; ` +
        'aggressive mode proposes one, RFC 2409 §5.4)',
    );
    return;
  }
  const list: unknown[] = ike.proposals;
  let first: number | undefined;
  list.forEach((text, i) => {
    if (typeof text !== 'string') return;
    let groups: number[];
    try {
      groups = parseV1Proposal(text, 'ike').groups;
    } catch {
      return;
    }
    first ??= groups[0];
    if (groups.some((g) => g !== first))
      issues.push(
        `${p}.ike.proposals[${i}]: aggressive mode proposes a single DH group (KE is in its first message, ` +
          `RFC 2409 §5.4); every proposal must use only the first proposal's group`,
      );
  });
}

interface PskFromFile {
  psk: Buffer;
  path: string;
  mode: number;
}

/** Reads a PSK file; errors name the file and cause, never the content. */
function readPskFile(file: string, at: string, issues: string[]): PskFromFile | undefined {
  try {
    const st = statSync(file);
    if (!st.isFile()) {
      issues.push(`${at}: '${file}' is not a regular file`);
      return undefined;
    }
    if (st.size > MAX_PSK_FILE) {
      issues.push(`${at}: '${file}' is too large (max ${MAX_PSK_FILE} bytes)`);
      return undefined;
    }
    let data = readFileSync(file);
    // Editors add a final newline; it is never part of the key.
    if (data.at(-1) === 0x0a) data = data.subarray(0, data.at(-2) === 0x0d ? -2 : -1);
    if (data.length === 0) {
      issues.push(`${at}: '${file}' is empty`);
      return undefined;
    }
    // The mode goes with the key: configWarnings() says when others may read it.
    return { psk: secret(data), path: file, mode: st.mode & 0o7777 };
  } catch (err) {
    issues.push(`${at}: cannot read '${file}' (${errnoText(err)})`);
    return undefined;
  }
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const known: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
  };
  return (code && known[code]) ?? code ?? 'unknown error';
}

/**
 * Copies the key into its own allocation (not Buffer's shared pool) and makes JSON.stringify,
 * util.inspect and therefore pino print a placeholder instead of the bytes.
 */
export function secret(src: Buffer | string): Buffer {
  const from = typeof src === 'string' ? Buffer.from(src, 'utf8') : src;
  const buf = Buffer.alloc(from.length);
  from.copy(buf);
  Object.defineProperty(buf, 'toJSON', { value: () => '[redacted]', enumerable: false });
  Object.defineProperty(buf, inspect.custom, { value: () => '<redacted psk>', enumerable: false });
  return buf;
}

const optRekey = (t: number | undefined): { rekeyTime?: number } => (t === undefined ? {} : { rekeyTime: t });
const optVolume = (
  p: number | undefined,
  b: number | undefined,
): { lifePackets?: number; lifeBytes?: number } => ({
  ...(p === undefined ? {} : { lifePackets: p }),
  ...(b === undefined ? {} : { lifeBytes: b }),
});

function resolveConfig(raw: RawConfig, psks: Map<string, PskFromFile>, baseDir: string): Config {
  const connections: Record<string, ConnectionConfig> = {};
  const routed = new Set(raw.routes.flatMap((r) => r.via.map((v) => v.connection)));
  for (const [name, c] of Object.entries(raw.connections)) {
    const fromFile = psks.get(name);
    connections[name] = {
      name,
      version: c.version,
      ...(c.version === 1 ? { mode: c.mode ?? 'main' } : {}),
      local: c.local,
      remote: c.remote,
      localId: c.localId ?? c.local,
      // A peer that may be anywhere is known by its identity only: %any unless configured.
      remoteId: c.remoteId ?? (isIP(c.remote) ? c.remote : '%any'),
      psk: c.psk !== undefined ? secret(c.psk) : (fromFile?.psk ?? secret('')),
      ...(c.psk === undefined && fromFile ? { pskFile: { path: fromFile.path, mode: fromFile.mode } } : {}),
      ike: { proposals: [...c.ike.proposals], lifetime: c.ike.lifetime, ...optRekey(c.ike.rekeyTime) },
      esp: {
        proposals: [...c.esp.proposals],
        lifetime: c.esp.lifetime,
        ...optRekey(c.esp.rekeyTime),
        ...optVolume(c.esp.lifePackets, c.esp.lifeBytes),
      },
      localSubnets: c.localSubnets,
      remoteSubnets: c.remoteSubnets,
      start: c.start,
      encapsulation: c.encapsulation,
      ...(!isIP(c.remote) && !c.healthCheck && !c.interface && !routed.has(name)
        ? { perSite: true as const }
        : {}),
      ...(c.healthCheck ? { healthCheck: { ...c.healthCheck } } : {}),
      ...(c.dpd ? { dpd: { ...c.dpd } } : {}),
      ...(c.interface
        ? {
            interface: {
              name: c.interface.name,
              address: c.interface.address,
              mtu: c.interface.mtu ?? raw.tun.mtu,
            },
          }
        : {}),
    };
  }
  return {
    tun: raw.tun,
    control: { socket: resolvePath(baseDir, raw.control.socket) },
    ports: raw.ports,
    qos: raw.qos,
    limits: raw.limits,
    ...(raw.secrets.length
      ? {
          secrets: raw.secrets.map((e, i) => ({
            id: e.id,
            psk: e.psk !== undefined ? secret(e.psk) : psks.get(`\u0000secrets[${i}]`)!.psk,
          })),
        }
      : {}),
    log: raw.log,
    connections,
    routes: raw.routes.map((r) => ({
      destination: r.destination,
      via: r.via,
      publish: r.publish,
      holdDown: r.holdDown,
      onAllDown: r.onAllDown,
    })),
    ...(raw.metrics ? { metrics: { listen: parseListen(raw.metrics.listen) as ListenAddress } } : {}),
  };
}
