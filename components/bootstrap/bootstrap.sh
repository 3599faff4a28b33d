# Body of the node bootstrap. userData.ts prepends `#!/bin/bash`, `set -euo pipefail`,
# the node's values (upper-case variables) and the embedded templates (tpl_* functions),
# and appends `main "$@"`. Full-line comments are stripped from the user data to stay
# under EC2's 16 KB limit; this file is the commented source.
#
# Modes:
#   (no argument)  cloud-init, first boot of an instance: install this script and
#                  redis-bootstrap.service, run the unit, start the engine.
#   --run          redis-bootstrap.service, every boot, ordered before the engine.
#
# Environment (tests, and running by hand):
#   REDIS_BOOTSTRAP_IMDS_URL        metadata endpoint (default http://169.254.169.254)
#   REDIS_BOOTSTRAP_SKIP_PACKAGES=1 don't dnf install (the engine must be on PATH)
#   REDIS_BOOTSTRAP_SKIP_KERNEL=1   write the sysctl file, but don't apply it or touch THP
#   REDIS_BOOTSTRAP_SKIP_SYSTEMD=1  write unit files, but no systemctl (the installer runs --run inline)
#   REDIS_BOOTSTRAP_USER            owner of the data dir and group of the config (default $SERVICE_USER, created when missing)
#   REDIS_BOOTSTRAP_DEVICE_TIMEOUT  seconds to wait for the data volume (default 600)

