/**
 * The HA layer of one daemon: a health check per connection that has one, each connection's
 * usability (health, or SA state without a health check) with the time it last changed, the
 * weighted router that turns usability into forwarding entries, and the resets of connections
 * whose check keeps failing on an established SA (reset.ts). It listens to SA changes and speaks
 * through the event bus (health, route-switch, connection-reset), like every other part.
 */
import type { Config } from '../config/types.js';
import type { DataPlane } from '../dataplane/types.js';
import type { EventBus } from '../events.js';
import { type Clock, type Random, systemClock, systemRandom } from '../ike/core/clock.js';
import { type Health, HealthCheck } from './health.js';
import { parseEchoReply } from './icmp.js';
import { Resetter } from './reset.js';
import { Router, type Usability } from './router.js';

export interface HaOptions {
  config: Config;
  bus: EventBus;
  dataplane: DataPlane;
  /** Does the connection have an established IKE SA with an installed CHILD_SA? */
  saUp: (connection: string) => boolean;
  /** A connection became usable or unusable (and once per connection at start). */
  onUsable?: (connection: string, usable: boolean, reason: string) => void;
  /** A route with `onAllDown: revoke` was withdrawn (true) or came back (false). */
  onRevoked?: (destination: string, revoked: boolean) => void;
  /** Deletes the connection's SAs and negotiates again (healthCheck.resetAfter). */
  reset?: (connection: string) => void;
  /** The resets' timers (the IKE core's clock: fake in tests). */
  clock?: Clock;
  random?: Random;
  /**
   * The controller this one replaces (reload): checks with unchanged probe settings keep their
   * state, connections their usability, routes their next hops, so nothing moves while the new
   * checks' first probes are out.
   */
  previous?: HaController;
}

export class HaController {
  readonly #o: HaOptions;
  readonly #checks = new Map<string, HealthCheck>();
  readonly #byId = new Map<number, HealthCheck>();
  readonly #usable = new Map<string, Usability>();
  readonly #resetter: Resetter;
  readonly router: Router;

  constructor(o: HaOptions) {
    this.#o = o;
    // Probe identifiers differ per connection and per daemon run, so replies are never confused.
    let id = Math.floor(Math.random() * 0xffff);
    for (const c of Object.values(o.config.connections)) {
      if (!c.healthCheck) continue;
      id = (id + 1) & 0xffff || 1;
      const hc = new HealthCheck(
        c.name,
        id,
        c.healthCheck,
        { inject: (conn, pkt) => o.dataplane.injectProbe(conn, pkt) },
        (ch) => {
          o.bus.emit('health', { ...ch, rttMs: hc.lastRttMs });
          this.update();
        },
        (seconds) => o.bus.emit('health-rtt', { connection: c.name, seconds }),
      );
      const old = o.previous ? o.previous.#checks.get(c.name) : undefined;
      if (old && hc.sameProbes(old)) hc.inherit(old);
      this.#checks.set(c.name, hc);
      this.#byId.set(id, hc);
    }
    for (const [name, u] of o.previous ? o.previous.#usable : []) {
      if (Object.hasOwn(o.config.connections, name)) this.#usable.set(name, { ...u });
    }
    this.router = new Router({
      routes: o.config.routes,
      usability: (c) => this.#usable.get(c) ?? { usable: false, since: 0, reason: 'down: not negotiated' },
      apply: (entries) => o.dataplane.setRoutes(entries),
      onSwitch: (s) => o.bus.emit('route-switch', s),
      onRevoked: o.onRevoked,
      previous: o.previous?.router,
    });
    this.#resetter = new Resetter({
      clock: o.clock ?? systemClock,
      random: o.random ?? systemRandom,
      reset: (c) => o.reset?.(c),
      onReset: (e) => o.bus.emit('connection-reset', e),
    });
  }

  start(): void {
    for (const hc of this.#checks.values()) {
      this.#o.dataplane.watchProbe(hc.id, true);
      hc.start();
    }
    this.update();
  }

  stop(): void {
    this.router.stop();
    this.#resetter.stop();
    for (const hc of this.#checks.values()) {
      hc.stop();
      this.#o.dataplane.watchProbe(hc.id, false);
    }
  }

  /** An inbound packet matched a probe watch. */
  onProbe(packet: Buffer, at: bigint): void {
    const r = parseEchoReply(packet);
    if (r) this.#byId.get(r.id)?.reply(r.seq, at);
  }

  health(connection: string): { health: Health; lastRttMs: number | null; resets?: number } {
    const hc = this.#checks.get(connection);
    if (hc)
      return {
        health: this.#o.saUp(connection) ? hc.state : 'down',
        lastRttMs: hc.lastRttMs,
        resets: this.#resetter.resets(connection),
      };
    return { health: this.#o.saUp(connection) ? 'up' : 'down', lastRttMs: null };
  }

  /** Recomputes usability (after an SA or health change) and lets the router decide. */
  update(): void {
    const now = Date.now();
    for (const c of Object.values(this.#o.config.connections)) {
      const hc = this.#checks.get(c.name);
      const sa = this.#o.saUp(c.name);
      const usable = sa && (!hc || hc.state === 'up');
      const reason = !sa
        ? 'down: no CHILD_SA'
        : hc && hc.state !== 'up'
          ? hc.lost
            ? `down: ${hc.lost} probes lost`
            : 'down: no probe answered yet'
          : 'up';
      if (hc && c.healthCheck && this.#o.reset)
        this.#resetter.observe(c.name, c.healthCheck.resetAfter, sa, hc.state === 'up');
      const prev = this.#usable.get(c.name);
      if (!prev || prev.usable !== usable) {
        this.#usable.set(c.name, { usable, since: now, reason });
        this.#o.onUsable?.(c.name, usable, reason);
      } else prev.reason = reason;
    }
    this.router.evaluate();
  }
}
