#!/usr/bin/env bash
# Does a change of sql/outbox.sql change what CREATE EXTENSION installs?
# Installs the extension from an older sql/outbox.sql and from the working
# tree's, each in two fresh databases of a throwaway cluster (in the default
# schema, and with SCHEMA outbox), and compares them: the messages of CREATE
# EXTENSION, pg_dump --schema-only, pg_dump --schema-only --binary-upgrade
# (which dumps every member of the extension, with its privileges), and a
# catalog listing (members, every pg_depend and pg_shdepend row of the
# extension and its members, pg_extension.extconfig in order, functions with
# their definitions and ACLs, relations, columns, constraints, indexes,
# sequences, types, comments, pg_init_privs, the schema's ACL, the roles and
# their memberships). OIDs, transaction ids and pg_dump's random \restrict key
# are masked; everything else must be identical. Each install of the two
# creates the extension's roles itself (the older one's are dropped first).
#
#   bash scripts/compare-install.sh [REV | FILE]
#       REV: the git revision whose sql/outbox.sql is the reference (default
#       HEAD); FILE: a copy of an install script to compare with instead.
#
# Prints one line per comparison (and the diff of any that differ), then
# "N identical, N different"; exits 1 if any differs. Run as root, it works
# in a copy of the tree owned by the postgres user (see scripts/lib.sh).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"

# --temp FILE: (internal) a copy of the reference to remove once read.
temp=
[ "${1:-}" = --temp ] && { temp=$2; shift; }
ref=${1:-HEAD}
if [ ! -f "$ref" ]; then
    # Take the reference from git now: the copy of the tree made for the
    # unprivileged run has no .git.
    temp=$(mktemp /tmp/outbox-compare-ref.XXXXXX)
    if ! git -C "$outbox_src" show "$ref:sql/outbox.sql" >"$temp"; then
        echo "no sql/outbox.sql at revision $ref"; rm -f "$temp"; exit 1
    fi
    chmod 644 "$temp"
    [ "$(id -u)" = 0 ] && chown "${OUTBOX_TEST_USER:-postgres}" "$temp"
    ref=$temp
fi
ref=$(cd "$(dirname "$ref")" && pwd)/$(basename "$ref")
if [ -n "$temp" ]; then
    outbox_run_unprivileged "$outbox_src/scripts/compare-install.sh" --temp "$ref" "$ref"
else
    outbox_run_unprivileged "$outbox_src/scripts/compare-install.sh" "$ref"
fi

work=$OUTBOX_WORK
cd "$outbox_src"
echo "== build and install into a private copy of $("$outbox_pg_config" --version)"
pbin=$(outbox_private_install "$work/pg") || exit 1
version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" outbox.control)
extdir=$work/pg$("$outbox_pg_config" --sharedir)/extension
script=$extdir/outbox--$version.sql
cp "$script" "$work/new.sql"
cp "$ref" "$work/old.sql" || exit 1
[ -n "$temp" ] && rm -f "$temp"
echo "== reference: $ref; compared: sql/outbox.sql of the working tree (outbox--$version.sql)"

data=$work/compare-data out=$work/compare-out
rm -rf "$data" "$out" && mkdir -p "$out"
"$pbin/initdb" -D "$data" -A trust -U postgres --no-sync >"$out/initdb.log" || exit 1
port=$(outbox_free_port)
cat >>"$data/postgresql.conf" <<EOF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
fsync = off
EOF
"$pbin/pg_ctl" -D "$data" -l "$out/server.log" -w start >/dev/null || exit 1
trap '"$pbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null' EXIT
export PGHOST=$work PGPORT=$port PGUSER=postgres
psql=("$pbin/psql" -X -q -v ON_ERROR_STOP=1)

cat >"$out/catalog.sql" <<'EOF'
\pset format unaligned
\pset tuples_only on
\pset pager off
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) || ' deptype=' || d.deptype::text
  FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND x.extname = 'outbox'
 ORDER BY 1;
WITH m AS (
  SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
   WHERE d.refclassid = 'pg_extension'::regclass AND x.extname = 'outbox'
  UNION SELECT 'pg_extension'::regclass, oid FROM pg_extension WHERE extname = 'outbox')
