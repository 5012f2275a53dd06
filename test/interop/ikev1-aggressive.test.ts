/**
 * IKEv1 aggressive mode interop: twinsec <-> strongSwan 5.9.8 (charon, kernel-libipsec), aggressive
 * mode with PSK (RFC 2409 §5.4) then quick mode, in network namespaces, each case with twinsec as
 * initiator and as responder. strongSwan answers aggressive mode with a PSK only with
 * `charon.i_dont_care_about_security_and_use_aggressive_mode_psk = yes` (test/lab/strongswan.ts
 * sets it) and `aggressive = yes` on its connection. The harness is v1-cases.ts.
 */
import t from 'tap';
import { ALIBABA_DEFAULT, type Case, registerCases } from './v1-cases.js';

const FQDN = { twinsec: '@tw.example.net', strongswan: '@sw.example.net' };

const CASES: Case[] = [
  { name: '(c) aggressive mode with FQDN IDs', mode: 'aggressive', ids: FQDN, ...ALIBABA_DEFAULT },
  {
    name: '(e) aggressive mode, wrong PSK: no SA on either side, twinsecd keeps running',
    mode: 'aggressive',
    ids: FQDN,
    ...ALIBABA_DEFAULT,
    swPsk: 'charon-side-secret-B',
  },
];

registerCases(t, CASES);
