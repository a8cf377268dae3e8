# Nested-bed job (L1) for the browser suite's VM part: a detached VM with an empty CD drive, `virtus serve` on
# L1's port 8006 and a second one (a migration's destination, with VMs of its own) on 8007 (which the bed
# forwards to L0, where Chromium runs tests/browser/test_vm_page.py). The job
# ends when the page has ended the VM (its last step) and none came back for 20 s, or after 500 s.
mkdir -p /opt/web && cp -r /work/web/. /opt/web/ # next to /opt/virtus/virtus, where serve looks
mkdir -p /tmp/vms /tmp/root
dd if=/dev/zero of=/tmp/data.img bs=1M count=8 2>/dev/null # for the page's disk hot-plug
export VIRTUS_VM_RUN_DIR=/tmp/vms
virtus vm run -d --name web1 --memory 256M --cmdline "console=ttyS0 quiet panic=-1" --cdrom >/tmp/vm-run.out 2>&1 ||
	{ echo "vm-page: vm run failed: $(cat /tmp/vm-run.out)"; echo "kvm-bed: done"; exit 1; }
virtus --root /tmp/root serve --listen 0.0.0.0:8006 --iso-dir /work/isos >/tmp/serve.out 2>/tmp/serve.err &
# a second server, as another host's would be: the page migrates the VM to it
mkdir -p /tmp/vms2 /tmp/root2
VIRTUS_VM_RUN_DIR=/tmp/vms2 virtus --root /tmp/root2 serve --listen 0.0.0.0:8007 >/tmp/serve2.out 2>/tmp/serve2.err &
for _ in $(seq 50); do grep -q open /tmp/serve.out && grep -q open /tmp/serve2.out && break; sleep 0.2; done
echo "vm-page: serve: $(cat /tmp/serve.out) $(cat /tmp/serve.err)"
echo "vm-page: serve2: $(cat /tmp/serve2.out) $(cat /tmp/serve2.err)"
gone=0 # seconds without a VM: the page's kill before its restore leaves none for a moment
for i in $(seq 500); do
	left="$(ls /tmp/vms) $(ls /tmp/vms2)"
	if [ "$left" = " " ]; then gone=$((gone + 1)); else gone=0; fi
	[ $gone = 0 ] && [ $((i % 30)) = 0 ] && echo "vm-page: VM directories: $left"
	[ $gone -ge 20 ] && break
	sleep 1
done
echo "vm-page: VM gone: $([ "$(ls /tmp/vms) $(ls /tmp/vms2)" = " " ] && echo yes || echo no)"
kill %1 %2 2>/dev/null
echo "kvm-bed: done"
