// Retry backoff: exponential, capped, with full jitter (pure C++).
#pragma once

#include <cstdint>

namespace outbox {

// Upper bound of the wait before retry number `retry` (1 for the first retry):
// min(cap_ms, base_ms * 2^(retry-1)), in milliseconds.
double backoff_ceiling_ms(int retry, double base_ms, double cap_ms) noexcept;

// The wait before retry number `retry`, given a uniform random number u in
// [0, 1): full jitter, u * ceiling.
double backoff_ms(int retry, double base_ms, double cap_ms, double u) noexcept;

// What a failed attempt leads to: given the failures so far (before this one)
// and the maximum retries, is this the last attempt?
constexpr bool
attempts_exhausted(int failures_before, int max_retries) noexcept
{
    // Attempt number failures_before + 1 just failed; 1 + max_retries attempts are allowed.
    return failures_before >= max_retries;
}

} // namespace outbox
