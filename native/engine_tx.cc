// The TX thread: TUN -> longest prefix match -> connection's current SA -> ESP -> sendmmsg.
// Echo replies to requests that came in through a tunnel skip the route (echo_track.h).
// One TUN read per packet (a TUN queue gives one packet per read), up to kBatch packets per
// sendmmsg, reads until EAGAIN per wake-up. No allocation, lock or table lookup by name per
// packet. ESP-in-UDP runs of equal-sized packets to one peer leave as one UDP GSO send
// (UDP_SEGMENT): the kernel walks its UDP/IP/route path once per run instead of once per packet.
#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "gro.h"
#include "gso.h"

namespace twinsec {

class Engine::TxPath {
 public:
  explicit TxPath(Engine* e)
      : e_(e),
        in_(new uint8_t[kMaxPacket]),
        seg_(new uint8_t[kMaxPacket]),
        slotSize_(kMaxPacket + 512),  // any inner packet plus the largest ESP overhead
        out_(new uint8_t[kBatch * slotSize_]) {}

  void Run();

 private:
  // What was read from `fd`: the shared TUN (conn kRouted: the forwarding table decides) or a
  // route-based connection's own device (conn: its interned id).
  struct Source {
    int fd;
    uint32_t conn;
  };
  static constexpr uint32_t kRouted = ~uint32_t{0};
  // TUN reads per device per wake-up, kBatch each: with many devices busy, one does not starve
  // the others (epoll reports a device with more to read again).
  static constexpr int kRounds = 8;

  void Refresh();
  void ReadTun(Source src);
  void FromTun(size_t len, Source src);
  void Packet(const uint8_t* p, size_t len, Source src);
  OutSa EchoReturn(const uint8_t* p, const InnerInfo& info);  // or sa nullptr: follow the route
  OutSa Route(const InnerInfo& info);  // the forwarding decision; sa nullptr: dropped, counted
  static bool Covers(const std::vector<Prefix>& ts, const uint8_t* addr, int family);
  static bool RoutingControl(const InnerInfo& i);
  // Sends one packet marked and ahead of the batch (kind counted); false when the marked-packet
  // budget is spent and it is to go as bulk instead.
  bool SendAhead(const uint8_t* p, size_t len, const InnerInfo& info, Source src, OutSa o,
                 Ctl kind);
  void DrainProbes();
  bool TakeReplyToken();
  void SendCtl(Sa* sa, const SaPath& path, size_t espLen, size_t innerLen, Ctl kind);
  ssize_t Encrypt(Sa* sa, int family, const uint8_t* p, size_t len, uint8_t* out);
  void TooBig(const uint8_t* p, size_t len, int family, int fd);
  int SocketOf(const Sa* sa, const SaPath& path) const {
    const LocalSocks& s = e_->socks_[path.sockIndex];
    return sa->udp ? s.udp : s.esp;
  }
  void Flush();
  void SendRun(size_t from, size_t to);
  void SendGso(size_t from, size_t to);
  void Count(Drop d) { e_->txDrops_.Count(d); }

