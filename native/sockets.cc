#include "sockets.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
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

ssize_t SendMarked(int fd, int family, const iovec* iov, size_t iovlen, const sockaddr* to,
                   socklen_t toLen, const CtlMark& mark, bool* noPrio) {
  alignas(cmsghdr) uint8_t ctl[CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int))];
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(to);
  m.msg_namelen = toLen;
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = iovlen;
  for (int attempt = 0; attempt < 2; attempt++) {
    size_t used = 0;
    m.msg_control = ctl;
    m.msg_controllen = sizeof(ctl);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    // The TOS / traffic class first: an IP_TOS cmsg also sets the packet's priority from the TOS
    // bits (ip_cmsg_send: rt_tos2priority, which maps CS6 to best effort), and the kernel applies
    // the cmsgs in order, so SO_PRIORITY, which must win, comes last.
    if (mark.tos != 0) {
      int tos = mark.tos;
      c->cmsg_level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
      c->cmsg_type = family == AF_INET6 ? IPV6_TCLASS : IP_TOS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &tos, sizeof(int));
      used += CMSG_SPACE(sizeof(int));
      c = CMSG_NXTHDR(&m, c);
    }
    if (mark.priority != 0 && !*noPrio) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SO_PRIORITY;
      c->cmsg_len = CMSG_LEN(sizeof(uint32_t));
      memcpy(CMSG_DATA(c), &mark.priority, sizeof(uint32_t));
      used += CMSG_SPACE(sizeof(uint32_t));
    }
    m.msg_controllen = used;
    if (used == 0) m.msg_control = nullptr;
    ssize_t r = sendmsg(fd, &m, MSG_DONTWAIT);
    if (r >= 0 || errno != EINVAL || mark.priority == 0 || *noPrio) return r;
    *noPrio = true;  // an older kernel: no SO_PRIORITY in sendmsg (added in Linux 6.14)
  }
  return -1;
}

int MarkBoundSockets(const SockAddr* addrs, size_t n, uint16_t port, const CtlMark& mark) {
  if (!mark.on()) return 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  int marked = 0;
  while (dirent* ent = readdir(d)) {
    char* end = nullptr;
    long fd = strtol(ent->d_name, &end, 10);
    if (end == ent->d_name || *end != 0 || fd == dirfd(d)) continue;
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_DGRAM)
      continue;
    SockAddr b;
    b.len = sizeof(b.ss);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&b.ss), &b.len) < 0) continue;
    if (AddrPort(b.sa()) != port) continue;
    bool ours = false;
    for (size_t i = 0; i < n && !ours; i++) ours = SameEndpoint(addrs[i], b.sa(), false);
    if (!ours) continue;
    int prio = static_cast<int>(mark.priority), tos = mark.tos;
    // IP_TOS on a socket also sets its priority from the TOS bits (rt_tos2priority), so it goes
    // first and SO_PRIORITY, which must win, after it.
    bool ok =
        b.family() == AF_INET6
            ? setsockopt(static_cast<int>(fd), IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos)) == 0
            : setsockopt(static_cast<int>(fd), IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) == 0;
    ok = setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio)) == 0 && ok;
    if (ok) marked++;
  }
  closedir(d);
  return marked;
}

}  // namespace twinsec
