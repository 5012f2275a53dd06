// ESP (RFC 4303) tunnel-mode transforms on OpenSSL 3 EVP: AES-GCM-16 (RFC 4106), and AES-CBC
// (RFC 3602) or 3DES-CBC (RFC 2451, for legacy IKEv1 peers) with HMAC-SHA1-96 (RFC 2404),
// HMAC-SHA2 (RFC 4868) or HMAC-MD5-96 (RFC 2403, for legacy peers).
//
// Per-packet cost is kept to what the algorithm needs: ciphers and the HMAC implementation are
// fetched once per process, each EspCrypto owns its contexts with the key already scheduled, and
// a packet only sets the IV (EVP_*Init_ex with NULL cipher and key) or re-initialises the HMAC
// from its cached keyed state (EVP_MAC_init with a NULL key). This code allocates nothing per
// packet, and neither does OpenSSL for GCM; for HMAC, OpenSSL 3.0 itself duplicates a digest
// context in EVP_MAC_init and in EVP_MAC_final (two small allocations per ICV; every EVP digest
// (re)initialisation allocates in 3.0, only the deprecated SHA*_Init family would not).
#include "esp.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

#include <new>

namespace twinsec {

namespace {

constexpr size_t kEspHeaderLen = 8;  // SPI + sequence number (RFC 4303 §2)
constexpr size_t kTrailerLen = 2;    // pad length + next header (RFC 4303 §2.5, §2.6)
constexpr size_t kGcmIvLen = 8;      // explicit IV in the packet (RFC 4106 §3.1)
constexpr size_t kGcmSaltLen = 4;    // implicit salt, from the key material (RFC 4106 §4, §8.1)
constexpr size_t kGcmIcvLen = 16;    // the "16" in aes*gcm16 (RFC 4106 §6)
constexpr size_t kAesBlock = 16;     // AES block = CBC IV (RFC 3602 §3)
constexpr size_t kDes3Block = 8;     // 3DES block = CBC IV (RFC 2451 §2.1, §2.4)
constexpr size_t kDes3KeyLen = 24;   // three 64-bit DES keys, parity bits included (RFC 2451 §2.2)
constexpr size_t kMaxIcvLen = 32;    // HMAC-SHA2-512-256
// Far above any IP packet; keeps every length representable as the int OpenSSL takes.
constexpr size_t kMaxLen = 1 << 20;

// Process-wide algorithm objects, fetched once and never freed: they are immutable and shared
// by every context, and explicit fetching avoids the implicit fetch (a locked provider lookup)
// that OpenSSL 3 would otherwise do whenever a context is initialised with a cipher.
struct Algorithms {
  EVP_CIPHER* gcm[3];  // 128, 192, 256
  EVP_CIPHER* cbc[3];
  EVP_CIPHER* des3cbc;  // DES-EDE3-CBC: still in OpenSSL 3's default provider (single DES is not)
  EVP_CIPHER* ecb128;   // IV generation for CBC
  EVP_MAC* hmac;
};

const Algorithms& Algs() {
  // C++11 guarantees thread-safe initialisation of function-local statics.
  static const Algorithms algs = [] {
    Algorithms a;
    a.gcm[0] = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    a.gcm[1] = EVP_CIPHER_fetch(nullptr, "AES-192-GCM", nullptr);
    a.gcm[2] = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    a.cbc[0] = EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr);
    a.cbc[1] = EVP_CIPHER_fetch(nullptr, "AES-192-CBC", nullptr);
    a.cbc[2] = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
    a.des3cbc = EVP_CIPHER_fetch(nullptr, "DES-EDE3-CBC", nullptr);
    a.ecb128 = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    a.hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return a;
  }();
  return algs;
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
using MacCtx = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

inline uint32_t Get32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

inline void Put64(uint8_t* p, uint64_t v) {
  Put32(p, static_cast<uint32_t>(v >> 32));
  Put32(p + 4, static_cast<uint32_t>(v));
}

// Padding so that the encrypted part (payload | padding | pad length | next header) is a
// multiple of `align`; the pad bytes are 1, 2, 3, ... (RFC 4303 §2.4).
inline size_t PadLen(size_t innerLen, size_t align) {
  return (align - (innerLen + kTrailerLen) % align) % align;
}

// Places the inner packet at `payload` (it may already be there, or overlap: the engine can read
// a packet straight into the output buffer) and appends padding and the trailer.
inline void BuildPlaintext(uint8_t* payload, const uint8_t* inner, size_t innerLen, size_t pad,
                           uint8_t nextHeader) {
  if (payload != inner && innerLen > 0) memmove(payload, inner, innerLen);
  uint8_t* p = payload + innerLen;
  for (size_t i = 0; i < pad; i++) p[i] = static_cast<uint8_t>(i + 1);
  p[pad] = static_cast<uint8_t>(pad);
  p[pad + 1] = nextHeader;
}

// Checks the decrypted trailer: pad length within the plaintext, pad bytes 1..n (RFC 4303 §2.4:
// the receiver should check them). Returns the inner length or -1.
inline ssize_t CheckTrailer(const uint8_t* pt, size_t ptLen, uint8_t* nextHeader) {
  if (ptLen < kTrailerLen) return -1;
  size_t pad = pt[ptLen - 2];
  if (pad + kTrailerLen > ptLen) return -1;
  size_t innerLen = ptLen - kTrailerLen - pad;
  for (size_t i = 0; i < pad; i++) {
    if (pt[innerLen + i] != static_cast<uint8_t>(i + 1)) return -1;
  }
  *nextHeader = pt[ptLen - 1];
  return static_cast<ssize_t>(innerLen);
}

inline bool Overlaps(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen) {
  uintptr_t pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + blen && pb < pa + alen;
}

// Where to decrypt `ct` so that the result ends up in `out`: directly into `out` when it is
// `ct` itself or disjoint from it (OpenSSL supports exact in-place operation), otherwise in place
// (the caller owns the buffer, since `out` lies within it) followed by a memmove. OpenSSL
// refuses partially overlapping buffers.
inline uint8_t* DecryptTarget(const uint8_t* ct, size_t ctLen, uint8_t* out) {
  if (out == ct || !Overlaps(ct, ctLen, out, ctLen)) return out;
  return const_cast<uint8_t*>(ct);
}

// The caller's full sequence number must extend the one on the wire (RFC 4303 Appendix A2);
// anything else is a caller bug, refused rather than authenticated against the wrong number.
inline bool ValidSeq(const uint8_t* esp, uint64_t seq, bool esn) {
  if (!esn && (seq >> 32) != 0) return false;
  return static_cast<uint32_t>(seq) == Get32(esp + 4);
}

class GcmEsp final : public EspCrypto {
 public:
  GcmEsp(CipherCtx ctx, const uint8_t* salt) : ctx_(std::move(ctx)) {
    memcpy(nonce_, salt, kGcmSaltLen);
  }
  ~GcmEsp() override { OPENSSL_cleanse(nonce_, sizeof(nonce_)); }

