#!/usr/bin/env bash
# Train candidate building models on fair_banepa on one GPU, side by side (models/TRAINING.md,
# "Building model"). Data: .gpudata/banepa/{train,val}/{images,masks}, the chips split by column
# (x 386690-386693 train, 386694-386695 validate). A 2-epoch probe of each candidate measures its speed;
# the real runs then get as many epochs as fit in ${BUDGET_S:-480} seconds (the schedule spans them all).
# Each run's weights come back as fp16 (weights.pt, tensors only) with its history and curves in $OUT.
set -uo pipefail
RUNS=${RUNS:-runs/buildings}
BUDGET=${BUDGET_S:-480}
D=.gpudata/banepa
mkdir -p "$RUNS"
T0=$(date +%s)
aerialseg() { python3 -m aerialseg.cli "$@"; }
common=(--dataset folder --images $D/train/images --masks $D/train/masks --val-images $D/val/images
        --val-masks $D/val/masks --class-names background,building --num-workers 4 --threads 4
        --no-progress --patience 1000 --colour 0.08 --blur 0.3 --brightness 0.25
        --contrast 0.25 --scale-jitter 0.6,1.6 --batch-size 16 --lr 2e-3 --val-tile 1024 --chips-per-epoch 1600
        --licence "Imagery (c) OpenAerialMap contributors (CC BY 4.0); building labels (c) OpenStreetMap contributors (ODbL)"
        --training-data "fair_banepa: 32 drone orthophoto chips of Banepa, Nepal (HOT fAIr sample data), columns x 386690-386693; validation x 386694-386695")
declare -A opts
if [ "${SET:-1}" = 1 ]; then  # round 1: ground resolution and encoder
    opts[r18d4-026]="--scale 0.5 --gsd 0.26 --chip 256"
    opts[mnv2d5-026]="--scale 0.5 --gsd 0.26 --chip 256 --encoder mobilenet_v2 --encoder-depth 5 --decoder-channels 128,64,32,16,8"
    opts[r18d4-013]="--scale 1.0 --gsd 0.13 --chip 384"
elif [ "${SET}" = 3 ]; then  # round 3: the best of round 2 combined, alone on the GPU (more loader processes)
    opts[r18d4-013-final]="--scale 1.0 --gsd 0.13 --chip 384 --weight-decay 1e-3 --scale-jitter 0.5,2.0 --colour 0.12 --blur 0.5 --brightness 0.3 --contrast 0.3 --loss focal+dice --num-workers 12"
else  # round 2, at 0.13 m (the best of round 1): regularisation, stronger augmentation, bigger chips
    opts[r18d4-013-strong]="--scale 1.0 --gsd 0.13 --chip 384 --weight-decay 1e-3 --scale-jitter 0.5,2.0 --colour 0.12 --blur 0.5 --brightness 0.3 --contrast 0.3"
    opts[r18d4-013-c512]="--scale 1.0 --gsd 0.13 --chip 512 --batch-size 12 --weight-decay 1e-3"
    opts[r18d4-013-focal]="--scale 1.0 --gsd 0.13 --chip 384 --weight-decay 1e-3 --loss focal+dice --seed 1"
fi
for n in "${!opts[@]}"; do  # probe: seconds per epoch
    aerialseg train --out "$RUNS/probe-$n" --name "$n" "${common[@]}" ${opts[$n]} --epochs 2 > "$RUNS/probe-$n.log" 2>&1 &
done
wait
left=$(( BUDGET - ($(date +%s) - T0) ))
for n in "${!opts[@]}"; do
    e=$(python3 -c "import json,sys; h=json.load(open('$RUNS/probe-$n/history.json')); print(max(5, int($left*0.9/h[-1]['seconds'])))" 2>/dev/null || echo 0)
    echo "$n: $(tail -1 "$RUNS/probe-$n.log"); $e epochs in ${left}s"
    [ "$e" -gt 0 ] || { tail -5 "$RUNS/probe-$n.log"; continue; }
    aerialseg train --out "$RUNS/$n" --name "$n" "${common[@]}" ${opts[$n]} --epochs "$e" \
        --max-minutes "$(python3 -c "print(max(0.5, ($left - 20) / 60))")" > "$RUNS/$n.log" 2>&1 &
done
wait
for n in "${!opts[@]}"; do
    [ -f "$RUNS/$n/best.pt" ] || { echo "$n: no best.pt"; tail -5 "$RUNS/$n.log"; continue; }
    python3 - "$RUNS/$n" <<'PY'
import sys, torch
run = sys.argv[1]
c = torch.load(f"{run}/best.pt", map_location="cpu", weights_only=True)
keep = {k: c[k] for k in ("arch", "card", "config", "epoch", "history", "class_weights")}
keep["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in c["state_dict"].items()}
torch.save(keep, f"{run}/weights.pt")
print(run, "best epoch", c["epoch"] + 1, c["card"]["metrics"])
PY
    [ -n "${OUT:-}" ] && tar -C "$RUNS" -czf "$OUT/$n.tgz" "$n/weights.pt" "$n/history.csv" "$n/curves.png" "$n/config.json" "$n.log"
done