  Engine* e_;
  std::shared_ptr<const Tables> t_;
  uint64_t ver_ = ~uint64_t{0};
  std::unique_ptr<uint8_t[]> in_;
  std::unique_ptr<uint8_t[]> seg_;  // one TCP segment cut from a GSO read (gso.h)
  size_t slotSize_;
  std::unique_ptr<uint8_t[]> out_;  // kBatch slots of slotSize_
  struct Pending {
    int fd;
    // Kept alive by t_, which is not refreshed while packets are pending; so within one batch an
    // SA has one path (its destination is the same in every message that names it).
    Sa* sa;
    size_t innerLen;
  };
  Pending pend_[kBatch];
  mmsghdr msgs_[kBatch];  // one per packet
  iovec iov_[kBatch];
  size_t n_ = 0;
  // UDP GSO: one message per run of equal-sized packets, its segment size in a UDP_SEGMENT cmsg.
  mmsghdr gso_[kBatch];
  size_t gsoFirst_[kBatch + 1];  // packet index where each GSO message starts
  alignas(cmsghdr) uint8_t gsoCtl_[kBatch][CMSG_SPACE(sizeof(uint16_t))];
  bool gsoOff_ = false;  // the kernel or egress device refused GSO (EIO): per-packet sends only
  bool noPrio_ = false;  // the kernel refused the SO_PRIORITY cmsg (SendMarked)
  // Token bucket for marked echo replies (kMarkedRepliesPerSec, kMarkedRepliesBurst).
  uint64_t replyTokens_ = kMarkedRepliesBurst;
  uint64_t replyRefillNs_ = 0;
  uint8_t icmp_[kIcmp6ErrorMax];
};

void Engine::RunTx(Engine* e) {
  pthread_setname_np(pthread_self(), "twinsec-tx");  // visible in top -H, perf, /proc
  std::unique_ptr<TxPath> tx(new TxPath(e));
  tx->Run();
}

void Engine::TxPath::Refresh() {
  uint64_t v = e_->version_.load(std::memory_order_acquire);
  if (v == ver_) return;
  t_ = std::atomic_load(&e_->tables_);
  ver_ = v;
}

void Engine::TxPath::Run() {
  int ep = e_->txEp_;
  constexpr int kEvents = 64;
  epoll_event evs[kEvents];
  Source ready[kEvents];
  while (!e_->stop_.load(std::memory_order_acquire)) {
    int k = epoll_wait(ep, evs, kEvents, -1);
    if (k < 0 && errno != EINTR) break;
    size_t n = 0;
    for (int i = 0; i < k; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == kEpWake) {
        uint64_t v;
        ssize_t r = read(e_->txWake_, &v, sizeof(v));
        (void)r;
      } else if (tag == kEpTun) {
        ready[n++] = Source{e_->tun_, kRouted};
      } else {
        ready[n++] = Source{static_cast<int>(static_cast<uint32_t>(tag)),
                            static_cast<uint32_t>((tag & ~kEpIface) >> 32)};
      }
    }
    if (e_->stop_.load(std::memory_order_acquire)) break;
    Refresh();
    DrainProbes();
    for (size_t i = 0; i < n; i++) ReadTun(ready[i]);
  }
  t_.reset();
}

void Engine::TxPath::ReadTun(Source src) {
  for (int round = 0; round < kRounds; round++) {
    bool empty = false;
    size_t got = 0;
    while (got < kBatch) {
      ssize_t r = read(src.fd, in_.get(), kMaxPacket);
      if (r < 0) {
        if (errno == EINTR) continue;
        // EBADFD/EIO: the device was deleted under us (`ip link del`). Stop polling it, or
        // epoll would report the error forever and spin this thread.
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          epoll_ctl(e_->txEp_, EPOLL_CTL_DEL, src.fd, nullptr);
        empty = true;
        break;
      }
      got++;
      FromTun(static_cast<size_t>(r), src);
      // A probe or an echo answer waiting: end the batch here and send it before the next TUN
      // read. Under a flood this thread never runs out of TUN packets, and a batch of TSO reads
      // can be megabytes of work; the probe must not wait for it (issue #11).
      if (e_->probes_.Pending() || e_->answers_.Pending()) break;
    }
    Flush();
    if (empty || e_->stop_.load(std::memory_order_relaxed)) return;
    // A long burst: let table changes and probes in between batches.
    Refresh();
    DrainProbes();
  }
}

ssize_t Engine::TxPath::Encrypt(Sa* sa, int family, const uint8_t* p, size_t len, uint8_t* out) {
  uint64_t seq = 0;
  // RFC 4303 §3.3.3: without ESN the counter must not cycle. The meter refuses the packet after
  // sequence number 2^32 - 1, or once the pair's hard limit is reached: the pair is used up until
  // the control plane replaces it. Nothing is sent with a wrapped number. Crossing the soft mark
  // (RFC 7296 §2.8: rekey early) or the hard limit is reported once (sa_limits.h).
  Volume v =
      AccountPacket(&sa->txMeter, &sa->softReport, &sa->hardReport, len, &seq,
                    [this, sa](bool hard) { return e_->ReportLimit(sa, hard, &e_->txDrops_); });
  if (__builtin_expect(v != Volume::kOk, 0)) {
    Count(v == Volume::kExhausted ? Drop::kSeqExhausted : Drop::kExpired);
    return -1;
  }
  // RFC 4303 §2.6 / RFC 4301: next header 4 (IPv4) or 41 (IPv6) in tunnel mode.
  uint8_t nh = family == kFamily4 ? 4 : 41;
  ssize_t r = sa->txCrypto->Encrypt(sa->spiOut, seq, sa->esn, nh, p, len, out, slotSize_);
  if (r < 0) Count(Drop::kMalformed);
  return r;
}