  size_t Overhead(size_t innerLen) const override {
    // RFC 4106 §3.2: no block alignment for GCM, but ESP's 4-byte alignment still applies.
    return kEspHeaderLen + kGcmIvLen + PadLen(innerLen, 4) + kTrailerLen + kGcmIcvLen;
  }

  ssize_t Encrypt(uint32_t spi, uint64_t seq, bool esn, uint8_t nextHeader, const uint8_t* inner,
                  size_t innerLen, uint8_t* out, size_t outCap) override {
    // A non-ESN SA must never cycle its 32-bit counter (RFC 4303 §3.3.3); refusing here also
    // keeps the wire sequence number consistent with the nonce.
    if (!esn && (seq >> 32) != 0) return -1;
    size_t pad = PadLen(innerLen, 4);
    size_t ptLen = innerLen + pad + kTrailerLen;
    size_t total = kEspHeaderLen + kGcmIvLen + ptLen + kGcmIcvLen;
    if (innerLen > kMaxLen || outCap < total) return -1;
    uint8_t* pt = out + kEspHeaderLen + kGcmIvLen;
    BuildPlaintext(pt, inner, innerLen, pad, nextHeader);
    Put32(out, spi);
    Put32(out + 4, static_cast<uint32_t>(seq));
    // RFC 4106 §3.1: the IV must be unique per key; the 64-bit sequence number is. The full
    // counter (with ESN high bits, never on the wire in the header) goes into the IV so that
    // nonces stay unique across the 2^32 wrap.
    Put64(out + kEspHeaderLen, seq);
    uint8_t aad[12];
    size_t aadLen = Aad(spi, seq, esn, aad);
    if (!Crypt(true, out + kEspHeaderLen, aad, aadLen, pt, ptLen, pt)) return -1;
    if (EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kGcmIcvLen, pt + ptLen) != 1) {
      return -1;
    }
    return static_cast<ssize_t>(total);
  }

