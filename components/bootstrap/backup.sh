#!/bin/bash
# Node backup of one shard to S3: installed as /usr/local/sbin/redis-cluster-backup by the
# backup hook (backupHook.ts) and run by redis-cluster-backup@<id>.service, from the timer
# (id "scheduled") or from `npm run cluster -- backup --stack` through SSM Run Command.
# Full-line comments are stripped when it is embedded in the user data; this is the source.
#
# Every node of a shard runs it at the slot; only one takes the backup: the in-sync replica
# with the highest replication offset (so the master never forks), else the master. The
# others log who does and exit 0. Steps: BGSAVE, wait until it finished with status ok and
# LASTSAVE moved, hard-link the dump (a later save may replace dump.rdb), check it with
# the engine's check-rdb (key count, integrity), upload it (aws s3 cp: multipart, KMS),
# then the shard manifest; the last shard to finish writes backup.json. Uploads retry
# with back-off; every failure logs why and exits non-zero, and no manifest is written
# for an RDB whose upload did not succeed. Layout and manifests: scripts/backup/manifest.ts.
#
# Usage: redis-cluster-backup [--id scheduled|YYYYMMDDTHHMMSSZ]
# Environment (backup.env beside redis.conf; tests set them directly):
#   CLUSTER_NAME NODE_NAME SHARD PORT TLS CLI_BIN CONF_DIR SSM_PREFIX AWS_REGION
#   BACKUP_ROOT              s3://bucket/backups
#   BACKUP_KMS_KEY_ID        KMS key for SSE (empty: the bucket's default encryption)
#   BACKUP_S3_ENDPOINT       S3-compatible endpoint (tests: s3rver); no SSE header then
#   BACKUP_ADMIN_PASSWORD    instead of reading it from SSM (tests)
#   BACKUP_HOST              address of the local engine (default 127.0.0.1)
#   BACKUP_AWS               aws CLI (default aws)
#   BACKUP_CHECK_RDB         the engine's check-rdb (default from CLI_BIN: redis6-cli -> redis6-check-rdb)
#   BACKUP_ATTEMPTS          upload attempts (default 5); BACKUP_RETRY_BASE_SEC first back-off (default 2, doubling)
#   BACKUP_MAX_LAG_SEC       a replica is in sync when online and its lag is at most this (default 10)
#   BACKUP_TIMEOUT_SEC       how long BGSAVE may take (default 21600)
#   BACKUP_LOCK_FILE         (default /run/redis-cluster-backup.lock)
set -euo pipefail
umask 077

HOST=${BACKUP_HOST:-127.0.0.1}
AWS=${BACKUP_AWS:-aws}
CHECK_RDB=${BACKUP_CHECK_RDB:-${CLI_BIN%-cli}-check-rdb}
ATTEMPTS=${BACKUP_ATTEMPTS:-5}
RETRY_BASE=${BACKUP_RETRY_BASE_SEC:-2}
MAX_LAG=${BACKUP_MAX_LAG_SEC:-10}
TIMEOUT=${BACKUP_TIMEOUT_SEC:-21600}
LOCK_FILE=${BACKUP_LOCK_FILE:-/run/redis-cluster-backup.lock}
ID=scheduled
LINK=

