# W6's picture, sourced by bench/lib/plots.sh (its data, out, tmp, status,
# meta, commas, rows, draw and preamble):
#   w6-ratios.png   W6: per round, the cost on the full outbox (W6_PENDING
#                   pending, W6_ARCHIVED archived) over the cost on an empty
#                   one: publishing (synchronous_commit on and off) and
#                   claim + complete of 100; the 1.2x target drawn

f="$data/w6-rounds.dat"
if [ -f "$f" ]; then
    if [ "$(rows "$f")" -lt 1 ]; then echo "$f has no rows" >&2; status=1; else
        w6plots=()
        # Columns: round, publish on, publish off, claim (NaN where not measured).
        for c in "2 publishing, synchronous_commit = on #1f77b4 $(meta "$f" publish_on)" \
                 "3 publishing, synchronous_commit = off #17becf $(meta "$f" publish_off)" \
                 "4 claim (100, lease) + complete #d62728 $(meta "$f" claim)"; do
            set -- $c
            col=$1 color=${c##* #}; color="#${color%% *}"; med=${c##* }
            label=${c#* }; label=${label% #*}
            [ "$(awk -v k="$col" '!/^#/ && $k != "NaN" { n++ } END { print n + 0 }' "$f")" -gt 0 ] || continue
            w6plots+=("\"$f\" using 1:(\$$col) with linespoints pt 7 ps 1.3 lw 2 lc rgb \"$color\" title \"$label: median $(printf '%.2f' "$med")x\"")
        done
        {
            preamble w6-ratios "series of $(meta "$f" date)"
            cat <<GP
set title "W6: cost with $(commas "$(meta "$f" pending)") events pending and $(commas "$(meta "$f" archived)") archived, over the cost on an empty outbox"
set xlabel "round (the two databases alternate which goes first)"
set ylabel "cost full / empty (1 = no growth)"
set xrange [0.5:$(meta "$f" rounds).5]
set xtics 1
set yrange [0.6<*:1.4<*]
set key top left font ",9"
set arrow from graph 0, first 1.2 to graph 1, first 1.2 nohead lw 2 dt 2 lc rgb "#555555"
set label "target: at most 1.2x" at graph 0.99, first 1.2 right offset 0,0.7 font ",9" tc rgb "#555555"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1 lc rgb "#999999"
GP
            printf 'plot '; (IFS=,; printf '%s' "${w6plots[*]}"); echo
        } >"$tmp/w6-ratios.gp"
        draw w6-ratios "$tmp/w6-ratios.gp"
    fi
fi