  ssize_t Decrypt(const uint8_t* esp, size_t len, uint64_t seq, bool esn, uint8_t* out,
                  size_t outCap, uint8_t* nextHeader, Drop* reason) override {
    *reason = Drop::kMalformed;
    // At least the trailer in the ciphertext. 4-byte alignment (RFC 4303 §2.4) is not enforced:
    // it is a sender rule, and the tag check catches any truncation.
    if (len < kEspHeaderLen + kGcmIvLen + kTrailerLen + kGcmIcvLen || len > kMaxLen) return -1;
    if (!ValidSeq(esp, seq, esn)) return -1;
    const uint8_t* iv = esp + kEspHeaderLen;
    const uint8_t* ct = iv + kGcmIvLen;
    size_t ctLen = len - kEspHeaderLen - kGcmIvLen - kGcmIcvLen;
    if (outCap < ctLen) return -1;
    uint8_t aad[12];
    size_t aadLen = Aad(Get32(esp), seq, esn, aad);
    // The tag is copied out first: decrypting in place may overwrite it when `out` overlaps.
    uint8_t tag[kGcmIcvLen];
    memcpy(tag, ct + ctLen, kGcmIcvLen);
    uint8_t ivCopy[kGcmIvLen];
    memcpy(ivCopy, iv, kGcmIvLen);
    uint8_t* dst = DecryptTarget(ct, ctLen, out);
    if (EVP_DecryptInit_ex(ctx_.get(), nullptr, nullptr, nullptr, Nonce(ivCopy)) != 1) return -1;
    int n = 0;
    if (EVP_DecryptUpdate(ctx_.get(), nullptr, &n, aad, static_cast<int>(aadLen)) != 1) {
      return -1;
    }
    if (EVP_DecryptUpdate(ctx_.get(), dst, &n, ct, static_cast<int>(ctLen)) != 1) return -1;
    if (EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kGcmIcvLen, tag) != 1) return -1;
    int fin = 0;
    // The tag comparison inside EVP_DecryptFinal_ex is constant time (CRYPTO_memcmp).
    if (EVP_DecryptFinal_ex(ctx_.get(), dst + n, &fin) != 1) {
      *reason = Drop::kIntegrity;
      return -1;
    }
    if (dst != out) memmove(out, dst, ctLen);
    ssize_t innerLen = CheckTrailer(out, ctLen, nextHeader);
    if (innerLen < 0) return -1;
    *reason = Drop::kNone;
    return innerLen;
  }

 private:
  // RFC 4106 §5: SPI | seq low, or SPI | seq high | seq low with ESN.
  static size_t Aad(uint32_t spi, uint64_t seq, bool esn, uint8_t* aad) {
    Put32(aad, spi);
    if (esn) {
      Put64(aad + 4, seq);
      return 12;
    }
    Put32(aad + 4, static_cast<uint32_t>(seq));
    return 8;
  }

