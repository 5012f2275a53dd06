#include "echo_track.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

namespace twinsec {

namespace {

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIcmp6 = 58;

uint64_t Mix(uint64_t h) {
  // The splitmix64 finaliser: every input bit affects every output bit.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

// Fills `key` from an echo packet whose ICMP type is `want` (per family); `swap` stores the
// packet's destination as the request source (a reply names its request that way).
bool Key(const uint8_t* pkt, const InnerInfo& info, uint8_t want4, uint8_t want6, bool swap,
         EchoKey* key) {
  bool v4 = info.family == kFamily4;
  if (info.proto != (v4 ? kProtoIcmp : kProtoIcmp6) || info.icmpType != (v4 ? want4 : want6))
    return false;
  // ParseInner leaves the ICMP fields 0 for fragments and short headers; 0 is also a real type
  // (echo reply), so check that the 8-byte echo header (RFC 792, RFC 4443 §4) is really there.
  if (info.fragment || info.l4Offset + 8 > info.totalLen) return false;
  const uint8_t* icmp = pkt + info.l4Offset;
  uint64_t id = (uint64_t{icmp[4]} << 8) | icmp[5];
  uint64_t seq = (uint64_t{icmp[6]} << 8) | icmp[7];
  memset(key, 0, sizeof(*key));
  key->w[0] = (uint64_t(info.family) << 32) | (id << 16) | seq;
  size_t alen = v4 ? 4 : 16;
  memcpy(&key->w[1], swap ? info.dst : info.src, alen);
  memcpy(&key->w[3], swap ? info.src : info.dst, alen);
  return true;
}

bool Expired(uint64_t ns, uint64_t nowNs) {
  // A timestamp ahead of `nowNs` (taken on another CPU a moment later) is simply fresh.
  return nowNs > ns && nowNs - ns >= EchoTracker::kMaxAgeNs;
}

}  // namespace

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

bool EchoRequestKey(const uint8_t* pkt, const InnerInfo& info, EchoKey* key) {
  return Key(pkt, info, 8, 128, /*swap=*/false, key);
}

bool EchoReplyKey(const uint8_t* pkt, const InnerInfo& info, EchoKey* key) {
  return Key(pkt, info, 0, 129, /*swap=*/true, key);
}

EchoTracker::EchoTracker() {
  // Best effort: without entropy the table still works, only its sets become predictable.
  if (getrandom(&seed_, sizeof(seed_), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(seed_)))
    seed_ = MonotonicNs() ^ reinterpret_cast<uintptr_t>(this);
}

size_t EchoTracker::SetOf(const EchoKey& key) const {
  uint64_t h = seed_;
  for (uint64_t w : key.w) h = Mix(h ^ w);
  return static_cast<size_t>(h % (kSlots / kWays)) * kWays;
}

void EchoTracker::Record(const EchoKey& key, uint32_t conn, uint64_t nowNs) {
  // Only this thread writes, so it reads slots without the sequence protocol.
  Slot* set = &slots_[SetOf(key)];
  Slot* victim = nullptr;
  for (size_t i = 0; i < kWays && victim == nullptr; i++) {
    bool same = true;
    for (size_t j = 0; j < 5 && same; j++)
      same = set[i].key[j].load(std::memory_order_relaxed) == key.w[j];
    if (same) victim = &set[i];  // the request repeated (or its sender reuses the sequence)
  }
  for (size_t i = 0; i < kWays && victim == nullptr; i++) {
    if (set[i].key[0].load(std::memory_order_relaxed) == 0 ||
        Expired(set[i].ns.load(std::memory_order_relaxed), nowNs))
      victim = &set[i];
  }
  if (victim == nullptr) {
    victim = &set[0];
    for (size_t i = 1; i < kWays; i++) {
      if (set[i].ns.load(std::memory_order_relaxed) < victim->ns.load(std::memory_order_relaxed))
        victim = &set[i];
    }
  }
  // Seqlock write: odd sequence, fence, fields, even sequence (release). A reader that saw the
  // old even value before reading any new field sees a different value afterwards.
  uint32_t s = victim->seq.load(std::memory_order_relaxed);
  victim->seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t j = 0; j < 5; j++) victim->key[j].store(key.w[j], std::memory_order_relaxed);
  victim->conn.store(conn, std::memory_order_relaxed);
  victim->ns.store(nowNs, std::memory_order_relaxed);
  victim->seq.store(s + 2, std::memory_order_release);
}

bool EchoTracker::Lookup(const EchoKey& key, uint64_t nowNs, uint32_t* conn) const {
  const Slot* set = &slots_[SetOf(key)];
  for (size_t i = 0; i < kWays; i++) {
    const Slot& s = set[i];
    uint32_t before = s.seq.load(std::memory_order_acquire);
    if (before & 1) continue;  // being written: treat as a miss rather than wait
    bool same = true;
    for (size_t j = 0; j < 5; j++) same &= s.key[j].load(std::memory_order_relaxed) == key.w[j];
    uint32_t c = s.conn.load(std::memory_order_relaxed);
    uint64_t ns = s.ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != before) continue;  // torn: discard
    if (!same || Expired(ns, nowNs)) continue;
    *conn = c;
    return true;
  }
  return false;
}

}  // namespace twinsec
