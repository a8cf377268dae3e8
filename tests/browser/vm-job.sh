# Nested-bed job (L1) for the browser suite's VM part: a detached VM with an empty CD drive, and `virtus serve`
# on L1's port 8006 (which the bed forwards to L0, where Chromium runs tests/browser/test_vm_page.py). The job
# ends when the page has ended the VM (its last step), or after 400 s.
mkdir -p /opt/web && cp -r /work/web/. /opt/web/ # next to /opt/virtus/virtus, where serve looks
mkdir -p /tmp/vms /tmp/root
export VIRTUS_VM_RUN_DIR=/tmp/vms
virtus vm run -d --name web1 --memory 256M --cmdline "console=ttyS0 quiet panic=-1" --cdrom >/tmp/vm-run.out 2>&1 ||
	{ echo "vm-page: vm run failed: $(cat /tmp/vm-run.out)"; echo "kvm-bed: done"; exit 1; }
virtus --root /tmp/root serve --listen 0.0.0.0:8006 --iso-dir /work/isos >/tmp/serve.out 2>/tmp/serve.err &
for _ in $(seq 50); do grep -q open /tmp/serve.out && break; sleep 0.2; done
echo "vm-page: serve: $(cat /tmp/serve.out) $(cat /tmp/serve.err)"
for _ in $(seq 400); do
	[ -d /tmp/vms/web1 ] || break
	sleep 1
done
echo "vm-page: VM gone: $([ -d /tmp/vms/web1 ] && echo no || echo yes)"
kill %1 2>/dev/null
echo "kvm-bed: done"
