// The ESP engine's sockets: per local address one UDP socket on the NAT-T port (ESP-in-UDP and
// IKE share it, RFC 3948) and one raw socket for IP protocol 50 (plain ESP, RFC 4303), plus the
// address conversions between JavaScript strings and sockaddrs.
#ifndef TWINSEC_SOCKETS_H_
#define TWINSEC_SOCKETS_H_

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

namespace twinsec {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;

  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

// "192.0.2.1" or "2001:db8::1" with `port` (host order) -> sockaddr. False on anything else.
bool ParseSockAddr(const std::string& ip, uint16_t port, SockAddr* out);

// Address text and port (host order) of an AF_INET/AF_INET6 sockaddr; "" for other families.
std::string AddrText(const sockaddr* sa);
uint16_t AddrPort(const sockaddr* sa);

// True if `b` (e.g. a source address from recvmmsg) holds `a`'s address and, with `withPort`,
// its port. Inline: the RX thread asks for every authenticated ESP packet (the peer may have
// moved behind its NAT, RFC 7296 §2.23), so the common, unchanged case costs a few compares.
inline bool SameEndpoint(const SockAddr& a, const sockaddr* b, bool withPort) {
  if (a.family() != b->sa_family) return false;
  if (b->sa_family == AF_INET) {
    const sockaddr_in* x = reinterpret_cast<const sockaddr_in*>(&a.ss);
    const sockaddr_in* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_addr.s_addr == y->sin_addr.s_addr && (!withPort || x->sin_port == y->sin_port);
  }
  if (b->sa_family == AF_INET6) {
    const sockaddr_in6* x = reinterpret_cast<const sockaddr_in6*>(&a.ss);
    const sockaddr_in6* y = reinterpret_cast<const sockaddr_in6*>(b);
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0 &&
           (!withPort || x->sin6_port == y->sin6_port);
  }
  return false;
}

// Result of opening a socket: the fd, or errno and the failing step.
struct SockResult {
  int fd = -1;
  int err = 0;
  std::string step;
};

// Non-blocking UDP socket bound to `local` (address and port). IP_PMTUDISC_DONT so that
// encapsulated packets larger than the path MTU are fragmented by the kernel instead of being
// refused (the inner packet already passed the tunnel MTU check), and larger socket buffers so a
// burst between two wake-ups of the packet threads is not lost.
SockResult OpenUdpSocket(const SockAddr& local);

// Non-blocking raw socket for IP protocol 50 bound to `local`'s address. IPv4 raw sockets
// deliver the IP header on receive (the engine skips it); IPv6 ones do not (RFC 3542 §3).
SockResult OpenEspSocket(const SockAddr& local);

// How control traffic leaves: IKE, health probes and the echo replies answering a peer's probes
// (security issue #11: a saturated link must not look dead). `priority` is the packet's
// skb->priority, the value the host's qdiscs classify by (pfifo_fast maps 7, TC_PRIO_CONTROL, to
// its first band; htb and others take a matching class id); `tos` is the outer header's TOS /
// traffic class byte, i.e. DSCP << 2 (CS6 = 48, RFC 2474 §4.2.2.2 / RFC 4594: network control),
// for the routers on the way. Bulk ESP keeps the sockets' defaults (priority 0, DSCP 0): twinsec
// does not copy inner DSCP to the outer header (RFC 4301 §5.1.2.1 leaves it to the
// implementation); with both zero nothing is marked.
struct CtlMark {
  uint32_t priority = 0;
  uint8_t tos = 0;
  bool on() const { return priority != 0 || tos != 0; }
};

// sendmsg of `iov` to `to` on `fd` (a socket of `family`), MSG_DONTWAIT, with `mark` as per-packet
// ancillary data (SO_PRIORITY in SOL_SOCKET, Linux 6.14+; IP_TOS or IPV6_TCLASS), so that only this
// datagram is marked and the socket's other traffic is not. A kernel without the SO_PRIORITY cmsg
// answers EINVAL: sent again with the DSCP alone, and `*noPrio` set so later calls skip it.
// Returns sendmsg's result (errno set on failure).
ssize_t SendMarked(int fd, int family, const iovec* iov, size_t iovlen, const sockaddr* to,
                   socklen_t toLen, const CtlMark& mark, bool* noPrio);

// Marks every socket of this process bound to one of `addrs` at `port` (UDP) with `mark` for
// good: SO_PRIORITY and IP_TOS / IPV6_TCLASS set on the socket. For sockets that carry nothing
// but control traffic and whose descriptor the caller cannot reach (Node's dgram sockets on the
// IKE port 500). Returns how many it marked.
int MarkBoundSockets(const SockAddr* addrs, size_t n, uint16_t port, const CtlMark& mark);

}  // namespace twinsec

#endif  // TWINSEC_SOCKETS_H_