void Engine::TxPath::TooBig(const uint8_t* p, size_t len, int family, int fd) {
  // The tunnel endpoint acts as the router whose next hop is too small: RFC 1191 §4 (IPv4, only
  // with DF) and RFC 8201 / RFC 4443 §3.2 (IPv6, always). Sent back into the TUN so the sending
  // host (local or behind us) lowers its path MTU.
  size_t n = family == kFamily4 ? BuildIcmpFragNeeded(p, len, static_cast<uint16_t>(e_->mtu_),
                                                      nullptr, icmp_, sizeof(icmp_))
                                : BuildIcmp6TooBig(p, len, static_cast<uint32_t>(e_->mtu_), nullptr,
                                                   icmp_, sizeof(icmp_));
  if (n > 0) TunWriter::WritePlain(fd, icmp_, n);
}

void Engine::TxPath::FromTun(size_t len, Source src) {
  // Every read starts with a virtio_net_hdr (IFF_VNET_HDR): TCP super-packets to cut into
  // segments, or one packet, maybe with its checksum left to us (TUNSETOFFLOAD, see gso.h).
  if (len <= kVnetHdrLen) return Count(Drop::kMalformed);
  VnetHdr h;
  memcpy(&h, in_.get(), kVnetHdrLen);
  uint8_t* p = in_.get() + kVnetHdrLen;
  len -= kVnetHdrLen;
  uint8_t gso = h.gsoType & static_cast<uint8_t>(~kGsoEcn);
  if (gso == kGsoTcp4 || gso == kGsoTcp6) {
    bool ok = SegmentTcp(p, len, h.gsoSize, seg_.get(),
                         [this, src](const uint8_t* s, size_t n) { Packet(s, n, src); });
    if (!ok) Count(Drop::kMalformed);
    return;
  }
  if (gso != 0) return Count(Drop::kMalformed);  // UDP GSO is never enabled
  if ((h.flags & kNeedsCsum) && !CompleteChecksum(p, len, h.csumStart, h.csumOffset))
    return Count(Drop::kMalformed);
  Packet(p, len, src);
}

OutSa Engine::TxPath::EchoReturn(const uint8_t* p, const InnerInfo& info) {
  EchoKey key;
  if (!EchoReplyKey(p, info, &key)) return OutSa();  // the common case: one compare
  uint32_t conn;
  if (!e_->echo_.Lookup(key, MonotonicNs(), &conn)) return OutSa();
  // The connection's current outbound SA (it may have been rekeyed since the request came in);
  // none any more: the route decides.
  OutSa o = t_->Out(conn);
  if (o.sa == nullptr) return o;
  // The peer checks the reply against its selectors (RFC 4301 §5.2); the SA the request came in
  // on covers it by construction, a rekeyed one with narrower selectors might not.
  if (!Covers(o.sa->tsLocal, info.src, info.family) ||
      !Covers(o.sa->tsRemote, info.dst, info.family))
    return OutSa();
  return o;
}

OutSa Engine::TxPath::Route(const InnerInfo& info) {
  // The longest prefix wins across the configured routes and the selector routes of hub
  // connections (SaConfig::selectorRoutes), as in any longest-match forwarding table; on equal
  // length the configured route, which the operator wrote for this prefix on purpose.
  int len = -1;
  const RouteTable* rt = t_->routes.get();
  int slot = rt != nullptr ? rt->fwd.Lookup(info.family, info.dst, &len) : -1;
  uint32_t conn;
  int selLen;
  if (!t_->selectors.empty() && t_->selectors.Lookup(info.family, info.dst, &conn, &selLen) &&
      selLen > len) {
    OutSa o = t_->Out(conn);  // a selector route exists only while its connection has a pair
    if (o.sa == nullptr) Count(Drop::kNoSa);
    return o;
  }
  if (slot < 0) {
    Count(Drop::kNoRoute);
    return OutSa();
  }
  const std::vector<uint32_t>& ids = (*t_->slots)[static_cast<size_t>(slot)];
  if (ids.empty()) {
    Count(Drop::kNoSa);
    return OutSa();
  }
  // Several connections share a prefix by flow, so that one flow's packets stay in order.
  return t_->Out(ids.size() == 1 ? ids[0] : ids[FlowHash(info) % ids.size()]);
}

