// The next packet-thread snapshot while a control call builds it (engine_tables.cc). Control
// thread only, with the engine's mutex held.
#ifndef TWINSEC_ENGINE_TABLES_H_
#define TWINSEC_ENGINE_TABLES_H_

#include <stdint.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "engine.h"

namespace twinsec {

// Starts as a copy of the current snapshot's pointers (everything shared); each shard, connection
// chunk or slot list a change touches is copied once, on first write, and then changed in place,
// which is safe because no thread has seen the copy yet. Engine::Publish hands it over.
class Engine::Draft {
 public:
  explicit Draft(const Engine& e) : t_(std::make_shared<Tables>(*e.Snapshot())) {}

  Tables* t() { return t_.get(); }
  const SaEntry* Find(uint32_t spi) const { return t_->FindSa(spi); }

  // Inserts or replaces the pair under its inbound SPI.
  void Put(std::shared_ptr<const SaEntry> e) {
    uint32_t spi = e->sa->spiIn;
    SaShard* s = Shard(SpiShard(spi));
    auto it = Lower(s, spi);
    if (it != s->end() && it->first == spi)
      it->second = std::move(e);
    else
      s->emplace(it, spi, std::move(e));
  }
  // Removes the pair; its node (and Sa) live on in older snapshots the threads may still use.
  void Erase(uint32_t spi) {
    SaShard* s = Shard(SpiShard(spi));
    auto it = Lower(s, spi);
    if (it != s->end() && it->first == spi) s->erase(it);
  }
  // The connection's slot, its chunk copied (once per draft) if this snapshot shares it.
  OutSel* MutConn(uint32_t id) {
    size_t c = id / kConnChunk;
    if (t_->byConn.size() <= c) t_->byConn.resize(c + 1);
    if (ownChunks_.size() <= c) ownChunks_.resize(c + 1, nullptr);
    if (ownChunks_[c] == nullptr) {
      auto chunk = t_->byConn[c] ? std::make_shared<ConnChunk>(*t_->byConn[c])
                                 : std::make_shared<ConnChunk>();
      ownChunks_[c] = chunk.get();
      t_->byConn[c] = std::move(chunk);
    }
    return &(*ownChunks_[c])[id % kConnChunk];
  }
  std::vector<std::vector<uint32_t>>* MutSlots() {
    if (ownSlots_ == nullptr) {
      auto s = t_->slots ? std::make_shared<std::vector<std::vector<uint32_t>>>(*t_->slots)
                         : std::make_shared<std::vector<std::vector<uint32_t>>>();
      ownSlots_ = s.get();
      t_->slots = std::move(s);
    }
    return ownSlots_;
  }
  void SetSlots(std::shared_ptr<std::vector<std::vector<uint32_t>>> s) {
    ownSlots_ = s.get();
    t_->slots = std::move(s);
  }

  // Connections whose OutSel must be resolved again before publishing.
  void Dirty(uint32_t conn) { dirty_.push_back(conn); }
  std::vector<uint32_t> TakeDirty() {
    std::sort(dirty_.begin(), dirty_.end());
    dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
    return std::move(dirty_);
  }
  std::shared_ptr<const Tables> Done() { return std::move(t_); }

 private:
  SaShard* Shard(size_t i) {
    if (ownShards_[i] == nullptr) {
      auto s =
          t_->bySpi[i] ? std::make_shared<SaShard>(*t_->bySpi[i]) : std::make_shared<SaShard>();
      ownShards_[i] = s.get();
      t_->bySpi[i] = std::move(s);
    }
    return ownShards_[i];
  }
  static SaShard::iterator Lower(SaShard* s, uint32_t spi) {
    return std::lower_bound(s->begin(), s->end(), spi,
                            [](const SaShard::value_type& e, uint32_t k) { return e.first < k; });
  }

  std::shared_ptr<Tables> t_;
  // What this draft already copied (and so may change in place): nullptr = still shared.
  std::array<SaShard*, kSpiShards> ownShards_{};
  std::vector<ConnChunk*> ownChunks_;
  std::vector<std::vector<uint32_t>>* ownSlots_ = nullptr;
  std::vector<uint32_t> dirty_;
};

}  // namespace twinsec

#endif  // TWINSEC_ENGINE_TABLES_H_
