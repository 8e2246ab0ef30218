# Sourced by the console bench scripts: a real OpenSSH sshd on 127.0.0.1 whose one
# throwaway local user runs `$work/console` (written by the caller) as its
# ForceCommand. After `console_sshd_start`: $work, $user, $password, $port and
# $work/known_hosts; everything is removed by the EXIT trap it installs. Needs root.
console_sshd_start() {
    [ "$(id -u)" -eq 0 ] || { echo "run as root (it creates a throwaway local user for sshd)" >&2; exit 1; }
    for tool in /usr/sbin/sshd ssh-keygen /usr/bin/time useradd chpasswd userdel; do
        command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
    done
    work=$(mktemp -d)
    # The simulator runs as the throwaway user: it writes its state and lock here.
    chmod 1777 "$work"
    user="fkbench$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    sshd_pid=
    made_privsep=0
    trap console_sshd_cleanup EXIT
    useradd -M -d "$work" -s /bin/sh "$user"
    echo "$user:$password" | chpasswd
    [ -d /run/sshd ] || { mkdir -p /run/sshd; chmod 755 /run/sshd; made_privsep=1; }
    ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519"
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    cat > "$work/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $work/host_ed25519
PidFile $work/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
UsePAM yes
PrintMotd no
AllowUsers $user
MaxStartups 100
Match User $user
    ForceCommand $work/console
CONF
    chmod 600 "$work/sshd_config"
    /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
    sshd_pid=$!
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.1
    done
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$work/host_ed25519.pub")" > "$work/known_hosts"
    chmod 644 "$work/known_hosts"
}

console_sshd_cleanup() {
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
    pkill -u "$user" 2>/dev/null || true
    sleep 0.2
    userdel -r "$user" 2>/dev/null || userdel "$user" 2>/dev/null || true
    # The per-connection sshd processes go a moment after the listener.
    for _ in 1 2 3 4 5 6 7 8 9 10; do pgrep -x sshd >/dev/null || break; sleep 0.2; done
    if [ "$made_privsep" = 1 ] && ! pgrep -x sshd >/dev/null; then rmdir /run/sshd 2>/dev/null; fi
    rm -rf "$work"
}

# The median of the numbers on stdin, one per line.
median() {
    sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
