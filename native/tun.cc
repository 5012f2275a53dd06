#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace twinsec {

namespace {

TunResult Fail(int fd, int err, const char* step) {
  if (fd >= 0) close(fd);
  TunResult r;
  r.err = err;
  r.step = step;
  return r;
}

// The first line of a /proc/sys file without its newline; "" when it cannot be read.
std::string ReadSysctl(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return "";
  size_t len = static_cast<size_t>(n);
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) len--;
  return std::string(buf, len);
}

bool WriteSysctl(const std::string& path, const char* value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = write(fd, value, strlen(value));
  close(fd);
  return n == static_cast<ssize_t>(strlen(value));
}

}  // namespace

TunResult OpenTun(const std::string& name, int mtu, bool vnetHdr) {
  if (name.size() >= IFNAMSIZ) return Fail(-1, ENAMETOOLONG, "name");
  if (mtu < 68 || mtu > 65535) return Fail(-1, EINVAL, "mtu");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Fail(-1, errno, "open /dev/net/tun");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return Fail(fd, errno, "TUNSETIFF");
  if (vnetHdr) {
    int hdrLen = 10;  // sizeof(struct virtio_net_hdr): no mergeable-buffer count
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrLen) < 0) return Fail(fd, errno, "TUNSETVNETHDRSZ");
  }
  std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Fail(fd, errno, "socket");

  struct ifreq req;
  memset(&req, 0, sizeof(req));
  memcpy(req.ifr_name, actual.data(), actual.size());
  req.ifr_mtu = mtu;
  if (ioctl(sock, SIOCSIFMTU, &req) < 0) {
    int e = errno;
    close(sock);
    return Fail(fd, e, "SIOCSIFMTU");
  }
  if (ioctl(sock, SIOCGIFFLAGS, &req) < 0) {
    int e = errno;
    close(sock);
    return Fail(fd, e, "SIOCGIFFLAGS");
  }
  req.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &req) < 0) {
    int e = errno;
    close(sock);
    return Fail(fd, e, "SIOCSIFFLAGS");
  }
  close(sock);

  TunResult r;
  r.fd = fd;
  r.name = actual;
  return r;
}

int SetTunOffload(int fd, unsigned flags) {
  if (ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0) return errno;
  return 0;
}

int CloseTun(int fd) {
  if (fd < 0) return EBADF;
  if (close(fd) < 0) return errno;
  return 0;
}

// The kernel gives a new TUN device an IPv6 link-local address (addr_gen_mode "random" for
// ARPHRD_NONE), joins its multicast groups and sends Router Solicitations: packets nobody routes,
// which the TX thread would count as noRoute drops on an idle gateway. addr_gen_mode 1 ("none")
// stops that while leaving IPv6 on, so routes and inner IPv6 traffic through the TUN still work.
// Best effort: without IPv6 in the kernel, or with /proc/sys read-only, nothing changes.
void QuietIpv6(const std::string& tun) {
  const std::string dir = "/proc/sys/net/ipv6/conf/" + tun + "/";
  std::string mode = ReadSysctl(dir + "addr_gen_mode");
  if (mode.empty() || mode == "1") return;  // no IPv6, or configured so before it came up
  if (!WriteSysctl(dir + "addr_gen_mode", "1")) return;
  // OpenTun brought the device up under the old mode, so the link-local address and the
  // solicitation timer exist already. Turning IPv6 off and on on this device alone removes them
  // and re-runs address configuration under the new mode, which adds nothing; IPv4 and the link
  // state stay as they are. Left alone when IPv6 is administratively off.
  if (ReadSysctl(dir + "disable_ipv6") != "0") return;
  WriteSysctl(dir + "disable_ipv6", "1");
  WriteSysctl(dir + "disable_ipv6", "0");
}

void SetTxQueueLen(const std::string& tun, int len) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return;
  ifreq req{};
  memcpy(req.ifr_name, tun.data(), tun.size() < IFNAMSIZ ? tun.size() : IFNAMSIZ - 1);
  req.ifr_qlen = len;
  ioctl(sock, SIOCSIFTXQLEN, &req);
  close(sock);
}

// Drops whatever the kernel queued on the TUN before the packet threads exist (an MLD report or
// a solicitation sent in the moment before QuietIpv6), so it does not show up as a drop later.
void DrainTun(int fd) {
  // Longer packets are truncated on read, which is all this needs. Bounded: a busy device
  // cannot hold up Create.
  uint8_t buf[2048];
  for (int i = 0; i < 1024; i++) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0 && !(r < 0 && errno == EINTR)) return;
  }
}

}  // namespace twinsec
