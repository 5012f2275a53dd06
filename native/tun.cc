#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
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

}  // namespace twinsec
