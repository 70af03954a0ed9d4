# tests/guest/kmsg.bash: the guest kernel's log by sequence number, for the
# checks "nothing went wrong in the kernel since the last look" (sourced by
# tests/guest/run after each case and tests/guest/torture after each cycle).
#   kmsg_open            hold /dev/kmsg open; what was logged so far is skipped
#   kmsg_check FILE      read the records since the last look into FILE; print
#                        what is wrong and return 1 on a crash signature, a
#                        record lost to the ring buffer, or a read error
# Processes started after kmsg_open should close the descriptor: ( exec {kmsg}<&- ... ).

# The kernel log, by sequence number: one /dev/kmsg descriptor is held open
# for the whole suite, and each read of it returns the records after the last
# one read, whatever the ring buffer did meanwhile. A line count of `dmesg`
# cannot do that: once the buffer is full, it stops moving.
# Crash signatures: any of these in a case's records fails the case.
kmsg_bad='WARNING:|BUG:|Oops|Bad page|general protection|Call Trace|soft lockup|hard LOCKUP'
kmsg_bad+='|rcu.*detected stall|Kernel panic|kernel BUG at|list_(add|del) corruption|refcount_t:|UBSAN:'
# kmsg_read FILE: append the messages of the records not read yet to FILE;
# set kmsg_lost to how many records were overwritten before they could be
# read (a gap in the sequence numbers), and kmsg_error to a read error other
# than the end of the log. One dd and one awk: no exec per record.
kmsg_read() {
	local raw=$1.raw tries
	: >"$raw"
	# dd stops at its first failed read: EAGAIN at the end of the log; EPIPE
	# when the reader's next record was overwritten, the read after that
	# going on from the oldest record still there (the gap counts them)
	for tries in 1 2 3 4 5 6 7 8; do
		kmsg_error=$(LC_ALL=C dd iflag=nonblock bs=65536 status=none <&"$kmsg" 2>&1 >>"$raw")
		[[ $kmsg_error == *"Broken pipe"* ]] || break
	done
	[[ $kmsg_error == *"Resource temporarily unavailable"* ]] && kmsg_error=
	read -r kmsg_last kmsg_lost < <(awk -v last="$kmsg_last" -v out="$1" '
		/^ / { next }                   # a record'"'"'s key=value continuation
		{
			i = index($0, ";"); split(substr($0, 1, i - 1), h, ",")
			s = h[2] + 0
			if (s <= last) next
			if (last >= 0 && s > last + 1) lost += s - last - 1
			last = s
			print substr($0, i + 1) >>out
		}
		END { print last, lost + 0 }' "$raw")
	rm -f "$raw"
}
kmsg_open() {
	exec {kmsg}</dev/kmsg || { echo "cannot read the kernel log (/dev/kmsg)" >&2; return 1; }
	kmsg_last=-1
	local boot
	boot=$(mktemp /tmp/kmsg-boot.XXXXXX)
	kmsg_read "$boot"
	rm -f "$boot"
}

kmsg_check() {
	local f=$1 ok=0
	: >"$f"
	kmsg_read "$f"
	if grep -Eq "$kmsg_bad" "$f"; then
		echo "kernel log: $(grep -Ec "$kmsg_bad" "$f") line(s) matching a crash signature; from the first:"
		grep -E -m 1 -A 24 "$kmsg_bad" "$f"
		ok=1
	fi
	if [ -n "$kmsg_error" ]; then
		echo "cannot read the kernel log: $kmsg_error"
		ok=1
	fi
	if [ "$kmsg_lost" != 0 ]; then
		echo "kernel log overflowed: $kmsg_lost records lost (a warning could be among them)"
		ok=1
	fi
	return $ok
}
