// The RX thread: recvmmsg on every UDP (NAT-T) and raw ESP socket -> SPI lookup -> replay check
// -> verify and decrypt -> replay update -> traffic selector check -> TUN. IKE datagrams and
// watched probe replies go up through the EngineSink instead; echo requests are noted on the
// way (echo_track.h), and so is authenticated ESP from an endpoint other than the SA's (a peer
// whose NAT mapping changed, RFC 7296 §2.23). UDP sockets have UDP_GRO on, so the kernel may hand
// over several ESP-in-UDP datagrams of one flow as one buffer with their segment size in a cmsg;
// they are split here again.
#include <errno.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "gro.h"

namespace twinsec {

class Engine::RxPath {
 public:
  explicit RxPath(Engine* e)
      : e_(e),
        bufs_(new uint8_t[kBatch * kMaxPacket]),
        out_(new uint8_t[kMaxPacket]),
        tun_(e->tun_) {
    for (size_t i = 0; i < kBatch; i++) {
      iov_[i].iov_base = bufs_.get() + i * kMaxPacket;
      iov_[i].iov_len = kMaxPacket;
    }
  }

  void Run();

 private:
  static constexpr uint64_t kWakeTag = ~uint64_t{0};
  // recvmmsg rounds per socket per wake-up: the others get a turn, epoll reports it again.
  static constexpr int kRounds = 16;

  void Refresh();
  void Drain(size_t sock, bool esp);
  void Datagram(size_t sock, bool esp, uint8_t* d, size_t len, const sockaddr* from, uint64_t ns);
  void Esp(const uint8_t* d, size_t len, uint64_t ns, const sockaddr* from, bool udp);
  void Moved(Sa& sa, const sockaddr* from, uint64_t ns);  // the rare case, out of line
  bool Allowed(const Sa& sa, const InnerInfo& info) const;
  bool Answer(const Sa& sa, const uint8_t* pkt, const InnerInfo& info, uint64_t ns);
  void Count(Drop d) { e_->rxDrops_.Count(d); }

  Engine* e_;
  std::shared_ptr<const Tables> t_;
  uint64_t ver_ = ~uint64_t{0};
  std::unique_ptr<uint8_t[]> bufs_;  // kBatch datagrams
  std::unique_ptr<uint8_t[]> out_;   // the decrypted packet on its way to the TUN
  TunWriter tun_;                    // coalesces TCP segments of one batch (gro.h)
  mmsghdr msgs_[kBatch];
  iovec iov_[kBatch];
  sockaddr_storage from_[kBatch];
  alignas(cmsghdr) uint8_t ctl_[kBatch][CMSG_SPACE(sizeof(int))];
  // Token bucket for answered echo requests (kMarkedRepliesPerSec, kMarkedRepliesBurst): beyond
  // it requests go to the TUN and the kernel answers, as without SetEchoAnswer.
  uint64_t answerTokens_ = kMarkedRepliesBurst;
  uint64_t answerRefillNs_ = 0;
};

void Engine::RunRx(Engine* e) {
  pthread_setname_np(pthread_self(), "twinsec-rx");  // visible in top -H, perf, /proc
  std::unique_ptr<RxPath> rx(new RxPath(e));
  rx->Run();
}

void Engine::RxPath::Refresh() {
  uint64_t v = e_->version_.load(std::memory_order_acquire);
  if (v == ver_) return;
  t_ = std::atomic_load(&e_->tables_);
  ver_ = v;
}

void Engine::RxPath::Run() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  for (size_t i = 0; i < e_->socks_.size(); i++) {
    ev.data.u64 = i * 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, e_->socks_[i].udp, &ev);
    ev.data.u64 = i * 2 + 1;
    epoll_ctl(ep, EPOLL_CTL_ADD, e_->socks_[i].esp, &ev);
  }
  ev.data.u64 = kWakeTag;
  epoll_ctl(ep, EPOLL_CTL_ADD, e_->rxWake_, &ev);
  while (!e_->stop_.load(std::memory_order_acquire)) {
    epoll_event evs[16];
    int k = epoll_wait(ep, evs, 16, -1);
    if (k < 0 && errno != EINTR) break;
    if (e_->stop_.load(std::memory_order_acquire)) break;
    Refresh();
    for (int i = 0; i < k; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        ssize_t r = read(e_->rxWake_, &v, sizeof(v));
        (void)r;
        continue;
      }
      Drain(static_cast<size_t>(tag / 2), (tag & 1) != 0);
    }
  }
  close(ep);
  t_.reset();
}

