#!/usr/bin/env bash
# The eclipse experiment's table (issue 10; docs/simulator.md, "The eclipse experiment"):
# two attackers, (a) 300 addresses in 3 groups and (b) a botnet of 4,600 addresses over
# 1,000 groups (Heilman et al.'s size), against NODES honest nodes with the node's default
# config, each run with
#   * peerkeeper's defaults (every defence on: diverse_dials, address_buckets, anchors),
#   * peerkeeper --no-defences,
#   * the octez model (--policy octez --no-defences: octez has neither anchors nor
#     diverse dials; its pool is restored on restart like ours),
# and prints a markdown table: eclipsed fraction 1 h and 24 h after the attack starts and
# after the restart case, and at 24 h the mean share of outbound connections to attackers
# and of attacker addresses in the pools; then the wall time and peak RSS of each run
# (BENCHMARKS.md, "Eclipse experiment (issue 10)": 7 s to 6 min a run at the defaults).
#
# Usage: benches/eclipse.sh (from anywhere; builds the release binary first).
# Environment: NODES (300: a botnet run of 1,000 nodes takes 12 minutes or more here),
# SEED (1), FLOOD (the attackers' --flood-interval, 5m: at their default 30 s a botnet run
# of 1,000 nodes takes about 40 minutes), EXTRA (more flags for every run).
set -euo pipefail

NODES=${NODES:-300}
SEED=${SEED:-1}
FLOOD=${FLOOD:-5m}
EXTRA=${EXTRA:-}

cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/peerkeeper"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

attackers=("300 3" "4600 1000")
names=("defaults" "no-defences" "octez")
flags=("" "--no-defences" "--policy octez --no-defences")
# The node's config: its defaults (min 10 / expected 50 / max 100: about 22 outbound
# connections each), and Bitcoin Core's count of about 8 outbound (min 8 / expected 12 /
# max 40), where an eclipse needs far fewer connections.
cfgs=("node defaults" "8 outbound")
cfgflags=("" "--min 8 --expected 12 --max 40")

pct() { jq -r "if ($1) == null then \"-\" else (($1) * 1000 | round / 10 | tostring) + \" %\" end"; }

echo "| attacker | config | nodes run | eclipsed at 1 h | at 24 h | after the restart | attacker share of outbound (24 h) | pool pollution (24 h) | wall, peak RSS |"
echo "|---|---|---|---:|---:|---:|---:|---:|---|"
for a in "${attackers[@]}"; do
    set -- $a
    A=$1
    G=$2
    for c in "${!cfgs[@]}"; do
    for k in "${!names[@]}"; do
        f="$OUT/$A-$c-${names[$k]}"
        # shellcheck disable=SC2086
        /usr/bin/time -o "$f.time" -f "%e s, %M KB" "$BIN" simulate --nodes "$NODES" --seed "$SEED" \
            --attackers "$A" --attacker-groups "$G" --flood-interval "$FLOOD" ${flags[$k]} \
            ${cfgflags[$c]} $EXTRA --json >"$f.json" 2>/dev/null
        j() { jq "$@" "$f.json"; }
        c1=$(pct '.eclipse.checks[0].eclipsed_fraction' <"$f.json")
        c24=$(pct '.eclipse.checks[1].eclipsed_fraction' <"$f.json")
        cr=$(pct '.eclipse.restart.check.eclipsed_fraction' <"$f.json")
        share=$(pct '.eclipse.checks[1].attacker_outbound_share' <"$f.json")
        poll=$(pct '.eclipse.checks[1].pool_pollution' <"$f.json")
        nodes=$(j '.eclipse.checks[1].nodes // "-"')
        restarted=$(j '.eclipse.restart.restarted // "-"')
        echo "| $A in $G groups | ${cfgs[$c]} | ${names[$k]} | $c1 | $c24 | $cr (of $restarted) | $share | $poll | $(cat "$f.time") |"
        echo "  ${cfgs[$c]}, ${names[$k]}, $A in $G: $(j -c '.eclipse | {checks, restart, attacker_dials, attacker_dials_admitted, attacker_dials_refused, honest_dials_to_attackers, floods, answers, closed_by_honest, unsolicited_ignored, violations, bans, restores, anchors_restored, anchors_to_attackers}') hash $(j -r .event_log_hash), $nodes nodes alive at 24 h" >&2
    done
    done
done
echo
echo "NODES=$NODES SEED=$SEED FLOOD=$FLOOD EXTRA=$EXTRA, $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
