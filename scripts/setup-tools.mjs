/**
 * The system tools `npm run lab` needs, and their installation with apt-get (Debian/Ubuntu, as root)
 * when some are missing. Used by scripts/lab.mjs.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What the lab runs (test/lab/ha-demo.ts, ha-lab.ts, netns.ts; twinsecd publishes routes with ip). */
export const LAB_TOOLS = [
  { tool: 'ip', pkg: 'iproute2' }, // namespaces, veth links, addresses, routes, rules
  { tool: 'iptables', pkg: 'iptables' }, // the silent cut of link 1
  { tool: 'iptables-restore', pkg: 'iptables' },
  { tool: 'ping', pkg: 'iputils-ping' }, // LAN-to-LAN pings: the measurement
  { tool: 'sysctl', pkg: 'procps' }, // ip_forward, rp_filter in the namespaces
];

/**
 * What the BGP lab needs on top of LAB_TOOLS (test/lab/bgp-demo.ts, test/lab/bgp*.test.ts): FRR's zebra,
 * bfdd and bgpd (in /usr/lib/frr, off PATH) and vtysh, all in Debian's `frr` package, so vtysh stands for
 * the whole package. aptInstall's policy-rc.d keeps the package's service from starting: no FRR in the
 * root namespace, each lab namespace runs its own (test/lab/frr.ts).
 */
export const BGP_LAB_TOOLS = [{ tool: 'vtysh', pkg: 'frr' }];

/** What the first build (npm ci: node-gyp for the native addon) needs. */
export const BUILD_TOOLS = [
  { tool: 'python3', pkg: 'python3' },
  { tool: 'make', pkg: 'make' },
  { tool: 'g++', pkg: 'g++' },
];

/** Where Debian puts these tools; searched after PATH (a root shell without sbin on PATH still works). */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Full path of `tool` on PATH, else in the system directories; undefined when nowhere. */
export function findTool(tool, path = process.env.PATH ?? '') {
  const dirs = [...path.split(delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const file = join(dir, tool);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

/** The entries of `tools` that cannot be found. */
export function missingTools(tools) {
  return tools.filter((t) => findTool(t.tool) === undefined);
}

/** Appends to PATH the directories of tools found outside it, so child processes find them too. */
export function extendPath(tools) {
  const path = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const t of tools) {
    const file = findTool(t.tool);
    const dir = file?.slice(0, -t.tool.length - 1);
    if (dir && !path.includes(dir)) path.push(dir);
  }
  process.env.PATH = path.join(delimiter);
}

/** Package names of `tools`, each once, in order. */
export function packagesOf(tools) {
  return [...new Set(tools.map((t) => t.pkg))];
}

/** The command a person would run to install `pkgs`. */
export function installCommand(pkgs, { sudo = false } = {}) {
  const s = sudo ? 'sudo ' : '';
  return `${s}apt-get update && ${s}apt-get install -y ${pkgs.join(' ')}`;
}

/**
 * Runs `fn` with a policy-rc.d that refuses every service start (procps and frr ship init scripts), so
 * installing packages starts no daemon. Leaves an existing policy-rc.d alone; removes its own afterwards,
 * also when interrupted.
 */
export function withoutServiceStarts(fn) {
  if (existsSync(POLICY_RC_D)) return fn();
  writeFileSync(
    POLICY_RC_D,
    '#!/bin/sh\n# npm run lab (twinsec) is installing packages: no service starts\nexit 101\n',
    {
      mode: 0o755,
    },
  );
  const cleanup = () => rmSync(POLICY_RC_D, { force: true });
  // Without a listener, Ctrl-C or SIGTERM would end Node at once and leave the file behind; with one,
  // apt-get (which gets the signal too) stops, spawnSync returns and `finally` removes the file.
  const onSignal = (sig) => {
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return fn();
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * `apt-get update` then `apt-get install -y pkgs` (waiting up to 5 min for a dpkg lock held by e.g.
 * unattended-upgrades), output shown; true when the install succeeded.
 */
export function aptInstall(pkgs, log = console.log) {
  const aptGet = findTool('apt-get') ?? 'apt-get';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args) => {
    const all = ['-q', '-o', 'DPkg::Lock::Timeout=300', ...args];
    log(`$ apt-get ${all.join(' ')}`);
    const r = spawnSync(aptGet, all, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.error) log(`apt-get: ${r.error.message}`);
    return r.status === 0;
  };
  return withoutServiceStarts(() => {
    // An update that fails (offline mirror) may still leave usable lists: try the install anyway.
    if (!apt(['update'])) log('apt-get update failed; trying the install with the package lists there are');
    return apt([
      'install',
      '-y',
      '--no-install-recommends',
      '-o',
      'Dpkg::Options::=--force-confdef',
      '-o',
      'Dpkg::Options::=--force-confold',
      ...pkgs,
    ]);
  });
}

/**
 * Makes sure `tools` are present: as root with apt-get, installs the missing ones' packages (saying so);
 * otherwise, or when that fails, prints the exact command to run. True when every tool is there.
 */
export function ensureTools(
  tools,
  { log = console.log, error = console.error, prefix = 'npm run lab' } = {},
) {
  let missing = missingTools(tools);
  if (missing.length === 0) {
    extendPath(tools);
    return true;
  }
  const pkgs = packagesOf(missing);
  const what = `${missing.map((t) => t.tool).join(', ')} (package${pkgs.length > 1 ? 's' : ''} ${pkgs.join(', ')})`;
  const isRoot = process.getuid?.() === 0;
  const hasApt = findTool('apt-get') !== undefined;
  if (!isRoot || !hasApt) {
    error(`${prefix}: missing ${what}.`);
    error(
      hasApt
        ? `  Install them:  ${installCommand(pkgs, { sudo: true })}\n  or run as root and it installs them itself:  sudo ${prefix}`
        : `  No apt-get here; install the package(s) with your package manager (Debian/Ubuntu:  ${installCommand(pkgs)})`,
    );
    return false;
  }
  log(`${prefix}: missing ${what}; installing with apt-get (no service is started)...`);
  const ok = aptInstall(pkgs, log);
  missing = missingTools(tools);
  if (!ok || missing.length > 0) {
    error(
      `${prefix}: ${ok ? `still missing ${missing.map((t) => t.tool).join(', ')} after` : 'could not complete'} apt-get install.`,
    );
    error(`  Run it yourself and look at its errors:  ${installCommand(pkgs)}`);
    error(`  then again:  ${prefix}`);
    return false;
  }
  log(`${prefix}: installed ${pkgs.join(' ')}.`);
  extendPath(tools);
  return true;
}
