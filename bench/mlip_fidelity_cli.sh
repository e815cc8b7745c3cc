#!/usr/bin/env bash
# The platform path of the Mo fidelity run: ingest mlearn Mo into a fresh SQLite database (training.json in run 1,
# test.json in run 2), a time split cut at run 1 (test.json = test fold; training.json split 90/10 train/val by
# canonical hash), `xtalbase train potential` and `xtalbase potential evaluate --json` on the test fold.
#
#   bench/mlip_fidelity_cli.sh [EPOCHS=40] [SEED=0] [OUTDIR=bench/results]
#
# Writes OUTDIR/mlip_fidelity_cli_{ingest_train,ingest_test,split,train,evaluate}.json and prints timings.
set -euo pipefail
EPOCHS=${1:-40}
SEED=${2:-0}
OUTDIR=${3:-bench/results}
DATA=${XTALBASE_MLIP_DATA:-/work/shared/data/mlip}/mlearn/Mo
WORK=$(mktemp -d /tmp/xtalbase-fidelity-cli.XXXXXX)
export XTALBASE_DB_URL="sqlite:///$WORK/x.db"
mkdir -p "$OUTDIR"
t() { date +%s.%N; }
echo "database $XTALBASE_DB_URL"
xtalbase init >/dev/null
t0=$(t)
xtalbase ingest "$DATA/training.json" --json > "$OUTDIR/mlip_fidelity_cli_ingest_train.json"
xtalbase ingest "$DATA/test.json" --json > "$OUTDIR/mlip_fidelity_cli_ingest_test.json"
xtalbase split create mo-time --strategy time --cut 1 --fractions 0.9 0.1 0.0 --json > "$OUTDIR/mlip_fidelity_cli_split.json"
t1=$(t)
/usr/bin/time -v -o "$WORK/train.time" xtalbase train potential --split mo-time --preset mlearn-Mo --epochs "$EPOCHS" \
    --seed "$SEED" --name "mo-fidelity-cli-s$SEED" --json > "$OUTDIR/mlip_fidelity_cli_train.json"
t2=$(t)
xtalbase potential evaluate "mo-fidelity-cli-s$SEED" --split mo-time --fold test --json > "$OUTDIR/mlip_fidelity_cli_evaluate.json"
t3=$(t)
grep -E "Elapsed|User time|System time|Maximum resident" "$WORK/train.time" || true
python - "$t0" "$t1" "$t2" "$t3" <<'EOF'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:])
print(f"ingest+split {t1 - t0:.1f} s, train potential {t2 - t1:.1f} s, potential evaluate {t3 - t2:.1f} s")
EOF
cat "$OUTDIR/mlip_fidelity_cli_evaluate.json"
rm -rf "$WORK"
