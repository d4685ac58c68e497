#!/bin/bash
# Copies the desktop guest's boot files (vmlinuz, initrd.img: `npm run image:build`) from the
# image store bucket to /var/lib/pristine/guest, where PRISTINE_GUEST_KERNEL and
# PRISTINE_GUEST_INITRD point. Files not uploaded yet are reported and skipped: the agent starts
# anyway, and fails to boot VMs until they are there. Run before each start of the agent.
#
#   pristine-guest-files s3://<ImageBucket>/guest/ <region>
set -uo pipefail

SOURCE="${1:?usage: $0 s3://bucket/prefix/ region}"
REGION="${2:?usage: $0 s3://bucket/prefix/ region}"
DIR=/var/lib/pristine/guest

for f in vmlinuz initrd.img; do
  if /snap/bin/aws s3 cp --only-show-errors --region "$REGION" "$SOURCE$f" "$DIR/$f.new"; then
    chown pristine:pristine "$DIR/$f.new"
    mv "$DIR/$f.new" "$DIR/$f"
  else
    rm -f "$DIR/$f.new"
    echo "no $SOURCE$f yet: upload the guest's boot files (see Deploy to AWS in README.md)" >&2
  fi
done
exit 0
