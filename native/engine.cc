// Engine control path: creation, SA and route installation, counters, IKE sends, shutdown.
// Everything here runs on the JavaScript thread; the packet loops are in engine_tx.cc and
// engine_rx.cc.
#include "engine.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "engine_tables.h"
#include "tun.h"

namespace twinsec {

namespace {

void Wipe(std::vector<uint8_t>* v) {
  // A volatile store loop the compiler cannot drop, then release: key bytes do not outlive the
  // crypto contexts that needed them.
  volatile uint8_t* p = v->data();
  for (size_t i = 0; i < v->size(); i++) p[i] = 0;
  v->clear();
  v->shrink_to_fit();
}

void WipeKeys(SaConfig* c) {
  Wipe(&c->encrKeyIn);
  Wipe(&c->encrKeyOut);
  Wipe(&c->integKeyIn);
  Wipe(&c->integKeyOut);
}

// Packets the TUN holds for the TX thread (the device's txqueuelen, which sizes the tun driver's
// ring; the kernel default is 500). Under a flood the ring stays full, so every packet waits for
// all of it to be encrypted: at ~140k packets/s, 500 packets are 3.5 ms of added latency, 128 are
// under 1. Measured with two engines, an iperf3 -u -b 0 flood and ping through it: median RTT
// 0.9 ms at 128 against 2.6-5.6 ms at 500, TCP throughput unchanged (TSO entries carry up to
// 64 KB each, so 128 of them still hold several MB of a TCP burst).
constexpr int kTunTxQueue = 128;

bool SetErr(EngineError* e, int err, std::string msg) {
  e->err = err;
  e->message = std::move(msg);
  return false;
}

}  // namespace

std::unique_ptr<Engine> Engine::Create(const EngineOptions& opts, EngineSink* sink,
                                       EngineError* err) {
  std::unique_ptr<Engine> e(new Engine());
  e->mtu_ = opts.mtu;
  e->nattPort_ = opts.nattPort;
  e->mark_ = opts.ctlMark;
  e->sink_ = sink;
  e->tables_ = std::make_shared<const Tables>();

  for (const std::string& a : opts.localAddresses) {
    LocalSocks s;
    if (!ParseSockAddr(a, opts.nattPort, &s.addr)) {
      SetErr(err, 0, "localAddresses: not an IP address: " + a);
      return nullptr;
    }
    e->socks_.push_back(s);  // fds opened below; Close() handles a partial set
  }

  TunResult t = OpenTun(opts.tunName, opts.mtu, /*vnetHdr=*/true);  // for gro.h
  if (t.fd < 0) {
    SetErr(err, t.err, "open TUN " + opts.tunName + ": " + t.step);
    return nullptr;
  }
  e->tun_ = t.fd;
  e->tunName_ = t.name;
  // The TX thread segments TCP super-packets and completes checksums itself (gso.h), as a NIC
  // would: the kernel then skips software segmentation and one read carries up to 64 KB. Best
  // effort: without it every read is one finished packet, which the TX path handles as well.
  SetTunOffload(e->tun_, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
  QuietIpv6(e->tunName_);
  SetTxQueueLen(e->tunName_, kTunTxQueue);
  DrainTun(e->tun_);

  for (LocalSocks& s : e->socks_) {
    const std::string where = AddrText(s.addr.sa()) + ":" + std::to_string(opts.nattPort);
    SockResult u = OpenUdpSocket(s.addr);
    if (u.fd < 0) {
      SetErr(err, u.err, "UDP socket " + where + ": " + u.step);
      e->Close();
      return nullptr;
    }
    s.udp = u.fd;
    SockResult r = OpenEspSocket(s.addr);
    if (r.fd < 0) {
      SetErr(err, r.err, "raw ESP socket " + AddrText(s.addr.sa()) + ": " + r.step);
      e->Close();
      return nullptr;
    }
    s.esp = r.fd;
  }

  e->txWake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->rxWake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->txWake_ < 0 || e->rxWake_ < 0) {
    SetErr(err, errno, "eventfd");
    e->Close();
    return nullptr;
  }
  e->txEp_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpTun;
  bool ok = e->txEp_ >= 0 && epoll_ctl(e->txEp_, EPOLL_CTL_ADD, e->tun_, &ev) == 0;
  ev.data.u64 = kEpWake;
  if (!ok || epoll_ctl(e->txEp_, EPOLL_CTL_ADD, e->txWake_, &ev) != 0) {
    SetErr(err, errno, "epoll");
    e->Close();
    return nullptr;
  }
  Engine* raw = e.get();
  e->tx_ = std::thread([raw] { RunTx(raw); });
  e->rx_ = std::thread([raw] { RunRx(raw); });
  return e;
}

Engine::~Engine() { Close(); }

void Engine::Wake(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  // Cannot fail short of overflowing the counter; a missed wake-up only delays a refresh.
  ssize_t r = write(fd, &one, sizeof(one));
  (void)r;
}

bool Engine::ReportLimit(Sa* sa, bool hard, DropCounters* drops) {
  // The control plane rekeys (soft, RFC 7296 §2.8) or deletes (hard) the pair, which it would
  // otherwise do only when the time limit fires. A full event queue is counted; the caller
  // (ReportMark) tries again later.
  if (sink_->OnSaLimit(sa->spiIn, hard)) return true;
  drops->Count(Drop::kQueue);
  return false;
}

void Engine::Close() {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return;
  closed_ = true;
  stop_.store(true, std::memory_order_release);
  Wake(txWake_);
  Wake(rxWake_);
  if (tx_.joinable()) tx_.join();
  if (rx_.joinable()) rx_.join();
  for (LocalSocks& s : socks_) {
    if (s.udp >= 0) close(s.udp);
    if (s.esp >= 0) close(s.esp);
    s.udp = s.esp = -1;
  }
  // Closing the last fd of a non-persistent TUN device removes the device.
  if (tun_ >= 0) CloseTun(tun_);
  tun_ = -1;
  for (Iface& i : ifaces_) CloseTun(i.fd);
  ifaces_.clear();
  for (int* fd : {&txWake_, &rxWake_, &txEp_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  Probe p;
  while (probes_.Pop(&p)) {
  }
  std::atomic_store(&tables_, std::make_shared<const Tables>());
}

int Engine::FindSocket(const std::string& local, EngineError* err) const {
  SockAddr a;
  if (!ParseSockAddr(local, 0, &a)) {
    SetErr(err, 0, "not an IP address: " + local);
    return -1;
  }
  for (size_t i = 0; i < socks_.size(); i++) {
    if (SameEndpoint(socks_[i].addr, a.sa(), /*withPort=*/false)) return static_cast<int>(i);
  }
  SetErr(err, 0, "not one of the engine's localAddresses: " + local);
  return -1;
}

bool Engine::SendIke(const std::string& local, const std::string& remote, uint16_t remotePort,
                     const uint8_t* data, size_t len, EngineError* err) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return SetErr(err, EBADF, "engine closed");
  int i = FindSocket(local, err);
  if (i < 0) return false;
  SockAddr to;
  if (!ParseSockAddr(remote, remotePort, &to) || to.family() != socks_[i].addr.family())
    return SetErr(err, 0, "remote is not an address of the local address's family: " + remote);
  // RFC 3948 §2.2: IKE on the NAT-T port carries four zero bytes where ESP has its SPI.
  static const uint8_t kMarker[4] = {0, 0, 0, 0};
  iovec iov[2] = {{const_cast<uint8_t*>(kMarker), 4}, {const_cast<uint8_t*>(data), len}};
  // IKE shares the socket with bulk ESP-in-UDP: only its own datagrams carry the control mark,
  // so a saturated uplink delays or drops bulk before it drops the negotiation (issue #11).
  if (SendMarked(socks_[i].udp, to.family(), iov, 2, to.sa(), to.len, mark_, &ctlNoPrio_) < 0)
    return SetErr(err, errno, "sendIke");
  return true;
}

int Engine::MarkIkeSockets(uint16_t port) const {
  std::lock_guard<std::mutex> lock(ctl_);
  std::vector<SockAddr> addrs;
  for (const LocalSocks& s : socks_) addrs.push_back(s.addr);
  return MarkBoundSockets(addrs.data(), addrs.size(), port, mark_);
}

bool Engine::SendKeepalive(const std::string& local, const std::string& remote, uint16_t remotePort,
                           EngineError* err) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return SetErr(err, EBADF, "engine closed");
  int i = FindSocket(local, err);
  if (i < 0) return false;
  SockAddr to;
  if (!ParseSockAddr(remote, remotePort, &to) || to.family() != socks_[i].addr.family())
    return SetErr(err, 0, "remote is not an address of the local address's family: " + remote);
  // RFC 3948 §2.3: a NAT-keepalive is a single 0xFF octet.
  const uint8_t ka = 0xff;
  if (sendto(socks_[i].udp, &ka, 1, MSG_DONTWAIT, to.sa(), to.len) < 0)
    return SetErr(err, errno, "sendKeepalive");
  return true;
}

bool Engine::InstallSa(SaConfig* cfg, EngineError* err) {
  struct Wiper {
    SaConfig* c;
    ~Wiper() { WipeKeys(c); }
  } wiper{cfg};
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return SetErr(err, EBADF, "engine closed");
  if (cfg->spiIn == 0 || cfg->spiOut == 0)
    return SetErr(err, 0, "SPIs 0 are reserved (RFC 4303 §2.1)");
  int sock = FindSocket(cfg->local, err);
  if (sock < 0) return false;

  SaEntry entry;
  if (!MakePath(sock, cfg->remote, cfg->udp, cfg->remotePort, &entry.path, err)) return false;
  auto sa = std::make_shared<Sa>(cfg->esn);
  sa->connection = cfg->connection;
  sa->connId = Intern(cfg->connection);
  sa->spiIn = cfg->spiIn;
  sa->spiOut = cfg->spiOut;
  sa->esn = cfg->esn;
  sa->udp = cfg->udp;
  sa->tsLocal = cfg->tsLocal;
  sa->tsRemote = cfg->tsRemote;
  sa->selectorRoutes = cfg->selectorRoutes;
  sa->txMeter.Init(cfg->limits, cfg->esn, /*outbound=*/true);
  sa->rxMeter.Init(cfg->limits, cfg->esn, /*outbound=*/false);

  std::string why;
  sa->rxCrypto =
      EspCrypto::Create(cfg->encr, cfg->integ, cfg->encrKeyIn.data(), cfg->encrKeyIn.size(),
                        cfg->integKeyIn.data(), cfg->integKeyIn.size(), &why);
  if (!sa->rxCrypto) return SetErr(err, 0, "inbound SA: " + why);
  sa->txCrypto =
      EspCrypto::Create(cfg->encr, cfg->integ, cfg->encrKeyOut.data(), cfg->encrKeyOut.size(),
                        cfg->integKeyOut.data(), cfg->integKeyOut.size(), &why);
  if (!sa->txCrypto) return SetErr(err, 0, "outbound SA: " + why);

  Draft d(*this);
  Fold(&d);  // so that this activation orders after any the RX thread made
  // Reinstalling under the same inbound SPI replaces the pair (counters and replay restart).
  const SaEntry* old = d.Find(sa->spiIn);
  if (old != nullptr) Detach(&d, old->sa.get());
  sa->serial = ++serial_;
  Attach(&d, sa.get());
  // activate false: the inbound SA works at once, the connection keeps sending on its current
  // pair until ActivateSa or the peer's first packet on spiIn. Without a current pair (none
  // other activated) the new one is used anyway.
  if (cfg->activate || conns_[sa->connId].active.empty()) Activate(&d, sa.get());
  entry.sa = std::move(sa);
  bool replaced = old != nullptr;
  d.Put(std::make_shared<const SaEntry>(std::move(entry)));
  Publish(&d, /*wake=*/replaced);  // a replaced pair's keys go at once
  return true;
}

void Engine::RemoveSa(uint32_t spiIn) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return;
  Draft d(*this);
  const SaEntry* gone = d.Find(spiIn);
  if (gone == nullptr) return;
  Fold(&d);
  std::shared_ptr<Sa> sa = gone->sa;  // kept for the comparisons below
  const ConnState& c = conns_[sa->connId];
  // Removing the connection's current pair makes its newest remaining pair current, activated
  // or not (the peer deletes the old SA only once it has the new one, RFC 7296 §2.8).
  bool wasCurrent = sa->activeGen != 0 && c.active.rbegin()->first == sa->activeGen;
  Detach(&d, sa.get());
  d.Erase(spiIn);
  if (wasCurrent && !c.bySerial.empty())
    Activate(&d, d.Find(c.bySerial.rbegin()->second)->sa.get());
  Publish(&d);
}

