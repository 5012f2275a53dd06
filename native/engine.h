// The native ESP engine (RFC 4303 tunnel mode, RFC 3948 ESP-in-UDP): a TUN device, sockets, a
// forwarding table and two packet threads. N-API free, so it can be driven from any C++ caller;
// addon.cc and napi_engine.cc give it its JavaScript face (src/dataplane/engine-api.ts).
//
// Threads:
//   TX  TUN -> route lookup -> encrypt -> sendmmsg   (also encrypts injected probes)
//   RX  recvmmsg (UDP + raw ESP) -> replay check -> decrypt -> policy -> TUN   (and IKE, probes)
// Echo replies are the one exception to the route: the RX thread remembers which connection each
// echo request came in on, and the TX thread sends the reply back through it (echo_track.h).
// Control calls (install/remove SA, routes, counters) come from one JavaScript thread.
//
// Batching, so that per-packet kernel work does not dominate: the TUN hands over TCP
// super-packets (TSO, segmented in gso.h), ESP-in-UDP leaves in UDP GSO runs and arrives in UDP
// GRO bundles, and decrypted TCP segments of a batch enter the TUN coalesced (gro.h). The only
// queues are the kernel's: the TUN ring (txqueuelen), the socket buffers (sockets.cc), the probe
// ring and the event queue to JavaScript, all bounded.
//
// Control traffic first (security issue #11: a saturated link must not look dead). The kernel's
// TUN queue is no priority queue: Linux's tun driver puts what the host routes into the device
// straight into a ring of txqueuelen entries and drops (TX dropped of the device) what does not
// fit; it never stops its queue, so the device's qdisc never holds a packet and priorities
// cannot act there. When the LAN offers more than the TX thread encrypts (a UDP flood), that
// ring overflows: ~7,000 drops a second per gateway in test/lab/saturated.test.ts, the replies
// of the kernel to the peer's probes among them. So health traffic
// avoids it: our probes come from their own ring (InjectProbe), and echo requests to this host's
// own addresses are answered here (SetEchoAnswer: RX thread -> answers_ -> TX thread) instead
// of by the kernel through the TUN. Both leave before the next TUN read (a waiting one ends the
// TX thread's batch), with the control mark (CtlMark: SO_PRIORITY and DSCP), as do IKE and the
// kernel's echo replies to tunnelled requests. Inbound, the socket buffers are FIFOs shared with
// bulk; they did not overflow in that lab (RcvbufErrors 0), so nothing more is done there.
//
// Sharing: the packet threads read an immutable `Tables` snapshot published with
// std::atomic_store and announced by a version counter; each thread re-reads it between batches,
// never per packet, and drops its reference to the old one then, so an old snapshot (and any SA
// only it still holds) is freed as soon as no thread can use it. Consecutive snapshots share all
// but the parts a change touched (SPI shards, connection chunks, selector-route shards; see
// Tables and engine_tables.cc), so installing or removing one SA among 10,000 copies a few small
// parts, not the whole table. Mutable per-SA state lives in
// `Sa` objects that snapshots share: the sequence counter is atomic, the replay window and the
// inbound crypto context belong to the RX thread, the outbound crypto context to the TX thread.
// The one packet-thread write that changes routing: the RX thread sets Sa::activated on the first
// authenticated packet of a pair installed with activate false; the TX thread reads it through
// OutSel::Pick, and the control thread folds it into the next snapshot (Engine::Fold).
// Where a pair sends (SaPath) is part of the snapshot, not of the shared Sa: a peer that moved
// behind its NAT (RFC 7296 §2.23) gets a new snapshot with a new path (Engine::UpdateSa), while
// its sequence counter, replay window and crypto contexts carry on in the same Sa.
#ifndef TWINSEC_ENGINE_H_
#define TWINSEC_ENGINE_H_

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "echo_track.h"
#include "esp.h"
#include "fwd.h"
#include "packet.h"
#include "replay.h"
#include "sa_limits.h"
#include "sockets.h"

