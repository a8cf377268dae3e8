# The KVM suite's job inside the nested bed's L1 (tests/suite-kvm runs it where the host has no usable
# /dev/kvm): the same binaries and script as on a host with KVM, from the same repository layout under
# /work/kvm. Prints the suite's TAP lines, prefixed like tests/suite-kvm does, then a closing marker.
cd /work/kvm || exit 1
# L1 has 1.5 GiB: let the 5 GiB guest's lazily touched RAM be mapped (virtus's own check steps aside then).
echo 1 >/proc/sys/vm/overcommit_memory
export CMOCKA_MESSAGE_OUTPUT=TAP
for t in build-asan/tests/kvm/test_*; do
	"$t" | sed -E "s/^(not ok|ok) ([0-9]+) - /\1 \2 - $(basename "$t"): /"
done
KVM_SMP_RUNS=10 VIRTUS=build-asan/virtus VSOCK_TOOL=/work/vsock bash tests/kvm/cli.sh | sed -E "s/^(not ok|ok) ([0-9]+) - /\1 \2 - cli.sh: /"
VIRTUS=build-asan/virtus VSOCK_TOOL=/work/vsock bash tests/kvm/manage.sh | sed -E "s/^(not ok|ok) ([0-9]+) - /\1 \2 - manage.sh: /"
echo "kvm-bed: done"
