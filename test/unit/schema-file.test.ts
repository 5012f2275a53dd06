/**
 * schema/twinsec.schema.json is generated from configJsonSchema() (scripts/gen-schema.mjs). These
 * tests fail when the committed file is stale, and check that the schema describes real config
 * files the way twinsec's loader does (structurally: cross-field checks stay in the loader).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseDocument } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { configJsonSchema } from '../../src/config/schema.js';
import { importAliyun } from '../../src/import/aliyun.js';

// Compiled to dist/test/unit; the script, the schema file and fixtures are in the source tree.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'gen-schema.mjs');
const SCHEMA_FILE = join(ROOT, 'schema', 'twinsec.schema.json');
const CONFIG_FIXTURES = join(ROOT, 'test', 'fixtures', 'config');

type Schema = Record<string, unknown>;

function runScript(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const committed = (): Schema => JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Schema;

t.test('the committed schema is what the generator produces now', async (t) => {
  const r = await runScript(['--check']);
  t.equal(r.code, 0, r.stderr.trim() || 'gen-schema.mjs --check');
  const out = await runScript(['--stdout']);
  t.equal(out.code, 0, out.stderr);
  t.equal(out.stdout, readFileSync(SCHEMA_FILE, 'utf8'), 'byte for byte');
  // Independently of the script: the file is configJsonSchema() plus two annotations.
  const { title, $comment, ...rest } = committed();
  t.type(title, 'string');
  t.type($comment, 'string');
  t.same(rest, configJsonSchema());
});

/**
 * JSON Schema keywords the structural validator below implements. They are also the ones that mean
 * the same in draft-07, which is what yaml-language-server (VS Code, Neovim...) validates with, so
 * an editor reports what this validator does.
 */
const KEYWORDS = new Set([
  '$schema',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'format',
  'type',
  'properties',
  'additionalProperties',
  'required',
  'propertyNames',
  'items',
  'enum',
  'const',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'anyOf',
  'oneOf',
  'allOf',
]);

/** Every keyword used anywhere in a schema, with a path to one use. */
function keywordsOf(s: unknown, at = '#', out = new Map<string, string>()): Map<string, string> {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return out;
  for (const [k, v] of Object.entries(s)) {
    if (!out.has(k)) out.set(k, at);
    if (k === 'properties' && typeof v === 'object' && v !== null) {
      for (const [p, sub] of Object.entries(v)) keywordsOf(sub, `${at}/properties/${p}`, out);
    } else if (k === 'anyOf' || k === 'oneOf' || k === 'allOf') {
      for (const [i, sub] of (v as unknown[]).entries()) keywordsOf(sub, `${at}/${k}/${i}`, out);
    } else if (k === 'items' || k === 'additionalProperties' || k === 'propertyNames') {
      keywordsOf(v, `${at}/${k}`, out);
    }
  }
  return out;
}

const typeOk = (type: string, v: unknown): boolean => {
  switch (type) {
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'null':
      return v === null;
    default:
      return typeof v === type;
  }
};

