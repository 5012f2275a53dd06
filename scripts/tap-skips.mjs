/**
 * Skipped tests in tap's `--reporter=tap` output, and the allowlist that lets them pass under CI
 * (scripts/test.mjs).
 *
 * The allowlist (test/skips.json) maps a pattern to the reason the skip is accepted:
 *
 *   { "test/lab/docker.test.ts": "opt-in: needs dockerd ..." }
 *
 * A pattern matches a skip when it matches, as a whole, one of: the test file (`test/lab/x.test.ts`,
 * the TypeScript source), the skipped test's full name (`test/lab/x.test.ts > parent > name`), or the
 * skipped test's own name. `*` matches any run of characters; everything else is literal.
 */
import { existsSync, readFileSync } from 'node:fs';

/** `dist/test/lab/x.test.js` -> `test/lab/x.test.ts`; anything else unchanged. */
export function sourceName(file) {
  const m = /^(?:\.\/)?dist\/(test\/.*)\.js$/.exec(file);
  return m ? `${m[1]}.ts` : file;
}

/** Splits a TAP test point's text after `ok N -` into description and directive (first unescaped `#`). */
function splitDirective(text) {
  let desc = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length) {
      desc += text[++i];
    } else if (ch === '#') {
      return { desc: desc.trim(), directive: text.slice(i + 1).trim() };
    } else {
      desc += ch;
    }
  }
  return { desc: desc.trim(), directive: '' };
}

const POINT = /^( *)(not ok|ok)\b(?: +\d+)?(?: +-)?(.*)$/;
const SUBTEST = /^( *)# Subtest: (.*)$/;
const SKIP = /^skip\S*(?:\s+(.*))?$/i;

/**
 * Every test point with a SKIP directive, at any depth, in a tap stream whose top-level test points are
 * the test files. Returns `{ file, path, reason }`: file as its TypeScript source, path the subtest names
 * below the file (empty when the whole file was skipped), reason the directive's text ('' if none).
 * YAML diagnostic blocks (`---` ... `...`) are not read, so text quoted in them cannot count.
 */
export function parseTapSkips(out) {
  const skips = [];
  const names = []; // names[k]: the subtest being run at depth k (indent 4k)
  let yamlIndent = -1; // inside a YAML block opened at this indent
  for (const raw of out.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (yamlIndent >= 0) {
      if (line.startsWith(' '.repeat(yamlIndent)) && line.slice(yamlIndent) === '...') yamlIndent = -1;
      continue;
    }
    const yaml = /^( *)---$/.exec(line);
    if (yaml) {
      yamlIndent = yaml[1].length;
      continue;
    }
    const sub = SUBTEST.exec(line);
    if (sub) {
      if (sub[1].length % 4 === 0) {
        const depth = sub[1].length / 4;
        names.length = depth;
        names[depth] = sub[2].trim();
      }
      continue;
    }
    const p = POINT.exec(line);
    if (!p || p[1].length % 4 !== 0) continue;
    // `ok 1 - name`, `ok 1 name`, `ok 1`; the rest must start a description or a directive.
    if (p[3] !== '' && !/^\s/.test(p[3])) continue;
    const depth = p[1].length / 4;
    const { desc, directive } = splitDirective(p[3]);
    const s = SKIP.exec(directive);
    if (s) {
      const top = depth === 0 ? desc : (names[0] ?? '(unknown file)');
      const path = depth === 0 ? [] : [...names.slice(1, depth), desc];
      skips.push({ file: sourceName(top), path, reason: (s[1] ?? '').trim() });
    }
    names.length = Math.min(names.length, depth);
  }
  return skips;
}

/** `file > parent > name`. */
export function skipName(skip) {
  return [skip.file, ...skip.path].join(' > ');
}

/** Reads the allowlist; `{ entries: [[pattern, reason]], error }` (a missing file is an empty list). */
export function loadAllowlist(file) {
  if (!existsSync(file)) return { entries: [] };
  let data;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { entries: [], error: `not valid JSON: ${e instanceof Error ? e.message : e}` };
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    return { entries: [], error: 'must be a JSON object { "<test file or test name pattern>": "reason" }' };
  const entries = [];
  for (const [pattern, reason] of Object.entries(data)) {
    if (typeof reason !== 'string' || reason.trim() === '')
      return { entries: [], error: `"${pattern}": the reason must be a non-empty string` };
    entries.push([pattern, reason.trim()]);
  }
  return { entries };
}

function globRegExp(pattern) {
  const body = pattern
    .split('*')
    .map((s) => s.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 's');
}

/** The first allowlist entry matching the skip, as `[pattern, reason]`, or undefined. */
export function allowFor(skip, entries) {
  const candidates = [skip.file, skipName(skip)];
  if (skip.path.length > 0) candidates.push(skip.path.at(-1));
  return entries.find(([pattern]) => {
    const re = globRegExp(pattern);
    return candidates.some((c) => re.test(c));
  });
}
