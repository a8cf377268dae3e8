# The KVM suite's job inside the nested bed's L1 (tests/suite-kvm runs it where the host has no usable
# /dev/kvm): the same binaries and scripts as on a host with KVM, from the same repository layout under
# /work/kvm. Runs the parts named in KVM_PARTS (default: all, in this order), each between a begin and a
# done marker so that a later L1 boot can go on from the first part left unfinished, then a closing marker.
#   binaries        the test_* programs (ASan+UBSan)
#   cli             tests/kvm/cli.sh (ASan+UBSan)
#   manage          tests/kvm/manage.sh (ASan+UBSan)
#   manage-release  manage.sh again with the release build, whose seccomp filters stop the VMM on a call
#                   their lists lack (an AddressSanitizer build's only log them: vmm/sandbox.h)
cd /work/kvm || exit 1
# L1 has 1.5 GiB: let the 5 GiB guest's lazily touched RAM be mapped (virtus's own check steps aside then).
echo 1 >/proc/sys/vm/overcommit_memory
# --jail (manage.sh) makes a cgroup for the VMM: L1's init mounts none
grep -q ' /sys/fs/cgroup ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
export CMOCKA_MESSAGE_OUTPUT=TAP VSOCK_TOOL=/work/vsock
prefix() { sed -E "s/^(not ok|ok) ([0-9]+) - /\1 \2 - $1: /"; }
for part in ${KVM_PARTS:-binaries cli manage manage-release}; do
	echo "kvm-bed: part $part begins"
	case $part in
	binaries) for t in build-asan/tests/kvm/test_*; do "$t" | prefix "$(basename "$t")"; done ;;
	cli) KVM_SMP_RUNS=10 VIRTUS=build-asan/virtus bash tests/kvm/cli.sh | prefix cli.sh ;;
	manage) VIRTUS=build-asan/virtus bash tests/kvm/manage.sh | prefix manage.sh ;;
	manage-release) VIRTUS=build/virtus GUESTS=build-asan/tests/kvm/guests bash tests/kvm/manage.sh |
		prefix "manage.sh (release build, seccomp enforced)" ;;
	*) echo "not ok 1 - kvm-bed: no part '$part'" ;;
	esac
	echo "kvm-bed: part $part done"
done
echo "kvm-bed: done"