/** A small JSON Schema validator for KEYWORDS; returns "path: problem" lines. */
function validate(s: Schema, v: unknown, at = ''): string[] {
  const here = at || '(root)';
  const errs: string[] = [];
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((ty) => typeOk(ty, v))) return [`${here}: expected ${types.join('|')}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => e === v)) errs.push(`${here}: not in enum`);
  if (s.const !== undefined && s.const !== v) errs.push(`${here}: not the constant`);
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) errs.push(`${here}: below minimum`);
    if (typeof s.maximum === 'number' && v > s.maximum) errs.push(`${here}: above maximum`);
    if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) errs.push(`${here}: too small`);
    if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) errs.push(`${here}: too big`);
  }
  if (typeof v === 'string') {
    const len = [...v].length;
    if (typeof s.minLength === 'number' && len < s.minLength) errs.push(`${here}: too short`);
    if (typeof s.maxLength === 'number' && len > s.maxLength) errs.push(`${here}: too long`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) errs.push(`${here}: pattern`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) errs.push(`${here}: too few items`);
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) errs.push(`${here}: too many items`);
    if (typeof s.items === 'object' && s.items !== null) {
      for (const [i, item] of v.entries()) errs.push(...validate(s.items as Schema, item, `${at}[${i}]`));
    }
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const obj = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) {
      if (!(r in obj)) errs.push(`${at ? `${at}.` : ''}${r}: required`);
    }
    for (const [k, val] of Object.entries(obj)) {
      const path = at ? `${at}.${k}` : k;
      if (s.propertyNames) errs.push(...validate(s.propertyNames as Schema, k, `${path} (name)`));
      if (props[k]) errs.push(...validate(props[k], val, path));
      else if (s.additionalProperties === false) errs.push(`${path}: unknown field`);
      else if (typeof s.additionalProperties === 'object') {
        errs.push(...validate(s.additionalProperties as Schema, val, path));
      }
    }
  }
  const subs = (k: string) => ((s[k] ?? []) as Schema[]).map((sub) => validate(sub, v, at).length === 0);
  if (s.anyOf && !subs('anyOf').some(Boolean)) errs.push(`${here}: matches no anyOf branch`);
  if (s.oneOf && subs('oneOf').filter(Boolean).length !== 1) errs.push(`${here}: not exactly one oneOf`);
  if (s.allOf && !subs('allOf').every(Boolean)) errs.push(`${here}: fails an allOf branch`);
  return errs;
}

const yamlOf = (text: string): unknown => parseDocument(text).toJS();

t.test('the schema only uses keywords editors (draft-07) and the validator here understand', async (t) => {
  const used = keywordsOf(committed());
  for (const [k, at] of used) t.ok(KEYWORDS.has(k), `keyword '${k}' (at ${at}) is understood`);
  t.ok(used.has('additionalProperties'), 'unknown fields are described');
});

t.test('required fields and defaults are in the schema', async (t) => {
  const s = committed() as {
    required: string[];
    additionalProperties: boolean;
    properties: Record<string, Schema>;
  };
  t.same(s.required, ['connections']);
  t.equal(s.additionalProperties, false);
  const conns = s.properties.connections as { additionalProperties: Schema; propertyNames: Schema };
  const conn = conns.additionalProperties as { required: string[]; properties: Record<string, Schema> };
  t.same([...conn.required].sort(), ['local', 'localSubnets', 'remote', 'remoteSubnets']);
  for (const f of ['version', 'local', 'remote', 'psk', 'pskFile', 'ike', 'esp', 'start', 'healthCheck']) {
    t.ok(conn.properties[f], `connection field ${f}`);
  }
  t.equal(conn.properties.start!.default, 'initiate');
  t.same(conn.properties.start!.enum, ['initiate', 'listen']);
  t.equal(conns.propertyNames.pattern, '^[A-Za-z0-9_-]{1,32}$');
  const routes = s.properties.routes as { items: { required: string[] } };
  t.same(routes.items.required, ['destination', 'via']);
});

t.test('valid configs pass the schema (and the loader)', async (t) => {
  const schema = committed();
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const example = /## Configuration reference[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(example, 'README has a configuration example');
  const aliyun = readFileSync(join(ROOT, 'test', 'fixtures', 'aliyun', 'ikev2-default.json'), 'utf8');
  const samples: [string, string][] = [
    ['good.yaml', readFileSync(join(CONFIG_FIXTURES, 'good.yaml'), 'utf8')],
    ['minimal.yaml', readFileSync(join(CONFIG_FIXTURES, 'minimal.yaml'), 'utf8')],
    ['README example', example ?? ''],
    ['import-aliyun output', importAliyun(aliyun).yaml],
  ];
  for (const [name, text] of samples) {
    t.same(validate(schema, yamlOf(text)), [], name);
    t.doesNotThrow(() => parseConfig(text, { baseDir: CONFIG_FIXTURES }), `${name} loads`);
  }
});

t.test('structural mistakes fail the schema at the path the loader reports', async (t) => {
  const schema = committed();
  const base = {
    connections: {
      t1: {
        local: '192.0.2.1',
        remote: '203.0.113.1',
        psk: 'x',
        localSubnets: ['10.0.0.0/8'],
        remoteSubnets: ['10.1.0.0/16'],
      },
    },
  };
  const t1 = base.connections.t1;
  const cases: [string, unknown, string][] = [
    ['unknown top-level field', { ...base, tunnel: {} }, 'tunnel: unknown field'],
    [
      'unknown connection field',
      { connections: { t1: { ...t1, foo: 1 } } },
      'connections.t1.foo: unknown field',
    ],
    ['missing local', { connections: { t1: { ...t1, local: undefined } } }, 'connections.t1.local: required'],
    ['no connections', {}, 'connections: required'],
    ['mtu as text', { ...base, tun: { mtu: '1400' } }, 'tun.mtu: expected integer'],
    ['mtu too small', { ...base, tun: { mtu: 100 } }, 'tun.mtu: below minimum'],
    ['bad start', { connections: { t1: { ...t1, start: 'auto' } } }, 'connections.t1.start: not in enum'],
    ['bad version', { connections: { t1: { ...t1, version: 3 } } }, 'connections.t1.version: not in enum'],
    ['bad name', { connections: { 'a b': t1 } }, 'connections.a b (name): pattern'],
    [
      'no proposals',
      { connections: { t1: { ...t1, ike: { proposals: [] } } } },
      'connections.t1.ike.proposals: too few items',
    ],
    ['route without via', { ...base, routes: [{ destination: '10.1.0.0/16' }] }, 'routes[0].via: required'],
  ];
  for (const [name, doc, want] of cases) {
    const json = JSON.parse(JSON.stringify(doc)) as unknown;
    t.same(validate(schema, json), [want], name);
  }
  // bad.yaml has structural problems too; the schema finds them as the loader does.
  const bad = yamlOf(readFileSync(join(CONFIG_FIXTURES, 'bad.yaml'), 'utf8'));
  const errs = validate(schema, bad);
  t.ok(errs.includes('tun.mtu: below minimum'), 'bad.yaml: mtu');
  t.ok(errs.includes('connections.t1.foo: unknown field'), 'bad.yaml: unknown field');
  t.ok(errs.includes('connections.t1.version: not in enum'), 'bad.yaml: version');
});