namespace twinsec {

struct EngineOptions {
  std::string tunName;
  int mtu = 1400;
  uint16_t nattPort = 4500;
  std::vector<std::string> localAddresses;
  // Control traffic's packet priority and outer TOS (sockets.h, CtlMark): IKE on the NAT-T port,
  // injected health probes and echo replies to requests that came in through a tunnel. Default
  // TC_PRIO_CONTROL (7) and DSCP CS6 (TOS byte 0xc0); zero for both marks nothing.
  CtlMark ctlMark{7, 0xc0};
};

// What the packet threads report upwards. Called from the RX thread; must never block: return
// false when the event cannot be queued (the engine counts it as Drop::kQueue).
class EngineSink {
 public:
  virtual ~EngineSink() = default;
  // An IKE message (non-ESP marker stripped) that arrived on local:nattPort.
  virtual bool OnIke(const uint8_t* data, size_t len, const sockaddr* local,
                     const sockaddr* remote) = 0;
  // A decrypted ICMP/ICMPv6 echo reply whose identifier is watched; CLOCK_MONOTONIC ns.
  virtual bool OnProbe(const std::string& connection, const uint8_t* pkt, size_t len,
                       uint64_t monotonicNs) = 0;
  // Authenticated ESP on the pair installed under spiIn came from `from` (port 0 for raw ESP),
  // not from the pair's remote endpoint: the peer may have moved behind a NAT (RFC 7296 §2.23).
  // Rate-limited by the engine to once per second per SA.
  virtual bool OnPeerMoved(uint32_t spiIn, const sockaddr* from) = 0;
  // The pair installed under spiIn crossed its soft packet/byte mark (hard false: rekey it now,
  // RFC 7296 §2.8) or reached its hard limit (hard true: it drops packets from now on; without ESN
  // its outbound sequence numbers are used up, RFC 4303 §3.3.3). Called from the TX or the RX
  // thread, once per pair and mark (again after 100 ms when it returned false).
  virtual bool OnSaLimit(uint32_t spiIn, bool hard) = 0;
};

// One CHILD_SA pair as the control plane negotiated it. Key vectors are wiped by the engine once
// the crypto contexts hold them.
struct SaConfig {
  std::string connection;
  uint32_t spiIn = 0, spiOut = 0;
  std::string encr, integ;  // strongSwan names; integ "" for AEAD
  std::vector<uint8_t> encrKeyIn, encrKeyOut, integKeyIn, integKeyOut;
  bool esn = false;
  bool udp = true;  // ESP-in-UDP (RFC 3948) or raw ESP (IP protocol 50)
  std::string local, remote;
  uint16_t localPort = 0, remotePort = 0;
  std::vector<Prefix> tsLocal, tsRemote;
  // Make-before-break (RFC 7296 §2.8): false installs the pair without making its outbound SA the
  // connection's current one (unless the connection has none); Engine::ActivateSa, or the first
  // authenticated packet on its inbound SA, does that later.
  bool activate = true;
  // Packet and byte limits, the same for both directions (sa_limits.h); 0 = none. Without ESN the
  // engine caps them to the sequence space on its own.
  VolumeLimits limits{0, 0, 0, 0};
  // Hub connections (one child SA per site, each with its own remote selectors): every tsRemote
  // prefix forwards to this pair's connection while the connection has a pair with it installed,
  // next to the configured routes (longest prefix wins; on a tie the configured route). The same
  // prefix from two connections: the most recently installed pair's connection, the other again
  // once that one's pairs are gone.
  bool selectorRoutes = false;
};

struct SaCounters {
  uint64_t bytesIn = 0, bytesOut = 0, packetsIn = 0, packetsOut = 0;
};

struct EngineError {
  int err = 0;          // errno, or 0 for an invalid argument
  std::string message;  // without the errno text
};

// Counters written by one thread, read by any: relaxed atomics on their own cache line, so the
// writer's increments never bounce a line the other packet thread writes.
struct alignas(64) DirCounters {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> packets{0};
};

struct alignas(64) DropCounters {
  std::atomic<uint64_t> n[static_cast<int>(Drop::kCount)] = {};
  void Count(Drop d) { n[static_cast<int>(d)].fetch_add(1, std::memory_order_relaxed); }
};

// Control packets the TX thread sent ahead of bulk (with the control mark when it is on), by
// kind, and the echo replies and routing packets it sent as bulk because the marked-packet budget
// (kMarkedRepliesPerSec) was spent: what the marks of security issue #11 cover, for operators.
enum class Ctl : int { kProbe, kEchoAnswer, kEchoReply, kRouting, kUnmarked, kCount };

struct alignas(64) CtlCounters {
  std::atomic<uint64_t> n[static_cast<int>(Ctl::kCount)] = {};
  void Count(Ctl c) { n[static_cast<int>(c)].fetch_add(1, std::memory_order_relaxed); }
};

// An installed SA pair. Immutable fields first, then per-thread state. Where it sends is not here
// but in the snapshot (SaPath), so that it can change while the packet threads use the pair.
struct Sa {
  Sa(bool esn) : replay(esn) {}