bool Engine::TxPath::SendAhead(const uint8_t* p, size_t len, const InnerInfo& info, Source src,
                               OutSa o, Ctl kind) {
  // Marked packets share one budget (kMarkedRepliesPerSec): beyond it they go as bulk, so that a
  // ping flood or a BGP table transfer cannot take over the priority band.
  if (!TakeReplyToken()) {
    e_->ctlSent_.Count(Ctl::kUnmarked);
    return false;
  }
  if (src.conn == kRouted && info.totalLen > static_cast<size_t>(e_->mtu_) && info.df) {
    TooBig(p, len, info.family, src.fd);
    Count(Drop::kMtu);
    return true;
  }
  // What is already batched goes first, so the socket sees this SA's sequence numbers in order.
  Flush();
  ssize_t r = Encrypt(o.sa, info.family, p, info.totalLen, out_.get());
  if (r >= 0) SendCtl(o.sa, *o.path, static_cast<size_t>(r), info.totalLen, kind);
  return true;
}

bool Engine::TxPath::RoutingControl(const InnerInfo& i) {
  // BFD single-hop and multihop control (RFC 5881 §4, RFC 5883 §5: UDP destination ports 3784 and
  // 4784) and BGP (TCP port 179, RFC 4271 §8.2.1) in either direction. A BGP table transfer is
  // bulk, but it is the token budget that keeps it from taking over the priority band.
  if (i.fragment) return false;
  if (i.proto == 17) return i.dport == 3784 || i.dport == 4784;
  if (i.proto == 6) return i.dport == 179 || i.sport == 179;
  return false;
}

bool Engine::TxPath::Covers(const std::vector<Prefix>& ts, const uint8_t* addr, int family) {
  for (const Prefix& p : ts) {
    if (PrefixContains(p, addr, family)) return true;
  }
  return false;
}

void Engine::TxPath::Packet(const uint8_t* p, size_t len, Source src) {
  InnerInfo info;
  if (!ParseInner(p, len, &info)) return Count(Drop::kMalformed);
  // An echo reply goes back through the connection its request came in on, whatever the route
  // says: the peer chose that tunnel for its probe, and the answer must test the same tunnel.
  // From a route-based device the host's routing chose the tunnel; the reply is only marked
  // when that is the request's.
  OutSa o = EchoReturn(p, info);
  if (src.conn != kRouted && o.sa != nullptr && o.sa->connId != src.conn) o = OutSa();
  // Most likely the answer to a peer's health probe (its kernel or ours answered the request
  // that came in on this connection): it leaves at once, with the control mark, so that the peer
  // does not see a saturated tunnel as dead.
  if (o.sa != nullptr && e_->mark_.on() && SendAhead(p, len, info, src, o, Ctl::kEchoReply)) return;
  if (o.sa == nullptr && src.conn != kRouted) {
    // A route-based connection's own device: its current SA, no lookup.
    o = t_->Out(src.conn);
    if (o.sa == nullptr) return Count(Drop::kNoSa);
  } else if (o.sa == nullptr) {
    o = Route(info);
    if (o.sa == nullptr) return;  // counted
  }
  Sa* sa = o.sa;
  // A routing protocol's own packets (bfdd and bgpd talking over a route-based tunnel) leave
  // marked like a probe, so a saturated tunnel does not look dead to the routing daemon either.
  if (e_->mark_.on() && RoutingControl(info) && SendAhead(p, len, info, src, o, Ctl::kRouting))
    return;
  // A route-based device has its own MTU, which the kernel enforces before the packet gets here.
  if (src.conn == kRouted && info.totalLen > static_cast<size_t>(e_->mtu_) && info.df) {
    // Without DF the packet goes on and the outer datagram is fragmented (IP_PMTUDISC_DONT).
    TooBig(p, len, info.family, src.fd);
    return Count(Drop::kMtu);
  }
  if (n_ == kBatch) Flush();
  uint8_t* out = out_.get() + n_ * slotSize_;
  ssize_t r = Encrypt(sa, info.family, p, info.totalLen, out);
  if (r < 0) return;
  Pending& pd = pend_[n_];
  pd.fd = SocketOf(sa, *o.path);
  pd.sa = sa;
  pd.innerLen = info.totalLen;
  iov_[n_].iov_base = out;
  iov_[n_].iov_len = static_cast<size_t>(r);
  msghdr& m = msgs_[n_].msg_hdr;
  m = msghdr();
  m.msg_name = const_cast<sockaddr_storage*>(&o.path->remote.ss);  // only read by sendmmsg
  m.msg_namelen = o.path->remote.len;
  m.msg_iov = &iov_[n_];
  m.msg_iovlen = 1;
  n_++;
}

