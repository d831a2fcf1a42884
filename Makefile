# outbox: the transactional outbox, inside PostgreSQL (PGXS build, C++17).
EXTENSION    = outbox
EXTVERSION   = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")
MODULE_big   = $(EXTENSION)
OBJS         = $(patsubst %.cpp,%.o,$(sort $(wildcard src/*.cpp)))

# The install script is generated from the current full script; upgrade
# scripts (sql/outbox--A--B.sql) are hand-written, and the install scripts of
# earlier versions (sql/outbox--0.1.0.sql, sql/outbox--0.1.1.sql) are frozen: both are shipped as
# they are (and never cleaned).
DATA_built   = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA         = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql,$(wildcard sql/$(EXTENSION)--*.sql))

TESTS        = $(sort $(wildcard test/sql/*.sql))
REGRESS      = $(patsubst test/sql/%.sql,%,$(TESTS))
# Expected outputs sit at the top (expected/), inputs under test/: pg_regress
# and pg_isolation_regress look for test/sql/<name>.sql and test/specs/<name>.spec
# in the output directory first, and for expected/<name>.out in the input
# directory (PostgreSQL 15 has no --expecteddir; from 16 it defaults to ".",
# the same folder here). Results go to test/results; the two suites share
# test/ (they run one after the other, and their test names differ).
REGRESS_OPTS = --inputdir=. --outputdir=test \
               --temp-instance=test/tmp_regress --temp-config=test/regress.conf \
               --load-extension=$(EXTENSION)
ISOLATION      = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=. --outputdir=test \
                 --temp-instance=test/tmp_isolation --temp-config=test/regress.conf \
                 --load-extension=$(EXTENSION)
TAP_TESTS    = 1
PROVE_TESTS  = $(sort $(wildcard test/t/*.pl))
PROVE_FLAGS  = -I test/t --timer

PG_CONFIG   ?= pg_config
PG_CPPFLAGS  = -I$(srcdir)/include
PG_CXXFLAGS  = -std=c++17 -fno-omit-frame-pointer -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-register
# libcurl: the HTTP sink's transfers; libcrypto: webhook signatures (HMAC-SHA256);
# librdkafka: the Kafka sink's producers.
RDKAFKA_LIBS := $(shell pkg-config --libs rdkafka 2>/dev/null || echo -lrdkafka)
SHLIB_LINK   = -lcurl -lcrypto $(RDKAFKA_LIBS) -lfmt -lstdc++


# Warnings are errors when asked (CI does: make WERROR=1).
ifeq ($(WERROR),1)
PG_CXXFLAGS += -Werror
endif

# JIT bitcode would be built without our C++ flags and is of no use for
# these functions (they are called, not inlined into plans).
override with_llvm = no

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql test/results test/log test/regression.diffs test/regression.out \
              test/tmp_regress test/tmp_isolation tmp_check

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# Each suite on its own, so that CI can run and count all of them.
.PHONY: check-regress check-isolation check-tap
check-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)
check-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
check-tap:
	$(prove_installcheck)

# The release archives, of the committed tree at HEAD (PGXN takes the zip):
# dist/outbox-<version>.zip and .tar.gz, everything under outbox-<version>/.
# scripts/check-release.sh checks them.
DISTNAME = $(EXTENSION)-$(EXTVERSION)
.PHONY: dist
dist:
	mkdir -p dist
	git archive --format=zip --prefix=$(DISTNAME)/ -o dist/$(DISTNAME).zip HEAD
	git archive --format=tar.gz --prefix=$(DISTNAME)/ -o dist/$(DISTNAME).tar.gz HEAD
