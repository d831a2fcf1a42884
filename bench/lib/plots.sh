#!/usr/bin/env bash
# Draw the benchmark's pictures with gnuplot (Debian: gnuplot-nox) from the raw
# series bench/run.sh keeps (see bench/README.md, "Pictures").
#
#   bash bench/lib/plots.sh DATA_DIR OUT_DIR
#
# Draws each picture whose series are in DATA_DIR into OUT_DIR, a PNG:
#   latency.png              W3 and W8: share of events delivered within a latency
#                            (CDF, log scale), p50 and p99 marked
#   throughput-drain.png     W2 worker: events delivered per second over time,
#                            the relay beside claim/complete and the raw-SQL floor
#   throughput-webhooks.png  W8: a backlog delivered per second over time, to
#                            the webhook endpoint and to a SQL handler
#   throughput-kafka.png     W9: the same, to the Kafka mock cluster (last round)
#   w4-sizes.png             W4: sizes of outbox_events, its indexes and the
#                            archive, dead tuples, and events delivered per second
#   w5-backlog.png, w5-latency.png, w7-latency.png: W5 and W7, see plots-scale.sh
#   w6-ratios.png            W6: cost on a full outbox over an empty one, per round, see plots-growth.sh
# Prints "drew FILE" for each. Exits non-zero if gnuplot said anything (an
# error, or a warning such as a series without a valid point): that picture
# is removed rather than left empty or half drawn.
set -uo pipefail

data=${1:?usage: plots.sh DATA_DIR OUT_DIR}
out=${2:?usage: plots.sh DATA_DIR OUT_DIR}
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# meta FILE KEY: the value of a "# KEY value" header line.
meta() { sed -n "s/^# $2 //p" "$1" | head -n 1; }
# commas N: 1234567 -> 1,234,567 (integer part; a fraction is kept).
commas() { printf '%s' "$1" | sed -e ':a' -e 's/^\([0-9]\+\)\([0-9]\{3\}\)/\1,\2/' -e 'ta'; }
# rows FILE: its number of data rows.
rows() { grep -cv '^#' "$1" 2>/dev/null || true; }
# rates FILE [COLUMN]: from rows "t ... delivered ..." (delivered in COLUMN,
# default 2), delivered per second over windows of at least max(0.1 s, 1/40
# of the run), as steps: "start rate" and "end rate" per window. A last
# window shorter than half of that is merged into the one before it (a few
# events over a few ms would draw a spike).
rates() {
    awk -v col="${2:-2}" '
        !/^#/ { n++; t[n] = $1; d[n] = $col }
        END {
            if (n < 2) exit
            w = (t[n] - t[1]) / 40; if (w < 0.1) w = 0.1
            m = 0; a = 1
            for (i = 2; i <= n; i++) {
                if (t[i] - t[a] >= w || i == n) {
                    if (i == n && m > 0 && t[i] - t[a] < w / 2) e[m] = i
                    else if (t[i] > t[a]) { m++; s[m] = a; e[m] = i }
                    a = i
                }
            }
            for (k = 1; k <= m; k++) {
                r = (d[e[k]] - d[s[k]]) / (t[e[k]] - t[s[k]])
                printf "%.3f %.1f\n%.3f %.1f\n", t[s[k]], r, t[e[k]], r
            }
        }' "$1"
}
# draw NAME SCRIPT: run the gnuplot SCRIPT (file) drawing OUT_DIR/NAME.png.
draw() {
    local name=$1 script=$2 png="$out/$1.png"
    rm -f "$png"
    if gnuplot "$script" >"$tmp/$name.err" 2>&1 && [ ! -s "$tmp/$name.err" ] && [ -s "$png" ]; then
        echo "drew $png"
    else
        echo "failed to draw $png:" >&2
        cat "$tmp/$name.err" >&2
        rm -f "$png"
        status=1
    fi
}
# The common look: a PNG 960 x 540, grid, the series' dates in a corner.
preamble() {
    cat <<EOF
set terminal pngcairo size 960,540 font "sans,11" linewidth 1.5 noenhanced
set output "$out/$1.png"
set grid lc rgb "#dddddd"
set border lc rgb "#555555"
set key opaque box lc rgb "#bbbbbb"
set label "$2" at screen 0.99, 0.015 right font ",8" tc rgb "#777777"
EOF
}

