#!/usr/bin/env bash
# The demo: starts the bundled GCS emulator with a bucket "demo" holding a
# few objects, and mounts gs://demo/outputs on ./mnt (or $1) in the
# foreground. Ctrl-C unmounts and stops the emulator; the bucket stays on
# disk under ./demo-data for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
MNT=${1:-mnt}
DATA=${DEMO_DATA:-demo-data}
mkdir -p "$MNT" "$DATA"

EMU_OUT=$(mktemp)
/usr/bin/python3 tests/emulator/gcs_emulator.py --port "${DEMO_PORT:-0}" --root "$DATA" \
  --bucket demo >"$EMU_OUT" 2>"$DATA.log" &
EMU_PID=$!
cleanup() {
  fusermount3 -u "$MNT" 2>/dev/null || true
  kill "$EMU_PID" 2>/dev/null || true
  rm -f "$EMU_OUT"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q READY "$EMU_OUT" && break; sleep 0.1; done
URL=$(awk '/READY/ {print $2}' "$EMU_OUT")
[ -n "$URL" ] || { echo "demo: the emulator did not start; see $DATA.log" >&2; exit 1; }

# A few objects a previous job left behind (written once).
if ! curl -sf "$URL/storage/v1/b/demo/o/outputs%2FREADME.txt" >/dev/null; then
  printf 'Outputs of a training run live here.\n' |
    curl -sf -X POST -H 'Content-Type: text/plain' --data-binary @- \
      "$URL/upload/storage/v1/b/demo/o?uploadType=media&name=outputs/README.txt" >/dev/null
  printf 'step,loss\n1,0.9\n2,0.7\n' |
    curl -sf -X POST -H 'Content-Type: text/csv' --data-binary @- \
      "$URL/upload/storage/v1/b/demo/o?uploadType=media&name=outputs/logs/metrics.csv" >/dev/null
fi

echo "demo: emulator at $URL; mounting gs://demo/outputs on $MNT (Ctrl-C to stop)"
echo "demo: try in another shell: ls -lR $MNT; cp -r /etc/default $MNT/; curl -s '$URL/storage/v1/b/demo/o?prefix=outputs/' | head"
./gcsmount -f -o "endpoint=$URL,anonymous,spool_dir=$DATA.spool" gs://demo/outputs "$MNT"
