/**
 * The end of a quick mode: KEYMAT per direction (RFC 2409 §5.5), the pair into the data plane and
 * under the core's lifetimes, and what a rekey of an existing pair implies (make-before-break,
 * collisions).
 */
import type { ChildSaSpec } from '../../dataplane/types.js';
import { ChildSa } from '../core/child-sa.js';
import { childVolumeLimits } from '../core/lifetimes.js';
import type { CoreServices } from '../core/protocol.js';
import { dataplaneName } from '../core/site-routes.js';
import { spiHex } from '../core/view.js';
import { v1EspEncrKeyLen, v1EspInteg } from '../crypto/v1-algs.js';
import { v1Keymat, v1SplitKeymat } from '../crypto/v1-keys.js';
import { algName } from '../proposal.js';
import { spiBuffer } from '../v2/tasks/child-create.js';
import { TransformType } from '../wire/constants.js';
import { tsToString } from '../wire/ts.js';
import { ProtocolIdV1 } from '../wire/v1/constants.js';
import type { IkeSaV1, Successor, V1Child } from './ike-sa.js';
import { deleteEsp, sendInformational } from './informational.js';
import { asChosen } from './p2-proposal.js';
import type { QmState } from './quick-mode.js';

export const udp = (sa: IkeSaV1): boolean =>
  sa.conn.encapsulation === 'udp' || (sa.conn.encapsulation === 'auto' && (sa.nat.local || sa.nat.remote));

/** The pair as the data plane takes it, keys derived from the exchange's nonces and SPIs. */
function pairSpec(sa: IkeSaV1, st: QmState): ChildSaSpec {
  const c = st.choice!.suite;
  const peerSpi = st.peerSpi!;
  const chosen = asChosen(c, peerSpi);
  const encrLen = v1EspEncrKeyLen(c.transformId, c.keyLen || 192);
  const integLen = c.auth ? v1EspInteg(c.auth).keyLen : 0;
  const km = (spi: Buffer) =>
    v1SplitKeymat(
      v1Keymat(
        sa.prf!,
        sa.keys!.skeyidD,
        ProtocolIdV1.IPSEC_ESP,
        spi,
        st.niB,
        st.nrB!,
        encrLen + integLen,
        st.gqmxy,
      ),
      encrLen,
      integLen,
    );
  const kin = km(spiBuffer(st.spiIn));
  const kout = km(peerSpi);
  const encap: 'udp' | 'esp' = udp(sa) ? 'udp' : 'esp';
  const port = (p: number): number => (encap === 'udp' ? p : 0);
  const tsRemote = st.tsRemote.map(tsToString);
  return {
    ...dataplaneName(sa, tsRemote),
    spiIn: st.spiIn,
    spiOut: peerSpi.readUInt32BE(0),
    encr: algName(TransformType.ENCR, chosen.encr.id, chosen.encr.keyLen),
    integ: chosen.integ ? algName(TransformType.INTEG, chosen.integ) : null,
    encrKeyIn: kin.encr,
    encrKeyOut: kout.encr,
    integKeyIn: kin.integ,
    integKeyOut: kout.integ,
    esn: false,
    encapsulation: encap,
    local: { address: sa.local.address, port: port(sa.local.port) },
    remote: { address: sa.remote.address, port: port(sa.remote.port) },
    tsLocal: st.tsLocal.map(tsToString),
    tsRemote,
    ...childVolumeLimits(sa.conn.esp),
  };
}

/** The responder: the pair into the data plane before HASH(3), outbound deferred. */
export function installEarly(core: CoreServices, sa: IkeSaV1, st: QmState): ChildSaSpec {
  const spec = pairSpec(sa, st);
  core.dataplane.installSa({ ...spec, activate: false });
  st.undo = () => {
    st.undo = undefined;
    core.dataplane.removeSa(spec.spiIn);
  };
  return spec;
}

/** The exchange is complete: the pair into the data plane (unless already there) and the core. */
export function install(core: CoreServices, sa: IkeSaV1, st: QmState): void {
  const spec = st.early ?? pairSpec(sa, st);
  st.undo = undefined;
  // A replacing pair goes outbound only once the peer uses it (or the old pair is removed), on
  // both sides (make-before-break, as IKEv2 does for §2.8).
  const defer = st.initiator ? st.deferOutbound === true : st.replaces !== undefined;
  if (!st.early) core.dataplane.installSa(defer ? { ...spec, activate: false } : spec);
  const c = st.choice!.suite;
  const child = new ChildSa<V1Child>(
    sa.ctx.bus,
    {
      connection: sa.name,
      spiIn: spec.spiIn,
      spiOut: spec.spiOut,
      encr: spec.encr,
      integ: spec.integ,
      dh: c.group ? algName(TransformType.DH, c.group) : null,
      encapsulation: spec.encapsulation,
      tsLocal: spec.tsLocal,
      tsRemote: spec.tsRemote,
    },
    { chosen: asChosen(c, st.peerSpi!), tsLocal: st.tsLocal, tsRemote: st.tsRemote },
  );
  core.childInstalled(sa, child as ChildSa<unknown>, { seconds: st.choice!.life, peerFirst: !st.initiator });
  const [ni, nr] = [st.niB, st.nrB!];
  if (st.replaces)
    replaced(core, sa, st.replaces, {
      spiIn: st.spiIn,
      nonce: Buffer.compare(ni, nr) < 0 ? ni : nr,
      ours: st.initiator,
    });
}

/** ms before the redundant pair of a collision is deleted (the peer may still be installing it). */
const REDUNDANT_LINGER = 1000;

/**
 * `old` has a successor. Both sides may rekey the same pair at once (a quick mode each way):
 * IKEv1 has no rule for it, so twinsec borrows IKEv2's (RFC 7296 §2.8.1): the pair whose quick
 * mode has the lowest nonce is redundant, and the side that started it deletes it. Both sides
 * know all four nonces, so both agree without a word; only one DELETE is sent.
 */
function replaced(core: CoreServices, sa: IkeSaV1, old: ChildSa<V1Child>, mine: Successor): void {
  const first = old.proto.successor;
  if (!first) {
    old.proto.successor = mine;
    old.transition('rekeyed', 'replaced by quick mode');
    return;
  }
  const loser = Buffer.compare(mine.nonce, first.nonce) < 0 ? mine : first;
  sa.debug(`rekey collision on ${spiHex(old.spiIn)}: ${spiHex(loser.spiIn)} is redundant`);
  if (!loser.ours) return;
  sa.timers.set(REDUNDANT_LINGER, () => {
    if (sa.phase === 'dead' || !sa.child(loser.spiIn)) return;
    sendInformational(sa, [deleteEsp([loser.spiIn])]);
    core.removeChild(sa, loser.spiIn, 'redundant after a rekey collision');
  });
}
