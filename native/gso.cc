#include "gso.h"

#include <string.h>

#include "packet.h"

namespace twinsec {

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

uint32_t Load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void Store16(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void Store32(uint8_t* p, uint32_t v) {
  Store16(p, v >> 16);
  Store16(p + 2, v & 0xffff);
}

uint32_t Fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint32_t>(s);
}

}  // namespace

uint32_t FastSum(const uint8_t* data, size_t len, uint32_t sum) {
  // One's complement addition is byte-order independent (RFC 1071 §2(B)): add native 64-bit words
  // with end-around carry, fold, and swap the two bytes once at the end on little-endian hosts.
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v;
    memcpy(&v, data + i, 8);
    acc += v;
    acc += acc < v;  // end-around carry
  }
  if (i < len) {
    uint64_t v = 0;
    memcpy(&v, data + i, len - i);  // the tail, zero-padded at its end (RFC 1071 §4.1)
    acc += v;
    acc += acc < v;
  }
  uint32_t r = Fold((acc & 0xffffffff) + (acc >> 32));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  r = ((r & 0xff) << 8) | (r >> 8);
#endif
  return Fold(uint64_t{r} + sum);
}

bool CompleteChecksum(uint8_t* pkt, size_t len, size_t csumStart, size_t csumOffset) {
  if (csumStart >= len || csumStart + csumOffset + 2 > len) return false;
  uint32_t s = FastSum(pkt + csumStart, len - csumStart);
  Store16(pkt + csumStart + csumOffset, ~s & 0xffff);
  return true;
}

bool TcpSegmenter::Init(const uint8_t* p, size_t n, size_t gsoSize) {
  pkt = p;
  len = n;
  gso = gsoSize;
  if (n < 40 || gso == 0) return false;
  v4 = (p[0] >> 4) == 4;
  if (v4) {
    l4 = size_t(p[0] & 0x0f) * 4;
    if (l4 < 20 || p[9] != 6 || (Load32(p + 4) & 0x3fff) != 0) return false;  // TCP, no fragment
  } else if ((p[0] >> 4) == 6) {
    l4 = 40;
    if (p[6] != 6) return false;  // extension headers: the kernel does not offer TSO for them here
  } else {
    return false;
  }
  if (l4 + 20 > n) return false;
  hdrLen = l4 + size_t(p[l4 + 12] >> 4) * 4;
  if (hdrLen < l4 + 20 || hdrLen >= n) return false;
  payload = n - hdrLen;
  return true;
}

size_t TcpSegmenter::Build(size_t off, size_t n, bool first, bool last, uint8_t* out) const {
  memcpy(out, pkt, hdrLen);
  memcpy(out + hdrLen, pkt + hdrLen + off, n);
  size_t segLen = hdrLen + n;
  size_t tcpLen = segLen - l4;
  uint8_t* th = out + l4;
  uint32_t pseudo;
  if (v4) {
    Store16(out + 2, segLen);
    size_t id = (size_t(pkt[4]) << 8 | pkt[5]) + off / gso;  // IDs count up per segment
    Store16(out + 4, id & 0xffff);
    SetIpv4Checksum(out);
    uint8_t ph[4] = {0, 6, static_cast<uint8_t>(tcpLen >> 8), static_cast<uint8_t>(tcpLen)};
    pseudo = FastSum(out + 12, 8, FastSum(ph, 4));
  } else {
    Store16(out + 4, tcpLen);
    uint8_t ph[8] = {0, 0, static_cast<uint8_t>(tcpLen >> 8), static_cast<uint8_t>(tcpLen), 0, 0,
                     0, 6};
    pseudo = FastSum(out + 8, 32, FastSum(ph, 8));
  }
  Store32(th + 4, Load32(pkt + l4 + 4) + static_cast<uint32_t>(off));
  if (!last) th[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
  if (!first) th[13] &= static_cast<uint8_t>(~kTcpCwr);
  th[16] = th[17] = 0;
  Store16(th + 16, ~FastSum(th, tcpLen, pseudo) & 0xffff);
  return segLen;
}

}  // namespace twinsec