bool Engine::ActivateSa(uint32_t spiIn) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return false;
  Draft d(*this);
  const SaEntry* e = d.Find(spiIn);
  if (e == nullptr) return false;
  Fold(&d);  // so that this activation orders after any the RX thread made
  Activate(&d, e->sa.get());
  Publish(&d);
  return true;
}

bool Engine::MakePath(int sock, const std::string& remote, bool udp, uint16_t remotePort,
                      SaPath* out, EngineError* err) const {
  out->sockIndex = static_cast<size_t>(sock);
  // Raw ESP has no ports; ESP-in-UDP goes to the peer's (possibly NAT-mapped) port.
  if (!ParseSockAddr(remote, udp ? remotePort : 0, &out->remote) ||
      out->remote.family() != socks_[sock].addr.family())
    return SetErr(err, 0, "remote is not an address of the local address's family: " + remote);
  if (udp && remotePort == 0) return SetErr(err, 0, "ESP-in-UDP needs a remote port");
  return true;
}

Engine::Update Engine::UpdateSa(uint32_t spiIn, const std::string& local, const std::string& remote,
                                uint16_t remotePort, EngineError* err) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) {
    SetErr(err, EBADF, "engine closed");
    return Update::kInvalid;
  }
  int sock = FindSocket(local, err);
  if (sock < 0) return Update::kInvalid;
  Draft d(*this);
  const SaEntry* e = d.Find(spiIn);
  if (e == nullptr) return Update::kNoSa;  // e.g. deleted in a race with the move
  SaPath path;
  if (!MakePath(sock, remote, e->sa->udp, remotePort, &path, err)) return Update::kInvalid;
  const SaPath& old = e->path;
  if (old.sockIndex == path.sockIndex && SameEndpoint(old.remote, path.remote.sa(), true))
    return Update::kDone;
  // A new snapshot like any other change: the TX thread switches between two batches, so a
  // batch never mixes paths of one SA (TxPath::SendGso groups by SA), and the old path (in the
  // old node) stays valid for the packets of the batch under way.
  uint32_t conn = e->sa->connId;
  d.Put(std::make_shared<const SaEntry>(SaEntry{e->sa, path}));
  d.Dirty(conn);  // its OutSel points at the old node
  Publish(&d);
  return Update::kDone;
}

