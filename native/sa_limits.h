// Volume limits of an ESP SA: packets and bytes, next to the control plane's time limits.
//
// RFC 4303 §3.3.3: without ESN the sender MUST NOT let its 32-bit sequence counter cycle; a new
// SA must be in place before 2^32 packets went out. RFC 7296 §2.8 lets either peer rekey an SA
// when it reaches a limit of its own choosing. So each direction of a pair carries a soft mark
// (crossing it is reported once, and the control plane rekeys early) and a hard limit (packets
// beyond it are dropped). Outbound without ESN the hard limit is never above 2^32 - 1 and the
// soft mark never above 90 % of that, whatever was configured: a pair that nobody configured still
// asks for its rekey in time and never sends with a wrapped sequence number.
//
// Pure and header-only: the engine embeds one SaMeter per direction of a pair (engine.h), and
// native/test exercises it without sockets or a TUN.
#ifndef TWINSEC_SA_LIMITS_H_
#define TWINSEC_SA_LIMITS_H_

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <atomic>

namespace twinsec {

constexpr uint64_t kNoLimit = ~uint64_t{0};
// The last sequence number a non-ESN SA may send (RFC 4303 §3.3.3).
constexpr uint64_t kSeqLast32 = 0xffffffffull;
// Where a non-ESN SA asks for its rekey at the latest: 90 % of its sequence space, as strongSwan
// places rekey_packets below life_packets. At 10 Mpps that leaves about 40 s for the rekey.
constexpr uint64_t kSeqSoft32 = kSeqLast32 - kSeqLast32 / 10;
// The same for the inbound SA, whose counter is the peer's: 95 %, so the peer rekeys first (see
// SaMeter::Init).
constexpr uint64_t kSeqSoft32In = kSeqLast32 - kSeqLast32 / 20;

// As configured (SaConfig): 0 or kNoLimit = none.
struct VolumeLimits {
  uint64_t softPackets = kNoLimit, hardPackets = kNoLimit;
  uint64_t softBytes = kNoLimit, hardBytes = kNoLimit;
};

// What one more packet may do.
enum class Volume {
  kOk,
  kExhausted,  // outbound, no ESN: its sequence number would pass 2^32 - 1 (RFC 4303 §3.3.3)
  kExpired,    // the configured hard packet or byte limit is reached
};

// One direction of one pair: its limits and what it used. Written by the one packet thread of
// that direction (TX: outbound, RX: inbound), read by any (relaxed atomics).
class SaMeter {
 public:
  // `outbound` with `esn` false caps the limits to the 32-bit sequence space. Inbound, the soft
  // marks lie halfway between the configured ones and the hard limits (95 % for a 90 % mark), and
  // without ESN at kSeqSoft32In: the traffic is the peer's outbound, so the peer's mark comes
  // first and its rekey replaces the pair before ours would start; a one-way flow then causes one
  // rekey, not two colliding ones (RFC 7296 §2.8.1). The inbound hard limit is not capped to the
  // sequence space (the replay window refuses a wrapped counter).
  void Init(const VolumeLimits& cfg, bool esn, bool outbound) {
    auto norm = [](uint64_t v) { return v == 0 ? kNoLimit : v; };
    lim_.softPackets = norm(cfg.softPackets);
    lim_.hardPackets = norm(cfg.hardPackets);
    lim_.softBytes = norm(cfg.softBytes);
    lim_.hardBytes = norm(cfg.hardBytes);
    if (!outbound) {
      auto later = [](uint64_t soft, uint64_t hard) {
        return soft < hard && hard != kNoLimit ? soft + (hard - soft) / 2 : soft;
      };
      lim_.softPackets = later(lim_.softPackets, lim_.hardPackets);
      lim_.softBytes = later(lim_.softBytes, lim_.hardBytes);
    }
    seqLast_ = kNoLimit;  // with ESN Take still refuses a 64-bit wrap
    if (!esn) {
      uint64_t cap = outbound ? kSeqSoft32 : kSeqSoft32In;
      if (lim_.softPackets > cap) lim_.softPackets = cap;
      if (outbound) seqLast_ = kSeqLast32;
    }
  }

