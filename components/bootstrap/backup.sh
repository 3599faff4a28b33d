#!/bin/bash
# Node backup of one shard to S3: installed as /usr/local/sbin/redis-cluster-backup by the
# backup hook (backupHook.ts) and run by redis-cluster-backup@<id>.service, from the timer
# (id "scheduled") or from `npm run cluster -- backup --stack` through SSM Run Command.
# Full-line comments are stripped when it is embedded in the user data; this is the source.
#
# Every node of a shard runs it at the slot; one takes the backup. The rule, the same on
# every node from the same facts (CLUSTER NODES and the master's INFO replication): the
# replicas the master lists online with lag <= BACKUP_MAX_LAG_SEC, smallest node id first,
# then the master (scripts/plan/backup.ts is the same rule in TypeScript). Views can still
# differ (a lag crossing the bound between two reads), so the choice is made final by a
# claim: candidate k, once nobody has claimed the shard after k claim deadlines, creates
# shard-<n>.claim only if absent (S3 If-None-Match: *), waits BACKUP_CLAIM_SETTLE_SEC and
# reads it back; only the node the stored claim names goes on. The holder renews its claim
# (expiresAt) while it works and stops, uploads cut, once its own claim expired. A claim
# whose expiresAt + BACKUP_CLAIM_GRACE_SEC passed without a manifest is stale: the next
# candidate takes it over, once (shard-<n>.takeover.claim, created only if absent). The
# others wait until the shard manifest exists, then exit 0.
# Steps of the holder: BGSAVE, wait until it finished with status ok and LASTSAVE moved,
# hard-link the dump (a later save may replace dump.rdb), check it with the engine's
# check-rdb (key count, integrity), upload it (aws s3 cp: multipart, KMS), then the shard
# manifest (created only if absent); the last shard to finish writes backup.json. Uploads
# retry with back-off; every failure logs why and exits non-zero, and no manifest is
# written for an RDB whose upload did not succeed. Layout, manifests and claims:
# scripts/backup/manifest.ts.
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
#   BACKUP_CLAIM_DEADLINE_SEC  candidate k claims a shard nobody claimed after k times this (default 60)
#   BACKUP_CLAIM_LEASE_SEC     a claim expires this long after its last renewal (default 120)
#   BACKUP_CLAIM_RENEW_SEC     how often the holder renews its claim (default a quarter of the lease)
#   BACKUP_CLAIM_GRACE_SEC     others wait this past expiresAt (clock skew) before a takeover (default 30)
#   BACKUP_CLAIM_SETTLE_SEC    wait before reading a new claim back (default 5; see try_claim)
#   BACKUP_CLAIM_POLL_SEC      how often a waiting node looks at the claim and the manifest (default 10)
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
CLAIM_DEADLINE=${BACKUP_CLAIM_DEADLINE_SEC:-60}
LEASE=${BACKUP_CLAIM_LEASE_SEC:-120}
RENEW=${BACKUP_CLAIM_RENEW_SEC:-$(( LEASE / 4 > 0 ? LEASE / 4 : 1 ))}
GRACE=${BACKUP_CLAIM_GRACE_SEC:-30}
SETTLE=${BACKUP_CLAIM_SETTLE_SEC:-5}
POLL=${BACKUP_CLAIM_POLL_SEC:-10}
ID=scheduled
LINK=
WORK=
HOLDING=
RENEW_PID=

