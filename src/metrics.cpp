// Delivery metrics in shared memory (see metrics.hpp).
//
// A hash table (dynahash in shared memory, like pg_stat_statements') keyed
// by database, kind and name, under one LWLock of the named tranche "outbox
// metrics": found and updated under it shared, created and removed under it
// exclusive; an entry's numbers also under its own spinlock (no call, no
// allocation under either). The lag histogram has fixed buckets (kBounds); besides the totals
// since the entry was made (what Prometheus takes), six slices of ten
// seconds each give the last minute's p50, p99 and maximum.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/metrics.hpp"
#include "outbox/settings.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include <cmath>
#include <cstring>

namespace outbox {

namespace {

constexpr int kNameLen = 256;  // names are at most 255 bytes
// Upper bounds of the lag buckets, in seconds; the last bucket has none (+Inf).
constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                              2.5,   5,      10,    30,   60,    300,  900, 3600};
constexpr int kBuckets = sizeof kBounds / sizeof kBounds[0] + 1;
constexpr int kSlices = 6;
constexpr int64 kSliceUsecs = 10 * USECS_PER_SEC;
constexpr const char *kTrancheName = "outbox metrics";

struct Key {
    Oid dboid;
    int kind;
    int has_name;  // a consumer that claims without a name has none (distinct from '')
    char name[kNameLen];
};

struct Slice {
    int64 epoch;  // at / kSliceUsecs of what it holds
    uint64 buckets[kBuckets];
    double max;
};

struct Numbers {
    uint64 counts[kMetricCounts];
    uint64 buckets[kBuckets];
    double sum;
    uint64 dropped;  // the total's: counts whose name found no entry
};

struct Entry {
    Key key;  // first: the hash key
    slock_t mutex;
    TimestampTz since;
    Numbers n;
    Slice slices[kSlices];
};

struct MetricsShared {
    LWLock *lock;
    int named;      // entries of a subscription or consumer (under the lock)
    int named_max;  // outbox.metrics_max_names; the rest of the table is for the totals
};

MetricsShared *shared = nullptr;
HTAB *table = nullptr;  // fixed size: nothing is allocated once the server runs

int
table_size()
{
    return guc_metrics_max_names + guc_max_databases;
}

// ---- What this backend's transaction counted

struct Pending {
    int level;  // transaction nesting level that counted it
    MetricKind kind;
    bool has_name;
    uint32 hash;  // of the name, to compare fast
    char name[kNameLen];
    uint64 counts[kMetricCounts];
    uint64 buckets[kBuckets];
    double sum;
    double max;
};
// Grown when something is counted (where an error may be raised), never at
// commit. In TopMemoryContext.
Pending *pending = nullptr;
int npending = 0;
int pending_cap = 0;

int
bucket_of(double seconds)
{
    int b = 0;
    while (b < kBuckets - 1 && seconds > kBounds[b])
        b++;
    return b;
}

bool
same_name(const Pending &p, const Pending &q)
{
    return p.kind == q.kind && p.has_name == q.has_name && p.hash == q.hash &&
           (!p.has_name || strcmp(p.name, q.name) == 0);
}

Pending *
pending_for(MetricKind kind, const char *name)
{
    if (shared == nullptr)
        return nullptr;
    int level = GetCurrentTransactionNestLevel();
    size_t len = name == nullptr ? 0 : strnlen(name, kNameLen - 1);
    uint32 hash = name == nullptr ? 0 : hash_bytes(reinterpret_cast<const unsigned char *>(name), static_cast<int>(len));
    for (int i = npending - 1; i >= 0; i--) {
        Pending &p = pending[i];
        if (p.level == level && p.kind == kind && p.has_name == (name != nullptr) && p.hash == hash &&
            (name == nullptr || (strncmp(p.name, name, len) == 0 && p.name[len] == '\0')))
            return &p;
    }
    if (npending == pending_cap) {
        int cap = pending_cap == 0 ? 16 : pending_cap * 2;
        pending = static_cast<Pending *>(pending == nullptr
                                             ? MemoryContextAlloc(TopMemoryContext, sizeof(Pending) * cap)
                                             : repalloc(pending, sizeof(Pending) * cap));
        pending_cap = cap;
    }
    Pending &p = pending[npending++];
    memset(&p, 0, sizeof p);
    p.level = level;
    p.kind = kind;
    p.has_name = name != nullptr;
    p.hash = hash;
    if (name != nullptr) {
        memcpy(p.name, name, len);
        p.name[len] = '\0';
    }
    return &p;
}

void
merge_into(Pending &to, const Pending &from)
{
    for (int c = 0; c < kMetricCounts; c++)
        to.counts[c] += from.counts[c];
    for (int b = 0; b < kBuckets; b++)
        to.buckets[b] += from.buckets[b];
    to.sum += from.sum;
    if (from.max > to.max)
        to.max = from.max;
}

// Under the entry's spinlock: add what `p` counted, its lags into the slice
// of `epoch` (the commit's).
void
add_locked(Entry *e, const Pending &p, int64 epoch)
{
    for (int c = 0; c < kMetricCounts; c++)
        e->n.counts[c] += p.counts[c];
    uint64 lags = 0;
    for (int b = 0; b < kBuckets; b++) {
        e->n.buckets[b] += p.buckets[b];
        lags += p.buckets[b];
    }
    e->n.sum += p.sum;
    if (lags == 0)
        return;
    Slice &s = e->slices[((epoch % kSlices) + kSlices) % kSlices];
    if (epoch < s.epoch)
        return;  // a commit older than the slice's (clocks of two backends): the histogram has it
    if (s.epoch != epoch) {
        memset(&s, 0, sizeof s);
        s.epoch = epoch;
    }
    for (int b = 0; b < kBuckets; b++)
        s.buckets[b] += p.buckets[b];
    if (p.max > s.max)
        s.max = p.max;
}

// Add `p` to the entry of `key`, made if missing: found and updated under the
// lock (shared; exclusive to make it), so that a reset cannot remove it
// meanwhile. A subscription's or consumer's entry is made only while fewer
// than outbox.metrics_max_names exist (the totals have the rest of the
// table). False if there is no room.
bool
add_to(const Key &key, const Pending &p, uint64 dropped, TimestampTz now)
{
    int64 epoch = now / kSliceUsecs;
    LWLockAcquire(shared->lock, LW_SHARED);
    Entry *e = static_cast<Entry *>(hash_search(table, &key, HASH_FIND, nullptr));
    if (e == nullptr) {
        LWLockRelease(shared->lock);
        LWLockAcquire(shared->lock, LW_EXCLUSIVE);
        bool named = key.kind != static_cast<int>(MetricKind::Total);
        e = static_cast<Entry *>(hash_search(table, &key, HASH_FIND, nullptr));
        if (e == nullptr && (!named || shared->named < shared->named_max)) {
            bool found;
            // A fixed-size table: HASH_ENTER_NULL gives null when it is full,
            // never an error (this runs at commit).
            e = static_cast<Entry *>(hash_search(table, &key, HASH_ENTER_NULL, &found));
            if (e != nullptr && !found) {
                SpinLockInit(&e->mutex);
                e->since = now;
                memset(&e->n, 0, sizeof e->n);
                memset(e->slices, 0, sizeof e->slices);
                if (named)
                    shared->named++;
            }
        }
    }
    if (e != nullptr) {
        SpinLockAcquire(&e->mutex);
        add_locked(e, p, epoch);
        e->n.dropped += dropped;
        SpinLockRelease(&e->mutex);
    }
    LWLockRelease(shared->lock);
    return e != nullptr;
}

// At commit: add what the transaction counted. Raises nothing, allocates
// nothing.
void
apply_pending() noexcept
{
    if (npending == 0 || shared == nullptr)
        return;
    TimestampTz now = GetCurrentTimestamp();
    Pending total;
    memset(&total, 0, sizeof total);
    uint64 dropped = 0;
    for (int i = 0; i < npending; i++) {
        const Pending &p = pending[i];
        merge_into(total, p);
        Key k;
        memset(&k, 0, sizeof k);
        k.dboid = MyDatabaseId;
        k.kind = static_cast<int>(p.kind);
        k.has_name = p.has_name;
        memcpy(k.name, p.name, kNameLen);
        if (!add_to(k, p, 0, now))
            for (int c = 0; c < kMetricCounts; c++)
                dropped += p.counts[c];
    }
    npending = 0;
    Key key;
    memset(&key, 0, sizeof key);
    key.dboid = MyDatabaseId;
    key.kind = static_cast<int>(MetricKind::Total);
    (void) add_to(key, total, dropped, now);
}

void
xact_callback(XactEvent event, void *) noexcept
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        apply_pending();
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
        // A prepared transaction's counts are not kept: its deliveries are
        // counted by no one (a consumer settling in 2PC is rare).
        npending = 0;
        break;
    default:
        break;
    }
}

