// Longest-prefix-match table for the ESP engine's forwarding decision: destination prefix ->
// a slot (an index the engine maps to the set of connections carrying that prefix).
//
// Built once on the JavaScript thread, then only read by the packet threads through an
// immutable snapshot (engine.h), so lookups take no lock and allocate nothing.
#ifndef TWINSEC_FWD_H_
#define TWINSEC_FWD_H_

#include <stddef.h>
#include <stdint.h>

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

  // The slot of the longest prefix containing `addr` (4 or 16 bytes per `family`), or -1.
  int Lookup(int family, const uint8_t* addr) const;

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

// A route as JavaScript gives it: the prefix and the connections that share it.
struct RouteSpec {
  Prefix destination;
  std::vector<std::string> connections;
};

}  // namespace twinsec

#endif  // TWINSEC_FWD_H_
