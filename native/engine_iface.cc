// Route-based connections (Engine::AddInterface): one TUN device per connection. The host's
// routing (static routes, or zebra from BGP) decides what enters a connection's device; the TX
// thread encrypts it into that connection's current SA without a route lookup, and the RX thread
// writes what the connection's SAs decrypt to it. The device's carrier follows the connection's
// usability (SetCarrier), so a routing daemon withdraws routes through a dead tunnel at once.
#include <errno.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "engine.h"
#include "engine_tables.h"
#include "tun.h"

namespace twinsec {

namespace {

bool Fail(EngineError* e, int err, std::string msg) {
  e->err = err;
  e->message = std::move(msg);
  return false;
}

// The same queue length as the shared device (engine.cc says why it is short).
constexpr int kIfaceTxQueue = 128;

}  // namespace

bool Engine::AddInterface(const std::string& connection, const std::string& name, int mtu,
                          EngineError* err) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return Fail(err, 0, "engine is closed");
  if (ifaces_.size() >= kMaxInterfaces)
    return Fail(err, 0, "more than " + std::to_string(kMaxInterfaces) + " interfaces");
  for (const Iface& i : ifaces_) {
    if (i.name == name) return Fail(err, EEXIST, "interface " + name + " exists");
  }
  uint32_t conn = Intern(connection);
  for (const Iface& i : ifaces_) {
    if (i.conn == conn) return Fail(err, EEXIST, "connection " + connection + " has an interface");
  }
  TunResult t = OpenTun(name, mtu, /*vnetHdr=*/true);
  if (t.fd < 0) return Fail(err, t.err, "open TUN " + name + ": " + t.step);
  SetTunOffload(t.fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
  QuietIpv6(t.name);
  SetTxQueueLen(t.name, kIfaceTxQueue);
  // Operationally down until the connection is usable (SetCarrier): no route through it is used
  // before there is an SA to carry it.
  int off = 0;
  ioctl(t.fd, TUNSETCARRIER, &off);
  DrainTun(t.fd);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpIface | (uint64_t{conn} << 32) | static_cast<uint32_t>(t.fd);
  if (epoll_ctl(txEp_, EPOLL_CTL_ADD, t.fd, &ev) != 0) {
    int e = errno;
    CloseTun(t.fd);
    return Fail(err, e, "epoll " + name);
  }
  ifaces_.push_back(Iface{conn, t.fd, t.name});
  Draft d(*this);
  // A copy of every connection's fd; interfaces are configuration (at most kMaxInterfaces).
  auto tunOf = d.t()->tunOf ? std::make_shared<std::vector<int>>(*d.t()->tunOf)
                            : std::make_shared<std::vector<int>>();
  if (tunOf->size() <= conn) tunOf->resize(conn + 1, -1);
  (*tunOf)[conn] = t.fd;
  d.t()->tunOf = std::move(tunOf);
  Publish(&d);
  return true;
}

bool Engine::SetCarrier(const std::string& connection, bool up) {
  std::lock_guard<std::mutex> lock(ctl_);
  auto id = connIds_.find(connection);
  if (closed_ || id == connIds_.end()) return false;
  for (const Iface& i : ifaces_) {
    if (i.conn != id->second) continue;
    int on = up ? 1 : 0;
    return ioctl(i.fd, TUNSETCARRIER, &on) == 0;
  }
  return false;
}

}  // namespace twinsec