// A subtransaction that commits gives its counts to its parent (merged with
// the parent's own for the same name); one that aborts drops them.
void
subxact_callback(SubXactEvent event, SubTransactionId, SubTransactionId, void *) noexcept
{
    if (npending == 0 || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
        return;
    int level = GetCurrentTransactionNestLevel();  // the subtransaction's own, still
    int kept = 0;
    for (int i = 0; i < npending; i++) {
        Pending &p = pending[i];
        if (p.level >= level) {
            if (event == SUBXACT_EVENT_ABORT_SUB)
                continue;
            p.level = level - 1;
            bool merged = false;
            for (int k = 0; k < kept && !merged; k++)
                if (pending[k].level == p.level && same_name(pending[k], p)) {
                    merge_into(pending[k], p);
                    merged = true;
                }
            if (merged)
                continue;
        }
        // The parent's entries come before their children's (made earlier,
        // or relabelled just above), so each name keeps one entry per level.
        if (kept != i)
            pending[kept] = p;
        kept++;
    }
    npending = kept;
}

// The p-quantile of the lags in `buckets` (n of them): linear within its
// bucket, the last one bounded by `max`.
double
quantile(const uint64 *buckets, uint64 n, double q, double max)
{
    double rank = q * static_cast<double>(n);
    uint64 seen = 0;
    for (int b = 0; b < kBuckets; b++) {
        if (buckets[b] == 0)
            continue;
        if (static_cast<double>(seen + buckets[b]) >= rank) {
            double lo = b == 0 ? 0 : kBounds[b - 1];
            double hi = b == kBuckets - 1 ? max : kBounds[b];
            if (hi > max)
                hi = max;
            if (lo > hi)
                lo = hi;
            double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[b]);
            return lo + (hi - lo) * within;
        }
        seen += buckets[b];
    }
    return max;
}

