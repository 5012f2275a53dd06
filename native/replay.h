// Anti-replay window (RFC 4303 §3.4.3) kept as a ring of 64-bit blocks so that advancing the
// window clears whole blocks instead of shifting bits (RFC 6479). With ESN the high half of the
// sequence number is inferred (RFC 4303 Appendix A2). Used by one receiving thread only.
#ifndef TWINSEC_REPLAY_H_
#define TWINSEC_REPLAY_H_

#include <stdint.h>

namespace twinsec {

class ReplayWindow {
 public:
  // Window size in packets; a multiple of 64 (at least 1024).
  static constexpr uint32_t kBits = 4096;

  explicit ReplayWindow(bool esn) : esn_(esn) {}

  // Before decryption: is `seqLow` acceptable? Sets `*seq` to the full sequence number to
  // authenticate. Does not change the window.
  bool Check(uint32_t seqLow, uint64_t* seq) const;

  // After the ICV verified: records `seq` and advances the window if needed.
  void Update(uint64_t seq);

  uint64_t Top() const { return top_; }

 private:
  static constexpr uint32_t kBlocks = kBits / 64;
  bool esn_;
  uint64_t top_ = 0;  // highest sequence number accepted so far (0: none yet)
  uint64_t blocks_[kBlocks] = {};
};

}  // namespace twinsec

#endif  // TWINSEC_REPLAY_H_
