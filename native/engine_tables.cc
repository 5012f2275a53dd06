// The control thread's side of the packet threads' tables (engine.h, Tables): building the next
// snapshot so that an SA change costs the same whatever the number of SAs. A control call starts
// a Draft (a copy of the current snapshot's pointers), changes the few shards, connection chunks
// and selector-route shards it touches, copying each once, and Publish hands it over. The
// connection bookkeeping that says which pair is whose (ConnState, pending_, selOwners_) lives
// here, on the control thread only, so that no change has to scan the SAs of other connections.
#include "engine_tables.h"

#include <string.h>

namespace twinsec {

uint32_t Engine::Intern(const std::string& connection) {
  auto it = connIds_.find(connection);
  if (it != connIds_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(connIds_.size());
  connIds_.emplace(connection, id);
  conns_.resize(id + 1);
  return id;
}

namespace {

// Each distinct prefix once per pair, so that a selector route's reference count is one per pair.
std::vector<Prefix> DistinctPrefixes(std::vector<Prefix> ps) {
  auto less = [](const Prefix& a, const Prefix& b) { return memcmp(&a, &b, sizeof(Prefix)) < 0; };
  auto same = [](const Prefix& a, const Prefix& b) { return memcmp(&a, &b, sizeof(Prefix)) == 0; };
  std::sort(ps.begin(), ps.end(), less);
  ps.erase(std::unique(ps.begin(), ps.end(), same), ps.end());
  return ps;
}

}  // namespace

void Engine::Attach(Draft* d, Sa* sa) {
  ConnState& c = conns_[sa->connId];
  c.bySerial.emplace(sa->serial, sa->spiIn);
  c.waiting.emplace(sa->serial, sa->spiIn);
  pending_.emplace(sa->serial, sa);
  d->Dirty(sa->connId);
  if (!sa->selectorRoutes) return;
  for (const Prefix& p : DistinctPrefixes(sa->tsRemote)) SelectorAdd(d, p, sa->connId);
}

void Engine::Detach(Draft* d, Sa* sa) {
  ConnState& c = conns_[sa->connId];
  c.bySerial.erase(sa->serial);
  if (sa->activeGen == 0) {
    c.waiting.erase(sa->serial);
    pending_.erase(sa->serial);
  } else {
    c.active.erase(sa->activeGen);
  }
  d->Dirty(sa->connId);
  if (!sa->selectorRoutes) return;
  for (const Prefix& p : DistinctPrefixes(sa->tsRemote)) SelectorDrop(d, p, sa->connId);
}

void Engine::Activate(Draft* d, Sa* sa) {
  ConnState& c = conns_[sa->connId];
  if (sa->activeGen == 0) {
    c.waiting.erase(sa->serial);
    pending_.erase(sa->serial);
  } else {
    c.active.erase(sa->activeGen);
  }
  sa->activeGen = ++serial_;
  c.active.emplace(sa->activeGen, sa->spiIn);
  sa->activated.store(true, std::memory_order_relaxed);
  d->Dirty(sa->connId);
}

void Engine::Fold(Draft* d) {
  // Pairs the RX thread activated since the last publish, in install order, so that the latest
  // activation wins as it would have through ActivateSa. The RX thread names them in
  // activations_; only when that ring overflowed are all pairs not activated yet looked at. A
  // serial no longer in pending_ is a pair removed or activated here since: nothing to do.
  std::vector<Sa*> now;
  uint64_t serial;
  while (activations_.Pop(&serial)) {
    auto it = pending_.find(serial);
    if (it != pending_.end()) now.push_back(it->second);
  }
  if (foldAll_.exchange(false, std::memory_order_relaxed)) {
    now.clear();
    for (const auto& kv : pending_) {
      if (kv.second->activated.load(std::memory_order_relaxed)) now.push_back(kv.second);
    }
  }
  std::sort(now.begin(), now.end(), [](const Sa* x, const Sa* y) { return x->serial < y->serial; });
  now.erase(std::unique(now.begin(), now.end()), now.end());
  for (Sa* sa : now) Activate(d, sa);
}

void Engine::Resolve(Draft* d, uint32_t conn) {
  const ConnState& c = conns_[conn];
  OutSel o;
  // Current: the latest activation. Pending: the pairs not activated yet, newest first.
  if (!c.active.empty()) {
    const SaEntry* e = d->Find(c.active.rbegin()->second);
    o.cur = OutSa{e->sa.get(), &e->path};
  }
  for (auto it = c.waiting.rbegin(); it != c.waiting.rend(); ++it) {
    const SaEntry* e = d->Find(it->second);
    o.pending.push_back(OutSa{e->sa.get(), &e->path});
  }
  // No activated pair (InstallSa and RemoveSa keep one, so only defensively): the newest.
  if (o.cur.sa == nullptr && !o.pending.empty()) {
    o.cur = o.pending.front();
    o.pending.erase(o.pending.begin());
  }
  *d->MutConn(conn) = std::move(o);
}

void Engine::Publish(Draft* d, bool wake) {
  Fold(d);
  const Tables* t = d->t();
  std::vector<uint32_t> slots;  // route slots naming a connection that gained or lost its SAs
  for (uint32_t conn : d->TakeDirty()) {
    bool had = t->Out(conn).sa != nullptr;
    Resolve(d, conn);
    bool has = t->Conn(conn)->cur.sa != nullptr;
    if (had != has)
      slots.insert(slots.end(), conns_[conn].routeSlots.begin(), conns_[conn].routeSlots.end());
  }
  if (!slots.empty()) {
    // Routes are few (configuration); only those naming such a connection are resolved again.
    std::vector<std::vector<uint32_t>>* out = d->MutSlots();
    for (size_t s : slots) {
      std::vector<uint32_t>& sel = (*out)[s];
      sel.clear();
      for (uint32_t id : t->routes->named[s]) {
        if (t->Conn(id) != nullptr && t->Conn(id)->cur.sa != nullptr) sel.push_back(id);
      }
    }
  }
  std::atomic_store(&tables_, d->Done());
  version_.fetch_add(1, std::memory_order_release);
  // Let idle threads pick the new snapshot up now, so the old one (and the keys of a removed SA)
  // is released promptly rather than at the next packet. Not for a plain install: the threads
  // refresh before their next packet anyway, and two wake-ups per new SA cost the IKE thread a
  // third of a setup on a 2-core machine (each woken thread preempts someone).
  if (!wake) return;
  Wake(txWake_);
  Wake(rxWake_);
}

void Engine::SelectorAdd(Draft* d, const Prefix& p, uint32_t conn) {
  std::array<uint8_t, 18> key;
  key[0] = p.family;
  key[1] = p.len;
  memcpy(key.data() + 2, p.addr, 16);
  std::vector<SelOwner>& owners = selOwners_[key];
  uint32_t refs = 1;
  for (auto it = owners.begin(); it != owners.end(); ++it) {
    if (it->conn != conn) continue;
    refs += it->refs;
    owners.erase(it);
    break;
  }
  // The most recently installed pair's connection carries the prefix: to the back.
  bool changed = owners.empty() || owners.back().conn != conn;
  owners.push_back(SelOwner{conn, refs});
  if (changed) d->t()->selectors.Set(p, conn);
}

void Engine::SelectorDrop(Draft* d, const Prefix& p, uint32_t conn) {
  std::array<uint8_t, 18> key;
  key[0] = p.family;
  key[1] = p.len;
  memcpy(key.data() + 2, p.addr, 16);
  auto found = selOwners_.find(key);
  if (found == selOwners_.end()) return;
  std::vector<SelOwner>& owners = found->second;
  for (size_t i = 0; i < owners.size(); i++) {
    if (owners[i].conn != conn) continue;
    if (--owners[i].refs > 0) return;  // another of its pairs still names the prefix
    bool winner = i + 1 == owners.size();
    owners.erase(owners.begin() + static_cast<std::ptrdiff_t>(i));
    if (owners.empty()) {
      selOwners_.erase(found);
      d->t()->selectors.Erase(p);
    } else if (winner) {
      d->t()->selectors.Set(p, owners.back().conn);  // the one installed before returns
    }
    return;
  }
}

void Engine::SetRoutes(std::vector<RouteSpec> routes) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return;
  Draft d(*this);
  if (d.t()->routes != nullptr) {
    for (const std::vector<uint32_t>& ids : d.t()->routes->named) {
      for (uint32_t id : ids) conns_[id].routeSlots.clear();
    }
  }
  auto rt = std::make_shared<RouteTable>();
  auto slots = std::make_shared<std::vector<std::vector<uint32_t>>>();
  for (const RouteSpec& r : routes) {
    size_t slot = rt->named.size();
    std::vector<uint32_t> ids, live;
    for (const std::string& c : r.connections) {
      uint32_t id = Intern(c);
      ids.push_back(id);
      if (conns_[id].routeSlots.empty() || conns_[id].routeSlots.back() != slot)
        conns_[id].routeSlots.push_back(slot);
      if (d.t()->Out(id).sa != nullptr) live.push_back(id);
    }
    rt->fwd.Add(r.destination, static_cast<int>(slot));
    rt->named.push_back(std::move(ids));
    slots->push_back(std::move(live));
  }
  rt->routes = std::move(routes);
  d.t()->routes = std::move(rt);
  d.SetSlots(std::move(slots));
  Publish(&d);
}

}  // namespace twinsec