SELECT 'depend ' || pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
       || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' ' || d.deptype::text
  FROM pg_depend d
 WHERE (d.classid, d.objid) IN (SELECT classid, objid FROM m)
    OR (d.refclassid, d.refobjid) IN (SELECT classid, objid FROM m)
 ORDER BY 1;
WITH m AS (
  SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
   WHERE d.refclassid = 'pg_extension'::regclass AND x.extname = 'outbox')
SELECT 'shdepend ' || pg_describe_object(s.classid, s.objid, s.objsubid) || ' -> '
       || pg_describe_object(s.refclassid, s.refobjid, 0) || ' ' || s.deptype::text
  FROM pg_shdepend s JOIN pg_database db ON db.oid = s.dbid AND db.datname = current_database()
 WHERE (s.classid, s.objid) IN (SELECT classid, objid FROM m)
    OR s.classid = 'pg_namespace'::regclass
 ORDER BY 1;
SELECT 'extension ' || extname || ' ' || extversion || ' ' || extnamespace::regnamespace || ' '
       || extrelocatable || ' ' || pg_get_userbyid(extowner) || ' '
       || coalesce(extconfig::regclass[]::text, '-') || ' ' || coalesce(extcondition::text, '-')
  FROM pg_extension WHERE extname = 'outbox';
SELECT 'proc ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, 'default')
       || ' owner=' || pg_get_userbyid(p.proowner) || ' lang=' || l.lanname
       || ' config=' || coalesce(p.proconfig::text, '-') || ' cost=' || p.procost || ' rows=' || p.prorows
       || ' secdef=' || p.prosecdef || ' vol=' || p.provolatile::text || ' par=' || p.proparallel::text
       || ' strict=' || p.proisstrict || ' leak=' || p.proleakproof
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
       || E'\n' || pg_get_functiondef(p.oid)
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox')
 ORDER BY p.oid::regprocedure::text;
SELECT 'rel ' || c.oid::regclass || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, 'default')
       || ' owner=' || pg_get_userbyid(c.relowner) || ' opts=' || coalesce(c.reloptions::text, '-')
       || ' persist=' || c.relpersistence::text || ' ri=' || c.relreplident::text || ' part=' || c.relispartition
       || ' bound=' || coalesce(pg_get_expr(c.relpartbound, c.oid), '-')
       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
  FROM pg_class c
 WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox')
 ORDER BY 1;
SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' #' || a.attnum || ' '
       || format_type(a.atttypid, a.atttypmod) || ' nn=' || a.attnotnull
       || ' def=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-') || ' id=' || a.attidentity::text
       || ' gen=' || a.attgenerated::text || ' acl=' || coalesce(a.attacl::text, '-')
       || ' opts=' || coalesce(a.attoptions::text, '-') || ' stat=' || a.attstattarget
       || ' coll=' || a.attcollation::regcollation
       || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '-')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox')
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;
SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid)
       || ' comment=' || coalesce(obj_description(oid, 'pg_constraint'), '-')
  FROM pg_constraint WHERE connamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox')
 ORDER BY 1;
SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox') ORDER BY 1;
SELECT 'seq ' || s.seqrelid::regclass || ' ' || s.seqtypid::regtype || ' ' || s.seqstart || ' ' || s.seqincrement
       || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' ' || s.seqcycle
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox') ORDER BY 1;
SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text || ' acl=' || coalesce(t.typacl::text, 'default')
       || ' owner=' || pg_get_userbyid(t.typowner)
       || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
       || ' labels=' || coalesce((SELECT string_agg(e.enumlabel || ':' || e.enumsortorder, ',' ORDER BY e.enumsortorder)
                                    FROM pg_enum e WHERE e.enumtypid = t.oid), '-')
  FROM pg_type t WHERE t.typnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'outbox')
 ORDER BY 1;
SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' = ' || d.description
  FROM pg_description d WHERE d.objoid >= 16384 ORDER BY 1;
SELECT 'initpriv ' || pg_describe_object(i.classoid, i.objoid, i.objsubid) || ' ' || i.privtype::text
       || ' ' || i.initprivs::text
  FROM pg_init_privs i WHERE i.objoid >= 16384 ORDER BY 1;
