// Receive-side TCP coalescing for the TUN device (what GRO does in a NIC driver): consecutive
// in-order segments of one TCP flow that the RX thread decrypted in one batch are written to the
// TUN as a single GSO packet behind a virtio_net_hdr (IFF_VNET_HDR), so the kernel's IP and TCP
// receive path runs once per batch instead of once per segment. Everything else is written as is.
//
// The rules follow the kernel's own tcp_gro_receive, so a coalesced packet is one the kernel
// would have built itself: same addresses, ports, ACK, window, header length and options; the
// next segment starts where the previous one ended; only ACK and PSH flags; all segments as long
// as the first except the last (which, like a PSH, ends the packet); IPv4 without options or
// fragments, same TOS/TTL/DF; IPv6 without extension headers, same traffic class/flow label/hop
// limit.
#ifndef TWINSEC_GRO_H_
#define TWINSEC_GRO_H_

#include <stddef.h>
#include <stdint.h>

#include <memory>

#include "packet.h"

namespace twinsec {

constexpr size_t kVnetHdrLen = 10;  // struct virtio_net_hdr (no mergeable buffers)

// struct virtio_net_hdr and its constants (linux/virtio_net.h, which does not compile as C++: it
// has a member named `class`). Fields are in host byte order for a legacy little-endian header.
struct VnetHdr {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen, gsoSize, csumStart, csumOffset;
};
static_assert(sizeof(VnetHdr) == kVnetHdrLen, "virtio_net_hdr is 10 bytes");
constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoTcp4 = 1;    // VIRTIO_NET_HDR_GSO_TCPV4
constexpr uint8_t kGsoTcp6 = 4;    // VIRTIO_NET_HDR_GSO_TCPV6
constexpr uint8_t kGsoEcn = 0x80;  // VIRTIO_NET_HDR_GSO_ECN

class TunWriter {
 public:
  explicit TunWriter(int fd);

  // Takes one decrypted packet (`info` from ParseInner over `pkt`). It may be held back to be
  // merged with the next ones: call Flush() at the end of the batch. False when a write failed.
  bool Add(const uint8_t* pkt, const InnerInfo& info);
  bool Flush();
  // The device the next packets go to (route-based connections have their own); what is held for
  // the current one is written there first. False when that write failed.
  bool Retarget(int fd) {
    if (fd == fd_) return true;
    bool ok = Flush();
    fd_ = fd;
    return ok;
  }

  // Writes one packet right away (no coalescing), with an empty virtio_net_hdr.
  static bool WritePlain(int fd, const uint8_t* pkt, size_t len);

 private:
  bool Extends(const uint8_t* pkt, const InnerInfo& info, size_t thl, size_t payload) const;
  void Start(const uint8_t* pkt, const InnerInfo& info, size_t thl, size_t payload);

  int fd_;
  std::unique_ptr<uint8_t[]> buf_;  // virtio_net_hdr + the packet being built
  size_t len_ = 0;                  // bytes of the packet in buf_ (0: nothing held)
  size_t segs_ = 0;
  size_t l4_ = 0, thl_ = 0;  // offset and length of the TCP header
  size_t gsoSize_ = 0;       // payload length of the first segment
  uint32_t nextSeq_ = 0;
  int family_ = 0;
  bool closed_ = false;  // a short or PSH segment ended the packet
};

}  // namespace twinsec

#endif  // TWINSEC_GRO_H_
