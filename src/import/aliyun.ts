/**
 * Alibaba Cloud VPN Gateway "download configuration" (console: IPsec Connections > Download
 * Configuration; API: DownloadVpnConnectionConfig) -> a twinsec configuration for the customer
 * gateway side, as YAML text.
 *
 * This module is the entry point (importAliyun, aliyunToConfig) and the single-tunnel import; the
 * rest is split by concern:
 * - aliyun-download.ts: the download's shape and the field readers (algorithm tables, ImportError,
 *   the Reader, the per-tunnel IkeConfig/IpsecConfig);
 * - aliyun-bgp.ts: the dual-tunnel download with BGP (two route-based connections and the plan for
 *   the FRR snippet, frr.ts);
 * - aliyun-health.ts: HealthCheckConfig/VcoHealthCheck, EnableDpd and EnableNatTraversal;
 * - aliyun-config.ts: the generated configuration's shape, its YAML rendering and the self-check.
 * The public API is exported from here.
 *
 * Everything is pure: no I/O. Problems are collected and reported together as "path: message"
 * (paths are the download's JSON field names). No message, warning or comment ever contains the
 * PSK; the PSK appears once in the output, as a double-quoted YAML string that parses back to the
 * exact same text.
 */
import { isIP } from 'node:net';
import { CONNECTION_NAME } from '../config/schema.js';
import { aliyunBgpToConfig, hasBgpConfigs } from './aliyun-bgp.js';
import {
  type AliyunImport,
  type AliyunImportOptions,
  configToYaml,
  type ImportedConfig,
  type ImportedConnection,
  selfCheck,
} from './aliyun-config.js';
import {
  contains,
  ImportError,
  isObj,
  type Obj,
  parseAliyunJson,
  Reader,
  readSa,
  saConnection,
  show,
  typeOf,
} from './aliyun-download.js';
import { readHealthCheck, readTransport, singleTunnelHealth } from './aliyun-health.js';
import { type BgpPlan, frrConfig } from './frr.js';

export { ALIYUN_DEFAULT_ASN, parseAsn } from './aliyun-bgp.js';
export {
  type AliyunImport,
  type AliyunImportOptions,
  configToYaml,
  type ImportedConfig,
  type ImportedConnection,
  type ImportedRoute,
} from './aliyun-config.js';
export {
  ALIYUN_DH,
  ALIYUN_ENC,
  ALIYUN_ESP_AUTH,
  ALIYUN_IKE_AUTH,
  ImportError,
  parseAliyunJson,
} from './aliyun-download.js';

export const DEFAULT_CONNECTION_NAME = 't1';

/** JSON text of a download -> YAML configuration. Throws ImportError listing every problem. */
export function importAliyun(text: string, opts: AliyunImportOptions = {}): AliyunImport {
  const { config, warnings, bgp } = aliyunToConfig(parseAliyunJson(text), opts);
  const out: AliyunImport = { config, yaml: configToYaml(config, bgp !== undefined), warnings };
  if (bgp) {
    out.bgp = bgp;
    out.frr = frrConfig(bgp);
  }
  return out;
}

/**
 * Download (parsed JSON) -> configuration object and warnings. Throws ImportError with every
 * problem. The result is checked with twinsec's own loader, so it is what `twinsecd --check`
 * accepts.
 */