void
require_shmem()
{
    if (shared == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("outbox metrics need the library preloaded"),
                        errhint("Add 'outbox' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

// Remove the entries of the databases `dbs` (n of them); returns how many.
int
remove_entries(const Oid *dbs, int n)
{
    int removed = 0;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, table);
    Entry *e;
    while ((e = static_cast<Entry *>(hash_seq_search(&scan))) != nullptr) {
        bool match = false;
        for (int i = 0; i < n && !match; i++)
            match = e->key.dboid == dbs[i];
        if (!match)
            continue;
        if (e->key.kind != static_cast<int>(MetricKind::Total))
            shared->named--;
        hash_search(table, &e->key, HASH_REMOVE, nullptr);  // allowed during a scan
        removed++;
    }
    LWLockRelease(shared->lock);
    return removed;
}

// The entries of databases that no longer exist give their room back (their
// counters went with the database). Up to 64 databases are looked at a time.
void
purge_dropped_databases()
{
    constexpr int kMaxLook = 64;
    Oid seen[kMaxLook];
    int nseen = 0;
    LWLockAcquire(shared->lock, LW_SHARED);
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, table);
    Entry *e;
    while ((e = static_cast<Entry *>(hash_seq_search(&scan))) != nullptr) {
        bool known = e->key.dboid == MyDatabaseId;
        for (int i = 0; i < nseen && !known; i++)
            known = seen[i] == e->key.dboid;
        if (!known && nseen < kMaxLook)
            seen[nseen++] = e->key.dboid;
    }
    LWLockRelease(shared->lock);
    Oid gone[kMaxLook];
    int ngone = 0;
    for (int i = 0; i < nseen; i++)
        if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(seen[i])))
            gone[ngone++] = seen[i];
    if (ngone > 0)
        (void) remove_entries(gone, ngone);
}

} // namespace