log() { printf '%s redis-backup[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NODE_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_iso() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
cleanup() { [[ -z $LINK ]] || rm -f "$LINK"; }
trap cleanup EXIT

while (( $# )); do
  case $1 in
    --id) ID=${2:?--id needs a value}; shift 2 ;;
    *) echo "usage: $0 [--id scheduled|YYYYMMDDTHHMMSSZ]" >&2; exit 2 ;;
  esac
done
# Every node's timer fires within a second of the slot: the minute is the shared id.
[[ $ID == scheduled ]] && ID=$(date -u +%Y%m%dT%H%M00Z)
[[ $ID =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || die "backup id must be YYYYMMDDTHHMMSSZ (got $ID)"
for v in CLUSTER_NAME NODE_NAME SHARD PORT CLI_BIN BACKUP_ROOT; do
  [[ -n ${!v:-} ]] || die "$v is not set (backup.env is written by the backup hook at boot)"
done
DEST="${BACKUP_ROOT%/}/$CLUSTER_NAME/$ID"

exec 9>"$LOCK_FILE"
flock -n 9 || die "another backup runs on this node (lock $LOCK_FILE)"

aws_() {
  local args=()
  [[ -n ${BACKUP_S3_ENDPOINT:-} ]] && args+=(--endpoint-url "$BACKUP_S3_ENDPOINT")
  "$AWS" "${args[@]}" "$@"
}

if [[ -z ${BACKUP_ADMIN_PASSWORD:-} ]]; then
  BACKUP_ADMIN_PASSWORD=$(aws_ ssm get-parameter --name "$SSM_PREFIX/acl/admin-password" --with-decryption \
    --query Parameter.Value --output text) || die "cannot read the admin password from SSM ($SSM_PREFIX/acl/admin-password)"
fi
export REDISCLI_AUTH=$BACKUP_ADMIN_PASSWORD
TLS_ARGS=()
[[ ${TLS:-0} == 1 ]] && TLS_ARGS=(--tls --cacert "$CONF_DIR/tls/ca.crt")

# rc HOST PORT COMMAND...: one command as admin; fails on an error reply.
rc() {
  local h=$1 p=$2 out
  shift 2
  out=$("$CLI_BIN" -h "$h" -p "$p" --user admin --no-auth-warning "${TLS_ARGS[@]}" "$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
  [[ $out == ERR* || $out == NOAUTH* || $out == WRONGPASS* || $out == NOPERM* || $out == LOADING* ]] && { printf '%s\n' "$out" >&2; return 1; }
  printf '%s\n' "$out"
}
field() { tr -d '\r' <<<"$2" | sed -n "s/^$1://p"; }

# --- who backs up this shard
nodes=$(rc "$HOST" "$PORT" CLUSTER NODES) || die "CLUSTER NODES on $HOST:$PORT failed: is the engine up?"
myline=$(grep ' myself' <<<"$nodes") || die "CLUSTER NODES has no myself line"
read -r my_id my_addr my_flags my_master _ <<<"$myline"
my_addr=${my_addr%%@*}
if [[ $my_flags == *master* ]]; then
  role=master master_id=$my_id master_addr=$my_addr
else
  [[ $my_master != - ]] || die "this node is a replica without a master"
  role=replica master_id=$my_master
  master_addr=$(awk -v id="$master_id" '$1 == id { print $2 }' <<<"$nodes")
  master_addr=${master_addr%%@*}
  [[ -n $master_addr ]] || die "master $master_id is not in CLUSTER NODES"
fi
slots=$(awk -v id="$master_id" '$1 == id { for (i = 9; i <= NF; i++) if ($i !~ /^\[/) print $i }' <<<"$nodes")
[[ -n $slots ]] || die "master $master_addr owns no slots: nothing to back up for shard $SHARD"
shard_count=$(awk '$3 ~ /master/ && NF >= 9 { n++ } END { print n + 0 }' <<<"$nodes")

repl=$(rc "${master_addr%:*}" "${master_addr##*:}" INFO replication) || die "INFO replication on master $master_addr failed"
# slaveN:ip=...,port=...,state=online,offset=...,lag=...: the in-sync replica with the highest offset; ties by address.
chosen=$(tr -d '\r' <<<"$repl" | awk -F'[:,=]' -v maxlag="$MAX_LAG" '/^slave[0-9]+:/ {
    delete f; for (i = 2; i < NF; i += 2) f[$i] = $(i + 1)
    if (f["state"] == "online" && f["lag"] <= maxlag) print f["offset"], f["ip"] ":" f["port"] }' | sort -k1,1nr -k2,2 | head -n1 | cut -d' ' -f2)
chosen=${chosen:-$master_addr}
if [[ $chosen != "$my_addr" ]]; then
  log "shard $SHARD is backed up by $chosen (this node is $my_addr, $role): nothing to do"
  exit 0
fi
log "backing up shard $SHARD as $role $my_addr to $DEST/shard-$SHARD.rdb"
# A replica first catches up with what its master had when the backup started (lag up to
# BACKUP_MAX_LAG_SEC is "in sync" but can be seconds of writes).
if [[ $role == replica ]]; then
  want=$(field master_repl_offset "$repl")
  catchup_end=$(( $(date +%s) + MAX_LAG + 5 ))
  while :; do
    mine=$(rc "$HOST" "$PORT" INFO replication) || die "INFO replication failed"
    (( $(field slave_repl_offset "$mine") >= want )) && break
    if (( $(date +%s) >= catchup_end )); then log "WARNING: replica at offset $(field slave_repl_offset "$mine"), master was at $want: backing up what it has"; break; fi
    sleep 0.1
  done
fi

# --- BGSAVE, and make sure the dump we upload is the one it wrote
started_at=$(now_iso)
deadline=$(( $(date +%s) + TIMEOUT ))
info=$(rc "$HOST" "$PORT" INFO persistence) || die "INFO persistence failed"
while [[ $(field rdb_bgsave_in_progress "$info") == 1 || $(field aof_rewrite_in_progress "$info") == 1 ]]; do
  (( $(date +%s) < deadline )) || die "a save or AOF rewrite has been running for ${TIMEOUT}s; not starting another"
  sleep 1
  info=$(rc "$HOST" "$PORT" INFO persistence) || die "INFO persistence failed"
done
before=$(rc "$HOST" "$PORT" LASTSAVE) || die "LASTSAVE failed"
# LASTSAVE counts seconds: start in a later second than the last save, so ours shows as newer.
while (( $(date +%s) <= before )); do sleep 0.1; done
out=$(rc "$HOST" "$PORT" BGSAVE SCHEDULE) || die "BGSAVE refused: $out"
log "BGSAVE: $out"
while :; do
  sleep 0.2
  info=$(rc "$HOST" "$PORT" INFO persistence) || die "INFO persistence failed while waiting for BGSAVE"
  if [[ $(field rdb_bgsave_in_progress "$info") == 0 ]] && (( $(field rdb_last_save_time "$info") > before )); then break; fi
  if [[ $(field rdb_bgsave_in_progress "$info") == 0 && $(field rdb_last_bgsave_status "$info") == err ]]; then
    die "BGSAVE failed (rdb_last_bgsave_status:err): see the engine's log"
  fi
  (( $(date +%s) < deadline )) || die "BGSAVE did not finish within ${TIMEOUT}s"
done
[[ $(field rdb_last_bgsave_status "$info") == ok ]] || die "BGSAVE finished with rdb_last_bgsave_status:$(field rdb_last_bgsave_status "$info")"
dir=$(rc "$HOST" "$PORT" CONFIG GET dir | sed -n 2p)
file=$(rc "$HOST" "$PORT" CONFIG GET dbfilename | sed -n 2p)
[[ -f $dir/$file ]] || die "BGSAVE reported ok but $dir/$file does not exist"
LINK="$dir/.backup-$ID-shard-$SHARD.rdb"
ln -f "$dir/$file" "$LINK" || die "cannot hard-link $dir/$file for the upload"

bytes=$(stat -c %s "$LINK")
rdb_version=$(head -c 9 "$LINK" | sed -n 's/^REDIS0*\([0-9][0-9]*\)$/\1/p')
[[ -n $rdb_version ]] || die "$dir/$file does not start with an RDB header"
check=$("$CHECK_RDB" "$LINK" 2>&1) || die "$CHECK_RDB refused the dump: $(tail -n 3 <<<"$check" | tr '\n' ' ')"
keys=$(sed -n 's/^\[info\] \([0-9]*\) keys read$/\1/p' <<<"$check")
[[ -n $keys ]] || die "$CHECK_RDB did not report a key count"
sha=$(sha256sum "$LINK" | cut -d' ' -f1)
server=$(rc "$HOST" "$PORT" INFO server) || die "INFO server failed"
if [[ $(field server_name "$server") == valkey ]]; then engine=valkey version=$(field valkey_version "$server"); else engine=redis version=$(field redis_version "$server"); fi
log "dump: $bytes bytes, RDB version $rdb_version, $keys keys, sha256 $sha"

# with_retry WHAT COMMAND...: attempts with doubling back-off; logs every failure.
with_retry() {
  local what=$1 i delay=$RETRY_BASE
  shift
  for (( i = 1; i <= ATTEMPTS; i++ )); do
    if "$@"; then return 0; fi
    log "$what failed (attempt $i of $ATTEMPTS)"
    (( i < ATTEMPTS )) && { sleep "$delay"; delay=$(( delay * 2 )); }
  done
  return 1
}
sse=()
[[ -n ${BACKUP_KMS_KEY_ID:-} ]] && sse=(--sse aws:kms --sse-kms-key-id "$BACKUP_KMS_KEY_ID")
# aws s3 cp exits non-zero unless the (multipart) upload completed; S3 checks each part's MD5.
upload_rdb() { aws_ s3 cp --only-show-errors "${sse[@]}" "$LINK" "$DEST/shard-$SHARD.rdb"; }
put_text() { aws_ s3 cp --only-show-errors "${sse[@]}" - "$1" <<<"$2"; }
with_retry "upload of $DEST/shard-$SHARD.rdb" upload_rdb || die "upload of $DEST/shard-$SHARD.rdb failed; no manifest written (the backup is incomplete)"

slot_json=$(tr ' ' '\n' <<<"$slots" | awk -F- 'NF { printf "%s[%s, %s]", (n++ ? ", " : ""), $1, ($2 == "" ? $1 : $2) }')
manifest=$(cat <<EOF
{
  "version": 1,
  "backupId": "$ID",
  "clusterName": "$CLUSTER_NAME",
  "shard": $SHARD,
  "nodeName": "$NODE_NAME",
  "nodeId": "$my_id",
  "role": "$role",
  "slots": [$slot_json],
  "keys": $keys,
  "engine": "$engine",
  "engineVersion": "$version",
  "rdbVersion": $rdb_version,
  "bytes": $bytes,
  "sha256": "$sha",
  "startedAt": "$started_at",
  "endedAt": "$(now_iso)"
}
EOF
)
with_retry "upload of $DEST/shard-$SHARD.json" put_text "$DEST/shard-$SHARD.json" "$manifest" || die "upload of the shard manifest $DEST/shard-$SHARD.json failed (the RDB is there; the backup is incomplete)"
log "shard $SHARD done: $DEST/shard-$SHARD.json"

# --- the last shard to finish writes backup.json
listing=$(aws_ s3 ls "$DEST/") || die "cannot list $DEST/ to see whether every shard is done"
grep -q ' backup.json$' <<<"$listing" && { log "backup.json already written"; exit 0; }
done_count=$(grep -cE ' shard-[0-9]+\.json$' <<<"$listing" || true)
if (( done_count < shard_count )); then
  log "$done_count of $shard_count shards done; the last one writes backup.json"
  exit 0
fi
entries='' total_keys=0 total_bytes=0 created=''
manifests=$(mktemp -d)
trap 'cleanup; rm -rf "$manifests"' EXIT
aws_ s3 cp --only-show-errors --recursive --exclude '*' --include 'shard-*.json' "$DEST/" "$manifests/" || die "cannot read the shard manifests in $DEST/ to write backup.json"
for (( s = 0; s < shard_count; s++ )); do
  m=$(cat "$manifests/shard-$s.json" 2>/dev/null) || die "$DEST/shard-$s.json is missing: cannot write backup.json"
  k=$(sed -n 's/^  "keys": \([0-9]*\),$/\1/p' <<<"$m")
  b=$(sed -n 's/^  "bytes": \([0-9]*\),$/\1/p' <<<"$m")
  h=$(sed -n 's/^  "sha256": "\([0-9a-f]*\)",$/\1/p' <<<"$m")
  t=$(sed -n 's/^  "startedAt": "\([^"]*\)",$/\1/p' <<<"$m")
  [[ -n $k && -n $b && -n $h && -n $t ]] || die "$DEST/shard-$s.json is not a shard manifest this script wrote"
  entries+="${entries:+,}"$'\n'"    { \"shard\": $s, \"rdb\": \"shard-$s.rdb\", \"manifest\": \"shard-$s.json\", \"keys\": $k, \"bytes\": $b, \"sha256\": \"$h\" }"
  total_keys=$(( total_keys + k )) total_bytes=$(( total_bytes + b ))
  [[ -z $created || $t < $created ]] && created=$t
done
backup=$(cat <<EOF
{
  "version": 1,
  "backupId": "$ID",
  "clusterName": "$CLUSTER_NAME",
  "createdAt": "$created",
  "completedAt": "$(now_iso)",
  "shards": [$entries
  ],
  "totalKeys": $total_keys,
  "totalBytes": $total_bytes
}
EOF
)
with_retry "upload of $DEST/backup.json" put_text "$DEST/backup.json" "$backup" || die "upload of $DEST/backup.json failed (every shard is there; rerun or let \`npm run cluster -- backup\` complete it)"
log "backup $ID complete: $shard_count shards, $total_keys keys, $total_bytes bytes"