void Engine::RxPath::Drain(size_t sock, bool esp) {
  const LocalSocks& s = e_->socks_[sock];
  int fd = esp ? s.esp : s.udp;
  for (int round = 0; round < kRounds; round++) {
    for (size_t i = 0; i < kBatch; i++) {
      msghdr& m = msgs_[i].msg_hdr;
      m = msghdr();
      m.msg_name = &from_[i];
      m.msg_namelen = sizeof(from_[i]);
      m.msg_iov = &iov_[i];
      m.msg_iovlen = 1;
      if (!esp) {
        m.msg_control = ctl_[i];
        m.msg_controllen = sizeof(ctl_[i]);
      }
    }
    int k = recvmmsg(fd, msgs_, kBatch, MSG_DONTWAIT, nullptr);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return;
    uint64_t ns = MonotonicNs();
    for (int i = 0; i < k; i++) {
      if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
        Count(Drop::kMalformed);
        continue;
      }
      uint8_t* d = static_cast<uint8_t*>(iov_[i].iov_base);
      size_t len = msgs_[i].msg_len, seg = len;
      msghdr& m = msgs_[i].msg_hdr;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int v;
          memcpy(&v, CMSG_DATA(c), sizeof(v));
          if (v > 0) seg = static_cast<size_t>(v);
        }
      }
      const sockaddr* from = reinterpret_cast<const sockaddr*>(&from_[i]);
      for (size_t off = 0; off < len; off += seg)
        Datagram(sock, esp, d + off, len - off < seg ? len - off : seg, from, ns);
    }
    if (!tun_.Flush()) Count(Drop::kQueue);
    if (static_cast<size_t>(k) < kBatch || e_->stop_.load(std::memory_order_relaxed)) return;
    Refresh();
  }
}

void Engine::RxPath::Datagram(size_t sock, bool esp, uint8_t* d, size_t len, const sockaddr* from,
                              uint64_t ns) {
  const LocalSocks& s = e_->socks_[sock];
  if (!esp) {
    // RFC 3948 §2.3: a one-octet 0xFF datagram is a NAT-keepalive; it only refreshes the NAT.
    if (len == 1 && d[0] == 0xff) return;
    // RFC 3948 §2.2: four zero octets where the SPI would be mark IKE (SPI 0 is reserved).
    if (len >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0) {
      if (len == 4) return Count(Drop::kMalformed);
      if (!e_->sink_->OnIke(d + 4, len - 4, s.addr.sa(), from)) Count(Drop::kQueue);
      return;
    }
  } else if (s.addr.family() == AF_INET) {
    // IPv4 raw sockets deliver the IP header (raw(7)); IPv6 ones do not.
    if (len < 20 || (d[0] >> 4) != 4) return Count(Drop::kMalformed);
    size_t ihl = size_t(d[0] & 0x0f) * 4;
    if (ihl < 20 || ihl > len) return Count(Drop::kMalformed);
    d += ihl;
    len -= ihl;
  }
  Esp(d, len, ns, from, !esp);
}

bool Engine::RxPath::Allowed(const Sa& sa, const InnerInfo& info) const {
  // RFC 4301 §5.2: after decryption the inner header must match the SA's selectors.
  bool src = false, dst = false;
  for (const Prefix& p : sa.tsRemote) {
    if (PrefixContains(p, info.src, info.family)) {
      src = true;
      break;
    }
  }
  if (!src) return false;
  for (const Prefix& p : sa.tsLocal) {
    if (PrefixContains(p, info.dst, info.family)) {
      dst = true;
      break;
    }
  }
  return dst;
}

bool Engine::RxPath::Answer(const Sa& sa, const uint8_t* pkt, const InnerInfo& info, uint64_t ns) {
  // An echo request to one of this host's addresses the engine answers itself (SetEchoAnswer):
  // most likely a peer's health probe, which must not queue behind bulk in the TUN device.
  bool mine = false;
  if (t_->answer == nullptr) return false;
  for (const Prefix& p : *t_->answer) {
    if (PrefixContains(p, info.dst, info.family)) {
      mine = true;
      break;
    }
  }
  if (!mine) return false;
  uint64_t add = (ns - answerRefillNs_) * kMarkedRepliesPerSec / 1000000000ull;
  if (add > 0) {
    answerTokens_ =
        answerTokens_ + add > kMarkedRepliesBurst ? kMarkedRepliesBurst : answerTokens_ + add;
    answerRefillNs_ = ns;
  }
  if (answerTokens_ == 0) return false;
  EchoAnswer a;
  a.conn = sa.connId;
  a.pkt.resize(info.totalLen + 40);  // an IPv4 reply loses any options; IPv6 has none here
  size_t n = BuildEchoReply(pkt, info, a.pkt.data(), a.pkt.size());
  if (n == 0) return false;
  a.pkt.resize(n);
  if (!e_->answers_.Push(std::move(a))) return false;  // full: the kernel answers instead
  answerTokens_--;
  e_->Wake(e_->txWake_);
  return true;
}

