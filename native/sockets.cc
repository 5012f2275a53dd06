#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

namespace twinsec {

namespace {

// Socket buffers. The receive buffer is the queue in front of the RX thread: when a peer sends
// faster than we decrypt (a flood), every byte in it is latency for the tunnel's other flows, so
// it is kept to a few milliseconds of traffic (the kernel doubles the value for bookkeeping:
// 2 MiB: about 16 ms of a saturated gigabit path). The send buffer only needs to absorb one
// sendmmsg burst of GSO super-packets.
constexpr int kRcvBuf = 1024 * 1024;
constexpr int kSndBuf = 2 * 1024 * 1024;

SockResult Fail(int fd, const char* step) {
  SockResult r;
  r.err = errno;
  r.step = step;
  if (fd >= 0) close(fd);
  return r;
}

void SetBuffers(int fd) {
  // SO_*BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; fall back quietly, the
  // defaults still work, just with more loss under bursts.
  int v = kRcvBuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
  v = kSndBuf;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

bool NoPmtuDiscovery(int fd, int family) {
  if (family == AF_INET) {
    int v = IP_PMTUDISC_DONT;
    return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof(v)) == 0;
  }
  // IPv6 sources may fragment (RFC 8200 §4.5); IPV6_PMTUDISC_DONT makes the kernel do so for
  // datagrams above the path MTU instead of failing with EMSGSIZE.
  int v = IPV6_PMTUDISC_DONT;
  return setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof(v)) == 0;
}

SockResult Open(const SockAddr& local, int type, int proto, bool bindPort) {
  int family = local.family();
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return Fail(-1, "socket");
  if (family == AF_INET6) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
      return Fail(fd, "IPV6_V6ONLY");
  }
  if (!NoPmtuDiscovery(fd, family)) return Fail(fd, "IP_MTU_DISCOVER");
  SetBuffers(fd);
  SockAddr b = local;
  if (!bindPort) {
    // Raw sockets have no ports: bind the address only.
    if (family == AF_INET)
      reinterpret_cast<sockaddr_in*>(&b.ss)->sin_port = 0;
    else
      reinterpret_cast<sockaddr_in6*>(&b.ss)->sin6_port = 0;
  }
  if (bind(fd, b.sa(), b.len) < 0) return Fail(fd, "bind");
  SockResult r;
  r.fd = fd;
  return r;
}

}  // namespace

bool ParseSockAddr(const std::string& ip, uint16_t port, SockAddr* out) {
  *out = SockAddr();
  if (ip.find('%') != std::string::npos) return false;  // no zone ids
  sockaddr_in* in4 = reinterpret_cast<sockaddr_in*>(&out->ss);
  if (inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    out->len = sizeof(sockaddr_in);
    return true;
  }
  *out = SockAddr();
  sockaddr_in6* in6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  *out = SockAddr();
  return false;
}

std::string AddrText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

uint16_t AddrPort(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

SockResult OpenUdpSocket(const SockAddr& local) {
  SockResult r = Open(local, SOCK_DGRAM, IPPROTO_UDP, true);
  if (r.fd >= 0) {
    // Let the kernel coalesce consecutive ESP-in-UDP datagrams of one peer (UDP GRO, Linux
    // 5.0+): one socket enqueue and one recvmmsg entry for many packets. Best effort.
    int one = 1;
    setsockopt(r.fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  }
  return r;
}

SockResult OpenEspSocket(const SockAddr& local) {
  return Open(local, SOCK_RAW, IPPROTO_ESP, false);
}

}  // namespace twinsec