  std::string connection;
  uint32_t connId = 0;  // the connection's interned id (Engine::Intern)
  uint32_t spiIn = 0, spiOut = 0;
  bool esn = false;
  bool udp = true;  // ESP-in-UDP (RFC 3948), else raw ESP; never changes for a pair
  std::vector<Prefix> tsLocal, tsRemote;
  bool selectorRoutes = false;  // SaConfig::selectorRoutes
  uint64_t serial = 0;          // install order
  // Control thread only: when the pair became the connection's current outbound one (install
  // with activate, ActivateSa, or folded in from `activated`); 0 = not activated yet. The
  // activated pair with the highest value is current.
  uint64_t activeGen = 0;
  // Set by the control thread on activation and by the RX thread on the first authenticated
  // packet on spiIn (the peer uses the pair, so we may too). The TX thread prefers a pending pair
  // (OutSel) once it is set, before the control thread next publishes tables.
  std::atomic<bool> activated{false};

  // RX thread only.
  std::unique_ptr<EspCrypto> rxCrypto;
  ReplayWindow replay;
  uint64_t movedNs = 0;  // when authenticated ESP from elsewhere was last reported (OnPeerMoved)
  // TX thread only (it also encrypts the injected probes).
  std::unique_ptr<EspCrypto> txCrypto;

  // Outbound: written by the TX thread; its packet count is the last sequence number used (RFC 4303
  // §3.3.3). Inbound: written by the RX thread. Both are accounted before the send / the TUN.
  alignas(64) SaMeter txMeter;
  alignas(64) SaMeter rxMeter;
  LimitReport softReport, hardReport;  // either thread (Engine::ReportLimit)
  DirCounters in, out;
};

// Where a pair's outbound ESP goes: from the sockets of one local address to the peer's address
// and, for ESP-in-UDP, its (possibly NAT-mapped) port. It is also the endpoint authenticated
// inbound ESP is expected from; ESP from elsewhere is reported (EngineSink::OnPeerMoved).
struct SaPath {
  size_t sockIndex = 0;  // which local address (Engine::socks_) sends it
  SockAddr remote;       // port 0 for raw ESP, which has none
};

// An installed pair in one snapshot: the state all snapshots share, and this snapshot's path.
struct SaEntry {
  std::shared_ptr<Sa> sa;
  SaPath path;
};

// One outbound candidate: a pair and its path, both owned by the snapshot that holds this.
struct OutSa {
  Sa* sa = nullptr;
  const SaPath* path = nullptr;
};

// A connection's outbound choice in one snapshot: its current pair, and the pairs installed with
// activate false and not activated when the snapshot was made. The RX thread may activate one of
// those since (Sa::activated); the TX thread then sends on it without waiting for new tables.
struct OutSel {
  OutSa cur;
  std::vector<OutSa> pending;  // newest first; almost always empty
  OutSa Pick() const {
    for (const OutSa& p : pending) {
      if (p.sa->activated.load(std::memory_order_relaxed)) return p;
    }
    return cur;
  }
};

// The pairs of one bySpi shard, sorted by inbound SPI. Each pair is its own node, shared by every
// snapshot that holds it, so copying a shard never moves a pair (OutSa points into the nodes).
using SaShard = std::vector<std::pair<uint32_t, std::shared_ptr<const SaEntry>>>;
constexpr size_t kSpiShards = 256;
// SPIs are random (RFC 4303 §2.1) but need not be (tests, some peers count up): mix them.
inline size_t SpiShard(uint32_t spi) { return (spi * 0x9E3779B1u) >> 24; }

// byConn in chunks of kConnChunk connections, so a change copies one chunk, not every connection.
constexpr size_t kConnChunk = 64;
using ConnChunk = std::array<OutSel, kConnChunk>;

// The configured routes (SetRoutes): only SetRoutes changes them.
struct RouteTable {
  std::vector<RouteSpec> routes;             // as given
  std::vector<std::vector<uint32_t>> named;  // fwd slot -> interned ids of its connections
  FwdTable fwd;
};

// An immutable snapshot of everything the packet threads look up. Every part is behind its own
// shared pointer, so a new snapshot is a copy of a few hundred pointers plus the few parts a change
// touches (Engine::Draft): the cost of an SA change does not grow with the number of SAs. OutSa
// pointers in byConn point into the SaEntry nodes of this snapshot's own bySpi shards.
struct Tables {
  std::array<std::shared_ptr<const SaShard>, kSpiShards> bySpi;  // owns the SAs; nullptr: empty
  // Interned connection id (Engine::Intern) / kConnChunk -> chunk of outbound choices; a missing
  // chunk or a cur.sa nullptr: the connection has no SA.
  std::vector<std::shared_ptr<const ConnChunk>> byConn;
  std::shared_ptr<const RouteTable> routes;  // nullptr: none configured
  // fwd slot -> the route's connections that have an SA (in the route's order); re-resolved only
  // when one of them gains its first SA or loses its last.
  std::shared_ptr<const std::vector<std::vector<uint32_t>>> slots;
  // Selector routes (SaConfig::selectorRoutes): tsRemote prefix -> connection id.
  ShardedLpm selectors;
  // This host's own addresses (host prefixes) whose echo requests through a tunnel the engine
  // answers itself (Engine::SetEchoAnswer); nullptr: none.
  std::shared_ptr<const std::vector<Prefix>> answer;
  // Route-based connections (Engine::AddInterface): interned connection id -> the fd of its own
  // TUN device, -1 for a policy-based one. What such a connection decrypts goes out of that
  // device, not the shared one; what the host routes into it goes into that connection's SA.
  std::shared_ptr<const std::vector<int>> tunOf;

