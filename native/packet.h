// Pure helpers on inner (plaintext) IP packets for the ESP engine: prefix matching for traffic
// selectors and routes, a bounds-checked header parser, a stable flow hash for spreading flows
// over several SAs, and the ICMP errors a tunnel endpoint sends when a packet does not fit
// (RFC 1191, RFC 8201). No sockets, no allocation, no global state.
//
// Address families are the IP version numbers, 4 and 6 (kFamily4 / kFamily6), not AF_INET /
// AF_INET6, so they can be compared with the version nibble of a packet directly.
#ifndef TWINSEC_PACKET_H_
#define TWINSEC_PACKET_H_

#include <stddef.h>
#include <stdint.h>

#include <string>

namespace twinsec {

constexpr int kFamily4 = 4;
constexpr int kFamily6 = 6;

// An address prefix. Bits of `addr` beyond `len` are always zero; for IPv4 only addr[0..3] is
// used and addr[4..15] is zero.
struct Prefix {
  uint8_t family;  // kFamily4 or kFamily6
  uint8_t len;     // 0..32 or 0..128
  uint8_t addr[16];
};

// Parses "a.b.c.d/n", "x:y::z/n", or a bare address (a host prefix, /32 or /128). Host bits set
// beyond the prefix length are cleared ("10.1.2.3/8" -> 10.0.0.0/8), as strongSwan does for
// traffic selectors. False on anything else (empty, bad address, length out of range, spaces).
bool ParsePrefix(const std::string& cidr, Prefix* out);

// True if `addr` (4 or 16 bytes, as given by `family`) lies in `p`. Different family: false.
bool PrefixContains(const Prefix& p, const uint8_t* addr, int family);

// What the engine needs to know about an inner packet. Pointers point into the parsed buffer.
struct InnerInfo {
  int family;          // kFamily4 or kFamily6
  const uint8_t* src;  // 4 or 16 bytes
  const uint8_t* dst;
  // Upper-layer protocol: IPv4 protocol field; for IPv6 the header after any hop-by-hop,
  // routing, fragment and destination-options extension headers (or the last one reached when
  // the chain is cut short by a non-first fragment).
  uint8_t proto;
  uint16_t sport, dport;  // TCP/UDP/SCTP/UDP-Lite ports (host order); 0 for other protocols
  uint16_t icmpId;        // ICMP/ICMPv6 echo request/reply identifier (host order); else 0
  uint8_t icmpType;       // ICMP/ICMPv6 type when proto is 1/58 and the header is present
  // IPv4: the DF bit. IPv6: always true, because routers never fragment IPv6 (RFC 8200 §5), so a
  // packet too big for the tunnel always gets a Packet Too Big back.
  bool df;
  // Any fragment (IPv4 MF set or offset != 0; IPv6 fragment header). Ports and ICMP fields are
  // left 0 for every fragment, also the first one, so all fragments of a datagram hash alike.
  bool fragment;
  // A fragment other than the first: the bytes at l4Offset continue some earlier fragment and
  // are not an upper-layer header.
  bool laterFragment;
  size_t totalLen;  // IPv4 total length / IPv6 40 + payload length; <= the buffer length
  size_t l4Offset;  // offset of the upper-layer header (or fragment data) within the packet
};

// Parses an IPv4 (with options) or IPv6 packet. Checks the version, the header length against
// the buffer and the total/payload length against the buffer (the buffer may be longer: ESP
// TFC padding, RFC 4303 §2.7). Reads nothing beyond `len`. Ports (first 4 bytes of the
// upper-layer header) and ICMP fields (type; identifier of an 8-byte echo header) are filled when
// those bytes lie within the total length, and left 0 otherwise (the packet is still valid). An
// IPv6 extension header running past the payload makes the packet invalid. IPv6 jumbograms
// (payload length 0) are rejected. The IPv4 header checksum is not verified.
bool ParseInner(const uint8_t* pkt, size_t len, InnerInfo* out);

// Stable hash of family, addresses, protocol, and ports (or the echo identifier). Murmur3-based,
// byte-order independent, the same in every process and on every host, so a flow always maps
// to the same connection for the same set of connections.
uint32_t FlowHash(const InnerInfo& info);

// Internet checksum (RFC 1071) over `data`, starting from a partial 32-bit sum (for pseudo
// headers). Returns the complemented 16-bit value to store big-endian (high byte first).
uint16_t InetChecksum(const uint8_t* data, size_t len, uint32_t sum = 0);

// Partial sum to pass to InetChecksum as `sum` (not complemented, not folded).
uint32_t InetSum(const uint8_t* data, size_t len, uint32_t sum = 0);

// Computes and stores the header checksum of the IPv4 header at `hdr` (IHL taken from the
// header; the caller guarantees IHL*4 bytes are there).
void SetIpv4Checksum(uint8_t* hdr);

// True if the IPv4 header checksum over IHL*4 bytes verifies; false if `len` is short.
bool Ipv4ChecksumOk(const uint8_t* hdr, size_t len);

// Maximum size of the ICMP errors built below: 576 for IPv4 (RFC 1812 §4.3.2.3) and 1280 for
// IPv6 (RFC 4443 §2.4 (c)); an `out` buffer of this size is always large enough.
constexpr size_t kIcmp4ErrorMax = 576;
constexpr size_t kIcmp6ErrorMax = 1280;

// Builds an IPv4 packet carrying ICMP Destination Unreachable, Fragmentation Needed and DF Set
// (type 3 code 4, RFC 792) with the next-hop MTU (RFC 1191 §4) addressed to the sender of
// `orig`. Source is `routerAddr4` (4 bytes), or the original destination when null. Quotes as
// much of `orig` as fits in 576 bytes. Returns the packet length, or 0 when no error must be
// sent or `orig` is not a valid IPv4 packet: the original is an ICMP error or a non-first
// fragment, or its source is unspecified, loopback, multicast or broadcast (RFC 1122 §3.2.2,
// RFC 1812 §4.3.2.7), or `cap` is too small. Does not look at DF: the caller decides.
size_t BuildIcmpFragNeeded(const uint8_t* orig, size_t origLen, uint16_t mtu,
                           const uint8_t* routerAddr4, uint8_t* out, size_t cap);

// Builds an IPv6 packet carrying ICMPv6 Packet Too Big (type 2 code 0, RFC 4443 §3.2) with
// `mtu`, addressed to the sender of `orig`, from `routerAddr6` (16 bytes) or the original
// destination when null. Quotes as much of `orig` as fits in 1280 bytes. Returns the length or
// 0: `orig` not valid IPv6, an ICMPv6 error message, source unspecified or multicast
// (RFC 4443 §2.4 (e)), or `cap` too small. A multicast destination is allowed (§2.4 (e.2)).
size_t BuildIcmp6TooBig(const uint8_t* orig, size_t origLen, uint32_t mtu,
                        const uint8_t* routerAddr6, uint8_t* out, size_t cap);

// Builds the echo reply (ICMP type 0, RFC 792; ICMPv6 type 129, RFC 4443 §4.2) to the echo
// request `req` parsed into `info`, as the addressed host's stack would: addresses swapped,
// identifier, sequence number and data unchanged, a fresh header (IPv4 without options, TTL 64,
// the request's TOS; IPv6 hop limit 64, the request's traffic class), checksums computed.
// Returns the length, or 0 when `req` is no complete, unfragmented echo request (IPv6: ICMPv6
// right after the fixed header), its source is unspecified, loopback or multicast, or `cap` is
// too small.
size_t BuildEchoReply(const uint8_t* req, const InnerInfo& info, uint8_t* out, size_t cap);

}  // namespace twinsec

#endif  // TWINSEC_PACKET_H_
