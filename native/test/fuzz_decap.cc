// Fuzz harness for the ESP receive path: EspHeader -> ReplayWindow::Check -> EspCrypto::Decrypt ->
// ReplayWindow::Update -> ParseInner / FlowHash / ICMP error builders, for an AES-GCM SA, an
// AES-CBC + HMAC SA and a 3DES-CBC + HMAC SA (8-byte blocks, RFC 2451), each CBC cipher also with
// HMAC-MD5-96 (RFC 2403: 16-byte key, 12-byte ICV), with and without ESN.
//
// Random bytes almost never pass the ICV, so half of the inputs are first turned into a genuine
// ESP packet (the input's tail is encrypted as the inner packet under the inferred sequence
// number) and then optionally damaged (a byte flipped, truncated or extended), which drives the
// fuzzer into the padding checks, the in-place paths and the inner packet parser. Unmodified
// genuine packets must decrypt to exactly their input: the harness aborts otherwise. With flag
// bit 7 the body is also parsed as a CIDR prefix and matched against the inner addresses.
//
// libFuzzer (clang; apt-get install clang):
//   make -C native/test fuzz
//   mkdir -p /tmp/fuzz-corpus
//   native/test/build/fuzz_decap /tmp/fuzz-corpus -max_total_time=300 -print_final_stats=1
// Standalone (g++, no libFuzzer; replays files, or runs N pseudo-random inputs):
//   make -C native/test && native/test/build/fuzz_decap_driver -n 200000 [files...]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <string>

#include "../esp.h"
#include "../packet.h"
#include "../replay.h"