void Engine::TxPath::DrainProbes() {
  Probe pr;
  // Probes are rare and small: encrypt and send each on its own, outside any batch (n_ is 0
  // here, so slot 0 is free). They come from their own ring, never through the TUN queue, and
  // are drained before every TUN batch, so bulk traffic never holds them back inside the engine.
  while (e_->probes_.Pop(&pr)) {
    InnerInfo info;
    if (!ParseInner(pr.pkt.data(), pr.pkt.size(), &info)) {
      Count(Drop::kMalformed);
      continue;
    }
    Sa* sa = pr.sa.get();
    ssize_t r = Encrypt(sa, info.family, pr.pkt.data(), info.totalLen, out_.get());
    if (r < 0) continue;
    SendCtl(sa, pr.path, static_cast<size_t>(r), info.totalLen, Ctl::kProbe);
  }
  // Echo replies the RX thread built for requests to this host (SetEchoAnswer), back through
  // the connection the request came in on, as EchoReturn does for the kernel's replies.
  EchoAnswer a;
  while (e_->answers_.Pop(&a)) {
    InnerInfo info;
    if (!ParseInner(a.pkt.data(), a.pkt.size(), &info)) {
      Count(Drop::kMalformed);
      continue;
    }
    OutSa o = t_->Out(a.conn);
    if (o.sa == nullptr) {
      Count(Drop::kNoSa);
      continue;
    }
    if (!Covers(o.sa->tsLocal, info.src, info.family) ||
        !Covers(o.sa->tsRemote, info.dst, info.family)) {
      Count(Drop::kPolicy);
      continue;
    }
    ssize_t r = Encrypt(o.sa, info.family, a.pkt.data(), info.totalLen, out_.get());
    if (r < 0) continue;
    SendCtl(o.sa, *o.path, static_cast<size_t>(r), info.totalLen, Ctl::kEchoAnswer);
  }
}

bool Engine::TxPath::TakeReplyToken() {
  uint64_t now = MonotonicNs();
  uint64_t add = (now - replyRefillNs_) * kMarkedRepliesPerSec / 1000000000ull;
  if (add > 0) {
    replyTokens_ =
        replyTokens_ + add > kMarkedRepliesBurst ? kMarkedRepliesBurst : replyTokens_ + add;
    replyRefillNs_ = now;
  }
  if (replyTokens_ == 0) return false;
  replyTokens_--;
  return true;
}

void Engine::TxPath::SendCtl(Sa* sa, const SaPath& path, size_t espLen, size_t innerLen, Ctl kind) {
  // One ESP datagram in out_ slot 0 (a probe or a probe's answer) with the control mark
  // (sockets.h). RFC 4301 §4.1 warns that traffic classes on one SA reorder it, and a receiver's
  // anti-replay window may then drop lower-priority packets overtaken by more than its size;
  // twinsec's window (4,096) covers any queue that keeps probes on time, and these are a few
  // packets a second. A full send buffer (bulk filled it) is waited out briefly: a probe is
  // worth 2 ms, not a lost health check.
  const SockAddr& to = path.remote;
  iovec iov{out_.get(), espLen};
  int fd = SocketOf(sa, path);
  for (int tries = 0;; tries++) {
    if (SendMarked(fd, to.family(), &iov, 1, to.sa(), to.len, e_->mark_, &noPrio_) >= 0) break;
    pollfd pfd{fd, POLLOUT, 0};
    if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || tries >= 3 ||
        (errno != EINTR && poll(&pfd, 1, 2) <= 0)) {
      Count(Drop::kQueue);
      return;
    }
  }
  sa->out.bytes.fetch_add(innerLen, std::memory_order_relaxed);
  sa->out.packets.fetch_add(1, std::memory_order_relaxed);
  e_->ctlSent_.Count(kind);
}

void Engine::TxPath::Flush() {
  size_t i = 0;
  while (i < n_) {
    size_t j = i + 1;
    while (j < n_ && pend_[j].fd == pend_[i].fd) j++;
    if (!gsoOff_ && pend_[i].sa->udp && j - i > 1)
      SendGso(i, j);
    else
      SendRun(i, j);
    i = j;
  }
  n_ = 0;
}

