// The relay's note of the handler call in progress (see inflight.hpp).
#include "outbox/pg.hpp"
#include "outbox/inflight.hpp"

extern "C" {
#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
}

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace outbox {

namespace {

constexpr uint32 kMagic = 0x4F424E31;  // "OBN1"
constexpr const char *kDir = "pg_outbox";

struct Record {
    uint32 magic;  // kMagic while a note is set, 0 when cleared
    InflightNote note;
};

int note_fd = -1;
bool note_set = false;

void
write_record(const Record &r)
{
    if (note_fd < 0)
        return;
    ssize_t n = pwrite(note_fd, &r, sizeof r, 0);
    if (n != static_cast<ssize_t>(sizeof r)) {
        int save = errno;
        ereport(WARNING, (errcode_for_file_access(),
                          errmsg("outbox relay: could not write its note of the handler in progress: %s",
                                 n < 0 ? strerror(save) : "short write"),
                          errdetail("A poison event that ends the relay's process will not have its attempt counted."),
                          errhint("Check the space and permissions of the data directory's %s folder.", kDir)));
        close(note_fd);
        note_fd = -1;
    }
}

} // namespace

bool
inflight_open(Oid dboid, InflightNote *left)
{
    char path[MAXPGPATH];
    if (MakePGDirectory(kDir) < 0 && errno != EEXIST) {
        ereport(WARNING, (errcode_for_file_access(), errmsg("outbox relay: could not create directory \"%s\": %m", kDir)));
        return false;
    }
    snprintf(path, sizeof path, "%s/relay_%u", kDir, dboid);
    note_fd = open(path, O_RDWR | O_CREAT | PG_BINARY | O_CLOEXEC, pg_file_create_mode);
    if (note_fd < 0) {
        ereport(WARNING, (errcode_for_file_access(), errmsg("outbox relay: could not open file \"%s\": %m", path)));
        return false;
    }
    Record r;
    memset(&r, 0, sizeof r);
    bool found = pread(note_fd, &r, sizeof r, 0) == static_cast<ssize_t>(sizeof r) && r.magic == kMagic;
    if (found) {
        *left = r.note;
        left->subscription[kInflightSubscriptionLen - 1] = '\0';
    }
    note_set = true;  // clear whatever is there
    inflight_clear();
    return found;
}

void
inflight_set(TransactionId xid, const pg_uuid_t *id, const char *subscription)
{
    if (note_fd < 0)
        return;
    Record r;
    memset(&r, 0, sizeof r);
    r.magic = kMagic;
    r.note.xid = xid;
    r.note.event = *id;
    strlcpy(r.note.subscription, subscription, kInflightSubscriptionLen);
    write_record(r);
    note_set = true;
}

void
inflight_clear()
{
    if (!note_set || note_fd < 0)
        return;
    Record r;
    memset(&r, 0, sizeof r);
    write_record(r);
    note_set = false;
}

} // namespace outbox