  const SaEntry* FindSa(uint32_t spi) const {
    const SaShard* s = bySpi[SpiShard(spi)].get();
    if (s == nullptr) return nullptr;
    auto it =
        std::lower_bound(s->begin(), s->end(), spi,
                         [](const SaShard::value_type& e, uint32_t k) { return e.first < k; });
    return it != s->end() && it->first == spi ? it->second.get() : nullptr;
  }
  const OutSel* Conn(uint32_t id) const {
    size_t c = id / kConnChunk;
    if (c >= byConn.size() || byConn[c] == nullptr) return nullptr;
    return &(*byConn[c])[id % kConnChunk];
  }
  // The connection's outbound pair now; sa nullptr when it has none.
  OutSa Out(uint32_t id) const {
    const OutSel* s = Conn(id);
    return s != nullptr ? s->Pick() : OutSa();
  }
  int TunOf(uint32_t id) const {
    return tunOf != nullptr && id < tunOf->size() ? (*tunOf)[id] : -1;
  }
};

// Single-producer (the JavaScript thread) single-consumer (the TX thread) ring: the TX thread
// never waits for the producer.
template <typename T, size_t N>
class SpscRing {
 public:
  bool Push(T&& v) {
    size_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == N) return false;
    slots_[h % N] = std::move(v);
    head_.store(h + 1, std::memory_order_release);
    return true;
  }
  // Consumer side: something to pop (a cheap check between packets).
  bool Pending() const {
    return tail_.load(std::memory_order_relaxed) != head_.load(std::memory_order_acquire);
  }
  bool Pop(T* v) {
    size_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return false;
    *v = std::move(slots_[t % N]);
    slots_[t % N] = T();
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

 private:
  std::array<T, N> slots_;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

class Engine {
 public:
  // Creates the TUN device and the sockets and starts the packet threads; nullptr and *err on
  // failure (nothing left behind).
  static std::unique_ptr<Engine> Create(const EngineOptions& opts, EngineSink* sink,
                                        EngineError* err);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool SendIke(const std::string& local, const std::string& remote, uint16_t remotePort,
               const uint8_t* data, size_t len, EngineError* err);
  bool SendKeepalive(const std::string& local, const std::string& remote, uint16_t remotePort,
                     EngineError* err);
  bool InstallSa(SaConfig* cfg, EngineError* err);
  void RemoveSa(uint32_t spiIn);
  // Makes the pair installed under spiIn its connection's current outbound one; false (and no
  // change) when no pair has that inbound SPI.
  bool ActivateSa(uint32_t spiIn);
  // The peer of the pair installed under spiIn moved (RFC 7296 §2.23, e.g. its NAT mapping
  // changed): its outbound ESP leaves from `local` (one of localAddresses) to remote:remotePort
  // (the port is ignored for raw ESP) from the next batch on. Sequence numbers, the inbound SA,
  // the replay window and the counters carry on.
  enum class Update { kDone, kNoSa, kInvalid };
  Update UpdateSa(uint32_t spiIn, const std::string& local, const std::string& remote,
                  uint16_t remotePort, EngineError* err);
  void SetRoutes(std::vector<RouteSpec> routes);
  bool Counters(uint32_t spiIn, SaCounters* out) const;
  void Drops(uint64_t out[static_cast<int>(Drop::kCount)]) const;
  void ControlCounters(uint64_t out[static_cast<int>(Ctl::kCount)]) const;
  // False when the connection has no outbound SA or the probe queue is full.
  bool InjectProbe(const std::string& connection, const uint8_t* pkt, size_t len);
  void WatchProbe(uint16_t icmpId, bool on);
  // Echo requests that arrive through a tunnel for one of `addresses` (this host's own, e.g. its
  // LAN address a peer's health check probes) are answered by the engine, not by the kernel: the
  // RX thread builds the reply, the TX thread sends it back through the request's connection
  // with the control mark, before any bulk. The kernel's answer would have to queue behind bulk
  // in the TUN device, which drops what does not fit (see the header comment). False (and no
  // change) when one is not an IP address.
  bool SetEchoAnswer(const std::vector<std::string>& addresses);
  // Route-based connections: gives `connection` its own TUN device `name` (created here, removed
  // by Close) with the same offloads as the shared one. Everything read from it is encrypted into
  // the connection's current SA without a route lookup, and what the connection's SAs decrypt is
  // written to it; the selectors (usually 0.0.0.0/0 and ::/0) are still checked. The device starts
  // without carrier (operationally down) until SetCarrier. False and *err on failure, on a second
  // device for one connection, or beyond kMaxInterfaces.
  bool AddInterface(const std::string& connection, const std::string& name, int mtu,
                    EngineError* err);
  // Carrier on or off (TUNSETCARRIER): a device without carrier is operationally down, so routing
  // daemons withdraw the routes through it. False when the connection has no device.
  bool SetCarrier(const std::string& connection, bool up);
  // Stops the threads, closes the sockets and the TUN (which removes the device). Idempotent.
  void Close();

  bool closed() const { return closed_; }
  // Marks this process's UDP sockets bound to the engine's local addresses at `port` (the IKE
  // port, which Node's dgram owns) with the control mark for good; returns how many.
  int MarkIkeSockets(uint16_t port) const;

  static constexpr size_t kBatch = 64;            // packets per recvmmsg/sendmmsg
  static constexpr size_t kProbeQueue = 64;       // injected probes waiting for the TX thread
  static constexpr size_t kMaxPacket = 65536;     // largest datagram / TUN read
  static constexpr size_t kMaxInterfaces = 4096;  // route-based connections' own TUN devices
  // Echo replies to tunnelled requests sent with the control mark, per second and burst: enough
  // for hundreds of peers probing every 0.1 s, while a remote host's ping flood cannot use the
  // priority band to starve bulk traffic (the rest of its replies go out unmarked).
  static constexpr uint64_t kMarkedRepliesPerSec = 2000;
  static constexpr uint64_t kMarkedRepliesBurst = 200;

 private:
  struct LocalSocks {
    SockAddr addr;
    int udp = -1;
    int esp = -1;
  };
  // A route-based connection's TUN device; only added while the engine runs, closed by Close().
  struct Iface {
    uint32_t conn = 0;
    int fd = -1;
    std::string name;
  };
  struct Probe {
    std::shared_ptr<Sa> sa;
    SaPath path;  // as when the probe was injected
    std::vector<uint8_t> pkt;
  };
  // An echo reply the RX thread built (SetEchoAnswer) for the TX thread to send through `conn`.
  struct EchoAnswer {
    uint32_t conn = 0;
    std::vector<uint8_t> pkt;
  };
  class TxPath;                  // engine_tx.cc
  class RxPath;                  // engine_rx.cc
  static void RunTx(Engine* e);  // thread bodies
  static void RunRx(Engine* e);

  Engine() = default;
  // The control thread's side of the tables (engine_tables.cc); all of it with the mutex held.
  class Draft;  // the next snapshot while a control call builds it
  void Publish(Draft* d,
               bool wake = true);   // folds, resolves what changed, and hands the snapshot over
  void Fold(Draft* d);              // RX-thread activations -> activeGen
  void Activate(Draft* d, Sa* sa);  // makes it the connection's newest activation
  // Registers an installed pair with its connection (not activated yet) and its selector routes;
  // Detach undoes that for a pair being removed or replaced.
  void Attach(Draft* d, Sa* sa);
  void Detach(Draft* d, Sa* sa);
  void Resolve(Draft* d, uint32_t conn);  // the connection's OutSel from its pairs
  void SelectorAdd(Draft* d, const Prefix& p, uint32_t conn);
  void SelectorDrop(Draft* d, const Prefix& p, uint32_t conn);
  std::shared_ptr<const Tables> Snapshot() const { return std::atomic_load(&tables_); }
  int FindSocket(const std::string& local, EngineError* err) const;
  // The path to `remote` from socket set `sock`; false (and *err) on a bad or mismatched address.
  bool MakePath(int sock, const std::string& remote, bool udp, uint16_t remotePort, SaPath* out,
                EngineError* err) const;
  uint32_t Intern(const std::string& connection);  // control mutex held
  bool Watched(uint16_t id) const {
    return (watch_[id >> 6].load(std::memory_order_relaxed) >> (id & 63)) & 1;
  }
  void Wake(int fd);
  // A packet thread saw `sa` cross its soft mark or reach its hard limit (AccountPacket, which
  // makes it once per pair and mark): tells the sink; false (counted as a kQueue drop in `drops`)
  // when the event could not be queued.
  bool ReportLimit(Sa* sa, bool hard, DropCounters* drops);

  std::string tunName_;
  int mtu_ = 0;
  CtlMark mark_;
  bool ctlNoPrio_ = false;  // SendIke (control mutex held): the kernel refused the SO_PRIORITY cmsg
  uint16_t nattPort_ = 0;
  int tun_ = -1;
  int txWake_ = -1, rxWake_ = -1;  // eventfds: stop, new tables, probes
  // The TX thread's epoll set (the TUN devices and txWake_), made before the thread starts so
  // AddInterface can add a device to it from the control thread.
  int txEp_ = -1;
  // txEp_ tags (epoll_event.data.u64): the wake-up, the shared TUN, and a route-based device as
  // kEpIface | connection id << 32 | fd.
  static constexpr uint64_t kEpWake = 0, kEpTun = 1, kEpIface = uint64_t{1} << 63;
  std::vector<Iface> ifaces_;  // control mutex held
  std::vector<LocalSocks> socks_;
  EngineSink* sink_ = nullptr;

  mutable std::mutex ctl_;  // serialises control calls; never taken by the packet threads
  std::shared_ptr<const Tables> tables_;
  std::atomic<uint64_t> version_{0};
  uint64_t serial_ = 0;
  // Connection names -> small ids that never change or get reused while the engine lives, so an
  // id remembered by the packet threads (EchoTracker) still names the same connection after any
  // number of table swaps, rekeys or removals. Grows only with distinct names (configuration).
  std::unordered_map<std::string, uint32_t> connIds_;
  // A connection's pairs as the control thread tracks them (by interned id), so that a change
  // looks at that connection's pairs only.
  struct ConnState {
    std::map<uint64_t, uint32_t> bySerial;  // serial -> spiIn: all its pairs
    std::map<uint64_t, uint32_t> active;    // activeGen -> spiIn: the activated ones
    std::map<uint64_t, uint32_t> waiting;   // serial -> spiIn: activeGen 0 (activate false)
    std::vector<size_t> routeSlots;         // configured route slots naming it (SetRoutes)
  };
  std::vector<ConnState> conns_;
  // Pairs not activated yet, all connections, in install order: what Fold looks at.
  std::map<uint64_t, Sa*> pending_;
  // Selector routes: prefix (family, len, address) -> the connections carrying it, the one that
  // installed a pair with it last at the back (it wins), with how many of its pairs name it.
  struct SelOwner {
    uint32_t conn;
    uint32_t refs;
  };
  std::map<std::array<uint8_t, 18>, std::vector<SelOwner>> selOwners_;

  // Serials of pairs the RX thread activated (its first authenticated packet on a pair installed
  // with activate false), for Fold; foldAll_ when the ring was full.
  static constexpr size_t kActivations = 4096;
  SpscRing<uint64_t, kActivations> activations_;
  std::atomic<bool> foldAll_{false};
  SpscRing<Probe, kProbeQueue> probes_;
  SpscRing<EchoAnswer, kProbeQueue> answers_;              // RX thread -> TX thread
  std::array<std::atomic<uint64_t>, 65536 / 64> watch_{};  // echo ids watched by probes
  DropCounters txDrops_, rxDrops_, ctlDrops_;
  CtlCounters ctlSent_;  // written by the TX thread
  EchoTracker echo_;     // written by the RX thread, read by the TX thread

  std::atomic<bool> stop_{false};
  std::thread tx_, rx_;
  bool closed_ = false;
};

}  // namespace twinsec

#endif  // TWINSEC_ENGINE_H_