namespace {

using twinsec::Drop;
using twinsec::EspCrypto;

constexpr size_t kMaxInput = 4096;
constexpr size_t kBuf = kMaxInput + 256;

struct Sa {
  std::unique_ptr<EspCrypto> tx, rx;
  size_t ivLen;
};

// Outcome counts, printed by the standalone driver to show which paths the inputs reach.
struct Stats {
  long inputs, genuine, decrypted, malformed, integrity, parsed;
} g_stats;

Sa MakeSa(const char* encr, const char* integ, size_t keyLen, size_t integKeyLen, size_t ivLen) {
  uint8_t key[64], ikey[64];
  for (size_t i = 0; i < sizeof(key); i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < sizeof(ikey); i++) ikey[i] = static_cast<uint8_t>(i * 11 + 3);
  std::string err;
  Sa sa;
  sa.tx = EspCrypto::Create(encr, integ, key, keyLen, ikey, integKeyLen, &err);
  sa.rx = EspCrypto::Create(encr, integ, key, keyLen, ikey, integKeyLen, &err);
  if (!sa.tx || !sa.rx) {
    fprintf(stderr, "fuzz setup: %s\n", err.c_str());
    abort();
  }
  sa.ivLen = ivLen;
  return sa;
}

// Created once: setting up OpenSSL contexts per input would dominate the run.
Sa& Gcm() {
  static Sa sa = MakeSa("aes128gcm16", "", 20, 0, 8);
  return sa;
}
Sa& Cbc() {
  static Sa sa = MakeSa("aes256", "sha256", 32, 32, 16);
  return sa;
}
Sa& Des3() {
  static Sa sa = MakeSa("3des", "sha1", 24, 20, 8);
  return sa;
}
Sa& CbcMd5() {
  static Sa sa = MakeSa("aes128", "md5", 16, 16, 16);
  return sa;
}
Sa& Des3Md5() {
  static Sa sa = MakeSa("3des", "md5", 24, 16, 8);
  return sa;
}

// Bits 2 and 3 of the mutation byte (its low two bits pick the mutation) pick the CBC SA:
// cipher AES or 3DES, integrity SHA or MD5.
Sa& CbcSa(uint8_t sel) {
  const bool des3 = sel & 4, md5 = sel & 8;
  if (des3) return md5 ? Des3Md5() : Des3();
  return md5 ? CbcMd5() : Cbc();
}

uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void Check(bool cond, const char* what) {
  if (!cond) {
    fprintf(stderr, "fuzz invariant violated: %s\n", what);
    abort();
  }
}

// Prefix parsing on the body read as text; a parsed prefix must contain its own address and
// have no host bits set. Returns whether `*out` was filled.
bool PrefixFrom(const uint8_t* body, size_t len, twinsec::Prefix* out) {
  std::string cidr(reinterpret_cast<const char*>(body), len < 64 ? len : 64);
  if (!twinsec::ParsePrefix(cidr, out)) return false;
  int max = out->family == twinsec::kFamily4 ? 32 : 128;
  Check(out->len <= max, "prefix length");
  Check(twinsec::PrefixContains(*out, out->addr, out->family), "prefix contains itself");
  for (int bit = out->len; bit < 128; bit++) {
    Check((out->addr[bit / 8] & (0x80 >> (bit % 8))) == 0, "host bits cleared");
  }
  return true;
}

// Inner packet checks on decrypted output: parse, hash, and build the ICMP errors about it.
void Inner(const uint8_t* p, size_t n, const twinsec::Prefix* prefix) {
  twinsec::InnerInfo info;
  if (!twinsec::ParseInner(p, n, &info)) return;
  g_stats.parsed++;
  if (prefix != nullptr) {
    twinsec::PrefixContains(*prefix, info.src, info.family);
    twinsec::PrefixContains(*prefix, info.dst, info.family);
  }
  Check(info.totalLen <= n && info.l4Offset <= info.totalLen, "ParseInner lengths");
  volatile uint32_t h = twinsec::FlowHash(info);
  (void)h;
  uint8_t out[twinsec::kIcmp6ErrorMax];
  static const uint8_t gw4[4] = {10, 0, 0, 1};
  static const uint8_t gw6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  size_t m = twinsec::BuildIcmpFragNeeded(p, n, 1400, gw4, out, twinsec::kIcmp4ErrorMax);
  if (m > 0) {
    Check(m <= twinsec::kIcmp4ErrorMax && twinsec::Ipv4ChecksumOk(out, m), "ICMP header");
    Check(twinsec::InetChecksum(out + 20, m - 20) == 0, "ICMP checksum");
  }
  m = twinsec::BuildIcmp6TooBig(p, n, 1280, gw6, out, sizeof(out));
  Check(m <= twinsec::kIcmp6ErrorMax, "ICMPv6 length");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Layout: flags (1) | window top (8) | sequence low (4) | mutation (3) | body.
  if (size < 16 || size > kMaxInput) return 0;
  g_stats.inputs++;
  const uint8_t flags = data[0];
  const bool cbc = flags & 1, esn = flags & 2, genuine = flags & 4, inPlace = flags & 8;
  Sa& sa = cbc ? CbcSa(data[13]) : Gcm();
  uint64_t top = Get64(data + 1);
  if (!esn) top &= 0xffffffffu;
  uint32_t seqLow = static_cast<uint32_t>(data[9]) << 24 | static_cast<uint32_t>(data[10]) << 16 |
                    static_cast<uint32_t>(data[11]) << 8 | data[12];
  const uint8_t mutKind = data[13], mutAt = data[14], mutVal = data[15];
  const uint8_t* body = data + 16;
  size_t bodyLen = size - 16;
  static uint8_t fixed[kMaxInput];
  if ((flags & 64) && bodyLen >= 40) {
    // Make the body a plausible IP packet (version and length fields right) so that the inner
    // parser and the ICMP builders get past their first checks more often.
    memcpy(fixed, body, bodyLen);
    if (fixed[0] & 0x80) {
      fixed[0] = static_cast<uint8_t>(0x60 | (fixed[0] & 0x0f));
      fixed[4] = static_cast<uint8_t>((bodyLen - 40) >> 8);
      fixed[5] = static_cast<uint8_t>(bodyLen - 40);
    } else {
      fixed[0] = static_cast<uint8_t>(0x40 | (5 + (fixed[0] & 3)));
      fixed[2] = static_cast<uint8_t>(bodyLen >> 8);
      fixed[3] = static_cast<uint8_t>(bodyLen);
    }
    body = fixed;
  }

  twinsec::Prefix prefix;
  bool havePrefix = (flags & 128) && PrefixFrom(data + 16, size - 16, &prefix);

  twinsec::ReplayWindow window(esn);
  if (flags & 16) window.Update(top);

  static uint8_t pkt[kBuf];
  static uint8_t out[kBuf];
  size_t len;
  uint64_t seq = 0;
  bool intact = false;
  if (genuine) {
    // Encrypt the body under the number the window will infer, as a peer would have sent it.
    if (!window.Check(seqLow, &seq)) seq = esn ? (top & ~uint64_t{0xffffffff}) | seqLow : seqLow;
    uint8_t nh = (flags & 32) ? 41 : 4;
    ssize_t n = sa.tx->Encrypt(0x01020304, seq, esn, nh, body, bodyLen, pkt, sizeof(pkt));
    Check(n > 0 || (!esn && (seq >> 32) != 0), "Encrypt of a genuine packet");
    if (n <= 0) return 0;
    len = static_cast<size_t>(n);
    intact = true;
    g_stats.genuine++;
    switch (mutKind % 4) {
      case 1:  // flip bits in one byte
        if (mutVal != 0) {
          pkt[(mutAt * 7u) % len] ^= mutVal;
          intact = false;
        }
        break;
      case 2:  // truncate
        if (mutAt % len != 0) {
          len -= mutAt % len;
          intact = false;
        }
        break;
      case 3:  // extend with one byte
        pkt[len++] = mutVal;
        intact = false;
        break;
    }
  } else {
    memcpy(pkt, body, bodyLen);
    len = bodyLen;
  }

  uint32_t spi = 0, lo = 0;
  if (!twinsec::EspHeader(pkt, len, &spi, &lo)) return 0;
  uint64_t full = 0;
  bool fresh = window.Check(lo, &full);
  if (!fresh) {
    if (!genuine) return 0;
    full = seq;  // still exercise Decrypt with the number the packet was built for
  }
  uint8_t nh = 0;
  Drop why = Drop::kCount;
  uint8_t* dst = out;
  size_t cap = sizeof(out);
  if (inPlace && len >= 8 + sa.ivLen) {
    dst = pkt + 8 + sa.ivLen;
    cap = len - 8 - sa.ivLen;
  }
  ssize_t n = sa.rx->Decrypt(pkt, len, full, esn, dst, cap, &nh, &why);
  if (n < 0) {
    Check(why == Drop::kMalformed || why == Drop::kIntegrity, "drop reason");
    (why == Drop::kMalformed ? g_stats.malformed : g_stats.integrity)++;
    Check(!intact, "genuine packet rejected");
    return 0;
  }
  Check(why == Drop::kNone && static_cast<size_t>(n) <= len, "Decrypt result");
  g_stats.decrypted++;
  if (intact) {
    Check(static_cast<size_t>(n) == bodyLen && memcmp(dst, body, bodyLen) == 0, "round trip");
  }
  if (fresh) {
    window.Update(full);
    uint64_t again = 0;
    Check(!window.Check(lo, &again) || again != full, "replayed packet accepted");
  }
  Inner(dst, static_cast<size_t>(n), havePrefix ? &prefix : nullptr);
  return 0;
}

#ifdef TWINSEC_FUZZ_STANDALONE
// Driver without libFuzzer: runs the given files, or -n N inputs from a fixed-seed generator that
// biases towards genuine packets and IP-looking bodies.
int main(int argc, char** argv) {
  long runs = 0;
  int files = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      runs = atol(argv[++i]);
      continue;
    }
    FILE* f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 2;
    }
    static uint8_t buf[kMaxInput];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    files++;
  }
  if (files == 0 && runs == 0) runs = 100000;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  static uint8_t buf[kMaxInput];
  for (long r = 0; r < runs; r++) {
    size_t n = 16 + next() % 1600;
    for (size_t i = 0; i < n; i++) buf[i] = static_cast<uint8_t>(next());
    if (r % 2 == 0) buf[0] |= 4;   // genuine half the time
    if (r % 3 == 0) buf[0] |= 64;  // IP-looking body
    if (r % 5 == 0) buf[13] = 0;   // unmodified genuine packets: the round-trip oracle
    LLVMFuzzerTestOneInput(buf, n);
  }
  printf("fuzz_decap_driver: %d files, %ld generated inputs, no invariant violated\n", files, runs);
  printf(
      "  inputs %ld, genuine %ld, decrypted %ld, malformed %ld, integrity %ld, inner parsed %ld\n",
      g_stats.inputs, g_stats.genuine, g_stats.decrypted, g_stats.malformed, g_stats.integrity,
      g_stats.parsed);
  return 0;
}
#endif
