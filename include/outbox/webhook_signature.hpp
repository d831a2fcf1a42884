// Standard Webhooks signing (https://www.standardwebhooks.com, spec 1.0.0):
// the `webhook-signature` header of a delivery, and new `whsec_` secrets.
// Implemented in pure C++ (src/webhook_signature.cpp, see outbox/pure.hpp);
// this interface is plain C++ that both sides may include: PostgreSQL-facing
// code calls only webhook_signature_into(), through outbox::cpp_call.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace outbox {

// A secret is "whsec_" followed by the standard base64 (padding optional) of
// this many random bytes; the HMAC key is those decoded bytes.
constexpr std::size_t kWebhookSecretMinBytes = 24;
constexpr std::size_t kWebhookSecretMaxBytes = 64;
constexpr const char *kWebhookSecretPrefix = "whsec_";
// At most this many secrets sign one delivery (an endpoint's current secret
// and those still valid after a rotation).
constexpr std::size_t kMaxWebhookSecrets = 8;
// "v1," + base64 of a SHA-256 HMAC (44 characters).
constexpr std::size_t kWebhookSignatureLength = 47;
// The longest header value: kMaxWebhookSecrets signatures, space-separated.
constexpr std::size_t kMaxWebhookSignatureHeader = kMaxWebhookSecrets * (kWebhookSignatureLength + 1);

// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the key of `secret`.
// Throws std::invalid_argument (naming the problem, never quoting the secret)
// for a malformed secret, an empty id or one with a '.', or a timestamp that
// is not decimal digits; std::bad_alloc; std::runtime_error if libcrypto fails.
std::string webhook_signature(std::string_view secret, std::string_view id, std::string_view timestamp,
                              std::string_view body);

// The `webhook-signature` header value: one signature per secret, in order,
// separated by single spaces (a rotation signs with the old and the new
// secret, so receivers holding either accept the delivery). Throws as
// webhook_signature() does, and std::invalid_argument for no secrets or more
// than kMaxWebhookSecrets; the message says which secret (1-based) is bad.
std::string webhook_signature_header(const std::vector<std::string_view> &secrets, std::string_view id,
                                     std::string_view timestamp, std::string_view body);

// The secrets of a whitespace-separated list ("whsec_a whsec_b"): how SQL
// passes a rotation's secrets in one text argument.
std::vector<std::string_view> split_webhook_secrets(std::string_view secrets);

// "whsec_" + base64 of random_bytes (24 to 64 of them, from a strong random
// source such as pg_strong_random). Throws std::invalid_argument for another
// count.
std::string make_webhook_secret(const unsigned char *random_bytes, std::size_t n);

// For PostgreSQL-facing code (only trivially destructible types cross):
// webhook_signature_header() of split_webhook_secrets(secrets), written
// NUL-terminated into out. Returns true then; returns false with the message
// of a malformed argument in out instead (the caller raises 22023 with it).
// cap must be at least kMaxWebhookSignatureHeader + 1 (std::length_error
// otherwise). Throws std::bad_alloc, or std::runtime_error if libcrypto
// fails: call it through cpp_call.
bool webhook_signature_into(std::string_view secrets, std::string_view id, std::string_view timestamp,
                            std::string_view body, char *out, std::size_t cap);

// Standard base64 (RFC 4648 §4) of data, with padding.
std::string base64_encode(const unsigned char *data, std::size_t n);

// Decode standard base64 into out. Padding is optional; whitespace and
// characters outside the alphabet (including base64url's - and _) are
// refused, as are a length that no encoding has and non-zero bits after the
// last byte (so every byte string has one accepted spelling). Returns false
// for malformed input, with *why set to a static description.
bool base64_decode(std::string_view text, std::string &out, const char **why);

} // namespace outbox
