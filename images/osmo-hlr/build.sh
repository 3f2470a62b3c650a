#!/usr/bin/env bash
# Builds localhost/nf-osmo-hlr:dev, an NF image for nfguard's end-to-end tests:
# Debian's osmo-hlr (a real 3GPP HLR) with its config, and, as real NF images
# have, a shell and the usual tools an attacker would use (sh, ps, which, clear,
# cat, id, ls). The root filesystem is assembled from this machine's packages
# (binaries plus the shared libraries ldd lists), then imported with an
# ENTRYPOINT and a CMD, like the OAI SMF image whose pod manifest has no command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-localhost/nf-osmo-hlr:dev}
root=$(mktemp -d /tmp/nf-osmo-hlr.XXXXXX)
trap 'rm -rf "$root"' EXIT
bins=(/usr/bin/osmo-hlr /usr/bin/dash /usr/bin/ps /usr/bin/which.debianutils /usr/bin/clear
      /usr/bin/cat /usr/bin/id /usr/bin/ls /usr/bin/sleep /usr/bin/test /usr/bin/rm)
# Merged /usr, as Debian 12 has it.
mkdir -p "$root"/usr/{bin,lib,lib64}
ln -s usr/bin "$root/bin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
copy() { mkdir -p "$root$(dirname "$1")"; cp -L "$1" "$root$1"; }
for b in "${bins[@]}"; do
  copy "$b"
  { ldd "$b" 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do copy "$lib"; done
done
copy /lib64/ld-linux-x86-64.so.2
ln -s dash "$root/usr/bin/sh"
ln -s which.debianutils "$root/usr/bin/which"
mkdir -p "$root"/{etc/osmocom,var/lib/osmocom,tmp,proc,sys,dev,scripts,usr/share/terminfo/x}
chmod 1777 "$root/tmp"
cp /etc/osmocom/osmo-hlr.cfg "$root/etc/osmocom/"
cp /usr/share/terminfo/x/xterm "$root/usr/share/terminfo/x/" 2>/dev/null || cp /lib/terminfo/x/xterm "$root/usr/share/terminfo/x/"
install -m 0755 "$here/live-ready.sh" "$root/scripts/live-ready.sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" -cf "$root.tar" .
podman import -q \
  --change 'ENTRYPOINT ["/usr/bin/osmo-hlr"]' \
  --change 'CMD ["-c", "/etc/osmocom/osmo-hlr.cfg", "-l", "/var/lib/osmocom/hlr.db"]' \
  --change 'ENV PATH=/usr/bin:/bin TERM=xterm' \
  "$root.tar" "$tag" >/dev/null
rm -f "$root.tar"
echo "built $tag"
