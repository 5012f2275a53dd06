/**
 * 3DES-CBC ESP (RFC 2451) interop for legacy peers: twinsec <-> strongSwan 5.9.8 (charon,
 * kernel-libipsec, whose userspace ESP takes 3DES from the openssl plugin), in network namespaces,
 * each case with twinsec as initiator and as responder:
 *   - IKEv1 main mode with IKE 3des-sha1-modp1024 and ESP 3des-sha1-modp1024 (PFS);
 *   - IKEv2 with an AES IKE SA and ESP 3des-sha1 (ENCR_3DES, RFC 7296 §3.3.2).
 * A case passes when strongSwan lists the IKE SA ESTABLISHED and the CHILD/IPsec SA INSTALLED with
 * 3DES_CBC / HMAC_SHA1_96 and twinsec's SPIs mirrored, twinsec reports 3des, and pings (small, and
 * large enough to span many 8-byte blocks with padding, RFC 4303 §2.4) cross the tunnel both ways.
 * The lab and the checks are in esp-alg-case.ts.
 */
import { type EspAlgCase, espAlgTests } from './esp-alg-case.js';

const psk = 'interop-3des-psk-0123456789';
// ESP 3DES: no key size in strongSwan's list (a fixed 192-bit key).
const ESP_3DES = { encr: '3DES_CBC', integ: 'HMAC_SHA1_96' };
const TW_3DES = { encr: '3des', integ: 'sha1' };

const CASES: EspAlgCase[] = [
  {
    name: 'IKEv1 main mode: 3des-sha1-modp1024 / esp 3des-sha1-modp1024 (PFS)',
    version: 1,
    ike: ['3des-sha1-modp1024'],
    esp: ['3des-sha1-modp1024'],
    psk,
    expectIke: { encr: '3DES_CBC', integ: 'HMAC_SHA1_96', dh: 'MODP_1024' },
    expectEsp: { ...ESP_3DES, dh: 'MODP_1024' },
    expectTw: TW_3DES,
  },
  {
    name: 'IKEv2: aes128-sha1-modp2048 / esp 3des-sha1',
    version: 2,
    ike: ['aes128-sha1-modp2048'],
    esp: ['3des-sha1'],
    psk,
    expectIke: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_SHA1_96', dh: 'MODP_2048' },
    expectEsp: ESP_3DES,
    expectTw: TW_3DES,
  },
];

espAlgTests(CASES);
