// ESP (RFC 4303) encapsulation and decapsulation for one direction of one SA, tunnel mode.
// Pure packet transforms: no sockets, no threads, no global state. One EspCrypto per SA per
// thread (OpenSSL contexts are not shared between threads); the cipher is fetched once per
// process and the key set once per context, so only the IV changes per packet.
#ifndef TWINSEC_ESP_H_
#define TWINSEC_ESP_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <memory>
#include <string>

namespace twinsec {

// Why a packet was dropped. The order is the counter index exposed to JavaScript.
enum class Drop : int {
  kNone = 0,
  kMalformed,     // truncated or garbled ESP, bad padding, unknown next header
  kNoSa,          // unknown SPI inbound / no SA for the route outbound
  kReplay,        // sequence number already seen or left of the window
  kIntegrity,     // ICV (GCM tag / HMAC) did not verify
  kPolicy,        // inner addresses outside the SA's traffic selectors
  kNoRoute,       // no forwarding entry for the destination
  kMtu,           // too big for the tunnel (ICMP sent back when DF was set)
  kQueue,         // a bounded queue was full
  kSeqExhausted,  // outbound without ESN at sequence number 2^32 - 1 (RFC 4303 §3.3.3)
  kExpired,       // the SA reached its hard packet or byte limit (sa_limits.h)
  kCount
};

const char* DropName(Drop d);

// Algorithm names use strongSwan syntax as the IKE side produces them:
//   encr: aes128gcm16 aes192gcm16 aes256gcm16 aes128 aes192 aes256 3des (3DES-CBC, RFC 2451)
//   integ: "" (AEAD) sha1 sha256 sha384 sha512 (HMAC-SHA1-96, -SHA2-256-128, -384-192, -512-256)
//          md5 (HMAC-MD5-96, RFC 2403: 16-byte key, 12-byte ICV)
// For GCM the key is the cipher key followed by the 4-byte salt (RFC 4106 §8.1).
class EspCrypto {
 public:
  static std::unique_ptr<EspCrypto> Create(const std::string& encr, const std::string& integ,
                                           const uint8_t* encKey, size_t encKeyLen,
                                           const uint8_t* integKey, size_t integKeyLen,
                                           std::string* err);
  virtual ~EspCrypto() = default;

  // Bytes ESP adds to an inner packet of `innerLen`: header (8), IV, padding, pad length and
  // next header (2), ICV.
  virtual size_t Overhead(size_t innerLen) const = 0;

  // Writes SPI | seq (low 32 bits) | IV | ciphertext(inner | padding | padlen | nextHeader) | ICV
  // to `out`. With ESN the high 32 bits of `seq` are covered by the ICV (RFC 4303 §2.2.1,
  // RFC 4106 §5) but not sent. Returns the ESP packet length, or -1 if `outCap` is too small.
  virtual ssize_t Encrypt(uint32_t spi, uint64_t seq, bool esn, uint8_t nextHeader,
                          const uint8_t* inner, size_t innerLen, uint8_t* out, size_t outCap) = 0;

  // Verifies and decrypts an ESP packet whose full 64-bit sequence number the caller inferred
  // (replay.h). Writes the inner packet to `out` (may equal esp + 8 + ivLen for in-place use),
  // returns its length and the next header, or -1 with `*reason` set (kMalformed, kIntegrity).
  virtual ssize_t Decrypt(const uint8_t* esp, size_t len, uint64_t seq, bool esn, uint8_t* out,
                          size_t outCap, uint8_t* nextHeader, Drop* reason) = 0;
};

// Reads SPI and the low 32 bits of the sequence number; false if `len` < 8.
bool EspHeader(const uint8_t* esp, size_t len, uint32_t* spi, uint32_t* seqLow);

}  // namespace twinsec

#endif  // TWINSEC_ESP_H_