  // salt | explicit IV (RFC 4106 §4).
  const uint8_t* Nonce(const uint8_t* iv) {
    memcpy(nonce_ + kGcmSaltLen, iv, kGcmIvLen);
    return nonce_;
  }

  bool Crypt(bool enc, const uint8_t* iv, const uint8_t* aad, size_t aadLen, const uint8_t* in,
             size_t len, uint8_t* out) {
    EVP_CIPHER_CTX* c = ctx_.get();
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, Nonce(iv), enc ? 1 : 0) != 1) return false;
    int n = 0;
    if (EVP_CipherUpdate(c, nullptr, &n, aad, static_cast<int>(aadLen)) != 1) return false;
    if (EVP_CipherUpdate(c, out, &n, in, static_cast<int>(len)) != 1) return false;
    int fin = 0;
    return EVP_CipherFinal_ex(c, out + n, &fin) == 1 && static_cast<size_t>(n + fin) == len;
  }

  CipherCtx ctx_;
  uint8_t nonce_[kGcmSaltLen + kGcmIvLen];
};

// CBC with HMAC, for a block cipher of kBlock bytes (16: AES, 8: 3DES). The block size is a
// template parameter so that the AES instance compiles to exactly the constants it had before
// 3DES was added: no run-time block size on the fast path. In both, the explicit IV is one
// cipher block (RFC 3602 §3, RFC 2451 §3) and the encrypted part is padded to the block size,
// which is a multiple of ESP's 4-byte alignment (RFC 4303 §2.4).
template <size_t kBlock>
class CbcEsp final : public EspCrypto {
  static_assert(kBlock == kAesBlock || kBlock == kDes3Block, "AES or 3DES block");
  static constexpr size_t kCbcIvLen = kBlock;
  static constexpr size_t kCbcBlock = kBlock;

 public:
  CbcEsp(CipherCtx enc, CipherCtx dec, CipherCtx ivGen, MacCtx mac, size_t icvLen)
      : enc_(std::move(enc)),
        dec_(std::move(dec)),
        ivGen_(std::move(ivGen)),
        mac_(std::move(mac)),
        icvLen_(icvLen) {}

  size_t Overhead(size_t innerLen) const override {
    return kEspHeaderLen + kCbcIvLen + PadLen(innerLen, kCbcBlock) + kTrailerLen + icvLen_;
  }

  ssize_t Encrypt(uint32_t spi, uint64_t seq, bool esn, uint8_t nextHeader, const uint8_t* inner,
                  size_t innerLen, uint8_t* out, size_t outCap) override {
    if (!esn && (seq >> 32) != 0) return -1;
    size_t pad = PadLen(innerLen, kCbcBlock);
    size_t ptLen = innerLen + pad + kTrailerLen;
    size_t total = kEspHeaderLen + kCbcIvLen + ptLen + icvLen_;
    if (innerLen > kMaxLen || outCap < total) return -1;
    uint8_t* iv = out + kEspHeaderLen;
    uint8_t* pt = iv + kCbcIvLen;
    BuildPlaintext(pt, inner, innerLen, pad, nextHeader);
    Put32(out, spi);
    Put32(out + 4, static_cast<uint32_t>(seq));
    // RFC 3602 §2.3 wants an unpredictable IV. Encrypting a per-SA counter under a separate
    // random key (NIST SP 800-38A Appendix C) gives one for the price of a single AES block,
    // without a call into the shared DRBG per packet. 3DES (RFC 2451 §3: a random IV per
    // packet) takes the first 8 bytes of that AES block: as unpredictable without the secret IV
    // key as 8 bytes from the DRBG.
    uint8_t block[kAesBlock] = {};
    Put64(block, ivCounter_++);
    int n = 0;
    if constexpr (kCbcIvLen == kAesBlock) {
      if (EVP_EncryptUpdate(ivGen_.get(), iv, &n, block, sizeof(block)) != 1 || n != 16) return -1;
    } else {
      uint8_t full[kAesBlock];
      if (EVP_EncryptUpdate(ivGen_.get(), full, &n, block, sizeof(block)) != 1 || n != 16) {
        return -1;
      }
      memcpy(iv, full, kCbcIvLen);
    }
    if (EVP_EncryptInit_ex(enc_.get(), nullptr, nullptr, nullptr, iv) != 1) return -1;
    if (EVP_EncryptUpdate(enc_.get(), pt, &n, pt, static_cast<int>(ptLen)) != 1) return -1;
    int fin = 0;
    if (EVP_EncryptFinal_ex(enc_.get(), pt + n, &fin) != 1) return -1;
    if (static_cast<size_t>(n + fin) != ptLen) return -1;
    uint8_t icv[kMaxIcvLen * 2];
    if (!Icv(out, kEspHeaderLen + kCbcIvLen + ptLen, seq, esn, icv)) return -1;
    memcpy(pt + ptLen, icv, icvLen_);
    return static_cast<ssize_t>(total);
  }

