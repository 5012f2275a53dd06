/**
 * IKE datagram transport: UDP 500 and 4500 (RFC 3948 non-ESP marker) per local address.
 * The engine depends only on the IkeTransport interface; FakeNetwork in test/ stands in for it.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Endpoint } from '../dataplane/types.js';

export interface Datagram {
  data: Buffer;
  local: Endpoint;
  remote: Endpoint;
}

export interface IkeTransport {
  /** Sends one IKE message; on the NAT-T port the non-ESP marker is added here. */
  send(local: Endpoint, remote: Endpoint, data: Buffer): void;
  /** Sends a NAT keep-alive (RFC 3948 §2.3) from the NAT-T port. */
  sendKeepalive(local: Endpoint, remote: Endpoint): void;
  onReceive(handler: (d: Datagram) => void): void;
  /** Datagrams on the NAT-T port that are ESP, keep-alives or too short: counted, not IKE. */
  readonly dropped: { keepalive: number; esp: number; runt: number };
  close(): Promise<void>;
}

const NON_ESP_MARKER = Buffer.alloc(4);

/**
 * The NAT-T port when the native ESP engine owns it: ESP-in-UDP and IKE share one socket
 * (RFC 3948), so IKE on port 4500 goes out through the engine and comes back via `deliver`.
 */
export interface NattChannel {
  sendIke(local: string, remote: string, remotePort: number, data: Buffer): void;
  sendKeepalive(local: string, remote: string, remotePort: number): void;
}

export class UdpTransport implements IkeTransport {
  readonly dropped = { keepalive: 0, esp: 0, runt: 0 };
  readonly #sockets = new Map<string, dgram.Socket>();
  readonly #natt: number;
  readonly #channel: NattChannel | undefined;
  #handler: (d: Datagram) => void = () => {};

  private constructor(natt: number, channel: NattChannel | undefined) {
    this.#natt = natt;
    this.#channel = channel;
  }

  /** Binds port 500 (and 4500 unless a NattChannel owns it) on every local address. */
  static async open(
    addresses: string[],
    ports: { ike: number; natt: number },
    channel?: NattChannel,
  ): Promise<UdpTransport> {
    const t = new UdpTransport(ports.natt, channel);
    try {
      for (const address of new Set(addresses)) {
        await t.#bind(address, ports.ike);
        if (!channel) await t.#bind(address, ports.natt);
      }
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  async #bind(address: string, port: number): Promise<void> {
    const sock = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', reuseAddr: false });
    const local = { address, port };
    sock.on('message', (msg, rinfo) =>
      this.#receive(msg, local, { address: rinfo.address, port: rinfo.port }),
    );
    // A socket error after bind (ICMP unreachable surfaces as EHOSTUNREACH etc.) must not kill the daemon.
    sock.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    this.#sockets.set(`${address}|${port}`, sock);
  }

  #receive(msg: Buffer, local: Endpoint, remote: Endpoint): void {
    if (local.port !== this.#natt) {
      this.#handler({ data: msg, local, remote });
      return;
    }
    if (msg.length === 1 && msg[0] === 0xff) {
      this.dropped.keepalive++;
      return;
    }
    if (msg.length < 4) {
      this.dropped.runt++;
      return;
    }
    if (msg.readUInt32BE(0) !== 0) {
      // ESP-in-UDP belongs to the data plane, which owns its own socket path.
      this.dropped.esp++;
      return;
    }
    this.#handler({ data: msg.subarray(4), local, remote });
  }

  /** An IKE message from the NattChannel (marker already stripped). */
  deliver(data: Buffer, local: Endpoint, remote: Endpoint): void {
    this.#handler({ data, local, remote });
  }

  onReceive(handler: (d: Datagram) => void): void {
    this.#handler = handler;
  }

  send(local: Endpoint, remote: Endpoint, data: Buffer): void {
    if (this.#channel && local.port === this.#natt) {
      this.#channel.sendIke(local.address, remote.address, remote.port, data);
      return;
    }
    const sock = this.#sockets.get(`${local.address}|${local.port}`);
    if (!sock) return;
    const out = local.port === this.#natt ? Buffer.concat([NON_ESP_MARKER, data]) : data;
    sock.send(out, remote.port, remote.address);
  }

  sendKeepalive(local: Endpoint, remote: Endpoint): void {
    if (this.#channel) {
      this.#channel.sendKeepalive(local.address, remote.address, remote.port);
      return;
    }
    const sock = this.#sockets.get(`${local.address}|${this.#natt}`);
    sock?.send(Buffer.from([0xff]), remote.port, remote.address);
  }

  async close(): Promise<void> {
    const all = [...this.#sockets.values()];
    this.#sockets.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
