/**
 * Weighted destination routes with health (the seed's scheme): the active next hop is the usable
 * connection with the highest weight, ties share traffic per flow. Moving away from a failed next
 * hop is immediate; moving back to a recovered higher-weight one waits until it has stayed usable
 * for the hold-down time, so a flapping or lossy link cannot drag traffic back and forth.
 *
 * With no next hop usable a route either stays on its highest weight (`onAllDown: reserve`) or is
 * withdrawn (`revoke`: out of the engine and, published, out of the OS table) until a next hop is
 * usable again, which brings it back at once (no hold-down: there is nothing to move away from).
 */
import type { RouteConfig } from '../config/types.js';
import { selectNextHops } from '../routing/select.js';

export interface Usability {
  usable: boolean;
  /** When `usable` last changed (ms, the router's clock). */
  since: number;
  /** Why it is (un)usable, for the switch log line, e.g. 'down: 3 probes lost'. */
  reason: string;
}

export interface RouteSwitch {
  destination: string;
  from: string[];
  /** Empty: the route is withdrawn (`revoked`). */
  to: string[];
  reason: string;
  /** True when the switch withdrew the route (onAllDown: revoke), false when it brought it back. */
  revoked?: boolean;
}

export interface RouterOptions {
  routes: RouteConfig[];
  usability: (connection: string) => Usability;
  /** Programs the data plane with the active next hops of every route not withdrawn. */
  apply: (entries: { destination: string; connections: string[] }[]) => void;
  onSwitch: (s: RouteSwitch) => void;
  /**
   * A route with `onAllDown: revoke` was withdrawn or came back. Such a route starts withdrawn
   * (nothing is usable before the first evaluation), so the first call for it is `false`.
   */
  onRevoked?: (destination: string, revoked: boolean) => void;
  now?: () => number;
  /** The router this one replaces (reload): routes it carried keep their next hops and state. */
  previous?: Router;
}

export class Router {
  readonly #o: RouterOptions;
  readonly #now: () => number;
  readonly #active = new Map<string, string[]>();
  readonly #fallback = new Map<string, boolean>();
  /** Routes withdrawn by `onAllDown: revoke`. */
  readonly #revoked = new Set<string>();
  /**
   * Routes that have had a next hop: a revoke route starts withdrawn, and its first next hop is the
   * first decision (no switch), not a restore.
   */
  readonly #carried = new Set<string>();
  readonly switches = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  /** The data plane has this router's table (its first evaluation always programs it: a reload may drop routes). */
  #programmed = false;

  constructor(o: RouterOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    const prev = o.previous;
    for (const r of o.routes) {
      const d = r.destination;
      const was = prev ? prev.#active.get(d) : undefined;
      if (was?.every((c) => r.via.some((v) => v.connection === c))) {
        this.#active.set(d, was);
        this.#fallback.set(d, prev!.isFallback(d));
      }
      if (prev?.hasCarried(d)) this.#carried.add(d);
      if (r.onAllDown === 'revoke' && (was === undefined || prev!.isRevoked(d))) this.#revoked.add(d);
    }
  }

  active(destination: string): string[] {
    return this.#active.get(destination) ?? [];
  }

  /** True when no next hop is usable (the route is then kept on its highest weight, or revoked). */
  isFallback(destination: string): boolean {
    return this.#fallback.get(destination) ?? false;
  }

  /** Whether the route has had a next hop since this router (or the one it replaced) started. */
  hasCarried(destination: string): boolean {
    return this.#carried.has(destination);
  }

  /** True while the route is withdrawn (onAllDown: revoke and no next hop usable). */
  isRevoked(destination: string): boolean {
    return this.#revoked.has(destination);
  }

  /** Re-decides every route; call on any health or SA change. */
  evaluate(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#now();
    const u = (c: string): Usability => this.#o.usability(c);
    let nextCheck = Number.POSITIVE_INFINITY;
    let changed = false;
    for (const route of this.#o.routes) {
      const dest = route.destination;
      const cur = this.#active.get(dest);
      const best = selectNextHops(route, (c) => u(c).usable);
      let target = best.connections;
      let reason = '';
      const revoke = best.fallback && route.onAllDown === 'revoke';
      const wasRevoked = this.#revoked.has(dest);
      if (revoke) {
        target = [];
        reason = 'no next hop usable, route withdrawn (onAllDown: revoke)';
      } else if (best.fallback) {
        reason = `no next hop usable, keeping ${target.join(', ')} (onAllDown: reserve)`;
      } else if (wasRevoked) {
        // Back from withdrawn: at once, whatever the hold-down.
        reason = `${target.map((c) => `${c} usable`).join(', ')}, route restored`;
      } else if (!cur || this.#fallback.get(dest) || cur.some((c) => !u(c).usable)) {
        // Away from a failed next hop: at once.
        reason = (cur ?? [])
          .filter((c) => !u(c).usable)
          .map((c) => `${c} ${u(c).reason}`)
          .join(', ');
      } else {
        const newcomers = target.filter((c) => !cur.includes(c));
        if (!newcomers.length) {
          target = cur;
        } else {
          // Back to a recovered (or an additional equal-weight) next hop: after the hold-down.
          const ready = Math.max(...newcomers.map((c) => u(c).since + route.holdDown * 1000));
          if (ready > now) {
            nextCheck = Math.min(nextCheck, ready);
            target = cur;
          } else {
            reason = newcomers
              .map((c) => `${c} up for ${((now - u(c).since) / 1000).toFixed(1)} s`)
              .join(', ');
          }
        }
      }
      this.#fallback.set(dest, best.fallback);
      if (revoke !== wasRevoked) {
        if (revoke) this.#revoked.add(dest);
        else this.#revoked.delete(dest);
        this.#o.onRevoked?.(dest, revoke);
      }
      const prev = cur ?? [];
      if (cur && prev.length === target.length && prev.every((c) => target.includes(c))) continue;
      this.#active.set(dest, target);
      changed = true;
      // The first decision is no switch, nor is a revoke route's first next hop after the start.
      const first = !cur || (target.length > 0 && !this.#carried.has(dest));
      if (target.length > 0) this.#carried.add(dest);
      if (first) continue;
      this.switches.set(dest, (this.switches.get(dest) ?? 0) + 1);
      this.#o.onSwitch({
        destination: dest,
        from: prev,
        to: target,
        reason: reason || 'next hops changed',
        ...(revoke !== wasRevoked ? { revoked: revoke } : {}),
      });
    }
    if (changed || !this.#programmed) {
      this.#programmed = true;
      this.#o.apply(
        this.#o.routes
          .filter((r) => !this.#revoked.has(r.destination))
          .map((r) => ({ destination: r.destination, connections: this.active(r.destination) })),
      );
    }
    if (Number.isFinite(nextCheck)) {
      this.#timer = setTimeout(() => this.evaluate(), Math.max(1, nextCheck - now));
      this.#timer.unref();
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}
