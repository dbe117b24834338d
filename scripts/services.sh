#!/usr/bin/env bash
# Starts or stops a real service on this machine for Spate's system tests:
#   scripts/services.sh start|stop|status NAME
# Services:
#   slurm     a one-node Slurm cluster (slurmctld + slurmd, munge auth) from
#             Debian's packages; `srun -n 3` runs on a 2-core node. Needs root.
#   chromium  headless Chromium from Debian's package, its DevTools protocol
#             on 127.0.0.1:9222 (SPATE_CHROMIUM_PORT), for the web UI's
#             browser test. Installing it needs root.
#   s3        an S3-compatible server on 127.0.0.1:9000 (SPATE_S3_PORT):
#             moto's server mode from PyPI, in a virtualenv under
#             ~/.cache/spate-test/moto (SPATE_S3_VENV), with the bucket
#             spate-test. Any access key is accepted; the object store
#             tests use the environment `scripts/services.sh env s3` prints.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status|env slurm|chromium|s3" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1 name=$2

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "services.sh: $name needs root (packages and daemons)" >&2
        exit 1
    fi
}

slurm_start() {
    need_root
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "services.sh: installing slurm-wlm and munge" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
    fi
    # munge: a key, then the daemon as its own user.
    mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- munged
    fi
    # Slurm's configuration where srun finds it by default.
    local host cpus
    host=$(hostname -s)
    cpus=$(( $(nproc) > 4 ? $(nproc) : 4 ))
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat > /etc/slurm/slurm.conf <<CONF
# Written by spate's scripts/services.sh: a one-node cluster for tests.
ClusterName=spate
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# More CPUs than the machine has, so that srun -n 3 runs on 2 cores.
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    if ! pgrep -x slurmctld >/dev/null; then
        slurmctld
    fi
    if ! pgrep -x slurmd >/dev/null; then
        slurmd
    fi
    # Ready when the node is idle (or mixed), within 60 s.
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "services.sh: slurm is up ($(sinfo -h -o '%N %c CPUs %T'))" >&2
            return 0
        fi
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "services.sh: slurm did not come up; see /var/log/slurm/" >&2
    sinfo >&2 || true
    exit 1
}

# Stops the daemons named, waiting until they are gone (SIGKILL after 10 s).
stop_daemons() {
    for d in "$@"; do pkill -x "$d" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for d in "$@"; do pgrep -x "$d" >/dev/null && alive=1; done
        [ $alive -eq 0 ] && return 0
        sleep 0.1
    done
    for d in "$@"; do pkill -9 -x "$d" 2>/dev/null || true; done
}

slurm_stop() {
    need_root
    scontrol shutdown >/dev/null 2>&1 || true
    stop_daemons slurmd slurmctld munged
    echo "services.sh: slurm stopped" >&2
}

slurm_status() {
    sinfo -h -o '%N %c CPUs %T'
}

chromium_port=${SPATE_CHROMIUM_PORT:-9222}
chromium_dir=${TMPDIR:-/tmp}/spate-chromium
chromium_answers() {
    # The DevTools endpoint names the browser once it is ready.
    local reply
    reply=$( { exec 3<>"/dev/tcp/127.0.0.1/$chromium_port" &&
        printf 'GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
        timeout 5 cat <&3; } 2>/dev/null ) || true
    [[ $reply == *'"Browser"'* ]]
}

chromium_start() {
    if ! command -v chromium >/dev/null; then
        need_root
        echo "services.sh: installing chromium" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    fi
    if chromium_answers; then
        echo "services.sh: chromium is already up on 127.0.0.1:$chromium_port" >&2
        return 0
    fi
    rm -rf "$chromium_dir" && mkdir -p "$chromium_dir"
    # --no-sandbox: the sandbox needs user namespaces that root in a
    # container often lacks; the browser only opens loopback pages.
    setsid chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-extensions --disable-background-networking \
        --remote-debugging-address=127.0.0.1 \
        --remote-debugging-port="$chromium_port" \
        --user-data-dir="$chromium_dir/profile" about:blank \
        >"$chromium_dir/log" 2>&1 </dev/null &
    echo $! >"$chromium_dir/pid"
    for _ in $(seq 100); do
        if chromium_answers; then
            echo "services.sh: chromium is up ($(chromium --version)) on 127.0.0.1:$chromium_port" >&2
            return 0
        fi
        sleep 0.2
    done
    echo "services.sh: chromium did not come up; see $chromium_dir/log" >&2
    tail -20 "$chromium_dir/log" >&2 || true
    exit 1
}

