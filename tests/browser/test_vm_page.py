#!/usr/bin/env python3
"""The browser console's VM part, in a real headless Chromium on this host against `virtus serve` in the
nested bed's L1 (its port forwarded here): the VM in the list, its console in the page (a typed command's
output appears), pause and resume (the list and the console agree), a CD inserted with a click that the guest
then reads, another one swapped in, a disk plugged in, snapshot, kill and restore, a live migration to a
second server, and the VM killed from that server's page. Prints TAP (numbered from $TAP_START);
screenshots go to $SHOTS.

Environment: SERVE_URL (with the token), DEST_PAGE_URL (the second server, from here) and DEST_L1_URL (the
same, from the first server), SHOTS, TAP_START."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webdriver  # noqa: E402
from tap import Tap  # noqa: E402

URL = os.environ["SERVE_URL"]
BASE, TOKEN = URL.split("/#token=")
SHOTS = os.environ["SHOTS"]
tap = Tap(SHOTS, "vm-", int(os.environ.get("TAP_START", "0")))


def main():
    with webdriver.WebDriver() as d:
        def vm_row():
            rows = d.find_all('#vms tr[data-name="web1"]')
            assert rows, "no row for VM web1"
            return rows[0]

        def state():
            return d.text(d.find(".state", vm_row()))

        def term_text():
            return d.execute("return window.virtusTermText()")

        def type_line(text):
            d.send_keys(d.find(".xterm-helper-textarea"), text + webdriver.KEY_ENTER)

        def listed():
            d.get(URL)
            d.wait_for(lambda: d.find_all('#vms tr[data-name="web1"]'), 30, "VM web1 in the list")
            d.wait_for(lambda: state() == "Running", 30, "VM web1 Running")
            cells = d.text(vm_row())
            assert "256" in cells, f"the row does not show its 256 MiB: {cells!r}"
            d.screenshot(os.path.join(SHOTS, "vms.png"))
        if not tap.step(d, "VM: web1 is listed, Running, with its memory", listed):
            print(f"# giving up the VM checks; page text: {d.text(d.find('body'))[:500]!r}")
            return

        def console():
            d.click(d.find(".btn-console", vm_row()))
            d.wait_for(lambda: d.displayed(d.find("#terminal-panel")), 5, "the terminal panel")
            time.sleep(1)
            type_line("")
            d.wait_for(lambda: "#" in term_text(), 60, "the guest shell's prompt")
            type_line("echo $((6*7))")
            d.wait_for(lambda: "\n42" in term_text(), 30, "the command's output (42) in the console")
            d.screenshot(os.path.join(SHOTS, "vm-console.png"))
        tap.step(d, "VM console in the page: a command typed in the guest's shell prints its output", console)

        def pause_resume():
            d.click(d.find(".btn-pause", vm_row()))
            d.wait_for(lambda: state() == "Paused", 30, "VM web1 Paused")
            type_line("echo after-$((2+3))")
            time.sleep(2)
            assert "after-5" not in term_text(), "the paused guest answered"
            d.screenshot(os.path.join(SHOTS, "vm-paused.png"))
            d.click(d.find(".btn-pause", vm_row()))
            d.wait_for(lambda: state() == "Running", 30, "VM web1 Running again")
            d.wait_for(lambda: "after-5" in term_text(), 30, "the guest's answer once resumed")
        tap.step(d, "pause from the page: the guest stops answering; resume: it answers what was typed", pause_resume)

        def insert(iso):
            d.click(d.find(".btn-cd", vm_row()))
            d.wait_for(lambda: d.find_all(f'.cd-iso[data-iso="{iso}"]'), 10, f"{iso} in the CD picker")
            d.click(d.find(f'.cd-iso[data-iso="{iso}"]'))
            d.wait_for(lambda: iso in d.text(vm_row()), 30, f"{iso} in the VM's CD column")

        def read_disc(expect):
            type_line("mkdir -p /mnt/cd; mount -t iso9660 -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/hello.txt; umount /mnt/cd")
            d.wait_for(lambda: f"\n{expect}" in term_text(), 60, f"the guest reading {expect} from its CD")

        def cd_insert():
            insert("disc-a.iso")
            read_disc("virtus-disc-a")
            d.screenshot(os.path.join(SHOTS, "vm-cd.png"))
            insert("disc-b.iso")
            read_disc("virtus-disc-b")
        tap.step(d, "CD from the page: a click inserts an ISO and the guest reads it; another click swaps it", cd_insert)

        def disk():
            d.click(d.find(".btn-disk", vm_row()))
            d.accept_alert("data /tmp/data.img")
            d.wait_for(lambda: "add disk data to web1: " in d.text(d.find("#notice")), 60, "the disk added")
            # The API answers once the device is on the bus; the guest finds it a little later (its hotplug
            # handler runs on the emulated L1's one vCPU), so ask again until it does.
            deadline = time.monotonic() + 60
            while True:
                type_line("cat /sys/block/vda/serial; echo")
                try:
                    d.wait_for(lambda: "\ndata" in term_text(), 5, "the guest seeing the new disk's serial")
                    return
                except AssertionError:
                    if time.monotonic() >= deadline:
                        raise
        tap.step(d, "disk from the page: one plugged into the running VM, the guest sees it", disk)

        def guest_goes_on(how):
            """web1's console in the page: its guest answers, the disk plugged in before still there."""
            d.click(d.find(".btn-console", vm_row()))
            time.sleep(1)
            type_line(f"echo {how}-$((3*3)); cat /sys/block/vda/serial")
            d.wait_for(lambda: f"{how}-9" in term_text() and "\ndata" in term_text(), 60,
                       f"the {how} guest answering, its plugged-in disk there")
            d.screenshot(os.path.join(SHOTS, f"vm-{how}.png"))

        def snapshot_restore():
            d.click(d.find(".btn-snapshot", vm_row()))
            d.accept_alert("/tmp/snap1")
            d.wait_for(lambda: "/tmp/snap1: state" in d.text(d.find("#notice")), 120, "the snapshot's report")
            d.wait_for(lambda: state() == "Running", 30, "web1 running on after its snapshot")
            d.click(d.find("#terminal-close"))
            d.click(d.find(".btn-kill", vm_row()))
            d.wait_for(lambda: not d.find_all('#vms tr[data-name="web1"]'), 60, "web1 gone after Kill")
            form = d.find("#restore-form")
            d.send_keys(d.find('input[name="name"]', form), "web1")
            d.send_keys(d.find('input[name="dir"]', form), "/tmp/snap1")
            d.click(d.find('button[type="submit"]', form))
            d.wait_for(lambda: d.find_all('#vms tr[data-name="web1"]') and state() == "Running", 120,
                       "web1 restored and Running")
            guest_goes_on("restored")
        tap.step(d, "snapshot from the page, kill, restore: the guest goes on where it was, its plugged-in disk too",
                 snapshot_restore)

        def migrate():
            d.click(d.find("#terminal-close"))
            d.click(d.find(".btn-migrate", vm_row()))
            d.accept_alert(os.environ["DEST_L1_URL"])
            d.wait_for(lambda: not d.find_all('#vms tr[data-name="web1"]'), 300, "web1 gone from this host's list")
            assert "migrate web1: " in d.text(d.find("#notice")), d.text(d.find("#error"))
            d.get(os.environ["DEST_PAGE_URL"])
            d.wait_for(lambda: d.find_all('#vms tr[data-name="web1"]') and state() == "Running", 60,
                       "web1 Running on the other server's page")
            guest_goes_on("migrated")
        tap.step(d, "live migration from the page to another virtus serve (URL and token): the guest goes on there",
                 migrate)

        def kill():
            d.click(d.find("#terminal-close"))
            d.click(d.find(".btn-kill", vm_row()))
            d.wait_for(lambda: not d.find_all('#vms tr[data-name="web1"]'), 60, "VM web1 gone")
        tap.step(d, "kill from the page: the VM ends and leaves the list", kill)


if __name__ == "__main__":
    main()
    print(f"# last {tap.n}")