  ssize_t Decrypt(const uint8_t* esp, size_t len, uint64_t seq, bool esn, uint8_t* out,
                  size_t outCap, uint8_t* nextHeader, Drop* reason) override {
    *reason = Drop::kMalformed;
    if (len < kEspHeaderLen + kCbcIvLen + kCbcBlock + icvLen_ || len > kMaxLen) return -1;
    if (!ValidSeq(esp, seq, esn)) return -1;
    size_t authLen = len - icvLen_;
    size_t ctLen = authLen - kEspHeaderLen - kCbcIvLen;
    if (ctLen % kCbcBlock != 0 || outCap < ctLen) return -1;
    // Authenticate before decrypting (RFC 4303 §3.4.4.1), in constant time.
    uint8_t icv[kMaxIcvLen * 2];
    if (!Icv(esp, authLen, seq, esn, icv)) return -1;
    if (CRYPTO_memcmp(icv, esp + authLen, icvLen_) != 0) {
      *reason = Drop::kIntegrity;
      return -1;
    }
    const uint8_t* ct = esp + kEspHeaderLen + kCbcIvLen;
    uint8_t iv[kCbcIvLen];
    memcpy(iv, esp + kEspHeaderLen, kCbcIvLen);
    uint8_t* dst = DecryptTarget(ct, ctLen, out);
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(dec_.get(), nullptr, nullptr, nullptr, iv) != 1) return -1;
    if (EVP_DecryptUpdate(dec_.get(), dst, &n, ct, static_cast<int>(ctLen)) != 1) return -1;
    if (EVP_DecryptFinal_ex(dec_.get(), dst + n, &fin) != 1) return -1;
    if (static_cast<size_t>(n + fin) != ctLen) return -1;
    if (dst != out) memmove(out, dst, ctLen);
    ssize_t innerLen = CheckTrailer(out, ctLen, nextHeader);
    if (innerLen < 0) return -1;
    *reason = Drop::kNone;
    return innerLen;
  }

 private:
  // HMAC over SPI | seq | IV | ciphertext, then the ESN high half, which is authenticated but
  // not transmitted (RFC 4303 §2.2.1, §3.3.2). `icv` receives the full digest; the first
  // icvLen_ bytes are the truncated ICV (RFC 2404 §2, RFC 4868 §2.3).
  bool Icv(const uint8_t* data, size_t len, uint64_t seq, bool esn, uint8_t* icv) {
    EVP_MAC_CTX* m = mac_.get();
    // A NULL key re-initialises from the keyed state kept by the context: no key schedule and no
    // allocation per packet.
    if (EVP_MAC_init(m, nullptr, 0, nullptr) != 1) return false;
    if (EVP_MAC_update(m, data, len) != 1) return false;
    if (esn) {
      uint8_t hi[4];
      Put32(hi, static_cast<uint32_t>(seq >> 32));
      if (EVP_MAC_update(m, hi, sizeof(hi)) != 1) return false;
    }
    size_t outl = 0;
    return EVP_MAC_final(m, icv, &outl, kMaxIcvLen * 2) == 1 && outl >= icvLen_;
  }

  CipherCtx enc_, dec_, ivGen_;
  MacCtx mac_;
  size_t icvLen_;
  uint64_t ivCounter_ = 0;
};

