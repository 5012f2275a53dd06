// Echo-request tracking for the ESP engine: echo replies return through the connection the
// request came in on, whatever the route says.
//
// Why: with two tunnels to one peer, the peer (or a cloud gateway probing through us) picks the
// path of its probes. If our reply followed our route instead, a probe sent through the healthy
// standby while the primary is dead would be answered into the dead primary: both ends would
// see the standby as down too and never fail over. Answering on the request's connection makes a
// successful probe prove both directions of that tunnel.
//
// The RX thread records every decrypted, policy-checked echo request (ICMP type 8, ICMPv6 type
// 128): (family, source, destination, identifier, sequence) -> the connection's interned id and
// the arrival time. The TX thread looks up each echo reply (type 0 / 129) read from the TUN with
// the addresses swapped; a hit younger than kMaxAgeNs picks the connection.
//
// The table is fixed-size (no allocation per packet) and 4-way set associative: a new request
// replaces a same-key, free or expired entry of its set, else the oldest. Losing an entry only
// means that reply follows the route, as it would without tracking.
//
// Concurrency: one writer (the RX thread), any number of readers (the TX thread), no locks. Each
// slot is a seqlock (H.-J. Boehm, "Can seqlocks get along with programming language memory
// models?", 2012): every field is a relaxed atomic, so a reader racing the writer sees a torn
// slot at worst, and the sequence check rejects it. Readers also compare the full key, never a
// hash, so a slot can never answer for a different exchange. Either way a miss only means the
// route decides.
#ifndef TWINSEC_ECHO_TRACK_H_
#define TWINSEC_ECHO_TRACK_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "packet.h"

namespace twinsec {

// CLOCK_MONOTONIC in nanoseconds (the clock of probe timestamps too).
uint64_t MonotonicNs();

// An echo exchange as the request names it, packed into words for cheap comparison and hashing:
// w[0] = family << 32 | identifier << 16 | sequence, w[1..2] = request source, w[3..4] = request
// destination (IPv4: the first 4 bytes, rest zero). A valid key is never all zero (family != 0).
struct EchoKey {
  uint64_t w[5];
};

// The key of an echo request (IPv4 type 8, ICMPv6 type 128) in `pkt`, parsed into `info`. False
// for anything else, also for fragments and for an echo header cut short.
bool EchoRequestKey(const uint8_t* pkt, const InnerInfo& info, EchoKey* key);

// The key of the request an echo reply (IPv4 type 0, ICMPv6 type 129) answers: its destination
// as the request source, its source as the request destination. False for anything else.
bool EchoReplyKey(const uint8_t* pkt, const InnerInfo& info, EchoKey* key);

class EchoTracker {
 public:
  static constexpr size_t kSlots = 4096;  // a few seconds of probes of many flows
  static constexpr size_t kWays = 4;      // slots per set: a hash collision evicts nothing alone
  static constexpr uint64_t kMaxAgeNs = 5000000000ull;  // replies come within RTTs, not seconds

  EchoTracker();
  EchoTracker(const EchoTracker&) = delete;
  EchoTracker& operator=(const EchoTracker&) = delete;

  // Writer (one thread only): remembers that the request `key` arrived on connection `conn` at
  // `nowNs`.
  void Record(const EchoKey& key, uint32_t conn, uint64_t nowNs);

  // Any thread: the connection of a recorded request `key` younger than kMaxAgeNs at `nowNs`.
  // False when there is none, or a concurrent Record() got in the way.
  bool Lookup(const EchoKey& key, uint64_t nowNs, uint32_t* conn) const;

 private:
  // One cache line per slot, so that readers of one slot never share a line written for another.
  struct alignas(64) Slot {
    std::atomic<uint32_t> seq{0};  // odd while the writer changes the slot
    std::atomic<uint32_t> conn{0};
    std::atomic<uint64_t> ns{0};
    std::atomic<uint64_t> key[5] = {};  // all zero: free
  };

  size_t SetOf(const EchoKey& key) const;

  uint64_t seed_;  // per engine: peers cannot aim their requests at one set on every gateway
  Slot slots_[kSlots];
};

}  // namespace twinsec

#endif  // TWINSEC_ECHO_TRACK_H_
