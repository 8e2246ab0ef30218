# Sourced by every bench script. When $BENCH_RESULTS names a directory (bench/report
# sets it), `bench_record TOOL OPERATION MILLISECONDS` adds one measured row to
# $BENCH_RESULTS/NAME.tsv (NAME: the script's name), from which bench/report draws
# the chart. Without it, the scripts print their tables as before.
BENCH_NAME=$(basename "$0" .sh)
bench_record() {
    [ -n "${BENCH_RESULTS:-}" ] || return 0
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$BENCH_RESULTS/$BENCH_NAME.tsv"
}
