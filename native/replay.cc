// Anti-replay window: RFC 4303 §3.4.3 semantics, RFC 6479 storage, RFC 4303 Appendix A2 ESN
// inference.
//
// The bitmap is a ring of kBlocks 64-bit blocks; sequence number s lives at bit s % kBits, so the
// window never shifts. RFC 6479 clears whole blocks when the window advances and therefore keeps
// one spare block (its window is kBits - 64). Here advancing clears exactly the bits of the
// sequence numbers that enter the window, a word-mask per block touched, which gives a true
// kBits-packet window (every s with top - kBits < s <= top is remembered) from the same storage
// at the same block-at-a-time cost.
#include "replay.h"

#include <string.h>

namespace twinsec {

namespace {

inline uint64_t Bit(uint64_t seq) { return uint64_t{1} << (seq % 64); }

}  // namespace

bool ReplayWindow::Check(uint32_t seqLow, uint64_t* seq) const {
  uint64_t s = seqLow;
  if (esn_) {
    // RFC 4303 Appendix A2.2. Tl/Th: halves of the highest authenticated number; Bl: the low
    // half of the window's bottom (mod 2^32). Case A: the window lies in one 2^32 subspace, so a
    // number below it is taken as the next subspace (a wrap). Case B: the window straddles a
    // subspace boundary, so a number at or above Bl belongs to the previous subspace. A wrong
    // guess is caught by the ICV, which covers the high half.
    const uint32_t tl = static_cast<uint32_t>(top_);
    const uint64_t th = top_ >> 32;
    const uint32_t bl = tl - (kBits - 1);
    uint64_t sh;
    if (tl >= kBits - 1) {
      sh = seqLow >= bl ? th : th + 1;
    } else {
      if (seqLow >= bl) {
        // Before the first 2^32 packets there is no previous subspace.
        if (th == 0) return false;
        sh = th - 1;
      } else {
        sh = th;
      }
    }
    // The 64-bit counter must not cycle either (RFC 4303 §3.3.3).
    if (sh > 0xffffffffu) return false;
    s = (sh << 32) | seqLow;
  }
  // The first packet has number 1; 0 is never valid, for non-ESN it means the sender's counter
  // cycled (RFC 4303 §3.3.3), for ESN only the full 64-bit value 0 is excluded.
  if (s == 0) return false;
  *seq = s;
  if (s > top_) return true;
  if (top_ - s >= kBits) return false;  // left of the window
  return (blocks_[(s / 64) % kBlocks] & Bit(s)) == 0;
}

void ReplayWindow::Update(uint64_t seq) {
  if (seq == 0) return;
  if (seq > top_) {
    uint64_t advance = seq - top_;
    if (advance >= kBits) {
      // Everything in the old window falls out of the new one.
      memset(blocks_, 0, sizeof(blocks_));
    } else {
      // Forget the numbers kBits below top_+1 .. seq, whose bits top_+1 .. seq now reuse.
      uint64_t s = top_ + 1;
      uint64_t left = advance;
      while (left > 0) {
        uint32_t bit = static_cast<uint32_t>(s % 64);
        uint64_t n = 64 - bit < left ? 64 - bit : left;  // bits to clear in this block: 1..64
        uint64_t mask = n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1) << bit;
        blocks_[(s / 64) % kBlocks] &= ~mask;
        s += n;
        left -= n;
      }
    }
    top_ = seq;
  } else if (top_ - seq >= kBits) {
    return;  // Check would have refused it; nothing to remember
  }
  blocks_[(seq / 64) % kBlocks] |= Bit(seq);
}

}  // namespace twinsec