  // Accounts one packet of `len` bytes. Outbound, *seq receives its sequence number (the count of
  // packets so far, starting at 1). Nothing is counted when the packet may not go.
  Volume Take(size_t len, uint64_t* seq) {
    uint64_t n = packets_.load(std::memory_order_relaxed) + 1;
    if (n > seqLast_ || n == 0) return Volume::kExhausted;
    if (n > lim_.hardPackets) return Volume::kExpired;
    uint64_t b = bytes_.load(std::memory_order_relaxed) + len;
    if (b > lim_.hardBytes || b < len) return Volume::kExpired;
    packets_.store(n, std::memory_order_relaxed);
    bytes_.store(b, std::memory_order_relaxed);
    if (seq != nullptr) *seq = n;
    return Volume::kOk;
  }

  // The soft mark is crossed (two compares; AccountPacket reports it once per pair).
  bool PastSoft() const {
    return packets_.load(std::memory_order_relaxed) >= lim_.softPackets ||
           bytes_.load(std::memory_order_relaxed) >= lim_.softBytes;
  }
  // The hard limit is reached: the next packet would be refused.
  bool AtHard() const {
    uint64_t n = packets_.load(std::memory_order_relaxed);
    return n >= seqLast_ || n >= lim_.hardPackets ||
           bytes_.load(std::memory_order_relaxed) >= lim_.hardBytes;
  }

  uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  const VolumeLimits& limits() const { return lim_; }

  // Test hook (native/test): as if `packets` packets of `bytes` bytes had been accounted, e.g. to
  // put the sequence counter right below 2^32.
  void SetUsedForTest(uint64_t packets, uint64_t bytes) {
    packets_.store(packets, std::memory_order_relaxed);
    bytes_.store(bytes, std::memory_order_relaxed);
  }

 private:
  VolumeLimits lim_;
  uint64_t seqLast_ = kNoLimit;
  std::atomic<uint64_t> packets_{0};  // outbound: the last sequence number used
  std::atomic<uint64_t> bytes_{0};
};

// Reporting a mark to the control plane: once per pair and mark, off the packet path. The packet
// thread that sees a mark crossed claims the report (Claim); if the event cannot be queued it
// gives the claim back (Release) and tries again no sooner than kRetryNs later.
class LimitReport {
 public:
  static constexpr uint64_t kRetryNs = 100000000ull;  // 100 ms

  // Called once the mark is crossed: true when the caller should send the report now.
  bool Claim(uint64_t nowNs) {
    if (sent_.load(std::memory_order_relaxed)) return false;
    uint64_t next = retryAt_.load(std::memory_order_relaxed);
    if (next != 0 && nowNs < next) return false;
    return !sent_.exchange(true, std::memory_order_relaxed);
  }
  void Release(uint64_t nowNs) {
    retryAt_.store(nowNs + kRetryNs, std::memory_order_relaxed);
    sent_.store(false, std::memory_order_relaxed);
  }
  bool sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> sent_{false};
  std::atomic<uint64_t> retryAt_{0};
};

inline uint64_t LimitNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Sends one report through `report(hard)` (true: it was queued) unless it went already or a
// failed one is too recent. Out of line: the packet path only gets here once a mark is crossed.
template <typename Report>
__attribute__((noinline)) void ReportMark(LimitReport* r, bool hard, Report& report) {
  uint64_t now = LimitNowNs();
  if (!r->Claim(now)) return;
  if (!report(hard)) r->Release(now);
}

// One packet through one direction of a pair, as the TX and RX threads account it: kOk (outbound:
// *seq is its sequence number), or why it must be dropped. A crossed soft mark or a reached hard
// limit is reported through `report(bool hard) -> bool queued`, once per pair and mark (`soft` and
// `hard` are the pair's, shared by both directions). On the fast path: the meter, one flag test.
template <typename Report>
inline Volume AccountPacket(SaMeter* m, LimitReport* soft, LimitReport* hard, size_t len,
                            uint64_t* seq, Report&& report) {
  Volume v = m->Take(len, seq);
  if (__builtin_expect(v != Volume::kOk, 0)) {
    if (!hard->sent()) ReportMark(hard, true, report);
    return v;
  }
  if (__builtin_expect(!soft->sent() && m->PastSoft(), 0)) ReportMark(soft, false, report);
  return v;
}

}  // namespace twinsec

#endif  // TWINSEC_SA_LIMITS_H_
