/**
 * An in-memory network for exchange tests: each transport owns some addresses; datagrams are
 * delivered asynchronously, recorded (exchange, direction) and can be dropped by a filter.
 */
import type { Endpoint } from '../../src/dataplane/types.js';
import type { Datagram, IkeTransport } from '../../src/ike/transport.js';

export interface Sent {
  from: Endpoint;
  to: Endpoint;
  data: Buffer;
  exchange: number;
  response: boolean;
}

export class FakeNetwork {
  readonly log: Sent[] = [];
  /** Return true to drop the datagram. */
  drop: (s: Sent) => boolean = () => false;
  /** Rewrites a datagram's bytes on the path (a peer's quirks; identity by default). */
  rewrite: (data: Buffer) => Buffer = (data) => data;
  /** Rewrites a datagram's source as a NAT on the path would (identity by default). */
  nat: (from: Endpoint) => Endpoint = (from) => from;
  readonly #owners = new Map<string, FakeTransport>();

  transport(addresses: string[]): FakeTransport {
    const t = new FakeTransport(this);
    for (const a of addresses) this.#owners.set(a, t);
    return t;
  }

  /** NAT mappings seen so far: public endpoint -> the private one behind it. */
  readonly #mapped = new Map<string, Endpoint>();

  /** A mapping made by traffic the test does not send through here (e.g. ESP). */
  map(pub: Endpoint, priv: Endpoint): void {
    this.#mapped.set(`${pub.address}:${pub.port}`, priv);
  }

  deliver(sender: Endpoint, dest: Endpoint, sent: Buffer): void {
    const data = this.rewrite(sent);
    const from = this.nat(sender);
    if (from !== sender) this.#mapped.set(`${from.address}:${from.port}`, sender);
    // Answers to a mapped endpoint go back through the NAT to the host behind it.
    const to = this.#mapped.get(`${dest.address}:${dest.port}`) ?? dest;
    const s: Sent = {
      from,
      to: dest,
      data,
      exchange: data.length >= 28 ? data[18]! : -1,
      response: data.length >= 28 ? (data[19]! & 0x20) !== 0 : false,
    };
    this.log.push(s);
    if (this.drop(s)) return;
    const owner = this.#owners.get(to.address);
    if (owner) setImmediate(() => owner.receive({ data: Buffer.from(data), local: to, remote: from }));
  }

  /** The exchanges seen so far as readable steps, e.g. 'IKE_SA_INIT request 192.0.2.1 -> 192.0.2.2'. */
  steps(): string[] {
    const names: Record<number, string> = {
      34: 'IKE_SA_INIT',
      35: 'IKE_AUTH',
      36: 'CREATE_CHILD_SA',
      37: 'INFORMATIONAL',
    };
    return this.log.map(
      (s) =>
        `${names[s.exchange] ?? s.exchange} ${s.response ? 'response' : 'request'} ${s.from.address} -> ${s.to.address}`,
    );
  }
}

export class FakeTransport implements IkeTransport {
  readonly dropped = { keepalive: 0, esp: 0, runt: 0 };
  #handler: (d: Datagram) => void = () => {};
  readonly #net: FakeNetwork;
  closed = false;
  constructor(net: FakeNetwork) {
    this.#net = net;
  }
  receive(d: Datagram): void {
    if (!this.closed) this.#handler(d);
  }
  send(local: Endpoint, remote: Endpoint, data: Buffer): void {
    this.#net.deliver(local, remote, data);
  }
  readonly keepalives: { from: Endpoint; to: Endpoint }[] = [];
  sendKeepalive(local: Endpoint, remote: Endpoint): void {
    this.keepalives.push({ from: local, to: remote });
  }
  onReceive(handler: (d: Datagram) => void): void {
    this.#handler = handler;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
