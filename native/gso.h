// Transmit-side TCP segmentation for the TUN device: with TUNSETOFFLOAD (TSO, checksum offload)
// the kernel hands the TX thread up to 64 KB TCP super-packets and packets whose checksum is
// left to the reader (virtio_net_hdr NEEDS_CSUM), exactly as it would hand them to a NIC. This
// is the NIC's part: cut super-packets into MSS-sized segments as tcp_gso_segment would, and
// fill in checksums. One read then carries dozens of segments, and the sending TCP stack skips
// its own software segmentation.
#ifndef TWINSEC_GSO_H_
#define TWINSEC_GSO_H_

#include <stddef.h>
#include <stdint.h>

#include "gro.h"

namespace twinsec {

// Internet checksum partial sum (RFC 1071) over `len` bytes plus `sum`, folded to 16 bits, in
// network byte order semantics (as packet.h's InetSum), eight bytes at a time.
uint32_t FastSum(const uint8_t* data, size_t len, uint32_t sum = 0);

// Completes a NEEDS_CSUM packet in place: the 16-bit field at csumStart + csumOffset holds the
// pseudo-header sum; the checksum over [csumStart, len) replaces it. False if out of bounds.
bool CompleteChecksum(uint8_t* pkt, size_t len, size_t csumStart, size_t csumOffset);

// Splits a TCP GSO packet (IPv4 without fragments, or IPv6 without extension headers) into
// segments of at most `gsoSize` payload bytes built one after the other in `scratch` (64 KB),
// calling `emit(segment, length)` for each. Lengths, IPv4 IDs and header checksums, sequence
// numbers, FIN/PSH (last segment only) and CWR (first only) are set as tcp_gso_segment does, and
// every TCP checksum is computed. False (nothing emitted) if the packet does not parse.
template <typename Emit>
bool SegmentTcp(const uint8_t* pkt, size_t len, size_t gsoSize, uint8_t* scratch, Emit&& emit);

// Implementation detail of SegmentTcp: fills segment `i` (payload [off, off + n)) in `out`.
struct TcpSegmenter {
  bool Init(const uint8_t* pkt, size_t len, size_t gsoSize);
  size_t Build(size_t off, size_t n, bool first, bool last, uint8_t* out) const;

  const uint8_t* pkt = nullptr;
  size_t len = 0, l4 = 0, hdrLen = 0, payload = 0, gso = 0;
  bool v4 = true;
};

template <typename Emit>
bool SegmentTcp(const uint8_t* pkt, size_t len, size_t gsoSize, uint8_t* scratch, Emit&& emit) {
  TcpSegmenter s;
  if (!s.Init(pkt, len, gsoSize)) return false;
  for (size_t off = 0; off < s.payload; off += s.gso) {
    size_t n = s.payload - off < s.gso ? s.payload - off : s.gso;
    size_t segLen = s.Build(off, n, off == 0, off + n == s.payload, scratch);
    emit(scratch, segLen);
  }
  return true;
}

}  // namespace twinsec

#endif  // TWINSEC_GSO_H_