export function aliyunToConfig(
  download: unknown,
  opts: AliyunImportOptions = {},
): { config: ImportedConfig; warnings: string[]; bgp?: BgpPlan } {
  const name = opts.name ?? DEFAULT_CONNECTION_NAME;
  if (!CONNECTION_NAME.test(name)) {
    throw new ImportError([`--name: invalid connection name ${show(name)} (use 1-32 of A-Z a-z 0-9 _ -)`]);
  }
  if (!isObj(download)) throw new ImportError([`(root): expected a JSON object, got ${typeOf(download)}`]);
  const wrapped = isObj(download.VpnConnectionConfig);
  const root = wrapped ? (download.VpnConnectionConfig as Obj) : download;
  const r = new Reader(wrapped ? 'VpnConnectionConfig.' : '');

  const tunnels = root.TunnelsConfig;
  // TunnelsConfig with BgpConfigs entries: the dual-tunnel BGP case (route-based, FRR routes).
  if (tunnels !== undefined && tunnels !== null && hasBgpConfigs(root.BgpConfigs)) {
    return aliyunBgpToConfig(root, r, opts);
  }
  const bgpOnly = [
    ...(opts.asn !== undefined ? ['--asn'] : []),
    ...(opts.networks !== undefined ? ['--network'] : []),
  ];
  if (bgpOnly.length > 0) {
    throw new ImportError(
      bgpOnly.map((f) => `${f}: only used with a dual-tunnel BGP download (TunnelsConfig and BgpConfigs)`),
    );
  }
  if (hasBgpConfigs(root.BgpConfigs)) {
    r.warnings.push(
      `${r.path('BgpConfigs')}: ignored; BGP is imported from dual-tunnel downloads (TunnelsConfig) only`,
    );
  }
  if (tunnels !== undefined && tunnels !== null && root.IkeConfig === undefined) {
    throw new ImportError([
      `${r.path('TunnelsConfig')}: dual-tunnel downloads are supported with BGP only (BgpConfigs), and ` +
        'this one has none; without TunnelsConfig import-aliyun reads the single-tunnel fields Local, ' +
        'Remote, LocalSubnet, RemoteSubnet, IkeConfig and IpsecConfig',
    ]);
  }
  if (tunnels !== undefined && tunnels !== null) {
    r.warnings.push(`${r.path('TunnelsConfig')}: ignored; only the single-tunnel fields are imported`);
  }

  const local = r.address(root, 'Local', r.path('Local'));
  const remote = r.address(root, 'Remote', r.path('Remote'));
  if (local && remote && isIP(local) !== isIP(remote)) {
    r.issue(r.path('Remote'), `IPv${isIP(remote)} address but Local is IPv${isIP(local)}`);
  }
  const localSubnets = r.subnets(root, 'LocalSubnet', r.path('LocalSubnet'));
  const remoteSubnets = r.subnets(root, 'RemoteSubnet', r.path('RemoteSubnet'));

  const sa = readSa(r, root, []);
  const hc = readHealthCheck(r, root, []);
  const health =
    hc && localSubnets && remoteSubnets ? singleTunnelHealth(r, hc, localSubnets, remoteSubnets) : undefined;
  const transport = readTransport(r, [{ obj: root, base: [] }]);

  if (r.issues.length > 0) throw new ImportError(r.issues);
  const { version, mode, localId, remoteId, psk, ike, esp } = saConnection(r, sa, []);
  const conn: ImportedConnection = {
    version,
    ...(mode ? { mode } : {}),
    local: local!,
    remote: remote!,
    ...(localId !== undefined ? { localId } : {}),
    ...(remoteId !== undefined ? { remoteId } : {}),
    psk,
    ike,
    esp,
    localSubnets: localSubnets!.map((c) => `${c.address}/${c.prefix}`),
    remoteSubnets: remoteSubnets!.map((c) => `${c.address}/${c.prefix}`),
    start: 'initiate',
    ...transport,
    ...(health ? { healthCheck: health } : {}),
  };
  for (const c of remoteSubnets!) {
    if (contains(c, conn.remote)) {
      r.warnings.push(
        `${r.path('RemoteSubnet')}: ${c.address}/${c.prefix} contains the VPN gateway address ` +
          `(Remote); publishing that route sends IKE/ESP traffic to the gateway into the tunnel: ` +
          'add a more specific host route to the gateway via your uplink',
      );
    }
  }
  const config: ImportedConfig = {
    connections: { [name]: conn },
    routes: conn.remoteSubnets.map((destination) => ({
      destination,
      via: [{ connection: name, weight: 100 }],
      publish: true,
      // Policy applies only with the check on; reserve (the default) is written out too, so the
      // choice is visible.
      ...(health && hc ? { onAllDown: hc.onAllDown } : {}),
    })),
  };
  selfCheck(config);
  return { config, warnings: r.warnings };
}
