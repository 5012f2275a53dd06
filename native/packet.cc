// Inner packet helpers; see packet.h.
#include "packet.h"

#include <arpa/inet.h>
#include <string.h>

namespace twinsec {

namespace {

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoDccp = 33;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdpLite = 136;

constexpr size_t kIp4HeaderLen = 20;
constexpr size_t kIp6HeaderLen = 40;
constexpr size_t kIcmpHeaderLen = 8;
constexpr int kMaxIp6ExtHeaders = 8;  // more than any real packet carries; bounds the walk

inline uint16_t Get16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}

inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

inline void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

inline bool HasPorts(uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoDccp || proto == kProtoSctp ||
         proto == kProtoUdpLite;
}

// Fills ports / ICMP fields from the upper-layer header at `l4` with `l4Len` bytes available.
void ParseL4(const uint8_t* l4, size_t l4Len, InnerInfo* out) {
  if (HasPorts(out->proto)) {
    if (l4Len >= 4) {
      out->sport = Get16(l4);
      out->dport = Get16(l4 + 2);
    }
    return;
  }
  bool v4 = out->family == kFamily4;
  if (out->proto != (v4 ? kProtoIcmp : kProtoIcmp6) || l4Len < 1) return;
  out->icmpType = l4[0];
  // Echo request/reply (RFC 792; RFC 4443 §4.1, §4.2): the identifier tells flows apart.
  bool echo = v4 ? (l4[0] == 8 || l4[0] == 0) : (l4[0] == 128 || l4[0] == 129);
  if (echo && l4Len >= kIcmpHeaderLen) out->icmpId = Get16(l4 + 4);
}

bool ParseIp4(const uint8_t* pkt, size_t len, InnerInfo* out) {
  if (len < kIp4HeaderLen) return false;
  size_t ihl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
  size_t total = Get16(pkt + 2);
  if (ihl < kIp4HeaderLen || ihl > len || total < ihl || total > len) return false;
  uint16_t frag = Get16(pkt + 6);
  uint16_t offset = frag & 0x1fff;
  out->family = kFamily4;
  out->src = pkt + 12;
  out->dst = pkt + 16;
  out->proto = pkt[9];
  out->df = (frag & 0x4000) != 0;
  out->fragment = (frag & 0x2000) != 0 || offset != 0;
  out->laterFragment = offset != 0;
  out->totalLen = total;
  out->l4Offset = ihl;
  if (!out->fragment) ParseL4(pkt + ihl, total - ihl, out);
  return true;
}

bool ParseIp6(const uint8_t* pkt, size_t len, InnerInfo* out) {
  if (len < kIp6HeaderLen) return false;
  size_t plen = Get16(pkt + 4);
  // Payload length 0 means a jumbogram (RFC 2675), which never fits a tunnel.
  if (plen == 0 || kIp6HeaderLen + plen > len) return false;
  size_t end = kIp6HeaderLen + plen;
  out->family = kFamily6;
  out->src = pkt + 8;
  out->dst = pkt + 24;
  out->df = true;
  out->totalLen = end;
  uint8_t nh = pkt[6];
  size_t off = kIp6HeaderLen;
  // Walk the extension headers that may precede the upper-layer header (RFC 8200 §4.1).
  for (int i = 0; i < kMaxIp6ExtHeaders; i++) {
    if (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
      if (end - off < 8) return false;
      size_t hlen = (static_cast<size_t>(pkt[off + 1]) + 1) * 8;
      if (end - off < hlen) return false;
      nh = pkt[off];
      off += hlen;
    } else if (nh == 44) {  // fragment (RFC 8200 §4.5)
      if (end - off < 8) return false;
      uint16_t fo = Get16(pkt + off + 2);
      uint16_t offset = fo >> 3;
      bool more = (fo & 1) != 0;
      nh = pkt[off];
      off += 8;
      // An atomic fragment (offset 0, M clear; RFC 8200 §4.5) is a whole packet.
      if (offset != 0 || more) out->fragment = true;
      if (offset != 0) {
        out->laterFragment = true;
        break;
      }
    } else {
      break;
    }
  }
  out->proto = nh;
  out->l4Offset = off;
  if (!out->fragment) ParseL4(pkt + off, end - off, out);
  return true;
}

// MurmurHash3 x86_32 (public domain, Austin Appleby); little-endian reads done by hand so the
// value is the same on every host.
uint32_t Murmur3(const uint8_t* data, size_t len, uint32_t seed) {
  const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
  uint32_t h = seed;
  size_t nblocks = len / 4;
  for (size_t i = 0; i < nblocks; i++) {
    const uint8_t* p = data + i * 4;
    uint32_t k = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                 (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
    k *= c1;
    k = (k << 15) | (k >> 17);
    k *= c2;
    h ^= k;
    h = (h << 13) | (h >> 19);
    h = h * 5 + 0xe6546b64;
  }
  const uint8_t* tail = data + nblocks * 4;
  uint32_t k = 0;
  switch (len & 3) {
    case 3:
      k ^= static_cast<uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      k ^= static_cast<uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      k ^= tail[0];
      k *= c1;
      k = (k << 15) | (k >> 17);
      k *= c2;
      h ^= k;
  }
  h ^= static_cast<uint32_t>(len);
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

// RFC 1122 §3.2.2 / RFC 1812 §4.3.2.7: no ICMP error to a source that does not name one host.
bool Ip4UnicastSource(const uint8_t* a) {
  if (a[0] == 0 || a[0] == 127) return false;  // "this network", loopback
  if (a[0] >= 224) return false;               // multicast, class E, limited broadcast
  return true;
}

bool Ip4ErrorType(uint8_t type) {
  // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

bool Ip6Unspecified(const uint8_t* a) {
  static const uint8_t zero[16] = {};
  return memcmp(a, zero, 16) == 0;
}

bool Ip6Loopback(const uint8_t* a) {
  static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return memcmp(a, one, 16) == 0;
}

}  // namespace

bool ParsePrefix(const std::string& cidr, Prefix* out) {
  size_t slash = cidr.find('/');
  std::string addr = cidr.substr(0, slash);
  if (addr.empty() || addr.size() > 45) return false;
  Prefix p;
  memset(&p, 0, sizeof(p));
  int max;
  if (inet_pton(AF_INET, addr.c_str(), p.addr) == 1) {
    p.family = kFamily4;
    max = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr) == 1) {
    p.family = kFamily6;
    max = 128;
  } else {
    return false;
  }
  int len = max;
  if (slash != std::string::npos) {
    std::string l = cidr.substr(slash + 1);
    if (l.empty() || l.size() > 3) return false;
    len = 0;
    for (char c : l) {
      if (c < '0' || c > '9') return false;
      len = len * 10 + (c - '0');
    }
    if (len > max) return false;
  }
  p.len = static_cast<uint8_t>(len);
  for (int i = 0; i < 16; i++) {
    int bits = len - i * 8;
    if (bits >= 8) continue;
    p.addr[i] &= bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
  *out = p;
  return true;
}

bool PrefixContains(const Prefix& p, const uint8_t* addr, int family) {
  if (family != p.family) return false;
  size_t full = p.len / 8;
  if (memcmp(p.addr, addr, full) != 0) return false;
  int rest = p.len % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == p.addr[full];
}

bool ParseInner(const uint8_t* pkt, size_t len, InnerInfo* out) {
  InnerInfo info;
  memset(&info, 0, sizeof(info));
  if (len < 1) return false;
  bool ok = false;
  switch (pkt[0] >> 4) {
    case 4:
      ok = ParseIp4(pkt, len, &info);
      break;
    case 6:
      ok = ParseIp6(pkt, len, &info);
      break;
  }
  if (ok) *out = info;
  return ok;
}

uint32_t FlowHash(const InnerInfo& info) {
  // family | proto | sport | dport (or echo id twice) | src | dst, in a fixed byte layout.
  uint8_t key[6 + 32];
  size_t alen = info.family == kFamily6 ? 16 : 4;
  key[0] = static_cast<uint8_t>(info.family);
  key[1] = info.proto;
  uint16_t a = info.sport, b = info.dport;
  if (info.icmpId != 0) a = b = info.icmpId;
  Put16(key + 2, a);
  Put16(key + 4, b);
  memcpy(key + 6, info.src, alen);
  memcpy(key + 6 + alen, info.dst, alen);
  return Murmur3(key, 6 + 2 * alen, 0x7457696e /* "tWin" */);
}

uint32_t InetSum(const uint8_t* data, size_t len, uint32_t sum) {
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) acc += Get16(data + i);
  if (i < len) acc += static_cast<uint64_t>(data[i]) << 8;  // odd byte, padded (RFC 1071 §4.1)
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint32_t>(acc);
}

uint16_t InetChecksum(const uint8_t* data, size_t len, uint32_t sum) {
  return static_cast<uint16_t>(~InetSum(data, len, sum) & 0xffff);
}

void SetIpv4Checksum(uint8_t* hdr) {
  size_t ihl = static_cast<size_t>(hdr[0] & 0x0f) * 4;
  hdr[10] = hdr[11] = 0;
  Put16(hdr + 10, InetChecksum(hdr, ihl));
}

bool Ipv4ChecksumOk(const uint8_t* hdr, size_t len) {
  if (len < kIp4HeaderLen) return false;
  size_t ihl = static_cast<size_t>(hdr[0] & 0x0f) * 4;
  if (ihl < kIp4HeaderLen || ihl > len) return false;
  return InetSum(hdr, ihl) == 0xffff;
}

size_t BuildIcmpFragNeeded(const uint8_t* orig, size_t origLen, uint16_t mtu,
                           const uint8_t* routerAddr4, uint8_t* out, size_t cap) {
  InnerInfo in;
  if (!ParseInner(orig, origLen, &in) || in.family != kFamily4) return 0;
  // Errors only about the first fragment (RFC 1122 §3.2.2), never about an ICMP error, never to
  // a non-unicast source, nor for a datagram sent to a multicast or broadcast address.
  if (in.laterFragment || !Ip4UnicastSource(in.src) || in.dst[0] >= 224) return 0;
  if (in.proto == kProtoIcmp && in.totalLen > in.l4Offset && Ip4ErrorType(orig[in.l4Offset])) {
    return 0;
  }
  size_t quote = in.totalLen;
  if (quote > kIcmp4ErrorMax - kIp4HeaderLen - kIcmpHeaderLen) {
    quote = kIcmp4ErrorMax - kIp4HeaderLen - kIcmpHeaderLen;
  }
  size_t total = kIp4HeaderLen + kIcmpHeaderLen + quote;
  if (cap < total) return 0;
  // Addresses are saved before the quote is moved: the caller may build the error in the buffer
  // that holds the original.
  uint8_t src[4], dst[4];
  memcpy(src, routerAddr4 != nullptr ? routerAddr4 : in.dst, 4);
  memcpy(dst, in.src, 4);
  memmove(out + kIp4HeaderLen + kIcmpHeaderLen, orig, quote);
  uint8_t* ip = out;
  ip[0] = 0x45;
  ip[1] = 0xc0;  // precedence "internetwork control" (RFC 1812 §4.3.2.5, §5.3.3.2)
  Put16(ip + 2, static_cast<uint16_t>(total));
  Put16(ip + 4, 0);  // identification
  Put16(ip + 6, 0);  // no flags, offset 0
  ip[8] = 64;        // TTL
  ip[9] = kProtoIcmp;
  memcpy(ip + 12, src, 4);
  memcpy(ip + 16, dst, 4);
  SetIpv4Checksum(ip);
  uint8_t* icmp = out + kIp4HeaderLen;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 4;  // fragmentation needed and DF set
  Put16(icmp + 2, 0);
  Put16(icmp + 4, 0);    // unused
  Put16(icmp + 6, mtu);  // next-hop MTU (RFC 1191 §4)
  Put16(icmp + 2, InetChecksum(icmp, kIcmpHeaderLen + quote));
  return total;
}

size_t BuildIcmp6TooBig(const uint8_t* orig, size_t origLen, uint32_t mtu,
                        const uint8_t* routerAddr6, uint8_t* out, size_t cap) {
  InnerInfo in;
  if (!ParseInner(orig, origLen, &in) || in.family != kFamily6) return 0;
  if (Ip6Unspecified(in.src) || Ip6Loopback(in.src) || in.src[0] == 0xff) return 0;
  // RFC 4443 §2.4 (e.1): not in response to an ICMPv6 error (types 0..127).
  if (in.proto == kProtoIcmp6 && !in.laterFragment && in.totalLen > in.l4Offset &&
      orig[in.l4Offset] < 128) {
    return 0;
  }
  const uint8_t* from = routerAddr6 != nullptr ? routerAddr6 : in.dst;
  if (from[0] == 0xff) return 0;  // a multicast destination cannot be the source
  size_t quote = in.totalLen;
  if (quote > kIcmp6ErrorMax - kIp6HeaderLen - kIcmpHeaderLen) {
    quote = kIcmp6ErrorMax - kIp6HeaderLen - kIcmpHeaderLen;
  }
  size_t plen = kIcmpHeaderLen + quote;
  size_t total = kIp6HeaderLen + plen;
  if (cap < total) return 0;
  uint8_t src[16], dst[16];  // saved before the quote moves, as above
  memcpy(src, from, 16);
  memcpy(dst, in.src, 16);
  memmove(out + kIp6HeaderLen + kIcmpHeaderLen, orig, quote);
  uint8_t* ip = out;
  Put32(ip, 0x60000000);
  Put16(ip + 4, static_cast<uint16_t>(plen));
  ip[6] = kProtoIcmp6;
  ip[7] = 64;  // hop limit
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  uint8_t* icmp = out + kIp6HeaderLen;
  icmp[0] = 2;  // packet too big
  icmp[1] = 0;
  Put16(icmp + 2, 0);
  Put32(icmp + 4, mtu);
  // Pseudo-header: source, destination, upper-layer length, next header (RFC 8200 §8.1).
  uint8_t pseudo[8] = {0, 0, 0, 0, 0, 0, 0, kProtoIcmp6};
  Put32(pseudo, static_cast<uint32_t>(plen));
  uint32_t sum = InetSum(ip + 8, 32);
  sum = InetSum(pseudo, sizeof(pseudo), sum);
  Put16(icmp + 2, InetChecksum(icmp, plen, sum));
  return total;
}

size_t BuildEchoReply(const uint8_t* req, const InnerInfo& info, uint8_t* out, size_t cap) {
  if (info.fragment || info.l4Offset + 8 > info.totalLen) return 0;
  size_t icmpLen = info.totalLen - info.l4Offset;
  if (info.family == kFamily4) {
    if (info.proto != 1 || info.icmpType != 8) return 0;
    uint8_t s0 = info.src[0];
    if ((info.src[0] | info.src[1] | info.src[2] | info.src[3]) == 0 || s0 == 127 || s0 >= 224)
      return 0;
    size_t n = 20 + icmpLen;
    if (n > cap || n > 65535) return 0;
    memset(out, 0, 20);
    out[0] = 0x45;
    out[1] = req[1];  // TOS, as Linux echoes it (icmp_reply)
    out[2] = static_cast<uint8_t>(n >> 8);
    out[3] = static_cast<uint8_t>(n);
    out[8] = 64;
    out[9] = 1;
    memcpy(out + 12, info.dst, 4);
    memcpy(out + 16, info.src, 4);
    SetIpv4Checksum(out);
    uint8_t* icmp = out + 20;
    memcpy(icmp, req + info.l4Offset, icmpLen);
    icmp[0] = 0;  // echo reply
    icmp[1] = 0;
    icmp[2] = icmp[3] = 0;
    uint16_t c = InetChecksum(icmp, icmpLen);
    icmp[2] = static_cast<uint8_t>(c >> 8);
    icmp[3] = static_cast<uint8_t>(c);
    return n;
  }
  if (info.proto != 58 || info.icmpType != 128 || info.l4Offset != 40) return 0;
  static const uint8_t kZero[16] = {0};
  static const uint8_t kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (memcmp(info.src, kZero, 16) == 0 || memcmp(info.src, kLoop, 16) == 0 || info.src[0] == 0xff)
    return 0;
  size_t n = 40 + icmpLen;
  if (n > cap || icmpLen > 65535) return 0;
  memcpy(out, req, 4);  // version, traffic class, flow label
  out[4] = static_cast<uint8_t>(icmpLen >> 8);
  out[5] = static_cast<uint8_t>(icmpLen);
  out[6] = 58;
  out[7] = 64;
  memcpy(out + 8, info.dst, 16);
  memcpy(out + 24, info.src, 16);
  uint8_t* icmp = out + 40;
  memcpy(icmp, req + 40, icmpLen);
  icmp[0] = 129;  // echo reply
  icmp[1] = 0;
  icmp[2] = icmp[3] = 0;
  // RFC 4443 §2.3: the checksum covers the pseudo-header (RFC 8200 §8.1).
  uint8_t tail[8] = {0, 0, static_cast<uint8_t>(icmpLen >> 8), static_cast<uint8_t>(icmpLen), 0, 0,
                     0, 58};
  uint32_t sum = InetSum(out + 8, 32);
  sum = InetSum(tail, 8, sum);
  uint16_t c = InetChecksum(icmp, icmpLen, sum);
  icmp[2] = static_cast<uint8_t>(c >> 8);
  icmp[3] = static_cast<uint8_t>(c);
  return n;
}

}  // namespace twinsec
