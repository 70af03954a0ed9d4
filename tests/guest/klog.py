#!/usr/bin/env python3
"""tests/guest/klog.py: the guest kernel's log by sequence number, so that a
check "nothing bad since the mark" cannot go blind when the ring buffer wraps.

  klog.py seq          print the sequence number of the newest record
  klog.py since SEQ    print every record newer than SEQ ("[secs] text");
                       exit 3 when records newer than SEQ were overwritten
                       before they could be read (the check would be blind)
  klog.py bad SEQ [SEQFILE]
                       like since, but print only the records that show a
                       kernel problem (warning, BUG, oops, lockup, stall,
                       bad page, panic); exit 1 if there is one, 3 if records
                       were lost, else 0. With SEQFILE, write there the
                       newest seq read: the mark for the next check, with no
                       record falling between the two

/dev/kmsg hands out one record per read(2), each "level,seq,usec,flags;text";
a reader whose next record was overwritten gets EPIPE (the records lost).
"""
import errno
import os
import re
import sys

BAD = re.compile(
    r"WARNING:|BUG:|Oops|Bad page|general protection|Call Trace|"
    r"soft lockup|hard LOCKUP|detected stall|Kernel panic|kernel BUG at|"
    r"list_(add|del) corruption|refcount_t:|UBSAN:|KASAN:"
)


def records():
    """Yield (seq, usec, text) for every record the buffer still holds, oldest
    first. After EPIPE (records overwritten under the reader) reading goes on
    from the oldest record left: the jump shows as a gap in seq."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    return
                if e.errno == errno.EPIPE:
                    continue
                raise
            head, _, text = raw.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            yield int(fields[1]), int(fields[2]), text.split("\n", 1)[0]
    finally:
        os.close(fd)


def newest():
    seq = -1
    for seq, _, _ in records():
        pass
    return seq


def since(mark):
    """Records newer than mark, and whether any record newer than mark is
    missing (overwritten before it was read)."""
    out, prev, lost = [], mark, False
    for seq, usec, text in records():
        if seq > prev + 1 and seq - 1 > mark:
            lost = True
        prev = max(prev, seq)
        if seq > mark:
            out.append((seq, usec, text))
    return out, lost


def main(argv):
    if len(argv) == 2 and argv[1] == "seq":
        print(newest())
        return 0
    if (len(argv) == 3 and argv[1] == "since") or (len(argv) in (3, 4) and argv[1] == "bad"):
        mark = int(argv[2])
        recs, lost = since(mark)
        if len(argv) == 4:
            with open(argv[3], "w") as f:
                f.write("%d\n" % (recs[-1][0] if recs else mark))
        bad = False
        for seq, usec, text in recs:
            if argv[1] == "bad" and not BAD.search(text):
                continue
            bad = True
            print("[%5d.%06d] %s" % (usec // 1000000, usec % 1000000, text))
        if lost:
            print("klog: kernel log records after seq %d were overwritten "
                  "before they were read: a problem could be hidden" % mark)
            return 3
        return 1 if (argv[1] == "bad" and bad) else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
