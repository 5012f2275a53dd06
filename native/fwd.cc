#include "fwd.h"

#include <algorithm>

namespace twinsec {

namespace {

// Big-endian loads: prefixes and packets hold addresses in network byte order, and the masks
// below are built for host integers holding that order's value.
uint32_t Load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint64_t Load64(const uint8_t* p) { return (uint64_t{Load32(p)} << 32) | Load32(p + 4); }

uint32_t Mask32(unsigned len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

uint64_t Mask64(unsigned len) {
  if (len == 0) return 0;
  if (len >= 64) return ~uint64_t{0};
  return ~uint64_t{0} << (64 - len);
}

}  // namespace

void FwdTable::Add(const Prefix& p, int slot) {
  if (p.family == kFamily4) {
    auto it = std::find_if(v4_.begin(), v4_.end(), [&](const Level4& l) { return l.len == p.len; });
    if (it == v4_.end()) {
      Level4 l;
      l.len = p.len;
      l.mask = Mask32(p.len);
      // Keep the levels ordered longest first so that the first hit is the longest match.
      it = v4_.insert(
          std::find_if(v4_.begin(), v4_.end(), [&](const Level4& x) { return x.len < p.len; }),
          std::move(l));
    }
    it->slots.insert_or_assign(Load32(p.addr) & it->mask, slot);
    return;
  }
  auto it = std::find_if(v6_.begin(), v6_.end(), [&](const Level6& l) { return l.len == p.len; });
  if (it == v6_.end()) {
    Level6 l;
    l.len = p.len;
    l.maskHi = Mask64(p.len);
    l.maskLo = p.len > 64 ? Mask64(p.len - 64) : 0;
    it = v6_.insert(
        std::find_if(v6_.begin(), v6_.end(), [&](const Level6& x) { return x.len < p.len; }),
        std::move(l));
  }
  Key6 k{Load64(p.addr) & it->maskHi, Load64(p.addr + 8) & it->maskLo};
  it->slots.insert_or_assign(k, slot);
}

int FwdTable::Lookup(int family, const uint8_t* addr, int* len) const {
  if (family == kFamily4) {
    uint32_t a = Load32(addr);
    for (const Level4& l : v4_) {
      auto it = l.slots.find(a & l.mask);
      if (it == l.slots.end()) continue;
      if (len != nullptr) *len = l.len;
      return it->second;
    }
    return -1;
  }
  if (family != kFamily6) return -1;
  uint64_t hi = Load64(addr), lo = Load64(addr + 8);
  for (const Level6& l : v6_) {
    auto it = l.slots.find(Key6{hi & l.maskHi, lo & l.maskLo});
    if (it == l.slots.end()) continue;
    if (len != nullptr) *len = l.len;
    return it->second;
  }
  return -1;
}

size_t ShardedLpm::KeyHash::operator()(const Key& k) const {
  // A full 64-bit mix: its top bits pick the shard, the unordered_map uses the low ones.
  uint64_t h = k.hi * 0x9E3779B97F4A7C15ull ^ k.lo * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 31;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return static_cast<size_t>(h);
}

ShardedLpm::Key ShardedLpm::KeyOf(const Level& l, int family, const uint8_t* addr) {
  if (family == kFamily4) return Key{(uint64_t{Load32(addr)} << 32) & l.maskHi, 0};
  return Key{Load64(addr) & l.maskHi, Load64(addr + 8) & l.maskLo};
}

std::vector<std::shared_ptr<const ShardedLpm::Level>>::iterator ShardedLpm::Find(const Prefix& p,
                                                                                 bool make) {
  auto before = [&](const std::shared_ptr<const Level>& l) {
    // Sorted by family (4 first), then longest first.
    return l->family < p.family || (l->family == p.family && l->len > p.len);
  };
  auto it = std::find_if_not(levels_.begin(), levels_.end(), before);
  if (it != levels_.end() && (*it)->family == p.family && (*it)->len == p.len) return it;
  if (!make) return levels_.end();
  auto l = std::make_shared<Level>();
  l->family = p.family;
  l->len = p.len;
  if (p.family == kFamily4) {
    l->maskHi = Mask64(p.len);  // the IPv4 address sits in the upper half
    l->maskLo = 0;
  } else {
    l->maskHi = Mask64(p.len);
    l->maskLo = p.len > 64 ? Mask64(p.len - 64) : 0;
  }
  return levels_.insert(it, std::move(l));
}

void ShardedLpm::Set(const Prefix& p, uint32_t value) {
  auto it = Find(p, /*make=*/true);
  auto l = std::make_shared<Level>(**it);  // shard pointers only
  Key k = KeyOf(*l, p.family, p.addr);
  size_t s = ShardOf(k);
  auto shard = l->shards[s] ? std::make_shared<Shard>(*l->shards[s]) : std::make_shared<Shard>();
  if (shard->insert_or_assign(k, value).second) l->count++;
  l->shards[s] = std::move(shard);
  *it = std::move(l);
}

void ShardedLpm::Erase(const Prefix& p) {
  auto it = Find(p, /*make=*/false);
  if (it == levels_.end()) return;
  Key k = KeyOf(**it, p.family, p.addr);
  size_t s = ShardOf(k);
  const std::shared_ptr<const Shard>& old = (*it)->shards[s];
  if (old == nullptr || old->find(k) == old->end()) return;
  if ((*it)->count == 1) {
    levels_.erase(it);  // an empty level would cost every lookup a probe
    return;
  }
  auto l = std::make_shared<Level>(**it);
  auto shard = std::make_shared<Shard>(*old);
  shard->erase(k);
  l->count--;
  l->shards[s] = shard->empty() ? nullptr : std::move(shard);
  *it = std::move(l);
}

bool ShardedLpm::Lookup(int family, const uint8_t* addr, uint32_t* value, int* len) const {
  for (const std::shared_ptr<const Level>& l : levels_) {
    if (l->family != family) continue;
    Key k = KeyOf(*l, family, addr);
    const Shard* s = l->shards[ShardOf(k)].get();
    if (s == nullptr) continue;
    auto it = s->find(k);
    if (it == s->end()) continue;
    *value = it->second;
    *len = l->len;
    return true;
  }
  return false;
}

}  // namespace twinsec