chromium_stop() {
    if [ -s "$chromium_dir/pid" ]; then
        # setsid made it a process group leader: stop its helpers too.
        kill -- -"$(cat "$chromium_dir/pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            chromium_answers || break
            sleep 0.2
        done
        kill -9 -- -"$(cat "$chromium_dir/pid")" 2>/dev/null || true
        rm -f "$chromium_dir/pid"
    fi
    echo "services.sh: chromium stopped" >&2
}

chromium_status() {
    chromium_answers && echo "chromium on 127.0.0.1:$chromium_port"
}

s3_port=${SPATE_S3_PORT:-9000}
s3_dir=${TMPDIR:-/tmp}/spate-s3
s3_venv=${SPATE_S3_VENV:-$HOME/.cache/spate-test/moto}
s3_bucket=spate-test
moto_version=5.2.6

# Sends one request to the server: s3_request METHOD PATH; prints the
# status line, fails if nothing answers.
s3_request() {
    local reply
    reply=$( { exec 3<>"/dev/tcp/127.0.0.1/$s3_port" &&
        printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' \
            "$1" "$2" "$s3_port" >&3 &&
        timeout 5 cat <&3; } 2>/dev/null ) || return 1
    [[ -n $reply ]] && head -1 <<<"$reply"
}

s3_start() {
    if ! "$s3_venv/bin/python" -c "import moto; assert moto.__version__ == '$moto_version'" 2>/dev/null; then
        echo "services.sh: installing moto[server]==$moto_version into $s3_venv" >&2
        python3 -m venv "$s3_venv"
        "$s3_venv/bin/pip" install -q "moto[server]==$moto_version"
    fi
    if ! s3_request GET / >/dev/null; then
        mkdir -p "$s3_dir"
        setsid "$s3_venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" \
            >"$s3_dir/log" 2>&1 </dev/null &
        echo $! >"$s3_dir/pid"
        local up=0
        for _ in $(seq 100); do
            if s3_request GET / >/dev/null; then up=1; break; fi
            sleep 0.2
        done
        if [ $up -eq 0 ]; then
            echo "services.sh: the S3 server did not come up; see $s3_dir/log" >&2
            tail -20 "$s3_dir/log" >&2 || true
            exit 1
        fi
    fi
    # Creating a bucket that is there already succeeds on moto.
    if ! s3_request PUT "/$s3_bucket" | grep -q ' 200'; then
        echo "services.sh: could not create the bucket $s3_bucket" >&2
        exit 1
    fi
    echo "services.sh: S3 (moto $moto_version) is up on 127.0.0.1:$s3_port with bucket $s3_bucket" >&2
}

s3_stop() {
    if [ -s "$s3_dir/pid" ]; then
        kill -- -"$(cat "$s3_dir/pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            s3_request GET / >/dev/null || break
            sleep 0.2
        done
        kill -9 -- -"$(cat "$s3_dir/pid")" 2>/dev/null || true
        rm -f "$s3_dir/pid"
    fi
    echo "services.sh: S3 stopped" >&2
}

s3_status() {
    s3_request GET / >/dev/null && echo "S3 on 127.0.0.1:$s3_port"
}

# The environment the object store tests (and users) reach the server with.
s3_env() {
    cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=spate
export AWS_SECRET_ACCESS_KEY=spate
export AWS_REGION=us-east-1
export SPATE_TEST_S3=s3://$s3_bucket
ENV
}

case "$name:$action" in
    slurm:start) slurm_start ;;
    slurm:stop) slurm_stop ;;
    slurm:status) slurm_status ;;
    chromium:start) chromium_start ;;
    chromium:stop) chromium_stop ;;
    chromium:status) chromium_status ;;
    s3:start) s3_start ;;
    s3:stop) s3_stop ;;
    s3:status) s3_status ;;
    s3:env) s3_env ;;
    *) usage ;;
esac
