// Longest-prefix-match table for the ESP engine's forwarding decision: destination prefix ->
// a slot (an index the engine maps to the set of connections carrying that prefix).
//
// Built once on the JavaScript thread, then only read by the packet threads through an
// immutable snapshot (engine.h), so lookups take no lock and allocate nothing.
#ifndef TWINSEC_FWD_H_
#define TWINSEC_FWD_H_

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "packet.h"

namespace twinsec {

// One hash map per prefix length present, probed from the longest length down: a lookup costs
// one hash probe per distinct length (a handful in practice) whatever the number of routes.
class FwdTable {
 public:
  // Adds `p` -> `slot`. Adding the same prefix twice keeps the later slot.
  void Add(const Prefix& p, int slot);

  // The slot of the longest prefix containing `addr` (4 or 16 bytes per `family`), or -1; *len (if
  // given) gets that prefix's length.
  int Lookup(int family, const uint8_t* addr, int* len = nullptr) const;

 private:
  struct Key6 {
    uint64_t hi, lo;
    bool operator==(const Key6& o) const { return hi == o.hi && lo == o.lo; }
  };
  struct Hash6 {
    size_t operator()(const Key6& k) const {
      return static_cast<size_t>(k.hi * 0x9E3779B97F4A7C15ull ^ k.lo);
    }
  };
  struct Level4 {
    uint8_t len;
    uint32_t mask;
    std::unordered_map<uint32_t, int> slots;
  };
  struct Level6 {
    uint8_t len;
    uint64_t maskHi, maskLo;
    std::unordered_map<Key6, int, Hash6> slots;
  };

  std::vector<Level4> v4_;  // sorted by len, longest first
  std::vector<Level6> v6_;
};

// Longest-prefix match for many entries that change one at a time (selector routes: one or more
// per hub site, tens of thousands): prefix -> a 32-bit value. Copy-on-write: a copy shares every
// shard with the original, and Set/Erase on it copy only the level's shard pointers and the one
// shard they change, so a change costs the same with 10 entries as with 100,000 per 256. Probed
// like FwdTable: one hash probe per distinct prefix length.
class ShardedLpm {
 public:
  // Sets or replaces p -> value.
  void Set(const Prefix& p, uint32_t value);
  // Removes p; no-op when absent.
  void Erase(const Prefix& p);
  // The value and length of the longest prefix containing `addr`; false when none does.
  bool Lookup(int family, const uint8_t* addr, uint32_t* value, int* len) const;
  bool empty() const { return levels_.empty(); }

 private:
  static constexpr unsigned kShardBits = 8;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  struct Key {
    uint64_t hi, lo;  // IPv4: the address in hi's upper half
    bool operator==(const Key& o) const { return hi == o.hi && lo == o.lo; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  using Shard = std::unordered_map<Key, uint32_t, KeyHash>;
  struct Level {
    uint8_t family, len;
    uint64_t maskHi, maskLo;
    size_t count = 0;
    std::array<std::shared_ptr<const Shard>, kShards> shards;  // nullptr: empty
  };
  static Key KeyOf(const Level& l, int family, const uint8_t* addr);
  static size_t ShardOf(const Key& k) { return KeyHash()(k) >> (sizeof(size_t) * 8 - kShardBits); }
  // The level of p's family and length (made when `make`), or levels_.end().
  std::vector<std::shared_ptr<const Level>>::iterator Find(const Prefix& p, bool make);

  std::vector<std::shared_ptr<const Level>> levels_;  // IPv4 first, each family longest first
};

// A route as JavaScript gives it: the prefix and the connections that share it.
struct RouteSpec {
  Prefix destination;
  std::vector<std::string> connections;
};

}  // namespace twinsec

#endif  // TWINSEC_FWD_H_
