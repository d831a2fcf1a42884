// Standard Webhooks signing (pure C++, see webhook_signature.hpp).
//
// The HMAC is OpenSSL's (libcrypto's EVP_MAC, fed the id, the timestamp and
// the body in pieces, so the body is never copied). Base64 is our own: the
// secret comes from a user, and OpenSSL's EVP_DecodeBlock accepts what it
// should refuse (it skips surrounding whitespace and reports padding as
// decoded zero bytes), while a strict decoder is a few lines.
#include "outbox/pure.hpp"
#include "outbox/webhook_signature.hpp"

#include <fmt/format.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace outbox {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of a base64 character, -1 for anything else.
int
base64_value(unsigned char c) noexcept
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

struct MacDeleter {
    void operator()(EVP_MAC *m) const noexcept { EVP_MAC_free(m); }
};
struct MacCtxDeleter {
    void operator()(EVP_MAC_CTX *c) const noexcept { EVP_MAC_CTX_free(c); }
};

// HMAC-SHA256 of the pieces, concatenated, into out (32 bytes).
void
hmac_sha256(const std::string &key, std::initializer_list<std::string_view> pieces, unsigned char out[32])
{
    // Fetched once per process: a fetch walks OpenSSL's provider tables.
    static const std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!mac)
        throw std::runtime_error("libcrypto has no HMAC");
    std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter> ctx(EVP_MAC_CTX_new(mac.get()));
    if (!ctx)
        throw std::bad_alloc();
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char *>(key.data()), key.size(), params) != 1)
        throw std::runtime_error("libcrypto could not start an HMAC-SHA256");
    for (std::string_view p : pieces)
        if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char *>(p.data()), p.size()) != 1)
            throw std::runtime_error("libcrypto could not compute an HMAC-SHA256");
    size_t len = 0;
    if (EVP_MAC_final(ctx.get(), out, &len, 32) != 1 || len != 32)
        throw std::runtime_error("libcrypto could not finish an HMAC-SHA256");
}

// The HMAC key of a "whsec_<base64>" secret.
std::string
secret_key(std::string_view secret)
{
    const std::string_view prefix(kWebhookSecretPrefix);
    if (secret.substr(0, prefix.size()) != prefix)
        throw std::invalid_argument("webhook secret must start with \"whsec_\"");
    std::string key;
    const char *why = nullptr;
    if (!base64_decode(secret.substr(prefix.size()), key, &why))
        throw std::invalid_argument(fmt::format("webhook secret is not \"whsec_\" followed by base64: {}", why));
    if (key.size() < kWebhookSecretMinBytes || key.size() > kWebhookSecretMaxBytes)
        throw std::invalid_argument(fmt::format("webhook secret must hold {} to {} bytes, not {}",
                                                kWebhookSecretMinBytes, kWebhookSecretMaxBytes, key.size()));
    return key;
}

// The spec signs "id.timestamp.body": a '.' in the id, or a timestamp that is
// not an integer, would make two different messages sign alike.
void
check_signed_fields(std::string_view id, std::string_view timestamp)
{
    if (id.empty())
        throw std::invalid_argument("webhook id must not be empty");
    if (id.find('.') != std::string_view::npos)
        throw std::invalid_argument("webhook id must not contain \".\"");
    if (timestamp.empty() || timestamp.size() > 20)
        throw std::invalid_argument("webhook timestamp must be 1 to 20 decimal digits");
    for (char c : timestamp)
        if (c < '0' || c > '9')
            throw std::invalid_argument("webhook timestamp must be decimal digits (unix seconds)");
}

std::string
sign_with_key(const std::string &key, std::string_view id, std::string_view timestamp, std::string_view body)
{
    unsigned char mac[32];
    hmac_sha256(key, {id, ".", timestamp, ".", body}, mac);
    return "v1," + base64_encode(mac, sizeof mac);
}

} // namespace

std::string
base64_encode(const unsigned char *data, std::size_t n)
{
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned) data[i] << 16 | (unsigned) data[i + 1] << 8 | data[i + 2];
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += kAlphabet[v >> 6 & 63];
        out += kAlphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned) data[i] << 16;
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += "==";
    } else if (n - i == 2) {
        unsigned v = (unsigned) data[i] << 16 | (unsigned) data[i + 1] << 8;
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += kAlphabet[v >> 6 & 63];
        out += '=';
    }
    return out;
}

