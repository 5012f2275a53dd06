/**
 * The IKE side of a daemon: the version-neutral core with each protocol version plugged in.
 * IKEv1 (v1/) registers here beside IKEv2.
 */
import { type CoreOptions, IkeCore } from './core/ike-core.js';
import { IkeV1 } from './v1/protocol.js';
import { IkeV2 } from './v2/protocol.js';

export function createIke(o: CoreOptions): IkeCore {
  const core = new IkeCore(o);
  core.register(new IkeV2(core));
  core.register(new IkeV1(core));
  return core;
}

export type { IkeCore } from './core/ike-core.js';
