/**
 * The remaining legacy algorithms of the IKEv1 list against strongSwan 5.9.8 (charon with
 * kernel-libipsec, whose userspace ESP takes HMAC-MD5-96 and HMAC-SHA2-384-192 from the openssl
 * plugin), IKEv1 main mode with quick-mode PFS, twinsec as initiator and as responder:
 *   - IKE 3des-md5-modp768 (3DES-CBC, HMAC-MD5, group 1 of RFC 2409 §6.1) with ESP
 *     aes128-md5-modp768 (HMAC-MD5-96, RFC 2403: 16-byte key, 12-byte ICV);
 *   - IKE aes256-sha512-modp1536 with ESP aes192-sha384-modp1536 (HMAC-SHA2-384-192, RFC 4868);
 *   - and, as the algorithms are the same there, IKEv2 aes128-md5-modp768 with ESP aes256-md5.
 * A case passes when strongSwan lists these algorithms and twinsec's SPIs mirrored, and pings
 * cross both ways (esp-alg-case.ts).
 */
import { type EspAlgCase, espAlgTests } from './esp-alg-case.js';

const psk = 'interop-legacy-psk-0123456789';

const CASES: EspAlgCase[] = [
  {
    name: 'IKEv1 main mode: 3des-md5-modp768 / esp aes128-md5-modp768 (PFS)',
    version: 1,
    ike: ['3des-md5-modp768'],
    esp: ['aes128-md5-modp768'],
    psk,
    expectIke: { encr: '3DES_CBC', integ: 'HMAC_MD5_96', dh: 'MODP_768' },
    expectEsp: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_MD5_96', dh: 'MODP_768' },
    expectTw: { encr: 'aes128', integ: 'md5' },
  },
  {
    name: 'IKEv1 main mode: aes256-sha512-modp1536 / esp aes192-sha384-modp1536 (PFS)',
    version: 1,
    ike: ['aes256-sha512-modp1536'],
    esp: ['aes192-sha384-modp1536'],
    psk,
    expectIke: { encr: 'AES_CBC', keysize: 256, integ: 'HMAC_SHA2_512_256', dh: 'MODP_1536' },
    expectEsp: { encr: 'AES_CBC', keysize: 192, integ: 'HMAC_SHA2_384_192', dh: 'MODP_1536' },
    expectTw: { encr: 'aes192', integ: 'sha384' },
  },
  {
    // The same two algorithms through IKEv2 (INTEG 1 and DH group 1 share IKEv1's numbers).
    name: 'IKEv2: aes128-md5-modp768 / esp aes256-md5',
    version: 2,
    ike: ['aes128-md5-modp768'],
    esp: ['aes256-md5'],
    psk,
    expectIke: { encr: 'AES_CBC', keysize: 128, integ: 'HMAC_MD5_96', dh: 'MODP_768' },
    expectEsp: { encr: 'AES_CBC', keysize: 256, integ: 'HMAC_MD5_96' },
    expectTw: { encr: 'aes256', integ: 'md5' },
  },
];

espAlgTests(CASES);
