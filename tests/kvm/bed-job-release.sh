# The KVM suite's second job inside the nested bed's L1 (tests/suite-kvm): the managed-VM tests again with
# the release build, whose seccomp filters stop the VMM on a call their lists lack (an AddressSanitizer
# build's only log them: vmm/sandbox.h). A job of its own keeps each L1 boot well inside its time limit.
cd /work/kvm || exit 1
VIRTUS=build/virtus GUESTS=build-asan/tests/kvm/guests VSOCK_TOOL=/work/vsock bash tests/kvm/manage.sh |
	sed -E "s/^(not ok|ok) ([0-9]+) - /\1 \2 - manage.sh (release build, seccomp enforced): /"
echo "kvm-bed: done"
