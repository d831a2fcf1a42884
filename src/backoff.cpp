// Retry backoff (pure C++, see backoff.hpp).
#include "outbox/pure.hpp"
#include "outbox/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace outbox {

double
backoff_ceiling_ms(int retry, double base_ms, double cap_ms) noexcept
{
    if (retry < 1)
        retry = 1;
    // 2^62 ms is beyond any cap; stop doubling long before overflow.
    double ceiling = base_ms * std::ldexp(1.0, std::min(retry - 1, 62));
    return std::min(ceiling, cap_ms);
}

double
backoff_ms(int retry, double base_ms, double cap_ms, double u) noexcept
{
    u = std::clamp(u, 0.0, 1.0);
    return u * backoff_ceiling_ms(retry, base_ms, cap_ms);
}

} // namespace outbox
