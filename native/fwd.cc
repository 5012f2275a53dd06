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

int FwdTable::Lookup(int family, const uint8_t* addr) const {
  if (family == kFamily4) {
    uint32_t a = Load32(addr);
    for (const Level4& l : v4_) {
      auto it = l.slots.find(a & l.mask);
      if (it != l.slots.end()) return it->second;
    }
    return -1;
  }
  if (family != kFamily6) return -1;
  uint64_t hi = Load64(addr), lo = Load64(addr + 8);
  for (const Level6& l : v6_) {
    auto it = l.slots.find(Key6{hi & l.maskHi, lo & l.maskLo});
    if (it != l.slots.end()) return it->second;
  }
  return -1;
}

}  // namespace twinsec