SELECT 'schema ' || nspname || ' acl=' || coalesce(nspacl::text, 'default') || ' owner=' || pg_get_userbyid(nspowner)
  FROM pg_namespace WHERE nspname IN ('public', 'outbox') ORDER BY 1;
SELECT 'defacl ' || pg_get_userbyid(defaclrole) || ' ' || defaclobjtype::text || ' ' || defaclacl::text
  FROM pg_default_acl ORDER BY 1;
SELECT 'role ' || r.rolname || ' login=' || r.rolcanlogin || ' super=' || r.rolsuper || ' inherit=' || r.rolinherit
       || ' comment=' || coalesce(shobj_description(r.oid, 'pg_authid'), '-')
  FROM pg_roles r WHERE r.rolname LIKE 'outbox%' ORDER BY 1;
SELECT 'member-of ' || m.member::regrole || ' in ' || m.roleid::regrole || ' grantor=' || m.grantor::regrole
       || ' admin=' || m.admin_option
  FROM pg_auth_members m
 WHERE m.roleid::regrole::text LIKE 'outbox%' OR m.member::regrole::text LIKE 'outbox%' ORDER BY 1;
SELECT 'event-trigger ' || evtname FROM pg_event_trigger ORDER BY 1;
EOF

# capture SIDE: install SIDE's script in databases SIDE_pub and SIDE_sch and
# record what they hold.
capture() {
    local side=$1 v db
    cp "$work/$side.sql" "$script"
    for v in pub sch; do
        db=${side}_$v
        "${psql[@]}" -d postgres -c "CREATE DATABASE $db" || return 1
        if [ $v = sch ]; then
            "${psql[@]}" -d $db -c "CREATE SCHEMA outbox" -c "CREATE EXTENSION outbox SCHEMA outbox" >"$out/$db.create" 2>&1
        else
            "${psql[@]}" -d $db -c "CREATE EXTENSION outbox" >"$out/$db.create" 2>&1
        fi || { echo "CREATE EXTENSION failed with the $side script:"; cat "$out/$db.create"; return 1; }
        "${psql[@]}" -d $db -f "$out/catalog.sql" >"$out/$db.catalog" || return 1
        "$pbin/pg_dump" -d $db --schema-only >"$out/$db.dump" || return 1
        "$pbin/pg_dump" -d $db --schema-only --binary-upgrade |
            grep -v 'binary_upgrade_set_next_\|binary_upgrade_set_missing_value' >"$out/$db.bu-dump" || return 1
        # Mask what differs between any two installs: OIDs (and the toast
        # tables named after them), transaction ids, the database's name and
        # pg_dump's random \restrict key.
        sed -i -E -e "s/$db/DBNAME/g" -e 's/pg_toast_[0-9]+/pg_toast_N/g' \
            -e "s/relfrozenxid = '[0-9]+'/relfrozenxid = 'XID'/" -e "s/WHERE oid = '[0-9]+';/WHERE oid = 'OID';/" \
            -e "s/'\\{[0-9,]+\\}'/'{OIDS}'/" -e 's/^\\(un)?restrict .*/\\\1restrict KEY/' \
            "$out/$db.catalog" "$out/$db.dump" "$out/$db.bu-dump"
    done
}

status=0
capture old || status=1
if [ $status = 0 ]; then
    "${psql[@]}" -d postgres -c "DROP DATABASE old_pub" -c "DROP DATABASE old_sch" \
        -c "DROP ROLE outbox_admin" -c "DROP ROLE outbox_publisher" -c "DROP ROLE outbox_consumer" || status=1
fi
[ $status = 0 ] && { capture new || status=1; }
cp "$work/new.sql" "$script"
[ $status = 0 ] || { echo "0 identical, 1 different"; exit 1; }

same=0 differ=0
for v in pub sch; do
    for k in create catalog dump bu-dump; do
        if diff -u "$out/old_$v.$k" "$out/new_$v.$k" >"$out/diff_$v.$k"; then
            echo "identical: $v.$k ($(wc -l <"$out/new_$v.$k") lines)"
            same=$((same + 1))
        else
            echo "DIFFERENT: $v.$k"; cat "$out/diff_$v.$k"
            differ=$((differ + 1)); status=1
        fi
    done
done
echo "$same identical, $differ different"
exit $status