// Key size in bytes for "aes128", "aes192", "aes256" prefixes; 0 if none.
size_t AesKeyLen(const std::string& s, std::string* rest) {
  static const char* const names[] = {"aes128", "aes192", "aes256"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(names[i]);
    if (s.compare(0, n, names[i]) == 0) {
      *rest = s.substr(n);
      return 16 + 8 * static_cast<size_t>(i);
    }
  }
  return 0;
}

CipherCtx KeyedCipher(const EVP_CIPHER* cipher, const uint8_t* key, bool enc) {
  if (cipher == nullptr) return nullptr;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return nullptr;
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, key, nullptr, enc ? 1 : 0) != 1) {
    return nullptr;
  }
  // ESP does its own padding (RFC 4303 §2.4); PKCS#7 padding must stay off. The flag lives in
  // the context and survives the per-packet re-initialisation with a NULL cipher.
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  return ctx;
}

}  // namespace

const char* DropName(Drop d) {
  switch (d) {
    case Drop::kNone:
      return "none";
    case Drop::kMalformed:
      return "malformed";
    case Drop::kNoSa:
      return "noSa";
    case Drop::kReplay:
      return "replay";
    case Drop::kIntegrity:
      return "integrity";
    case Drop::kPolicy:
      return "policy";
    case Drop::kNoRoute:
      return "noRoute";
    case Drop::kMtu:
      return "mtu";
    case Drop::kQueue:
      return "queue";
    case Drop::kSeqExhausted:
      return "seqExhausted";
    case Drop::kExpired:
      return "expired";
    case Drop::kCount:
      break;
  }
  return "unknown";
}

bool EspHeader(const uint8_t* esp, size_t len, uint32_t* spi, uint32_t* seqLow) {
  if (len < kEspHeaderLen) return false;
  *spi = Get32(esp);
  *seqLow = Get32(esp + 4);
  return true;
}