# ---------------------------------------------------------------- latency
w3="$data/w3-latency.dat" w8="$data/w8-latency.dat"
plots=() marks=() dates=() sub=()
for f in "$w3" "$w8"; do
    [ -f "$f" ] || continue
    if [ "$(rows "$f")" -lt 1 ]; then echo "$f has no rows" >&2; status=1; continue; fi
    if [ "$f" = "$w3" ]; then what="W3, to a SQL handler (relay)"; color="#1f77b4"; k=3
    else what="W8, to a webhook receiver (sink)"; color="#d62728"; k=8; fi
    p50=$(printf '%.2f' "$(meta "$f" p50_ms)") p99=$(printf '%.2f' "$(meta "$f" p99_ms)") max=$(printf '%.1f' "$(meta "$f" max_ms)")
    title="$what: p50 $p50, p99 $p99, max $max ms"
    sub+=("W$k $(commas "$(meta "$f" events)") events at $(commas "$(meta "$f" rate)")/s for $(meta "$f" seconds) s$(
        [ "$(rows "$f")" -lt "$(meta "$f" events)" ] && echo " ($(commas "$(rows "$f")") drawn)")")
    dates+=("W${k} $(meta "$f" date)")
    marks+=("\$p50_$k << EOD" "$p50 50 \"p50 $p50 ms\"" "EOD" "\$p99_$k << EOD" "$p99 99 \"p99 $p99 ms\"" "EOD")
    plots+=("\"$f\" using (\$2 > 0.01 ? \$2 : 0.01):(100.0 / N$k) smooth cumulative lw 2 lc rgb \"$color\" title \"$title\""
            "\$p50_$k using 1:2 with points pt 7 ps 1.3 lc rgb \"$color\" notitle"
            "\$p50_$k using 1:2:3 with labels left offset 1,-0.6 font \",9\" tc rgb \"$color\" notitle"
            "\$p99_$k using 1:2 with points pt 7 ps 1.3 lc rgb \"$color\" notitle"
            "\$p99_$k using 1:2:3 with labels right offset -1,-0.6 font \",9\" tc rgb \"$color\" notitle")
    stats+=("stats \"$f\" using 2 nooutput" "N$k = STATS_records")