bool Engine::Counters(uint32_t spiIn, SaCounters* out) const {
  auto t = Snapshot();
  const SaEntry* e = t->FindSa(spiIn);
  if (e == nullptr) return false;
  const Sa& sa = *e->sa;
  out->bytesIn = sa.in.bytes.load(std::memory_order_relaxed);
  out->packetsIn = sa.in.packets.load(std::memory_order_relaxed);
  out->bytesOut = sa.out.bytes.load(std::memory_order_relaxed);
  out->packetsOut = sa.out.packets.load(std::memory_order_relaxed);
  return true;
}

void Engine::Drops(uint64_t out[static_cast<int>(Drop::kCount)]) const {
  for (int i = 0; i < static_cast<int>(Drop::kCount); i++) {
    out[i] = txDrops_.n[i].load(std::memory_order_relaxed) +
             rxDrops_.n[i].load(std::memory_order_relaxed) +
             ctlDrops_.n[i].load(std::memory_order_relaxed);
  }
}

void Engine::ControlCounters(uint64_t out[static_cast<int>(Ctl::kCount)]) const {
  for (int i = 0; i < static_cast<int>(Ctl::kCount); i++)
    out[i] = ctlSent_.n[i].load(std::memory_order_relaxed);
}

bool Engine::InjectProbe(const std::string& connection, const uint8_t* pkt, size_t len) {
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return false;
  auto id = connIds_.find(connection);
  if (id == connIds_.end()) return false;
  auto t = Snapshot();
  OutSa o = t->Out(id->second);
  if (o.sa == nullptr) return false;
  Probe p;
  p.sa = t->FindSa(o.sa->spiIn)->sa;
  p.path = *o.path;
  p.pkt.assign(pkt, pkt + len);
  if (!probes_.Push(std::move(p))) {
    ctlDrops_.Count(Drop::kQueue);
    return false;
  }
  Wake(txWake_);
  return true;
}

bool Engine::SetEchoAnswer(const std::vector<std::string>& addresses) {
  std::vector<Prefix> answer;
  for (const std::string& a : addresses) {
    Prefix p;
    if (a.find('/') != std::string::npos || !ParsePrefix(a, &p)) return false;
    answer.push_back(p);
  }
  std::lock_guard<std::mutex> lock(ctl_);
  if (closed_) return false;
  Draft d(*this);
  d.t()->answer = std::make_shared<const std::vector<Prefix>>(std::move(answer));
  Publish(&d);
  return true;
}

void Engine::WatchProbe(uint16_t icmpId, bool on) {
  uint64_t bit = uint64_t{1} << (icmpId & 63);
  if (on)
    watch_[icmpId >> 6].fetch_or(bit, std::memory_order_relaxed);
  else
    watch_[icmpId >> 6].fetch_and(~bit, std::memory_order_relaxed);
}

}  // namespace twinsec
