/**
 * IKEv1 interop: twinsec <-> strongSwan 5.9.8 (charon, kernel-libipsec), main mode with PSK and
 * quick mode, in network namespaces, each case with twinsec as initiator and as responder. The
 * harness and what a pass means are in v1-cases.ts (shared with the aggressive mode cases).
 */
import t from 'tap';
import { ALIBABA_DEFAULT, type Case, registerCases } from './v1-cases.js';

const CASES: Case[] = [
  {
    name: '(a) the Alibaba default: aes128-sha1-modp1024 / esp aes128-sha1-modp1024 (PFS)',
    ...ALIBABA_DEFAULT,
  },
  {
    name: '(b) aes256-sha256-modp2048 / esp aes256gcm16',
    ike: ['aes256-sha256-modp2048'],
    esp: ['aes256gcm16'],
    expect: {
      ike: { encr: 'AES_CBC', keysize: 256, integ: 'HMAC_SHA2_256_128', dh: 'MODP_2048' },
      child: { encr: 'AES_GCM_16', keysize: 256 },
    },
  },
  {
    name: '(d) wrong PSK: no SA on either side, twinsecd keeps running',
    ...ALIBABA_DEFAULT,
    swPsk: 'charon-side-secret-B',
  },
];

registerCases(t, CASES);