bool
base64_decode(std::string_view text, std::string &out, const char **why)
{
    out.clear();
    // Padding, if any, completes the last group of four.
    std::size_t pad = 0;
    while (pad < 2 && !text.empty() && text.back() == '=') {
        text.remove_suffix(1);
        pad++;
    }
    if (pad > 0 && (text.size() + pad) % 4 != 0) {
        *why = "wrong padding";
        return false;
    }
    if (text.size() % 4 == 1) {
        *why = "wrong length";
        return false;
    }
    out.reserve(text.size() / 4 * 3 + 2);
    unsigned acc = 0;
    int bits = 0;
    for (unsigned char c : text) {
        int v = base64_value(c);
        if (v < 0) {
            *why = c == '=' ? "wrong padding" : "a character outside the base64 alphabet";
            return false;
        }
        acc = (acc << 6 | static_cast<unsigned>(v)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>(acc >> bits & 0xFF);
        }
    }
    // The bits left over after the last whole byte must be zero.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        *why = "non-zero bits after the last byte";
        return false;
    }
    return true;
}

std::string
webhook_signature(std::string_view secret, std::string_view id, std::string_view timestamp, std::string_view body)
{
    check_signed_fields(id, timestamp);
    return sign_with_key(secret_key(secret), id, timestamp, body);
}

std::string
webhook_signature_header(const std::vector<std::string_view> &secrets, std::string_view id,
                         std::string_view timestamp, std::string_view body)
{
    if (secrets.empty())
        throw std::invalid_argument("no webhook secret given");
    if (secrets.size() > kMaxWebhookSecrets)
        throw std::invalid_argument(
            fmt::format("at most {} webhook secrets can sign at once, not {}", kMaxWebhookSecrets, secrets.size()));
    check_signed_fields(id, timestamp);
    std::string header;
    header.reserve(secrets.size() * (kWebhookSignatureLength + 1));
    for (std::size_t i = 0; i < secrets.size(); i++) {
        std::string key;
        try {
            key = secret_key(secrets[i]);
        } catch (const std::invalid_argument &e) {
            if (secrets.size() == 1)
                throw;
            throw std::invalid_argument(fmt::format("{} (secret {} of {})", e.what(), i + 1, secrets.size()));
        }
        if (i > 0)
            header += ' ';
        header += sign_with_key(key, id, timestamp, body);
    }
    return header;
}

std::vector<std::string_view>
split_webhook_secrets(std::string_view secrets)
{
    std::vector<std::string_view> out;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::size_t i = 0;
    while (i < secrets.size()) {
        while (i < secrets.size() && space(secrets[i]))
            i++;
        std::size_t start = i;
        while (i < secrets.size() && !space(secrets[i]))
            i++;
        if (i > start)
            out.push_back(secrets.substr(start, i - start));
    }
    return out;
}

std::string
make_webhook_secret(const unsigned char *random_bytes, std::size_t n)
{
    if (n < kWebhookSecretMinBytes || n > kWebhookSecretMaxBytes)
        throw std::invalid_argument(fmt::format("a webhook secret needs {} to {} random bytes, not {}",
                                                kWebhookSecretMinBytes, kWebhookSecretMaxBytes, n));
    return kWebhookSecretPrefix + base64_encode(random_bytes, n);
}

bool
webhook_signature_into(std::string_view secrets, std::string_view id, std::string_view timestamp,
                       std::string_view body, char *out, std::size_t cap)
{
    std::string result;
    bool ok = true;
    try {
        result = webhook_signature_header(split_webhook_secrets(secrets), id, timestamp, body);
    } catch (const std::invalid_argument &e) {
        result = e.what();
        ok = false;
    }
    if (cap == 0)
        throw std::length_error("webhook_signature_into: no room for the result");
    std::size_t n = std::min(result.size(), cap - 1);
    if (ok && n < result.size())
        throw std::length_error("webhook_signature_into: the header does not fit");
    std::memcpy(out, result.data(), n);
    out[n] = '\0';
    return ok;
}

} // namespace outbox
