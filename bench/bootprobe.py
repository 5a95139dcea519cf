"""bench/bootprofile.py --probe: the sitecustomize.py it puts on the agent's PYTHONPATH in a profiled box.
In the agent's process only, once per boot: a shell that snapshots the guest's counters when the
agent starts and once it is active (CPU per process, interrupts, block and reclaim counters), then
systemd-analyze and lsmod, and once the slot check is done the agent's imports from a cold page cache
(three times), into /var/lib/capbox/profile-BOOT.txt; "capbox-probe: done" on the console at the end."""
import os
import subprocess
import sys

if "run" in sys.argv and not os.path.exists("/run/capbox-probe"):
    open("/run/capbox-probe", "w").close()
    script = r'''
out=/var/lib/capbox/profile-$(cut -c1-8 /proc/sys/kernel/random/boot_id).txt
snap() {
  echo "== $1 at $(cut -d' ' -f1 /proc/uptime)"
  echo "-- /proc/stat"; head -3 /proc/stat
  echo "-- dm-0 vda stat"; cat /sys/block/dm-0/stat /sys/block/vda/stat
  echo "-- meminfo"; grep -E "^(Cached|MemFree|Buffers)" /proc/meminfo
  echo "-- pid stat"; cat /proc/[0-9]*/stat 2>/dev/null
  echo "-- interrupts"; cat /proc/interrupts
  echo "-- softirqs"; cat /proc/softirqs
  echo "-- vmstat"; grep -E "^(pgfault|pgmajfault|pgscan|pgsteal|pswp)" /proc/vmstat
  echo "-- clocksource"; cat /sys/devices/system/clocksource/clocksource0/current_clocksource \
    /sys/devices/system/clocksource/clocksource0/available_clocksource
}
{ snap start; } >> $out
while ! systemctl -q is-active capbox.service; do sleep 0.5; done
{ snap ready; } >> $out
sleep 20
{ snap later; echo "-- blame"; systemd-analyze blame; echo "-- critical-chain"; systemd-analyze critical-chain capbox.service;
  echo "-- time"; systemd-analyze time; echo "-- lsmod"; lsmod;
  echo "-- udev devices by subsystem"; udevadm info -e | sed -n 's/^E: SUBSYSTEM=//p' | sort | uniq -c | sort -rn;
  echo "-- ps"; ps -eo pid,etimes,times,args;
  echo "-- units"; systemctl list-units --no-pager --all --state=active; echo "-- end"; } >> $out 2>&1
# the read path alone, on a settled box (the slot check done): the agent's imports from a cold page
# cache, three times; the guest's CPU (/proc/stat) and wall time (uptime) around each
while systemctl -q is-active capbox-verify-slot.service; do sleep 1; done
for i in 1 2 3; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  a=$(head -1 /proc/stat); t0=$(cut -d' ' -f1 /proc/uptime)
  /opt/capbox/bin/python -c "import agent.runtime, agent.api.server, agent.cli"
  t1=$(cut -d' ' -f1 /proc/uptime); b=$(head -1 /proc/stat)
  echo "== coldimport $i: $t0 -> $t1"; echo "$a"; echo "$b"
done >> $out 2>&1
sync
echo "<2>capbox-probe: done" > /dev/kmsg
'''
    subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