void Engine::TxPath::SendRun(size_t from, size_t to) {
  int fd = pend_[from].fd;
  size_t k = from;
  int waits = 0;
  while (k < to) {
    int r = sendmmsg(fd, &msgs_[k], static_cast<unsigned>(to - k), 0);
    if (r > 0) {
      for (size_t i = k; i < k + static_cast<size_t>(r); i++) {
        pend_[i].sa->out.bytes.fetch_add(pend_[i].innerLen, std::memory_order_relaxed);
        pend_[i].sa->out.packets.fetch_add(1, std::memory_order_relaxed);
      }
      k += static_cast<size_t>(r);
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      // Socket buffer full: wait a little (back-pressure towards the TUN queue, which the kernel
      // bounds), but never long enough to hold up shutdown or build seconds of queue.
      pollfd pfd{fd, POLLOUT, 0};
      if (waits++ < 5 && !e_->stop_.load(std::memory_order_relaxed) && poll(&pfd, 1, 10) > 0)
        continue;
      for (; k < to; k++) Count(Drop::kQueue);
      return;
    }
    // The first message of the run failed on its own (the rest may go): count it and move on.
    if (err == EMSGSIZE)
      Count(Drop::kMtu);
    else if (err == ENETUNREACH || err == EHOSTUNREACH || err == EADDRNOTAVAIL || err == EPERM)
      Count(Drop::kNoRoute);
    else
      Count(Drop::kQueue);
    k++;
  }
}

void Engine::TxPath::SendGso(size_t from, size_t to) {
  // RFC 3948 packets of one run share the socket; group the ones to the same SA (same peer) with
  // the same length; a shorter packet may end a group (UDP GSO's last segment may be short).
  // At most 64 segments and 64 KB per send (the kernel's UDP GSO limits).
  constexpr size_t kMaxSegs = 64, kMaxBytes = 65000;
  size_t groups = 0;
  size_t k = from;
  while (k < to) {
    size_t seg = iov_[k].iov_len;
    size_t e = k + 1, bytes = seg;
    while (e < to && e - k < kMaxSegs && pend_[e].sa == pend_[k].sa && iov_[e].iov_len <= seg &&
           bytes + iov_[e].iov_len <= kMaxBytes) {
      bytes += iov_[e].iov_len;
      if (iov_[e++].iov_len < seg) break;
    }
    msghdr& m = gso_[groups].msg_hdr;
    m = msghdr();
    m.msg_name = msgs_[k].msg_hdr.msg_name;
    m.msg_namelen = msgs_[k].msg_hdr.msg_namelen;
    m.msg_iov = &iov_[k];  // the run's iovecs are consecutive
    m.msg_iovlen = e - k;
    if (e - k > 1) {
      m.msg_control = gsoCtl_[groups];
      m.msg_controllen = sizeof(gsoCtl_[groups]);
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t segSize = static_cast<uint16_t>(seg);
      memcpy(CMSG_DATA(c), &segSize, sizeof(segSize));
    }
    gsoFirst_[groups++] = k;
    k = e;
  }
  gsoFirst_[groups] = to;

  int fd = pend_[from].fd;
  size_t g = 0;
  int waits = 0;
  while (g < groups) {
    int r = sendmmsg(fd, &gso_[g], static_cast<unsigned>(groups - g), 0);
    if (r > 0) {
      for (size_t i = gsoFirst_[g]; i < gsoFirst_[g + r]; i++) {
        pend_[i].sa->out.bytes.fetch_add(pend_[i].innerLen, std::memory_order_relaxed);
        pend_[i].sa->out.packets.fetch_add(1, std::memory_order_relaxed);
      }
      g += static_cast<size_t>(r);
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      pollfd pfd{fd, POLLOUT, 0};
      if (waits++ < 5 && !e_->stop_.load(std::memory_order_relaxed) && poll(&pfd, 1, 10) > 0)
        continue;
      for (size_t i = gsoFirst_[g]; i < to; i++) Count(Drop::kQueue);
      return;
    }
    // EINVAL: this group's segments do not fit the path MTU (GSO never fragments) - send them one
    // by one and let the kernel fragment (IP_PMTUDISC_DONT). EIO: no GSO on the egress device.
    if (err == EIO) gsoOff_ = true;
    SendRun(gsoFirst_[g], gsoFirst_[g + 1]);
    g++;
  }
}

}  // namespace twinsec
