/**
 * Weighted destination routes with health (the seed's scheme): the active next hop is the usable
 * connection with the highest weight, ties share traffic per flow. Moving away from a failed next
 * hop is immediate; moving back to a recovered higher-weight one waits until it has stayed usable
 * for the hold-down time, so a flapping or lossy link cannot drag traffic back and forth.
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
  to: string[];
  reason: string;
}

export interface RouterOptions {
  routes: RouteConfig[];
  usability: (connection: string) => Usability;
  /** Programs the data plane with the active next hops of every route. */
  apply: (entries: { destination: string; connections: string[] }[]) => void;
  onSwitch: (s: RouteSwitch) => void;
  now?: () => number;
}

export class Router {
  readonly #o: RouterOptions;
  readonly #now: () => number;
  readonly #active = new Map<string, string[]>();
  readonly #fallback = new Map<string, boolean>();
  readonly switches = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(o: RouterOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  active(destination: string): string[] {
    return this.#active.get(destination) ?? [];
  }

  /** True when no next hop is usable and the highest weight holds the route anyway. */
  isFallback(destination: string): boolean {
    return this.#fallback.get(destination) ?? false;
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
      if (best.fallback) {
        reason = `no next hop usable, keeping ${target.join(', ')}`;
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
      const prev = cur ?? [];
      if (cur && prev.length === target.length && prev.every((c) => target.includes(c))) continue;
      this.#active.set(dest, target);
      changed = true;
      if (!cur) continue;
      this.switches.set(dest, (this.switches.get(dest) ?? 0) + 1);
      this.#o.onSwitch({ destination: dest, from: prev, to: target, reason: reason || 'next hops changed' });
    }
    if (changed) {
      this.#o.apply(
        this.#o.routes.map((r) => ({ destination: r.destination, connections: this.active(r.destination) })),
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