done
if [ ${#plots[@]} -gt 0 ]; then
    {
        preamble latency "series of ${dates[*]}"
        printf '%s\n' "${marks[@]}" "${stats[@]}"
        echo "set title \"Latency from the publishing transaction's commit to delivery (track_commit_timestamp)\\n$(IFS=';'; echo "${sub[*]}" | sed 's/;/; /g')\""
        cat <<'EOF'
set logscale x 10
set xlabel "latency (ms, log scale)"
set ylabel "events delivered within that latency (%)"
set yrange [0:100]
set ytics 10
set mxtics 10
set key bottom right font ",9"
EOF
        printf 'plot '; (IFS=,; printf '%s' "${plots[*]}"); echo
    } >"$tmp/latency.gp"
    draw latency "$tmp/latency.gp"
fi
unset stats

# W5 (capacity) and W7 (many databases): their own file.
. "$(dirname "${BASH_SOURCE[0]}")/plots-scale.sh"

# ---------------------------------------------------------------- backlogs drained
# throughput PICTURE PREFIX LOG TITLE XLABEL YLABEL DATE_NOTE SERIES...: one
# line of events delivered per second for each series (name|label|color) whose
# file DATA/PREFIX-name.dat has at least 2 rows; LOG 1 draws y on a log scale.
# TITLE may say @events@ and @connections@, taken from the first series.
throughput() {
    local picture=$1 prefix=$2 log=$3 title=$4 xlabel=$5 ylabel=$6 note=$7 spec name label color f
    shift 7
    local plots=() dates=() events= conns=
    for spec in "$@"; do
        IFS='|' read -r name label color <<<"$spec"
        f="$data/$prefix-$name.dat"
        [ -f "$f" ] || continue
        rates "$f" >"$tmp/$prefix-$name.rate"
        if [ ! -s "$tmp/$prefix-$name.rate" ]; then echo "$f: fewer than 2 rows" >&2; status=1; continue; fi
        [ -n "$events" ] || { events=$(meta "$f" events); conns=$(meta "$f" connections); }
        dates+=("$(meta "$f" date)")
        local y='2'
        [ "$log" = 1 ] && y='($2 > 1 ? $2 : 1)'
        plots+=("\"$tmp/$prefix-$name.rate\" using 1:$y with lines lw 2 lc rgb \"$color\" title \"$label: $(meta "$f" seconds) s, $(commas "$(meta "$f" rate)") events/s\"")
    done
    [ ${#plots[@]} -gt 0 ] || return 0
    title=${title//@events@/$(commas "$events")}
    title=${title//@connections@/$conns}
    {
        preamble "$picture" "series of ${dates[0]}$note"
        echo "set title \"$title\""
        echo "set xlabel \"$xlabel\""
        echo "set ylabel \"$ylabel\""
        if [ "$log" = 1 ]; then echo 'set logscale y 10'; echo 'set yrange [1:10<*]'; else echo 'set yrange [0:1<*]'; fi
        echo 'set format y "%.0f"'
        echo 'set key top right font ",9"'
        printf 'plot '; (IFS=,; printf '%s' "${plots[*]}"); echo
    } >"$tmp/$picture.gp"
    draw "$picture" "$tmp/$picture.gp"
}

throughput throughput-drain w2worker 0 \
    "W2 worker: a backlog of @events@ events drained, events delivered per second" \
    "time since the drain started (s)" "events delivered per second" "" \
    "worker|relay, no-op SQL subscription|#2ca02c" "outbox|claim/complete, 1 consumer|#1f77b4" \
    "raw|raw-SQL floor, 1 consumer|#7f7f7f"
throughput throughput-webhooks w8-throughput 1 \
    "W8: a backlog of @events@ events delivered, endpoint max_in_flight @connections@, events archived per second" \
    "time since the sink and relay were switched on (s)" "events delivered (archived) per second, log scale" "" \
    "webhook|webhooks to the local receiver|#d62728" "sql|the same backlog to a SQL handler|#1f77b4"
throughput throughput-kafka w9-throughput 0 \
    "W9: a backlog of @events@ events delivered, events archived per second (the run's last round)" \
    "time since the sink and relay were switched on (s)" "events delivered (archived) per second" " (the last round)" \
    "kafka|to the Kafka mock cluster (3 brokers)|#ff7f0e" "sql|the same backlog to a SQL handler|#1f77b4"

# ---------------------------------------------------------------- W4 sizes
# Columns: t published delivered outbox_table outbox_indexes archive_table
# archive_indexes dead_tuples live_tuples autovacuums.
f="$data/w4-sizes.dat"
if [ -f "$f" ]; then
    if [ "$(rows "$f")" -lt 2 ]; then
        echo "$f: fewer than 2 rows" >&2; status=1
    else
        rates "$f" 3 >"$tmp/w4-delivered.rate"
        rates "$f" 2 >"$tmp/w4-published.rate"
        {
            preamble w4-sizes "series of $(meta "$f" date)"
            cat <<EOF
stats "$f" using 10 every ::0::0 nooutput
av = STATS_min
MiB = 1048576.0
set multiplot
set lmargin 11
set rmargin 13
set origin 0, 0.34
set size 1, 0.63
set title "W4: $(commas "$(meta "$f" events)") events published at $(commas "$(meta "$f" rate)")/s while $(meta "$f" consumers) consumers claim and complete, sampled every $(meta "$f" sample_every_s) s"
set xlabel ""
set format x ""
set ylabel "size (MiB)"
set yrange [0:1<*]
set y2label "dead tuples in outbox_events"
# A fixed range: autoscaling y2 warns when a series on it has no point (no
# autovacuum seen in a short run).
stats "$f" using 8 nooutput
set y2range [0:(STATS_max > 0 ? STATS_max * 1.05 : 1)]
set y2tics
set format y2 "%.0f"
set key top left font ",9"
plot "$f" using 1:(\$4 / MiB) with lines lw 2 lc rgb "#1f77b4" title "outbox_events (table, TOAST)", \\
     "$f" using 1:(\$5 / MiB) with lines lw 2 lc rgb "#17becf" title "outbox_events indexes", \\
     "$f" using 1:((\$6 + \$7) / MiB) with lines lw 2 lc rgb "#7f7f7f" title "archive (tables and indexes)", \\
     "$f" using 1:8 axes x1y2 with lines lw 1 dt 2 lc rgb "#d62728" title "dead tuples (right axis)", \\
     "$f" using 1:(d = (\$10 > av ? \$8 : 1/0), av = \$10, d) axes x1y2 with points pt 9 ps 1.2 lc rgb "#d62728" title "autovacuum of outbox_events seen"
unset title
unset y2label
unset y2tics
set y2range [0:1]
set origin 0, 0
set size 1, 0.36
set format x "%g"
set xlabel "time since the consumers started (s)"
set ylabel "events/s"
set format y "%.0f"
set yrange [0:1<*]
set key top right font ",9"
plot "$tmp/w4-delivered.rate" using 1:2 with lines lw 2 lc rgb "#2ca02c" title "delivered", \\
     "$tmp/w4-published.rate" using 1:2 with lines lw 1.5 dt 2 lc rgb "#ff7f0e" title "published"
unset multiplot
EOF
        } >"$tmp/w4-sizes.gp"
        draw w4-sizes "$tmp/w4-sizes.gp"
    fi
fi

. "$(dirname "${BASH_SOURCE[0]}")/plots-growth.sh"

exit $status
