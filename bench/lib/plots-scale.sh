# W5 and W7's pictures, sourced by bench/lib/plots.sh (its data, out, tmp,
# status, meta, commas, rows, rates, draw and preamble):
#   w5-backlog.png   W5: the outbox backlog over the unthrottled run, and the
#                    events the relay delivered per second, synchronous_commit on and off
#   w5-latency.png   W5: commit -> handler latency at 80 % of the capacity (CDF)
#   w7-latency.png   W7: commit -> handler latency of single events, N databases
#                    served against 1 (CDF)

# cdf_picture NAME TITLE FILE LABEL COLOR [FILE LABEL COLOR ...]: the share of
# events within a latency (log scale), p50 and p99 marked, as latency.png.
cdf_picture() {
    local name=$1 title=$2 f label color i=0 plots=() marks=() st=() dates=() p50 p99 max
    shift 2
    while [ $# -ge 3 ]; do
        f=$1 label=$2 color=$3; shift 3
        [ -f "$f" ] || continue
        if [ "$(rows "$f")" -lt 1 ]; then echo "$f has no rows" >&2; status=1; continue; fi
        i=$((i + 1))
        p50=$(printf '%.2f' "$(meta "$f" p50_ms)") p99=$(printf '%.2f' "$(meta "$f" p99_ms)") max=$(printf '%.1f' "$(meta "$f" max_ms)")
        dates+=("$(meta "$f" date)")
        marks+=("\$m50_$i << EOD" "$p50 50 \"p50 $p50 ms\"" "EOD" "\$m99_$i << EOD" "$p99 99 \"p99 $p99 ms\"" "EOD")
        st+=("stats \"$f\" using 2 nooutput" "N$i = STATS_records")
        plots+=("\"$f\" using (\$2 > 0.01 ? \$2 : 0.01):(100.0 / N$i) smooth cumulative lw 2 lc rgb \"$color\" title \"$label: $(commas "$(meta "$f" events)") events, p50 $p50, p99 $p99, max $max ms\""
                "\$m50_$i using 1:2 with points pt 7 ps 1.3 lc rgb \"$color\" notitle"
                "\$m50_$i using 1:2:3 with labels left offset 1,-0.6 font \",9\" tc rgb \"$color\" notitle"
                "\$m99_$i using 1:2 with points pt 7 ps 1.3 lc rgb \"$color\" notitle"
                "\$m99_$i using 1:2:3 with labels right offset -1,-0.6 font \",9\" tc rgb \"$color\" notitle")
    done
    [ ${#plots[@]} -gt 0 ] || return 0
    {
        preamble "$name" "series of ${dates[0]}"
        printf '%s\n' "${marks[@]}" "${st[@]}"
        echo "set title \"$title\""
        cat <<'GP'
set logscale x 10
set xlabel "latency from commit to handler (ms, log scale)"
set ylabel "events delivered within that latency (%)"
set yrange [0:100]
set ytics 10
set mxtics 10
set key bottom right font ",9"
GP
        printf 'plot '; (IFS=,; printf '%s' "${plots[*]}"); echo
    } >"$tmp/$name.gp"
    draw "$name" "$tmp/$name.gp"
}

# ---------------------------------------------------------------- W5 backlog
declare -A w5color=([on]="#1f77b4" [off]="#d62728")
w5top=() w5bottom=() w5dates=() w5clients=
for s in on off; do
    f="$data/w5-backlog-$s.dat"
    [ -f "$f" ] || continue
    rates "$f" 3 >"$tmp/w5-$s.rate"
    if [ ! -s "$tmp/w5-$s.rate" ]; then echo "$f: fewer than 2 rows" >&2; status=1; continue; fi
    w5dates+=("$(meta "$f" date)"); w5clients=$(meta "$f" clients)
    w5top+=("\"$f\" using 1:2 with lines lw 2 lc rgb \"${w5color[$s]}\" title \"synchronous_commit = $s: $(commas "$(printf '%.0f' "$(meta "$f" tps)")") commits/s; backlog max $(commas "$(meta "$f" max_backlog)"), at the end $(commas "$(meta "$f" end_backlog)"), slope $(meta "$f" slope_per_s)/s\"")
    w5bottom+=("\"$tmp/w5-$s.rate\" using 1:2 with lines lw 2 lc rgb \"${w5color[$s]}\" title \"delivered by the relay, synchronous_commit = $s\"")
done
if [ ${#w5top[@]} -gt 0 ]; then
    {
        preamble w5-backlog "series of ${w5dates[0]}"
        cat <<EOF
set multiplot
set lmargin 11
set rmargin 4
set origin 0, 0.40
set size 1, 0.57
set title "W5: pgbench -c $w5clients unthrottled (one order and one event per transaction) while the relay delivers to a SQL handler"
set xlabel ""
set format x ""
set ylabel "backlog (rows in outbox_events)"
set yrange [0:10<*]
set format y "%.0f"
set key top left font ",9"
plot $(IFS=,; printf '%s' "${w5top[*]}")
unset title
set origin 0, 0
set size 1, 0.42
set format x "%g"
set xlabel "time since the publishers started (s)"
set ylabel "events/s"
set yrange [0:1<*]
set key bottom right font ",9"
plot $(IFS=,; printf '%s' "${w5bottom[*]}")
unset multiplot
EOF
    } >"$tmp/w5-backlog.gp"
    draw w5-backlog "$tmp/w5-backlog.gp"
fi

# ---------------------------------------------------------------- W5, W7 latency
if [ -f "$data/w5-latency-on.dat" ] || [ -f "$data/w5-latency-off.dat" ]; then
    cdf_picture w5-latency "W5: latency at 80 % of the capacity, pgbench -c 8 -R, commit to handler (track_commit_timestamp)" \
        "$data/w5-latency-on.dat" "synchronous_commit = on, $(commas "$(meta "$data/w5-latency-on.dat" rate 2>/dev/null)")/s" "#1f77b4" \
        "$data/w5-latency-off.dat" "synchronous_commit = off, $(commas "$(meta "$data/w5-latency-off.dat" rate 2>/dev/null)")/s" "#d62728"
fi
if [ -f "$data/w7-latency-one.dat" ] || [ -f "$data/w7-latency-many.dat" ]; then
    w7f="$data/w7-latency-many.dat"
    [ -f "$w7f" ] || w7f="$data/w7-latency-one.dat"
    cdf_picture w7-latency "W7: single events at $(meta "$w7f" rate)/s for $(meta "$w7f" seconds) s, commit to handler, with 1 database served and with $(meta "$w7f" served)" \
        "$data/w7-latency-one.dat" "1 database served" "#7f7f7f" \
        "$data/w7-latency-many.dat" "$(meta "$data/w7-latency-many.dat" served 2>/dev/null) databases served, events into $(meta "$data/w7-latency-many.dat" targets 2>/dev/null) of them" "#2ca02c"
fi
