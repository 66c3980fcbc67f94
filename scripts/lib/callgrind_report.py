"""Per-call figures from pairs of callgrind runs (used by scripts/bench-core).

    callgrind_report.py DIR (MODE N_SMALL N_BIG CEILING LABEL)... [--brief]

For each MODE, DIR holds MODE.N_SMALL and MODE.N_BIG (callgrind.out files of the same driver at
two sizes). Every figure is (big - small) / (N_BIG - N_SMALL): what one more call (or chunk)
costs, start-up excluded. Functions are keyed by name, summed over the source files their inlined
code is attributed to (callgrind_annotate lists one line per file:function; see annotate()). CEILING > 0: exit 1
if the total per unit passes it.
"""

import collections
import re
import subprocess
import sys

# Functions counted per call: the suspects that show up as calls (allocation, hashing,
# 128-bit division, decimal parsing, record serialisation).
SUSPECT_CALLS = [
    ("allocations (malloc)", r"^malloc$"),
    ("reallocations (realloc)", r"^realloc$"),
    ("frees (free)", r"^free$"),
    ("SHA-256 blocks (API key hash)", r"sha2::sha256::.*compress"),
    ("128-bit divisions (__udivti3/__divti3)", r"^__u?divti3$"),
    ("decimal parses (Usd::parse, usage::raw_decimal)", r"llm_cost_core::(money::Usd::parse|usage::raw_decimal)$"),
    ("decimal formatting (Usd::to_decimal_string)", r"Usd::to_decimal_string$"),
    ("price table lookups (PriceTable::get)", r"PriceTable>?::get$"),
    ("JSON strings written (serde_json::to_string)", r"^serde_json::ser::to_string"),
    ("JSON documents parsed (serde_json::de::from_slice)", r"^serde_json::de::from_slice"),
]

LINE = re.compile(r"^\s*([\d,]+) \([\s\d.]+%\)\s+(.*?)(?: \[[^\]]*\])?$")


def annotate(path, inclusive):
    """{function: instructions} from callgrind_annotate: self cost summed over the files a
    function's (inlined) code is attributed to; inclusive cost is not additive over those lines
    (each carries the calls made from it, nested), so the largest one stands for the function."""
    out = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", "--inclusive=%s" % ("yes" if inclusive else "no"), path],
        capture_output=True, text=True, check=True, timeout=300).stdout
    body = out.split("file:function", 1)[1]
    totals = collections.Counter()
    for line in body.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        where = m.group(2)
        fn = where.split(":", 1)[1] if ":" in where and not where.startswith("???:0x") else where
        value = int(m.group(1).replace(",", ""))
        totals[fn] = max(totals[fn], value) if inclusive else totals[fn] + value
    return totals


def program_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("callgrind_report: no total in %s" % path)


def calls(path):
    """{function: times called} from the raw callgrind.out (compressed names resolved)."""
    names, counts, target = {}, collections.Counter(), None
    with open(path) as f:
        for line in f:
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                target = names.get(m.group(1))
            elif line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls=") and target:
                counts[target] += int(line.split()[0][6:])
                target = None
    return counts


def per_unit(big, small, n):
    return {k: (big.get(k, 0) - small.get(k, 0)) / n for k in set(big) | set(small)}


def short(fn, width=110):
    fn = re.sub(r"<[^<>]*(?:<[^<>]*>[^<>]*)*>::", lambda m: m.group(0) if len(m.group(0)) < 40 else "<…>::", fn)
    return fn if len(fn) <= width else fn[: width - 1] + "…"


def report(d, mode, small, big, ceiling, label, brief):
    n = big - small
    a, b = "%s/%s.%d" % (d, mode, small), "%s/%s.%d" % (d, mode, big)
    total = (program_total(b) - program_total(a)) / n
    print("%s: %s instructions (callgrind; %s at %d and %d, difference / %d)"
          % (label, format(round(total), ","), mode, small, big, n))
    if not brief:
        incl = per_unit(annotate(b, True), annotate(a, True), n)
        excl = per_unit(annotate(b, False), annotate(a, False), n)
        print("  top functions, inclusive (instructions %s, share):" % label)
        skip = re.compile(r"^(\?\?\?|main$|__libc|std::|core::ops::function|\(below main\)|llm_cost_bench_core::main)")
        rows = [(v, k) for k, v in incl.items() if v > 0 and not skip.match(k)]
        for v, k in sorted(rows, reverse=True)[:22]:
            print("    %10s %5.1f%%  %s" % (format(round(v), ","), 100 * v / total, short(k)))
        print("  top functions, self (instructions %s, share):" % label)
        for v, k in sorted(((v, k) for k, v in excl.items() if v > 0), reverse=True)[:15]:
            print("    %10s %5.1f%%  %s" % (format(round(v), ","), 100 * v / total, short(k)))
        counted = per_unit(calls(b), calls(a), n)
        print("  calls %s:" % label)
        for what, pattern in SUSPECT_CALLS:
            rx = re.compile(pattern)
            print("    %10.2f  %s" % (sum(v for k, v in counted.items() if rx.search(k)), what))
    if ceiling and total > ceiling:
        print("bench-core: %s: %d instructions, ceiling %d" % (label, total, ceiling), file=sys.stderr)
        return False
    return True


def main():
    args = sys.argv[1:]
    brief = "--brief" in args
    args = [a for a in args if a != "--brief"]
    d, rest, ok = args[0], args[1:], True
    while rest:
        mode, small, big, ceiling, label, rest = rest[0], int(rest[1]), int(rest[2]), int(rest[3]), rest[4], rest[5:]
        ok &= report(d, mode, small, big, ceiling, label, brief)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