Size
metrics_shmem_size()
{
    return add_size(MAXALIGN(sizeof(MetricsShared)), hash_estimate_size(table_size(), sizeof(Entry)));
}

void
metrics_shmem_request()
{
    RequestAddinShmemSpace(metrics_shmem_size());
    RequestNamedLWLockTranche(kTrancheName, 1);
}

void
metrics_shmem_startup()
{
    bool found;
    shared = static_cast<MetricsShared *>(ShmemInitStruct("outbox metrics", sizeof(MetricsShared), &found));
    if (!found) {
        shared->lock = &(GetNamedLWLockTranche(kTrancheName))->lock;
        shared->named = 0;
        shared->named_max = guc_metrics_max_names;
    }
    HASHCTL info;
    memset(&info, 0, sizeof info);
    info.keysize = sizeof(Key);
    info.entrysize = sizeof(Entry);
    // Every entry made now (init = max) and none later: HASH_FIXED_SIZE.
    table = ShmemInitHash("outbox metrics table", table_size(), table_size(), &info,
                          HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

void
register_metrics_callbacks()
{
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

void
metric_count(MetricKind kind, const char *name, MetricCount what, int n)
{
    Pending *p = pending_for(kind, name);
    if (p != nullptr && n > 0)
        p->counts[static_cast<int>(what)] += static_cast<uint64>(n);
}

void
metric_lag(MetricKind kind, const char *name, TimestampTz due, TimestampTz at)
{
    Pending *p = pending_for(kind, name);
    if (p == nullptr)
        return;
    double lag = at > due ? static_cast<double>(at - due) / USECS_PER_SEC : 0;
    p->buckets[bucket_of(lag)]++;
    p->sum += lag;
    if (lag > p->max)
        p->max = lag;
}

void
metric_delivered(MetricKind kind, const char *name, TimestampTz due, TimestampTz at)
{
    metric_count(kind, name, MetricCount::Delivered);
    metric_lag(kind, name, due, at);
}

} // namespace outbox

using namespace outbox;

// The counters of this database: one row per entry (kind, name, counts, the
// last minute's lag p50, p99 and max with how many lags it holds, the
// cumulative histogram with its bounds, sum and count, since when, and for
// the total the counts dropped for want of an entry).
OUTBOX_SQL_FUNCTION(_outbox_metric_counters)
{
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    constexpr int kCols = 16;
    if (rsinfo->setDesc->natts != kCols)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("_outbox_metric_counters() is declared with %d columns; this library returns %d",
                               rsinfo->setDesc->natts, kCols),
                        errhint("The extension's SQL objects and its library do not match: run ALTER EXTENSION outbox UPDATE.")));
    if (shared == nullptr)
        return (Datum) 0;  // not preloaded: no counters (outbox_metrics() shows the states alone)
    purge_dropped_databases();

    // Copied out first: nothing is allocated under the lock. Counted, then
    // copied (entries made in between wait for the next call).
    int cap = 0;
    HASH_SEQ_STATUS scan;
    Entry *e;
    LWLockAcquire(shared->lock, LW_SHARED);
    hash_seq_init(&scan, table);
    while ((e = static_cast<Entry *>(hash_seq_search(&scan))) != nullptr)
        cap += e->key.dboid == MyDatabaseId ? 1 : 0;
    LWLockRelease(shared->lock);
    Entry *copy = static_cast<Entry *>(palloc(sizeof(Entry) * (cap > 0 ? cap : 1)));
    int n = 0;
    LWLockAcquire(shared->lock, LW_SHARED);
    hash_seq_init(&scan, table);
    while ((e = static_cast<Entry *>(hash_seq_search(&scan))) != nullptr) {
        if (e->key.dboid != MyDatabaseId)
            continue;
        if (n == cap) {
            hash_seq_term(&scan);
            break;
        }
        Entry &c = copy[n++];
        c.key = e->key;
        SpinLockAcquire(&e->mutex);
        c.since = e->since;
        c.n = e->n;
        memcpy(c.slices, e->slices, sizeof c.slices);
        SpinLockRelease(&e->mutex);
    }
    LWLockRelease(shared->lock);

    int64 epoch = GetCurrentTimestamp() / kSliceUsecs;
    Datum bounds[kBuckets];
    for (int b = 0; b < kBuckets; b++)
        bounds[b] = Float8GetDatum(b < kBuckets - 1 ? kBounds[b] : get_float8_infinity());
    ArrayType *bounds_array = construct_array(bounds, kBuckets, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
                                              TYPALIGN_DOUBLE);
    static const char *const kKinds[] = {"subscription", "consumer", "total"};
    for (int i = 0; i < n; i++) {
        const Entry &c = copy[i];
        Datum v[kCols];
        bool isnull[kCols] = {};
        v[0] = CStringGetTextDatum(kKinds[c.key.kind]);
        v[1] = CStringGetTextDatum(c.key.name);
        // A consumer without a name, and the total, have none.
        isnull[1] = !c.key.has_name;
        for (int k = 0; k < kMetricCounts; k++)
            v[2 + k] = Int64GetDatum(static_cast<int64>(c.n.counts[k]));
        // The last minute: the slices of the last six epochs.
        uint64 recent[kBuckets] = {};
        uint64 nrecent = 0;
        double max = 0;
        for (int s = 0; s < kSlices; s++) {
            const Slice &sl = c.slices[s];
            if (sl.epoch <= epoch - kSlices || sl.epoch > epoch)
                continue;
            for (int b = 0; b < kBuckets; b++) {
                recent[b] += sl.buckets[b];
                nrecent += sl.buckets[b];
            }
            if (sl.max > max)
                max = sl.max;
        }
        if (nrecent > 0) {
            v[6] = Float8GetDatum(quantile(recent, nrecent, 0.5, max));
            v[7] = Float8GetDatum(quantile(recent, nrecent, 0.99, max));
            v[8] = Float8GetDatum(max);
        } else {
            isnull[6] = isnull[7] = isnull[8] = true;
        }
        v[9] = Int64GetDatum(static_cast<int64>(nrecent));
        v[10] = PointerGetDatum(bounds_array);
        Datum cumulative[kBuckets];
        uint64 running = 0;
        for (int b = 0; b < kBuckets; b++) {
            running += c.n.buckets[b];
            cumulative[b] = Int64GetDatum(static_cast<int64>(running));
        }
        v[11] = PointerGetDatum(construct_array(cumulative, kBuckets, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
                                                TYPALIGN_DOUBLE));
        v[12] = Float8GetDatum(c.n.sum);
        v[13] = Int64GetDatum(static_cast<int64>(running));
        v[14] = TimestampTzGetDatum(c.since);
        v[15] = Int64GetDatum(static_cast<int64>(c.n.dropped));
        isnull[15] = c.key.kind != static_cast<int>(MetricKind::Total);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
    }
    return (Datum) 0;
}

// Forget this database's counters (they start again from zero). Returns how
// many entries were removed.
OUTBOX_SQL_FUNCTION(outbox_metrics_reset)
{
    require_shmem();
    purge_dropped_databases();
    Oid only = MyDatabaseId;
    PG_RETURN_INT32(remove_entries(&only, 1));
}
