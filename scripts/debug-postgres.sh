#!/usr/bin/env bash
# Build an assert-enabled PostgreSQL 15 from source, once, and print the path
# of its pg_config (on stdout; progress goes to stderr).
#
#   bash scripts/debug-postgres.sh
#   PG_CONFIG=$(bash scripts/debug-postgres.sh) bash scripts/test.sh regress isolation tap
#   bash scripts/test.sh --debug-server regress isolation tap     (the same)
#
# scripts/build-postgres.sh 15.18 cassert: --enable-cassert --enable-debug
# --enable-tap-tests (assertions run, freed memory is clobbered, memory
# contexts are checked), from the orig tarball in shared/postgresql, cached in
# /var/cache/outbox/pg-15.18-cassert (see that script). About 6 minutes on 2 cores.
exec bash "$(dirname "${BASH_SOURCE[0]}")/build-postgres.sh" 15.18 cassert
