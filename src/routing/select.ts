/**
 * Which next hops carry a destination route (the seed's rule): the usable connections with the
 * highest weight; ties share the traffic. When no next hop is usable the highest-weight one keeps
 * the route, so traffic resumes the moment it comes back (and the gateway says so in its log).
 */
import type { RouteConfig } from '../config/types.js';

export interface Selection {
  connections: string[];
  /** True when no next hop was usable and the highest weight was kept anyway. */
  fallback: boolean;
}

export function selectNextHops(route: RouteConfig, usable: (connection: string) => boolean): Selection {
  const pick = (hops: RouteConfig['via']): string[] => {
    const top = Math.max(...hops.map((v) => v.weight));
    return hops.filter((v) => v.weight === top).map((v) => v.connection);
  };
  const live = route.via.filter((v) => usable(v.connection));
  if (live.length) return { connections: pick(live), fallback: false };
  return { connections: route.via.length ? pick(route.via) : [], fallback: true };
}