log() { printf '%s redis-backup[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NODE_NAME" "$*" >&2; }
# A holder that gives up says so in its claim and lets it expire now, so the next
# candidate takes the shard over after the grace period rather than after the lease.
die() {
  log "ERROR: $*"
  if [[ -n $HOLDING ]]; then
    stop_renewal
    if lease_ok; then write_claim "$(date +%s)" "$*" || log "could not mark the claim failed; it expires on its own"; fi
  fi
  exit 1
}
now_iso() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
stop_renewal() {
  [[ -n $RENEW_PID ]] || return 0
  kill "$RENEW_PID" 2>/dev/null || true
  wait "$RENEW_PID" 2>/dev/null || true
  RENEW_PID=
}
cleanup() { stop_renewal; [[ -z $LINK ]] || rm -f "$LINK"; [[ -z $WORK ]] || rm -rf "$WORK"; }
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
[[ $BACKUP_ROOT =~ ^s3://([^/]+)/?(.*)$ ]] || die "BACKUP_ROOT must be s3://bucket/prefix (got $BACKUP_ROOT)"
BUCKET=${BASH_REMATCH[1]}
KEY_PREFIX=${BASH_REMATCH[2]%/}
KEY_PREFIX=${KEY_PREFIX:+$KEY_PREFIX/}$CLUSTER_NAME/$ID

exec 9>"$LOCK_FILE"
flock -n 9 || die "another backup runs on this node (lock $LOCK_FILE)"
WORK=$(mktemp -d)

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

# --- who backs up this shard: the rule
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
# Candidates, "id addr" a line: the master's replicas (CLUSTER NODES, not failing) that it
# lists online with lag <= MAX_LAG (slaveN:ip=...,port=...,state=online,offset=...,lag=...),
# by node id; then the master. Ids, not offsets: offsets move between two nodes' reads.
candidates=$( { tr -d '\r' <<<"$repl" | awk -F'[:,=]' -v maxlag="$MAX_LAG" '/^slave[0-9]+:/ {
      delete f; for (i = 2; i < NF; i += 2) f[$i] = $(i + 1)
      if (f["state"] == "online" && f["lag"] <= maxlag) print "sync", f["ip"] ":" f["port"] }'
    awk -v m="$master_id" '$4 == m && $3 !~ /fail/ { a = $2; sub(/@.*/, "", a); print "node", a, $1 }' <<<"$nodes"
  } | awk '$1 == "sync" { s[$2] = 1 } $1 == "node" { id[$2] = $3 } END { for (a in id) if (a in s) print id[a], a }' | sort)
candidates+="${candidates:+$'\n'}$master_id $master_addr"
rank=$(awk -v me="$my_addr" '$2 == me { print NR - 1; exit }' <<<"$candidates")
first=$(head -n1 <<<"$candidates" | cut -d' ' -f2)
if [[ -z $rank ]]; then
  log "shard $SHARD is backed up by $first or a later candidate; this node ($my_addr, $role) is not in sync, so not a candidate: nothing to do"
  exit 0
fi
if (( rank == 0 )); then
  rule_reason=$([[ $role == replica ]] && echo "in-sync replica with the smallest node id" || echo "master: no replica in sync")
else
  rule_reason="candidate $rank after $first"
fi
reason=$rule_reason

# --- claims: shard-<n>.claim, then at most one shard-<n>.takeover.claim
# try_get NAME FILE: 0 when read, 1 when absent, 2 on any other error (in GET_ERR).
try_get() {
  if GET_ERR=$(aws_ s3api get-object --bucket "$BUCKET" --key "$KEY_PREFIX/$1" "$2" 2>&1 >/dev/null); then return 0; fi
  [[ $GET_ERR == *NoSuchKey* || $GET_ERR == *"Not Found"* || $GET_ERR == *"(404)"* ]] && return 1
  return 2
}
# get_obj NAME FILE: 0 when read, 1 when absent; dies on any other error.
get_obj() {
  local rc=0
  try_get "$@" || rc=$?
  (( rc < 2 )) || die "cannot read $DEST/$1: $GET_ERR"
  return "$rc"
}
sse_api=()
[[ -n ${BACKUP_KMS_KEY_ID:-} ]] && sse_api=(--server-side-encryption aws:kms --ssekms-key-id "$BACKUP_KMS_KEY_ID")
# create_obj NAME FILE: put only if absent; 0 created, 1 exists. Amazon S3 honours
# If-None-Match: * (since 2024-08). An aws CLI without --if-none-match (before about 2.17)
# falls back to look, then put; a store that ignores the header overwrites. The read-back
# in try_claim settles both, when the contenders wrote within BACKUP_CLAIM_SETTLE_SEC.
# --generate-cli-skeleton parses the options and sends nothing: a local probe.
if aws_ s3api put-object --bucket "$BUCKET" --key probe --if-none-match '*' --generate-cli-skeleton input >/dev/null 2>&1; then
  CONDITIONAL=1
else
  CONDITIONAL=0
  log "this aws CLI ($("$AWS" --version 2>&1 | cut -d' ' -f1)) cannot send If-None-Match: claims fall back to look, put and read back"
fi
create_obj() {
  local err i
  for (( i = 1; i <= 5; i++ )); do
    if (( CONDITIONAL )); then
      if err=$(aws_ s3api put-object --bucket "$BUCKET" --key "$KEY_PREFIX/$1" --body "$2" --if-none-match '*' "${sse_api[@]}" 2>&1 >/dev/null); then return 0; fi
      [[ $err == *PreconditionFailed* || $err == *"(412)"* ]] && return 1
      # "On a 409 failure you should retry the upload" (PutObject, If-None-Match).
      [[ $err == *ConditionalRequestConflict* || $err == *"(409)"* ]] && { sleep "0.$(( RANDOM % 9 + 1 ))"; continue; }
      die "cannot create $DEST/$1: $err"
    fi
    get_obj "$1" "$WORK/exists" && return 1
    err=$(aws_ s3api put-object --bucket "$BUCKET" --key "$KEY_PREFIX/$1" --body "$2" "${sse_api[@]}" 2>&1 >/dev/null) || die "cannot write $DEST/$1: $err"
    return 0
  done
  die "cannot create $DEST/$1: 5 conflicts in a row"
}
# json_field NAME FILE: a top-level field of a manifest or claim (written 2-space indented).
json_field() { sed -n "s/^ *\"$1\": \"\{0,1\}\([^\"]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$2" | head -n1; }
epoch_of() { date -u -d "$1" +%s; }
iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
TOKEN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
CLAIMED_AT=
GEN=
claim_name() { if (( $1 == 1 )); then echo "shard-$SHARD.claim"; else echo "shard-$SHARD.takeover.claim"; fi; }
# claim_doc EXPIRES_EPOCH [FAILED]
claim_doc() {
  local failed=${2:-}
  failed=$(tr -d '\\\n' <<<"${failed//\"/\'}")
  cat <<EOF
{
  "version": 1,
  "backupId": "$ID",
  "clusterName": "$CLUSTER_NAME",
  "shard": $SHARD,
  "generation": $GEN,
  "nodeName": "$NODE_NAME",
  "nodeId": "$my_id",
  "address": "$my_addr",
  "role": "$role",
  "token": "$TOKEN",
  "reason": "$reason",
  "claimedAt": "$CLAIMED_AT",
  "renewedAt": "$(now_iso)",
  "expiresAt": "$(iso_of "$1")"${failed:+,
  \"failed\": \"$failed\"}
}
EOF
}
# write_claim EXPIRES_EPOCH [FAILED]: the holder rewrites its own claim (renewal, or giving up).
write_claim() {
  local f="$WORK/renew-$BASHPID"
  claim_doc "$@" >"$f"
  aws_ s3api put-object --bucket "$BUCKET" --key "$KEY_PREFIX/$(claim_name "$GEN")" --body "$f" "${sse_api[@]}" >/dev/null 2>&1
}
LEASE_FILE="$WORK/lease-until"
# Replaced by rename, so a reader never sees a half-written number.
set_lease() { echo "$1" >"$LEASE_FILE.$BASHPID" && mv -f "$LEASE_FILE.$BASHPID" "$LEASE_FILE"; }
set_lease 0
# The holder works only while its claim is unexpired by its own clock; others wait GRACE more.
lease_ok() { (( $(date +%s) < $(<"$LEASE_FILE") )); }
# Uploads are fenced while the shard is held; backup.json comes after, from manifests alone.
fence_ok() { [[ -z $HOLDING ]] || lease_ok; }
# try_claim GEN: 0 when this node now holds the shard.
try_claim() {
  GEN=$1
  CLAIMED_AT=$(now_iso)
  local name exp
  name=$(claim_name "$GEN")
  # Two leases for a new claim: creating and reading it back takes calls of its own
  # (seconds each on a loaded node) before the first renewal.
  exp=$(( $(date +%s) + 2 * LEASE ))
  claim_doc "$exp" >"$WORK/claim"
  create_obj "$name" "$WORK/claim" || { log "$DEST/$name was created by another node first"; return 1; }
  set_lease "$exp"
  # A store that ignored If-None-Match kept the last of two writes: wait out a contender
  # that wrote about when we did, then only the node the stored claim names goes on.
  sleep "$SETTLE"
  get_obj "$name" "$WORK/readback" || die "$DEST/$name vanished after it was written"
  if [[ $(json_field token "$WORK/readback") != "$TOKEN" ]]; then
    log "$DEST/$name names $(json_field nodeName "$WORK/readback") ($(json_field address "$WORK/readback")) after ours: it holds the shard"
    set_lease 0
    return 1
  fi
  return 0
}
# Renews the claim until stopped. A claim that expired is never renewed: by then another
# node may have taken the shard over (once expiresAt + GRACE passed by its clock: clocks
# must agree within the grace; Amazon Time Sync keeps them within milliseconds), and the
# work under it has stopped (lease_ok).
renewal() {
  local exp
  while :; do
    if ! lease_ok; then log "the claim expired before it could be renewed"; return 0; fi
    exp=$(( $(date +%s) + LEASE ))
    if write_claim "$exp"; then
      if lease_ok; then set_lease "$exp"; fi
    else
      log "claim renewal failed; the claim holds until $(iso_of "$(<"$LEASE_FILE")")"
    fi
    sleep "$RENEW"
  done
}

# One listing a round (an aws CLI call costs about a second of CPU): which of the shard's
# manifest and claims exist.
listed() { tr '\t' '\n' <<<"$listing" | grep -qxF "$KEY_PREFIX/$1"; }
start=$(date +%s)
waiting_for=
while :; do
  listing=$(aws_ s3api list-objects-v2 --bucket "$BUCKET" --prefix "$KEY_PREFIX/shard-$SHARD." --query 'Contents[].Key' --output text) ||
    die "cannot list $DEST/shard-$SHARD.*"
  if listed "shard-$SHARD.json"; then
    get_obj "shard-$SHARD.json" "$WORK/manifest" || die "$DEST/shard-$SHARD.json was listed but cannot be read"
    log "shard $SHARD was backed up by $(json_field nodeName "$WORK/manifest") ($(json_field role "$WORK/manifest")): nothing to do"
    exit 0
  fi
  holder=
  if listed "$(claim_name 2)"; then holder=2; elif listed "$(claim_name 1)"; then holder=1; fi
  [[ -z $holder ]] || get_obj "$(claim_name "$holder")" "$WORK/current" || die "$DEST/$(claim_name "$holder") was listed but cannot be read"
  now=$(date +%s)
  if [[ -z $holder ]]; then
    if (( now >= start + rank * CLAIM_DEADLINE )); then
      reason=$rule_reason
      (( rank == 0 )) || reason="$rule_reason: nobody claimed the shard within $(( rank * CLAIM_DEADLINE ))s"
      try_claim 1 && break
    fi
  else
    holder_addr=$(json_field address "$WORK/current")
    who="$(json_field nodeName "$WORK/current") ($holder_addr)"
    exp=$(epoch_of "$(json_field expiresAt "$WORK/current")")
    if (( now > exp + GRACE )); then
      failed=$(json_field failed "$WORK/current")
      (( holder == 1 )) || die "shard $SHARD: the takeover by $who ran out at $(iso_of "$exp") without a manifest${failed:+ ($failed)}, and a claim is taken over once: no backup of shard $SHARD in $DEST"
      # The candidates after the stale holder take over in order, one claim deadline apart.
      holder_rank=$(awk -v a="$holder_addr" '$2 == a { print NR - 1; exit }' <<<"$candidates")
      takeover_rank=$rank
      if [[ -n $holder_rank ]] && (( holder_rank < rank )); then takeover_rank=$(( rank - 1 )); fi
      if (( now > exp + GRACE + takeover_rank * CLAIM_DEADLINE )); then
        reason="takeover: the claim of $who expired at $(iso_of "$exp") without a manifest${failed:+ ($failed)}"
        try_claim 2 && break
      fi
    elif [[ $waiting_for != "$holder $who" ]]; then
      waiting_for="$holder $who"
      log "shard $SHARD is claimed by $who until $(iso_of "$exp") (renewed while it works): waiting for its manifest"
    fi
  fi
  sleep "$POLL"
done
HOLDING=1
# Neither keeps the node's lock (fd 9) open once this script exits.
renewal 9>&- &
RENEW_PID=$!
log "backing up shard $SHARD as $role $my_addr ($reason) to $DEST/shard-$SHARD.rdb"
# A replica first catches up with what its master had when the backup started (lag up to
# BACKUP_MAX_LAG_SEC is "in sync" but can be seconds of writes).
if [[ $role == replica ]]; then
  want=$(field master_repl_offset "$repl")
  catchup_end=$(( $(date +%s) + MAX_LAG + 5 ))
  while :; do
    lease_ok || die "lost the claim before BGSAVE"
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
  lease_ok || die "lost the claim while waiting for a running save"
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
  lease_ok || die "lost the claim while BGSAVE ran"
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

# fenced COMMAND...: runs it, stopped if the claim expires first: a multipart upload cut
# before it completed leaves no object, so a node that lost its claim lands no file.
fenced() {
  local pid
  "$@" 9>&- &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if ! fence_ok; then
      # The subshell's children first: killing the subshell alone would leave aws uploading.
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      log "the claim expired: stopped $1"
      return 1
    fi
    sleep 0.2
  done
  wait "$pid"
}
# with_retry WHAT COMMAND...: attempts with doubling back-off; logs every failure.
with_retry() {
  local what=$1 i delay=$RETRY_BASE
  shift
  for (( i = 1; i <= ATTEMPTS; i++ )); do
    fence_ok || die "lost the claim before $what"
    if fenced "$@"; then return 0; fi
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
printf '%s\n' "$manifest" >"$WORK/shard.json"
lease_ok || die "lost the claim before writing the manifest (the RDB is there; the next candidate takes the shard over)"
# Created only if absent where the CLI can say so (one manifest per shard, whoever else
# ran); without it, the claim alone stands for that, and a plain put saves a call.
put_manifest() { aws_ s3api put-object --bucket "$BUCKET" --key "$KEY_PREFIX/shard-$SHARD.json" --body "$WORK/shard.json" "${sse_api[@]}" >/dev/null; }
if (( CONDITIONAL )); then
  create_obj "shard-$SHARD.json" "$WORK/shard.json" ||
    die "$DEST/shard-$SHARD.json exists already: another node finished this shard (npm run cluster -- backups checks its RDB against it)"
else
  with_retry "upload of $DEST/shard-$SHARD.json" put_manifest ||
    die "upload of the shard manifest $DEST/shard-$SHARD.json failed (the RDB is there; the backup is incomplete)"
fi
stop_renewal
HOLDING=
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
manifests="$WORK/manifests"
mkdir -p "$manifests"
aws_ s3 cp --only-show-errors --recursive --exclude '*' --include 'shard-*.json' "$DEST/" "$manifests/" || die "cannot read the shard manifests in $DEST/ to write backup.json"
for (( s = 0; s < shard_count; s++ )); do
  m=$(cat "$manifests/shard-$s.json" 2>/dev/null) || die "$DEST/shard-$s.json is missing: cannot write backup.json"
  k=$(sed -n 's/^ *"keys": \([0-9]*\),$/\1/p' <<<"$m")
  b=$(sed -n 's/^ *"bytes": \([0-9]*\),$/\1/p' <<<"$m")
  h=$(sed -n 's/^ *"sha256": "\([0-9a-f]*\)",$/\1/p' <<<"$m")
  t=$(sed -n 's/^ *"startedAt": "\([^"]*\)",$/\1/p' <<<"$m")
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