IMDS=${REDIS_BOOTSTRAP_IMDS_URL:-http://169.254.169.254}
CHANGED=0

# Logs go to stderr, so a function whose stdout is captured (ssm, imds) can log.
log() { printf '%s redis-bootstrap[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NODE_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
skip() { [[ ${!1:-} == 1 ]]; }

# write_file PATH MODE OWNER:GROUP < content. Replaces the file only when the content
# differs (so a re-run changes nothing); mode and owner are enforced every time.
write_file() {
  local path=$1 mode=$2 owner=$3 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    chmod "$mode" "$path"
    chown "$owner" "$path"
  else
    mv -f "$tmp" "$path"
    log "wrote $path"
    CHANGED=1
  fi
}

# ver_ge A.B C.D: the detected engine version is at least C.D.
ver_ge() {
  local a=$1 b=$2
  (( ${a%%.*} > ${b%%.*} || (${a%%.*} == ${b%%.*} && ${a#*.} >= ${b#*.}) ))
}

# render_template ENGINE_MAJOR.MINOR < template: resolve `@@>=X.Y@@` / `@@<X.Y@@` line
# gates exactly as resolveVersionGates in template.ts does.
render_template() {
  local line re='^@@(>=|<)([0-9]+\.[0-9]+)@@(.*)$'
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ $re ]]; then
      if ver_ge "$1" "${BASH_REMATCH[2]}"; then
        [[ ${BASH_REMATCH[1]} == '>=' ]] && printf '%s\n' "${BASH_REMATCH[3]}"
      else
        [[ ${BASH_REMATCH[1]} == '<' ]] && printf '%s\n' "${BASH_REMATCH[3]}"
      fi
    else
      printf '%s\n' "$line"
    fi
  done
  return 0
}

# A redis.conf double-quoted value, as quoteConfValue in template.ts.
conf_quote() {
  local v=$1
  [[ $v == *$'\n'* || $v == *$'\r'* ]] && die "a password contains a line break; redis.conf cannot hold it"
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  printf '"%s"' "$v"
}

sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# fill_node_settings TEMPLATE DOCUMENT: fills the cluster-wide settings and maxmemory into the
# redis.conf template (the masterauth is left to the caller). DOCUMENT is the SSM node-settings
# parameter (nodeSettings.ts): KEY=VALUE lines, KEY a template token without its @@
# (MAXMEMORY_POLICY ...), or MAXMEMORY_PERCENT: the share of MemTotal that becomes
# @@MAXMEMORY_BYTES@@. Only plain-word values are used (anything else, comments included, is
# skipped), so the order of substitution does not matter and fillTokens in template.ts gives
# the same text. A key the template lacks is ignored (a newer stack); a token left unfilled
# (a missing or invalid value) stops the bootstrap before redis.conf is written.
fill_node_settings() {
  local conf=$1 line k v kb
  kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
  while IFS= read -r line; do
    [[ $line =~ ^([A-Z][A-Z0-9_]*)=([A-Za-z0-9._-]+)$ ]] || continue
    k=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
    [[ $k$v =~ ^MAXMEMORY_PERCENT[1-9][0-9]?$ ]] && k=MAXMEMORY_BYTES v=$(( kb * 1024 * v / 100 ))
    conf=${conf//"@@$k@@"/"$v"}
  done <<<"$2"
  [[ ${conf//@@MASTERAUTH@@/} =~ @@([A-Z_]+)@@ ]] && die "$SSM_NODE_SETTINGS has no valid ${BASH_REMATCH[1]/BYTES/PERCENT}"
  printf '%s' "$conf"
}

imds_token() {
  curl -fsS --retry 10 --retry-connrefused --retry-delay 1 --max-time 5 -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 3600' "$IMDS/latest/api/token"
}
imds() {
  curl -fsS --retry 5 --retry-connrefused --retry-delay 1 --max-time 5 \
    -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/$1"
}

# ssm NAME: a parameter's (decrypted) value, retried: at boot the SSM endpoint or
# the instance profile's credentials may need a few seconds.
ssm() {
  local i out err
  err=$(mktemp)
  for i in 1 2 3 4 5 6; do
    # Short CLI timeouts (defaults: 60 s connect, 60 s read, 3 attempts): six tries with these
    # end in about 4.5 min, well inside the unit's TimeoutStartSec, so the die message below is logged.
    if out=$(aws ssm get-parameter --cli-connect-timeout 5 --cli-read-timeout 10 --region "$AWS_REGION" \
      --name "$1" --with-decryption --query Parameter.Value --output text 2>"$err"); then
      rm -f "$err"
      printf '%s' "$out"
      return 0
    fi
    log "ssm get-parameter $1 failed (attempt $i): $(head -c 500 "$err")"
    sleep $(( i * i ))
  done
  rm -f "$err"
  die "cannot read SSM parameter $1: check the instance role allows ssm:GetParameter (and kms:Decrypt) and that the node reaches SSM (VPC endpoint or NAT)"
}

# --- first boot under cloud-init: install, then let systemd run everything ---------
install_self() {
  log "installing $SCRIPT_PATH and redis-bootstrap.service"
  write_file "$SCRIPT_PATH" 0755 root:root <"$0"
  tpl_bootstrap_unit | write_file "$SYSTEMD_DIR/redis-bootstrap.service" 0644 root:root
  if skip REDIS_BOOTSTRAP_SKIP_SYSTEMD; then
    exec "$SCRIPT_PATH" --run
  fi
  systemctl daemon-reload
  systemctl enable redis-bootstrap.service
  systemctl start redis-bootstrap.service ||
    die "redis-bootstrap.service failed; systemd retries it every 30 s and starts $SERVICE once it succeeds: journalctl -u redis-bootstrap.service"
  systemctl start "$SERVICE" || die "$SERVICE failed to start: journalctl -u $SERVICE"
  log "node ready: $SERVICE is active"
}

# --- the data volume ---------------------------------------------------------------
find_device() {
  local serial=${DATA_VOLUME_ID//-/} link
  link="$DEV_BY_ID/nvme-Amazon_Elastic_Block_Store_$serial"
  if [[ -e $link ]]; then readlink -f "$link"; return 0; fi
  # Without the udev link, the NVMe controller's serial is the volume id without the dash.
  lsblk -dnpo NAME,SERIAL 2>/dev/null | awk -v s="$serial" '$2 == s { print $1; exit }'
}

mount_data_volume() {
  local dev="" waited=0 timeout=${REDIS_BOOTSTRAP_DEVICE_TIMEOUT:-600} rc=0 fstype uuid src line out
  while dev=$(find_device); [[ -z $dev ]]; do
    (( waited >= timeout )) && die "data volume $DATA_VOLUME_ID is not attached after ${timeout}s (looked for $DEV_BY_ID/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME_ID//-/}): check the volume attachment"
    (( waited % 30 == 0 )) && log "waiting for data volume $DATA_VOLUME_ID to attach"
    sleep 2
    waited=$(( waited + 2 ))
  done
  log "data volume $DATA_VOLUME_ID is $dev"

  src=$(findmnt -rno TARGET -S "$dev" | head -n1 || true)
  [[ -z $src || $src == "$MOUNT_DIR" ]] || die "$dev is mounted on $src, not $MOUNT_DIR; refusing to touch it"

  # Only a device without any signature (filesystem, partition table, RAID...) is formatted.
  blkid -p "$dev" >/dev/null 2>&1 || rc=$?
  if (( rc == 2 )); then
    log "$dev is blank: creating an ext4 filesystem"
    mkfs.ext4 -q -L redis-data -m 0 -E nodiscard "$dev"
  elif (( rc != 0 )); then
    die "blkid -p $dev failed with code $rc; not formatting"
  else
    fstype=$(blkid -p -s TYPE -o value "$dev" || true)
    [[ $fstype == ext4 ]] || die "$dev holds ${fstype:-a partition table or unknown data}, not the ext4 filesystem this bootstrap creates; refusing to format or mount it"
    log "$dev has an ext4 filesystem: keeping it"
  fi
  uuid=$(blkid -p -s UUID -o value "$dev")

  # fstab: our line replaces any earlier one for the mount point (a volume from a previous instance).
  line="UUID=$uuid $MOUNT_DIR ext4 defaults,noatime,nofail,x-systemd.device-timeout=10s 0 2"
  {
    if [[ -f $FSTAB ]]; then awk -v m="$MOUNT_DIR" '$2 != m' "$FSTAB"; fi
    printf '%s\n' "$line"
  } | write_file "$FSTAB" 0644 root:root

  mkdir -p "$MOUNT_DIR"
  if mountpoint -q "$MOUNT_DIR"; then
    src=$(findmnt -rno SOURCE --mountpoint "$MOUNT_DIR")
    [[ $(readlink -f "$src") == "$(readlink -f "$dev")" ]] || die "$MOUNT_DIR is mounted from $src, not the data volume $dev"
  else
    mount -t ext4 -o defaults,noatime "UUID=$uuid" "$MOUNT_DIR"
    log "mounted $dev on $MOUNT_DIR"
  fi
  # Grows the filesystem after the volume was enlarged (dataVolumeSizeGiB); no-op otherwise. ext4 grows
  # online, so running this script with --run on a live node (docs/infrastructure.md) applies a resize
  # without a reboot.
  out=$(resize2fs "$dev" 2>&1 >/dev/null) || log "resize2fs $dev failed ($(tail -n1 <<<"$out")); the filesystem keeps its size"
}

# --- every boot ----------------------------------------------------------------------
run() {
  mkdir -p "$(dirname "$LOG_FILE")" "$(dirname "$LOCK_FILE")"
  # Journal (the unit's stdout) and a file; a re-exec keeps the tee it inherited.
  [[ -n ${REDIS_BOOTSTRAP_REEXEC:-} ]] || exec > >(tee -a "$LOG_FILE") 2>&1
  exec 9>"$LOCK_FILE"
  flock 9

  # Tools the script needs; a minimal or custom AMI may lack them (the standard AL2023 AMI has all).
  local pkgs=()
  command -v "$SERVER_BIN" >/dev/null || pkgs+=("$ENGINE_PACKAGE")
  command -v mkfs.ext4 >/dev/null || pkgs+=(e2fsprogs)
  command -v aws >/dev/null || pkgs+=(awscli-2)
  command -v cmp >/dev/null || pkgs+=(diffutils)
  command -v gunzip >/dev/null || pkgs+=(gzip)
  if (( ${#pkgs[@]} )); then
    skip REDIS_BOOTSTRAP_SKIP_PACKAGES && die "missing ${pkgs[*]} and REDIS_BOOTSTRAP_SKIP_PACKAGES=1"
    log "installing ${pkgs[*]}"
    dnf install -y -q --setopt=timeout=20 --setopt=retries=3 "${pkgs[@]}" ||
      die "dnf install ${pkgs[*]} failed: check the S3 gateway endpoint and its route (the Amazon Linux repositories are in S3) and that the AMI's release ships these packages"
  fi

  IMDS_TOKEN=$(imds_token) || die "no IMDSv2 token from $IMDS"
  AWS_REGION=$(imds meta-data/placement/region) || AWS_REGION=$REGION
  INSTANCE_ID=$(imds meta-data/instance-id) || INSTANCE_ID=unknown
  # One retry inside the CLI; ssm() retries around it with backoff.
  export AWS_REGION AWS_MAX_ATTEMPTS=2 AWS_RETRY_MODE=standard
  log "bootstrap of $NODE_NAME ($CLUSTER_NAME) on $INSTANCE_ID in $AWS_REGION"

  # The user data may have changed by a stop/start (cloud-init does not rerun it then):
  # install and run the current one. It may be gzip-compressed (userDataBase64).
  local ud
  ud=$(mktemp)
  if [[ -z ${REDIS_BOOTSTRAP_REEXEC:-} ]] && imds user-data >"$ud.raw" 2>/dev/null; then
    gunzip -c "$ud.raw" >"$ud" 2>/dev/null || cp "$ud.raw" "$ud"
    if [[ $(head -c 11 "$ud") == '#!/bin/bash' ]] && ! cmp -s "$ud" "$SCRIPT_PATH"; then
      log "user data changed since this script was installed: installing and running the new one"
      write_file "$SCRIPT_PATH" 0755 root:root <"$ud"
      rm -f "$ud" "$ud.raw"
      REDIS_BOOTSTRAP_REEXEC=1 exec "$SCRIPT_PATH" --run
    fi
  fi
  rm -f "$ud" "$ud.raw"

  # Engine
  local version user group unit_type supervised
  version=$("$SERVER_BIN" --version | sed -n 's/.*v=\([0-9]*\.[0-9]*\).*/\1/p')
  [[ $version =~ ^[0-9]+\.[0-9]+$ ]] || die "cannot read the version of $SERVER_BIN"
  ver_ge "$version" 6.2 || die "$SERVER_BIN is version $version; the bootstrap needs 6.2 or newer (ACL channels, CLIENT INFO)"
  # READY=1 comes only from a build with libsystemd; otherwise a notify unit would be killed at its start timeout.
  # Not `ldd | grep -q`: grep quitting early makes ldd die of SIGPIPE, which pipefail reports as a failure.
  if [[ $(ldd "$(command -v "$SERVER_BIN")" 2>/dev/null) == *libsystemd* ]]; then
    unit_type=notify supervised=systemd
  else
    unit_type=simple supervised=no
  fi
  log "engine $SERVER_BIN $version (Type=$unit_type)"
  user=${REDIS_BOOTSTRAP_USER:-$SERVICE_USER}
  if ! id -u "$user" >/dev/null 2>&1; then
    log "creating system user $user"
    useradd --system --user-group --no-create-home --home-dir "$MOUNT_DIR" --shell /sbin/nologin "$user"
  fi
  group=$(id -gn "$user")

  # Kernel: what Redis warns about at start.
  tpl_sysctl | write_file "$SYSCTL_DIR/90-redis-cluster.conf" 0644 root:root
  if ! skip REDIS_BOOTSTRAP_SKIP_KERNEL; then
    sysctl -q -p "$SYSCTL_DIR/90-redis-cluster.conf"
    local thp
    for thp in enabled defrag; do
      [[ -w /sys/kernel/mm/transparent_hugepage/$thp ]] && echo never >"/sys/kernel/mm/transparent_hugepage/$thp"
    done
  fi

  mount_data_volume
  mkdir -p "$DATA_DIR"
  # A replaced instance may give the service user another uid: fix ownership then.
  [[ $(stat -c %U "$DATA_DIR") == "$user" ]] || chown -R "$user:$group" "$DATA_DIR"
  chmod 0750 "$DATA_DIR"

  # Secrets: read at every boot, never in the user data.
  local admin_pw app_pw repl_pw settings conf acl
  admin_pw=$(ssm "$SSM_ADMIN_PASSWORD")
  app_pw=$(ssm "$SSM_APP_PASSWORD")
  repl_pw=$(ssm "$SSM_REPLICATION_PASSWORD")
  # Cluster-wide settings (maxmemory share, policy, timeouts): read at every boot, never in the user data.
  settings=$(ssm "$SSM_NODE_SETTINGS")
  # The engine's user reads its configuration through the group.
  install -d -m 0750 -o root -g "$group" "$CONF_DIR" "$(dirname "$TLS_CA_FILE")"
  if [[ $TLS == 1 ]]; then
    local ca cert key
    ca=$(ssm "$SSM_TLS_CA_CERT")
    cert=$(ssm "$SSM_TLS_CERT")
    key=$(ssm "$SSM_TLS_KEY")
    printf '%s\n' "$ca" | write_file "$TLS_CA_FILE" 0644 "root:$group"
    printf '%s\n' "$cert" | write_file "$TLS_CERT_FILE" 0644 "root:$group"
    printf '%s\n' "$key" | write_file "$TLS_KEY_FILE" 0640 "root:$group"
  fi

  acl=$(tpl_acl | render_template "$version")
  acl=${acl//"@@ADMIN_PASSWORD_SHA256@@"/"$(sha256 "$admin_pw")"}
  acl=${acl//"@@APP_PASSWORD_SHA256@@"/"$(sha256 "$app_pw")"}
  acl=${acl//"@@REPLICATION_PASSWORD_SHA256@@"/"$(sha256 "$repl_pw")"}
  printf '%s\n' "$acl" | write_file "$ACL_FILE" 0640 "root:$group"

  conf=$(tpl_redis_conf | render_template "$version")
  conf=$(fill_node_settings "$conf" "$settings")
  conf=${conf//"@@MASTERAUTH@@"/"$(conf_quote "$repl_pw")"}
  printf '%s\n' "$conf" | write_file "$REDIS_CONF" 0640 "root:$group"

  # systemd: this unit, and the engine's own unit extended by a drop-in. daemon-reload
  # also turns a new fstab line into the mount unit the engine's RequiresMountsFor= names.
  tpl_bootstrap_unit | write_file "$SYSTEMD_DIR/redis-bootstrap.service" 0644 root:root
  local dropin
  dropin=$(tpl_engine_dropin)
  dropin=${dropin//@@SERVICE_TYPE@@/$unit_type}
  dropin=${dropin//@@SUPERVISED@@/$supervised}
  printf '%s\n' "$dropin" | write_file "$SYSTEMD_DIR/$SERVICE.d/redis-cluster.conf" 0644 root:root
  if ! skip REDIS_BOOTSTRAP_SKIP_SYSTEMD; then
    systemctl daemon-reload
    systemctl enable -q redis-bootstrap.service "$SERVICE"
    if (( CHANGED )) && systemctl -q is-active "$SERVICE"; then
      log "configuration changed while $SERVICE runs: restart it to apply (the cluster tool restarts nodes one at a time)"
    fi
  fi

  # Hooks (backup timer, metrics publisher ...): installed from the user data, then
  # every executable in hooks.d runs; a failure is logged, the node still starts.
  install_hooks
  local hook rc
  for hook in "$HOOKS_DIR"/*; do
    [[ -f $hook && -x $hook ]] || continue
    log "hook $hook"
    rc=0
    REDIS_CLUSTER_NAME=$CLUSTER_NAME REDIS_NODE_NAME=$NODE_NAME REDIS_SHARD=$SHARD REDIS_REPLICA=$REPLICA \
      REDIS_PORT=$PORT REDIS_TLS=$TLS REDIS_CLI=$CLI_BIN REDIS_SERVICE=$SERVICE REDIS_CONF_DIR=$CONF_DIR \
      REDIS_DATA_DIR=$DATA_DIR REDIS_SSM_PREFIX=$SSM_PREFIX BACKUP_BUCKET=$BACKUP_BUCKET AWS_REGION=$AWS_REGION \
      "$hook" || rc=$?
    (( rc == 0 )) || log "WARNING: hook $hook exited with $rc"
  done
  log "bootstrap done"
}

main() {
  case ${1:-} in
    --run) run ;;
    "") install_self ;;
    *) echo "usage: $0 [--run]" >&2; exit 2 ;;
  esac
}