__attribute__((noinline)) void Engine::RxPath::Moved(Sa& sa, const sockaddr* from, uint64_t ns) {
  // RFC 7296 §2.23: a packet whose integrity protection validates but that comes from another
  // address or port is the sign of a changed NAT mapping; it must also be new (the caller
  // checked ICV and replay), or an attacker could move the SA back with old packets. The engine
  // only reports it: whether to follow depends on which side is behind the NAT (a host behind
  // one SHOULD NOT), so the IKE side decides and confirms with a liveness check before it calls
  // UpdateSa. Once per second per SA is plenty for that and bounds the events a stream of
  // packets from elsewhere can cause.
  constexpr uint64_t kEveryNs = 1000000000ull;
  if (sa.movedNs != 0 && ns - sa.movedNs < kEveryNs) return;
  sa.movedNs = ns;
  if (!e_->sink_->OnPeerMoved(sa.spiIn, from)) Count(Drop::kQueue);
}

void Engine::RxPath::Esp(const uint8_t* d, size_t len, uint64_t ns, const sockaddr* from,
                         bool udp) {
  uint32_t spi, seqLow;
  if (!EspHeader(d, len, &spi, &seqLow)) return Count(Drop::kMalformed);
  const SaEntry* entry = t_->FindSa(spi);
  if (entry == nullptr) return Count(Drop::kNoSa);
  Sa& sa = *entry->sa;
  // RFC 4303 §3.4.3: the replay check comes before the (costly) integrity check, the window
  // update only after it, so forged packets cannot move the window.
  uint64_t seq;
  if (!sa.replay.Check(seqLow, &seq)) return Count(Drop::kReplay);
  uint8_t nh = 0;
  Drop why = Drop::kNone;
  uint8_t* out = out_.get();
  ssize_t n = sa.rxCrypto->Decrypt(d, len, seq, sa.esn, out, kMaxPacket, &nh, &why);
  if (n < 0) return Count(why == Drop::kNone ? Drop::kMalformed : why);
  sa.replay.Update(seq);
  // RFC 7296 §2.8: an authenticated packet on a pair installed with activate false means the peer
  // has the new SA, so we send on it too (OutSel::Pick; the control thread folds it in later).
  if (!sa.activated.load(std::memory_order_relaxed)) {
    sa.activated.store(true, std::memory_order_relaxed);
    // Which pair, so that the control thread's next Fold need not look at every pending pair; a
    // full ring makes it look at all of them once.
    if (!e_->activations_.Push(uint64_t{sa.serial}))
      e_->foldAll_.store(true, std::memory_order_relaxed);
  }
  // A peer behind a NAT whose mapping changed now sends from another address or port (RFC 3948,
  // RFC 7296 §2.23). Raw ESP has no ports, so only its address counts; a packet that came in the
  // other encapsulation is not a mapping change. The packet is delivered either way.
  if (udp == sa.udp && !SameEndpoint(entry->path.remote, from, udp)) Moved(sa, from, ns);
  if (nh == 59) return;  // RFC 4303 §2.6: a dummy (traffic flow confidentiality) packet
  InnerInfo info;
  if ((nh != 4 && nh != 41) || !ParseInner(out, static_cast<size_t>(n), &info) ||
      info.family != (nh == 4 ? kFamily4 : kFamily6))
    return Count(Drop::kMalformed);
  if (!Allowed(sa, info)) return Count(Drop::kPolicy);
  // The inbound half of the pair's volume limits (sa_limits.h): past the hard limit its packets
  // are refused, past the soft mark the control plane rekeys early (RFC 7296 §2.8).
  Volume v =
      AccountPacket(&sa.rxMeter, &sa.softReport, &sa.hardReport, info.totalLen, nullptr,
                    [this, &sa](bool hard) { return e_->ReportLimit(&sa, hard, &e_->rxDrops_); });
  if (__builtin_expect(v != Volume::kOk, 0)) return Count(Drop::kExpired);
  sa.in.bytes.fetch_add(info.totalLen, std::memory_order_relaxed);
  sa.in.packets.fetch_add(1, std::memory_order_relaxed);
  // Echo requests: remember the connection, so that the reply goes back through it (TX thread).
  // Only after the selector check, so an entry always names a connection allowed to carry the
  // reply's addresses (they are the request's, swapped).
  EchoKey key;
  if (EchoRequestKey(out, info, &key)) {
    e_->echo_.Record(key, sa.connId, ns);
    if (Answer(sa, out, info, ns)) return;
  }
  // Echo replies to our own health probes end here, stamped with their arrival time.
  bool reply =
      (info.proto == 1 && info.icmpType == 0) || (info.proto == 58 && info.icmpType == 129);
  if (reply && !info.fragment && e_->Watched(info.icmpId)) {
    if (!e_->sink_->OnProbe(sa.connection, out, info.totalLen, ns)) Count(Drop::kQueue);
    return;
  }
  // A route-based connection's packets leave through its own device (Engine::AddInterface).
  int fd = t_->TunOf(sa.connId);
  if (!tun_.Retarget(fd >= 0 ? fd : e_->tun_)) Count(Drop::kQueue);
  // Only the inner packet: TFC padding after it (RFC 4303 §2.7) is not written.
  if (!tun_.Add(out, info)) Count(Drop::kQueue);
}

}  // namespace twinsec
