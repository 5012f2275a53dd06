#include "gro.h"

#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

namespace twinsec {

namespace {

constexpr size_t kMaxIpPacket = 65535;

constexpr uint8_t kTcpAck = 0x10, kTcpPsh = 0x08;

uint32_t Load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void Store16(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// TCP segment worth merging: plain data with ACK (and maybe PSH), and no IP options/extension
// headers, so that every segment's headers are the same length as the first one's.
bool Candidate(const uint8_t* pkt, const InnerInfo& info, size_t* thl, size_t* payload) {
  if (info.proto != 6 || info.fragment) return false;
  if (info.l4Offset != (info.family == kFamily4 ? 20u : 40u)) return false;
  if (info.totalLen < info.l4Offset + 20) return false;
  const uint8_t* th = pkt + info.l4Offset;
  size_t hl = size_t(th[12] >> 4) * 4;
  if (hl < 20 || info.l4Offset + hl >= info.totalLen) return false;  // no payload: pure ACK
  if ((th[13] & ~kTcpPsh) != kTcpAck) return false;  // SYN/FIN/RST/URG/ECE/CWR end a flow's run
  *thl = hl;
  *payload = info.totalLen - info.l4Offset - hl;
  return true;
}

}  // namespace

TunWriter::TunWriter(int fd) : fd_(fd), buf_(new uint8_t[kVnetHdrLen + kMaxIpPacket]) {}

bool TunWriter::WritePlain(int fd, const uint8_t* pkt, size_t len) {
  static const uint8_t kNoOffload[kVnetHdrLen] = {};  // VIRTIO_NET_HDR_GSO_NONE, no flags
  iovec iov[2] = {{const_cast<uint8_t*>(kNoOffload), kVnetHdrLen},
                  {const_cast<uint8_t*>(pkt), len}};
  return writev(fd, iov, 2) >= 0;
}

bool TunWriter::Extends(const uint8_t* pkt, const InnerInfo& info, size_t thl,
                        size_t payload) const {
  if (len_ == 0 || closed_ || info.family != family_ || thl != thl_) return false;
  if (payload > gsoSize_ || len_ + payload > kMaxIpPacket) return false;
  const uint8_t* head = buf_.get() + kVnetHdrLen;
  const uint8_t* th = pkt + l4_;
  const uint8_t* th0 = head + l4_;
  if (Load32(th + 4) != nextSeq_) return false;
  // Ports, then ACK number, then data offset .. window (flags may differ by PSH only), options.
  if (memcmp(th, th0, 4) != 0 || memcmp(th + 8, th0 + 8, 5) != 0 ||
      memcmp(th + 14, th0 + 14, 2) != 0 || memcmp(th + 20, th0 + 20, thl - 20) != 0)
    return false;
  if (family_ == kFamily4) {
    // TOS; DF (flags/fragment offset, no fragments here); TTL and protocol; addresses.
    return pkt[1] == head[1] && pkt[6] == head[6] && pkt[8] == head[8] &&
           memcmp(pkt + 12, head + 12, 8) == 0;
  }
  // Version/traffic class/flow label, next header and hop limit, addresses.
  return memcmp(pkt, head, 4) == 0 && memcmp(pkt + 6, head + 6, 34) == 0;
}

void TunWriter::Start(const uint8_t* pkt, const InnerInfo& info, size_t thl, size_t payload) {
  memcpy(buf_.get() + kVnetHdrLen, pkt, info.totalLen);
  len_ = info.totalLen;
  segs_ = 1;
  l4_ = info.l4Offset;
  thl_ = thl;
  gsoSize_ = payload;
  family_ = info.family;
  nextSeq_ = Load32(pkt + l4_ + 4) + static_cast<uint32_t>(payload);
  closed_ = (pkt[l4_ + 13] & kTcpPsh) != 0;
}

bool TunWriter::Add(const uint8_t* pkt, const InnerInfo& info) {
  size_t thl, payload;
  if (!Candidate(pkt, info, &thl, &payload)) {
    // Order within a flow must hold: whatever is held goes first.
    bool ok = Flush();
    return WritePlain(fd_, pkt, info.totalLen) && ok;
  }
  if (Extends(pkt, info, thl, payload)) {
    memcpy(buf_.get() + kVnetHdrLen + len_, pkt + l4_ + thl, payload);
    len_ += payload;
    segs_++;
    nextSeq_ += static_cast<uint32_t>(payload);
    uint8_t flags = pkt[l4_ + 13];
    buf_[kVnetHdrLen + l4_ + 13] |= flags & kTcpPsh;
    if ((flags & kTcpPsh) || payload < gsoSize_) closed_ = true;
    return true;
  }
  bool ok = Flush();
  Start(pkt, info, thl, payload);
  return ok;
}

bool TunWriter::Flush() {
  if (len_ == 0) return true;
  uint8_t* hdr = buf_.get();
  uint8_t* p = hdr + kVnetHdrLen;
  memset(hdr, 0, kVnetHdrLen);
  if (segs_ > 1) {
    size_t tcpLen = len_ - l4_;
    uint32_t sum;
    if (family_ == kFamily4) {
      Store16(p + 2, len_);
      p[10] = p[11] = 0;
      SetIpv4Checksum(p);
      uint8_t pseudo[4] = {0, 6, static_cast<uint8_t>(tcpLen >> 8), static_cast<uint8_t>(tcpLen)};
      sum = InetSum(p + 12, 8, InetSum(pseudo, 4));
    } else {
      Store16(p + 4, len_ - 40);
      uint8_t pseudo[8] = {
          0, 0, static_cast<uint8_t>(tcpLen >> 8), static_cast<uint8_t>(tcpLen), 0, 0, 0, 6};
      sum = InetSum(p + 8, 32, InetSum(pseudo, 8));
    }
    // CHECKSUM_PARTIAL: the checksum field holds the folded pseudo-header sum, not complemented;
    // the segments' own checksums were correct when the ICV verified and the kernel trusts
    // NEEDS_CSUM packets as it trusts its own GRO output.
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    Store16(p + l4_ + 16, sum);
    VnetHdr h{};
    h.flags = kNeedsCsum;
    h.gsoType = family_ == kFamily4 ? kGsoTcp4 : kGsoTcp6;
    h.hdrLen = static_cast<uint16_t>(l4_ + thl_);
    h.gsoSize = static_cast<uint16_t>(gsoSize_);
    h.csumStart = static_cast<uint16_t>(l4_);
    h.csumOffset = 16;
    memcpy(hdr, &h, kVnetHdrLen);
  }
  ssize_t r = write(fd_, hdr, kVnetHdrLen + len_);
  len_ = 0;
  segs_ = 0;
  return r >= 0;
}

}  // namespace twinsec
