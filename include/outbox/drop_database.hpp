// DROP DATABASE of a database the relay serves: its worker leaves first.
#pragma once

namespace outbox {

// From _PG_init under shared_preload_libraries: a ProcessUtility hook that,
// before DROP DATABASE runs, asks that database's relay worker to leave (and
// the launcher not to start it again while the DROP has its time).
void install_drop_database_hook();

} // namespace outbox