std::unique_ptr<EspCrypto> EspCrypto::Create(const std::string& encr, const std::string& integ,
                                             const uint8_t* encKey, size_t encKeyLen,
                                             const uint8_t* integKey, size_t integKeyLen,
                                             std::string* err) {
  const Algorithms& algs = Algs();
  std::string mode;
  // 3DES-CBC (RFC 2451), for legacy IKEv1 peers: CBC + HMAC like AES-CBC, 8-byte blocks and IV.
  // Single DES ("des") stays unsupported: its 56-bit key falls to exhaustive search (RFC 8221
  // §5: MUST NOT).
  const bool des3 = encr == "3des";
  size_t keyLen = des3 ? kDes3KeyLen : AesKeyLen(encr, &mode);
  if (keyLen == 0) {
    *err = "unsupported ESP encryption algorithm '" + encr + "'";
    return nullptr;
  }
  int idx = des3 ? 0 : static_cast<int>((keyLen - 16) / 8);

  // strongSwan spells the 16-byte ICV GCM as aesNNNgcm16, aesNNNgcm128 or plain aesNNNgcm.
  if (mode == "gcm16" || mode == "gcm128" || mode == "gcm") {
    if (!integ.empty()) {
      *err = "ESP " + encr + " is an AEAD; no integrity algorithm expected, got '" + integ + "'";
      return nullptr;
    }
    if (encKeyLen != keyLen + kGcmSaltLen) {
      *err = "ESP " + encr + " needs " + std::to_string(keyLen + kGcmSaltLen) +
             " bytes of key material (key + salt), got " + std::to_string(encKeyLen);
      return nullptr;
    }
    CipherCtx ctx = KeyedCipher(algs.gcm[idx], encKey, true);
    // The default GCM IV length is 12 bytes, salt (4) + explicit IV (8): nothing to set.
    if (!ctx) {
      *err = "OpenSSL: cannot set up " + encr;
      return nullptr;
    }
    std::unique_ptr<EspCrypto> r(new (std::nothrow) GcmEsp(std::move(ctx), encKey + keyLen));
    if (!r) *err = "out of memory";
    return r;
  }
  if (!mode.empty()) {
    *err = "unsupported ESP encryption algorithm '" + encr + "'";
    return nullptr;
  }
  if (encKeyLen != keyLen) {
    *err = "ESP " + encr + " needs a " + std::to_string(keyLen) + "-byte key, got " +
           std::to_string(encKeyLen);
    return nullptr;
  }

  const char* digest = nullptr;
  size_t macKeyLen = 0, icvLen = 0;
  if (integ == "sha1" || integ == "sha1_96") {
    digest = "SHA1", macKeyLen = 20, icvLen = 12;  // RFC 2404
  } else if (integ == "md5" || integ == "md5_96") {
    // HMAC-MD5-96 (RFC 2403 §2, §3: 128-bit key, ICV = first 96 bits) for legacy IKEv1 peers.
    // MD5's collision weakness does not break HMAC (RFC 6151 §2.3), but RFC 8221 §6 deprecates
    // it for ESP (MUST NOT): the control plane accepts it only where configured. "MD5" is in
    // OpenSSL 3's default provider.
    digest = "MD5", macKeyLen = 16, icvLen = 12;
  } else if (integ == "sha256" || integ == "sha2_256") {
    digest = "SHA2-256", macKeyLen = 32, icvLen = 16;  // RFC 4868 §2.1
  } else if (integ == "sha384" || integ == "sha2_384") {
    digest = "SHA2-384", macKeyLen = 48, icvLen = 24;
  } else if (integ == "sha512" || integ == "sha2_512") {
    digest = "SHA2-512", macKeyLen = 64, icvLen = 32;
  } else {
    *err = integ.empty() ? "ESP " + encr + " needs an integrity algorithm"
                         : "unsupported ESP integrity algorithm '" + integ + "'";
    return nullptr;
  }
  if (integKeyLen != macKeyLen || integKey == nullptr) {
    *err = "ESP integrity " + integ + " needs a " + std::to_string(macKeyLen) + "-byte key, got " +
           std::to_string(integKeyLen);
    return nullptr;
  }

  const EVP_CIPHER* cbc = des3 ? algs.des3cbc : algs.cbc[idx];
  CipherCtx enc = KeyedCipher(cbc, encKey, true);
  CipherCtx dec = KeyedCipher(cbc, encKey, false);
  uint8_t ivKey[16];
  bool ivKeyOk = RAND_bytes(ivKey, sizeof(ivKey)) == 1;
  CipherCtx ivGen = ivKeyOk ? KeyedCipher(algs.ecb128, ivKey, true) : nullptr;
  OPENSSL_cleanse(ivKey, sizeof(ivKey));
  MacCtx mac(algs.hmac ? EVP_MAC_CTX_new(algs.hmac) : nullptr);
  bool macOk = false;
  if (mac) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
        OSSL_PARAM_construct_end()};
    macOk = EVP_MAC_init(mac.get(), integKey, integKeyLen, params) == 1;
  }
  if (!enc || !dec || !ivGen || !macOk) {
    *err = "OpenSSL: cannot set up " + encr + "/" + integ;
    return nullptr;
  }
  std::unique_ptr<EspCrypto> r;
  if (des3) {
    r.reset(new (std::nothrow) CbcEsp<kDes3Block>(std::move(enc), std::move(dec), std::move(ivGen),
                                                  std::move(mac), icvLen));
  } else {
    r.reset(new (std::nothrow) CbcEsp<kAesBlock>(std::move(enc), std::move(dec), std::move(ivGen),
                                                 std::move(mac), icvLen));
  }
  if (!r) *err = "out of memory";
  return r;
}

}  // namespace twinsec
