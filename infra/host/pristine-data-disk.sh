#!/bin/bash
# Mounts a Pristine host's data disk on /var/lib/pristine (the datastore, the guest boot files and
# the agent's data dir), formatting it first when it is blank: a new gp3 datastore volume, or the
# NVMe instance store (blank again after every stop/start; several devices become one RAID 0).
# Run by pristine-data-disk.service on every boot, before the agent.
#
#   pristine-data-disk gp3|instance-store
set -euo pipefail

MNT=/var/lib/pristine
LABEL=pristine-data
case "${1:-}" in
  gp3) MODEL="Amazon Elastic Block Store" ;;
  instance-store) MODEL="Amazon EC2 NVMe Instance Storage" ;;
  *) echo "usage: $0 gp3|instance-store" >&2; exit 2 ;;
esac

if ! mountpoint -q "$MNT"; then
  if [ ! -e "/dev/disk/by-label/$LABEL" ]; then
    # Blank disks of that model: no partition, no filesystem (this excludes the root disk).
    blank=()
    for d in $(lsblk -dnpo NAME); do
      [[ "$(lsblk -dno MODEL "$d")" == *"$MODEL"* ]] || continue
      if [ "$(lsblk -nro NAME "$d" | wc -l)" -eq 1 ] && [ -z "$(lsblk -dnro FSTYPE "$d")" ]; then
        blank+=("$d")
      fi
    done
    if [ "${#blank[@]}" -eq 0 ]; then
      echo "no blank data disk ($MODEL) and no filesystem labelled $LABEL" >&2
      exit 1
    fi
    dev="${blank[0]}"
    if [ "${#blank[@]}" -gt 1 ]; then
      mdadm --create /dev/md/$LABEL --run --level=0 --raid-devices="${#blank[@]}" "${blank[@]}"
      dev=/dev/md/$LABEL
    fi
    mkfs.ext4 -q -L "$LABEL" -E nodiscard "$dev"
    udevadm settle
  fi
  install -d "$MNT"
  mount -o noatime "LABEL=$LABEL" "$MNT"
fi
install -d -o pristine -g pristine -m 0750 "$MNT" "$MNT/datastore" "$MNT/guest"
