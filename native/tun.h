// TUN device management: create, configure and close a Linux TUN interface.
// No protocol logic here; errors are returned as errno values for the binding layer to report.
#ifndef TWINSEC_NATIVE_TUN_H_
#define TWINSEC_NATIVE_TUN_H_

#include <string>

namespace twinsec {

struct TunResult {
  int fd = -1;
  std::string name;
  // On failure: errno of the failing call and the step that failed (e.g. "TUNSETIFF").
  int err = 0;
  std::string step;
};

// Creates (or attaches to) an IFF_TUN | IFF_NO_PI device called `name` (empty: kernel picks tunN),
// sets its MTU and brings it up. The returned fd is non-blocking and close-on-exec. With
// `vnetHdr` every packet read or written carries a 10-byte struct virtio_net_hdr in front
// (IFF_VNET_HDR), which lets writes hand the kernel coalesced TCP (GSO) packets; no offloads are
// enabled for reads, so what is read is always one complete, checksummed packet.
TunResult OpenTun(const std::string& name, int mtu, bool vnetHdr = false);

// TUNSETOFFLOAD: which offloads (TUN_F_CSUM, TUN_F_TSO4, ...) the reader handles; 0 or errno.
int SetTunOffload(int fd, unsigned flags);

// Closes a TUN fd; returns 0 or errno.
int CloseTun(int fd);

// Best-effort set-up of a new device before the engine's threads use it (tun.cc says why):
// no IPv6 address autoconfiguration on it (addr_gen_mode "none"), a txqueuelen of `len`, and
// nothing left queued from before.
void QuietIpv6(const std::string& tun);
void SetTxQueueLen(const std::string& tun, int len);
void DrainTun(int fd);

}  // namespace twinsec

#endif  // TWINSEC_NATIVE_TUN_H_
